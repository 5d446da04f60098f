import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloneDirOf, normalizeSourceUrl, openExternal, remoteRevision, sourceRemoteLocation } from '../../src/repo/lib/external.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { git, makeRepo, tmpDir, write } from '../helpers/repo.js';
import { commitAt, isolateUserCache, makeSource, objectFiles } from '../helpers/source.js';

const userCache = isolateUserCache();

describe('openExternal', () => {
  it('reads another repository at its default branch, a tag and a date, through a file:// URL and a plain path', async () => {
    const src = await makeSource();
    for (const url of [src.url, src.dir]) {
      const head = await openExternal(url);
      expect(head.commit).toBe(src.v2);
      const snap = await head.snapshot();
      expect((await snap.list(''))!.map((e) => [e.path, e.kind, e.source])).toEqual([
        ['.gitignore', 'file', 'git'],
        ['.tdvignore', 'file', 'git'],
        ['README.md', 'file', 'git'],
        ['data', 'dir', 'git'],
        ['images', 'dir', 'data'],
        ['images.tdv', 'file', 'git'],
        ['src', 'dir', 'git'],
      ]);
      await head.close();
      expect((await openExternal(url, { rev: 'v1' })).commit).toBe(src.v1);
      expect((await openExternal(url, { rev: '@2016-07-31' })).commit).toBe(src.v1);
    }
    // The clone is Git history only, kept per URL in the user cache.
    expect(cloneDirOf(src.url).startsWith(userCache())).toBe(true);
    expect(fs.existsSync(path.join(cloneDirOf(src.url), 'HEAD'))).toBe(true);
  });

  it('fetches new commits when reused, and follows the default branch', async () => {
    const src = await makeSource();
    expect((await openExternal(src.url)).commit).toBe(src.v2);
    write(src.dir, 'README.md', '# v3\n');
    const v3 = await commitAt(src.dir, '2016-09-01T12:00:00Z', 'v3');
    expect((await openExternal(src.url)).commit).toBe(v3);
    await git(src.dir, 'checkout', '-q', '-b', 'other', src.v1);
    expect((await openExternal(src.url)).commit).toBe(src.v1);
    expect(await remoteRevision(src.url)).toBe(src.v1);
    expect(await remoteRevision(src.url, 'main')).toBe(v3);
    expect(await remoteRevision(src.url, 'v1')).toBe(src.v1);
    expect(await remoteRevision(src.url, 'nope')).toBeUndefined();
  });

  it('reads data from the source remote into this repository cache when given one', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await withRepo(here, async (repo) => {
      const ext = await openExternal(src.url, { here: repo });
      const snap = await ext.snapshot();
      const trips = (await snap.stat('data/trips.csv'))!;
      expect((await snap.read(trips)).toString()).toBe('id,km\n1,v2\n2,v2\n');
      expect(repo.store.has(trips.oid!)).toBe(true);
      await ext.close();
    });
  });

  it('refuses URLs git would read as an option or run as a command', () => {
    expect(() => normalizeSourceUrl('--upload-pack=touch /tmp/x')).toThrow(/starts with "-"/);
    expect(() => normalizeSourceUrl('-uevil')).toThrow(/starts with "-"/);
    expect(() => normalizeSourceUrl('ext::sh -c touch% /tmp/pwned')).toThrow(/remote helper/);
    expect(() => normalizeSourceUrl('fd::3')).toThrow(/remote helper/);
    expect(normalizeSourceUrl('./-x', '/base').url).toBe('/base/-x');
  });

  it('refuses a Git repository without .tdv at the top, naming it', async () => {
    const dir = await makeRepo({ init: false });
    write(dir, 'a.txt', 'a');
    await commitAt(dir, '2020-01-01T00:00:00Z', 'a');
    const err = await rejectsWith(openExternal(dir), 'NOT_A_REPO');
    expect(err.message).toContain(dir);
  });

  it('names the source when its remote cannot be read', async () => {
    const src = await makeSource();
    fs.rmSync(src.remote, { recursive: true });
    const ext = await openExternal(src.url);
    const snap = await ext.snapshot();
    const err = await rejectsWith(snap.read((await snap.stat('data/trips.csv'))!), 'REMOTE_NOT_FOUND');
    expect(err.message).toMatch(new RegExp(`^${src.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*store`));
    // Advice about that repository's remote, not commands that change this one's (or make an empty directory).
    expect(err.message).toMatch(/; pass --remote NAME to read another of its remotes$/);
    expect(err.message).not.toMatch(/mkdir|tdv remote modify/);
    expect(objectFiles(path.join(userCache(), 'objects'))).toEqual([]);
  });
});

describe('openExternal: revisions no branch reaches', () => {
  it('fetches a commit by its full id', async () => {
    const src = await makeSource();
    await openExternal(src.url);
    await git(src.dir, 'checkout', '-q', '-b', 'side');
    write(src.dir, 'README.md', '# side\n');
    const side = await commitAt(src.dir, '2016-09-01T00:00:00Z', 'side');
    await git(src.dir, 'checkout', '-q', 'main');
    await git(src.dir, 'branch', '-q', '-D', 'side');
    const ext = await openExternal(src.url, { rev: side });
    expect(ext.commit).toBe(side);
    const snap = await ext.snapshot();
    expect((await snap.read((await snap.stat('README.md'))!)).toString()).toBe('# side\n');
  });
});

describe('sourceRemoteLocation', () => {
  it('a relative directory remote is relative to a local source, and an error for a network one', () => {
    expect(sourceRemoteLocation({ url: '/srv/registry', localPath: '/srv/registry' }, 'store', '../store')).toEqual({ kind: 'local', path: '/srv/store' });
    expect(sourceRemoteLocation({ url: 'https://example.com/registry.git' }, 'store', '/mnt/store')).toEqual({ kind: 'local', path: '/mnt/store' });
    expect(sourceRemoteLocation({ url: 'https://example.com/registry.git' }, 's3', 's3://b/p')).toEqual({ kind: 's3', bucket: 'b', prefix: 'p' });
    expect(() => sourceRemoteLocation({ url: 'https://example.com/registry.git' }, 'store', '../store')).toThrow(/remote "store" of https:\/\/example.com\/registry.git is the relative directory/);
  });
});

describe('openExternal: network sources', () => {
  it('an unreachable ssh:// source fails with one line, without prompting', async () => {
    const err = await rejectsWith(openExternal('ssh://git@127.0.0.1:1/org/registry.git'), 'GIT_FAILED');
    expect(err.message).toMatch(/^cannot read the Git repository ssh:\/\/\*\*\*\*@127\.0\.0\.1:1\/org\/registry\.git: [^\n]+$/);
  });

  it("ignores Git's repository-locating variables (a hook's GIT_DIR, GIT_OBJECT_DIRECTORY, GIT_NAMESPACE): the clone gets the objects and refs", async () => {
    const src = await makeSource();
    const elsewhere = fs.realpathSync(tmpDir());
    const other = await makeRepo();
    const env = { ...process.env, GIT_DIR: path.join(other, '.git'), GIT_OBJECT_DIRECTORY: elsewhere, GIT_NAMESPACE: 'x' };
    const ext = await openExternal(src.url, { env });
    try {
      expect(ext.commit).toBe(src.v2);
      expect((await (await ext.snapshot()).list('data'))?.map((e) => e.path)).toContain('data/trips.csv');
    } finally {
      await ext.close();
    }
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });
});
