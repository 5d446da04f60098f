import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ls, lsTarget } from '../../src/repo/ls.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { makeRepo, tdv, write } from '../helpers/repo.js';
import { commitAt, isolateUserCache, makeSource, objectFiles } from '../helpers/source.js';

const userCache = isolateUserCache();

const names = (r: { entries: { path: string; kind: string; source: string }[] }) => r.entries.map((e) => `${e.source} ${e.path}${e.kind === 'dir' ? '/' : ''}`);

describe('ls', () => {
  it('lists the root, a subdirectory, a tracked directory and a file of this repository at HEAD and older revisions', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      expect(names(await ls(repo))).toEqual(['git .gitignore', 'git .tdvignore', 'git README.md', 'git data/', 'data images/', 'git images.tdv', 'git src/']);
      expect(names(await ls(repo, { path: 'data' }))).toEqual(['git .gitignore', 'data trips.csv', 'git trips.csv.tdv']);
      expect(names(await ls(repo, { path: 'images' }))).toEqual(['data a.png', 'data c.png', 'data sub/']);
      expect(names(await ls(repo, { path: 'images', rev: 'v1' }))).toEqual(['data a.png', 'data sub/']);
      expect(names(await ls(repo, { path: 'images', rev: '@2016-07-31' }))).toEqual(['data a.png', 'data sub/']);
      const file = await ls(repo, { path: 'data/trips.csv', rev: 'v1' });
      expect(file.entries).toEqual([{ path: 'trips.csv', kind: 'file', source: 'data', size: 11, oid: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
      expect(file.commit).toBe(src.v1);
    });
  });

  it('lists recursively, with sizes of Git files when asked', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      const r = await ls(repo, { recursive: true, long: true });
      expect(r.entries.map((e) => e.path)).toEqual([
        '.gitignore',
        '.tdvignore',
        'README.md',
        'data/.gitignore',
        'data/trips.csv',
        'data/trips.csv.tdv',
        'images.tdv',
        'images/a.png',
        'images/c.png',
        'images/sub/b.png',
        'src/x.py',
      ]);
      expect(r.entries.every((e) => e.kind === 'file' && typeof e.size === 'number')).toBe(true);
      expect(r.entries.find((e) => e.path === 'README.md')!.size).toBe('# source\n'.length);
    });
  });

  it('lists another repository through a file:// URL and a plain path, fetching only a manifest from its remote', async () => {
    const src = await makeSource();
    for (const url of [src.url, src.dir]) {
      const root = await ls(undefined, { url, rev: 'v1' });
      expect(root.repository).toBe(url === src.url ? src.url : src.dir);
      expect(names(root)).toEqual(['git .gitignore', 'git .tdvignore', 'git README.md', 'git data/', 'data images/', 'git images.tdv', 'git src/']);
      expect(names(await ls(undefined, { url, path: 'images/sub' }))).toEqual(['data b.png']);
    }
    // The objects fetched outside any repository: the two manifests, no data.
    const fetched = objectFiles(path.join(userCache(), 'objects'));
    expect(fetched.every((f) => f.endsWith('.dir'))).toBe(true);
    expect(fetched.length).toBe(1);
  });

  it('shares the cache of the repository it runs in', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await withRepo(here, async (repo) => {
      const r = await ls(repo, { url: src.url, path: 'images', recursive: true });
      expect(r.entries.map((e) => e.path)).toEqual(['a.png', 'c.png', 'sub/b.png']);
      expect(objectFiles(repo.cacheDir).map((f) => path.basename(f).endsWith('.dir'))).toEqual([true]);
    });
  });

  it('says what does not exist', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      await rejectsWith(ls(repo, { path: 'nope' }), 'NOT_FOUND');
      await rejectsWith(ls(repo, { path: 'images/c.png', rev: 'v1' }), 'NOT_FOUND');
      await rejectsWith(ls(repo, { rev: 'no-such-rev' }), 'UNKNOWN_REVISION');
      await rejectsWith(ls(repo, { path: '../x' }), 'USAGE');
    });
    await rejectsWith(ls(undefined, {}), 'NOT_A_REPO');
    // A repository without a commit yet: said so, not "unknown revision HEAD".
    await withRepo(await makeRepo(), (repo) => rejectsWith(ls(repo), 'NO_COMMITS'));
  });
});

describe('lsTarget', () => {
  it('reads one argument inside this repository as a path, else as a URL; two as URL and path', () => {
    const root = '/srv/repo';
    expect(lsTarget([], `${root}/sub`, root)).toEqual({ path: 'sub' });
    expect(lsTarget(['data'], root, root)).toEqual({ path: 'data' });
    expect(lsTarget(['.'], `${root}/a`, root)).toEqual({ path: 'a' });
    expect(lsTarget(['../other'], root, root)).toEqual({ url: '/srv/other', path: '' });
    expect(lsTarget(['data'], root, undefined)).toEqual({ url: `${root}/data`, path: '' });
    expect(lsTarget(['file:///x/y'], root, root)).toEqual({ url: 'file:///x/y', path: '' });
    expect(lsTarget(['git@host:org/repo'], root, root)).toEqual({ url: 'git@host:org/repo', path: '' });
    expect(lsTarget(['.', 'data'], root, root)).toEqual({ path: 'data' });
    expect(lsTarget(['../other', 'data'], root, root)).toEqual({ url: '/srv/other', path: 'data' });
  });

  it('two tracked directories with the same content (one manifest object) each list their own paths', async () => {
    const src = await makeSource();
    write(src.dir, 'copy/a.png', 'A');
    write(src.dir, 'copy/c.png', 'C');
    write(src.dir, 'copy/sub/b.png', 'B');
    expect((await tdv(src.dir, 'add', 'copy')).code).toBe(0);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'copy of images');
    await withRepo(src.dir, async (repo) => {
      const r = await ls(repo, { recursive: true });
      expect(names(r).filter((n) => n.startsWith('data'))).toEqual([
        'data copy/a.png',
        'data copy/c.png',
        'data copy/sub/b.png',
        'data data/trips.csv',
        'data images/a.png',
        'data images/c.png',
        'data images/sub/b.png',
      ]);
    });
  });
});
