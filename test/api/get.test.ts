import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { get } from '../../src/repo/get.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { git, makeRepo, read, snapshot, tdv, tmpDir, write } from '../helpers/repo.js';
import { damageRemoteObject, filePointer, manifest, packedObjects, sha } from '../helpers/expect.js';
import { commitAt, isolateUserCache, makeSource } from '../helpers/source.js';

const userCache = isolateUserCache();

describe('get', () => {
  it('downloads a file and a directory outside any repository, at the default branch and at a tag', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const f = await get(undefined, { url: src.url, path: 'data/trips.csv' }, out);
    expect(f).toMatchObject({ kind: 'file', files: 1, out: path.join(out, 'trips.csv'), commit: src.v2 });
    expect(read(out, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    const d = await get(undefined, { url: src.dir, path: 'images', rev: 'v1', out: path.join(out, 'old') }, out);
    expect(d).toMatchObject({ kind: 'dir', files: 2, bytes: 2 });
    expect(snapshot(path.join(out, 'old'))).toEqual({ 'a.png': Buffer.from('A').toString('base64'), 'sub/b.png': Buffer.from('B').toString('base64') });
    // A Git file, and a Git directory holding data: its files and data, without pointer files.
    await get(undefined, { url: src.url, path: 'README.md', rev: 'v1' }, out);
    expect(read(out, 'README.md')).toBe('# source\n');
    await get(undefined, { url: src.url, path: 'data', rev: 'v1', out: path.join(out, 'd') }, out);
    expect(fs.readdirSync(path.join(out, 'd')).sort()).toEqual(['.gitignore', 'trips.csv']);
    // Plain copies: an edit of the output never reaches a cache.
    fs.appendFileSync(path.join(out, 'trips.csv'), 'x');
    expect(fs.statSync(path.join(out, 'trips.csv')).nlink).toBe(1);
  });

  it('inside a repository: its cache is shared, nothing is tracked, Git-tracked files are not overwritten', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    write(here, 'kept.txt', 'mine');
    await git(here, 'add', 'kept.txt');
    await git(here, 'commit', '-qm', 'kept');
    await withRepo(here, async (repo) => {
      await get(repo, { url: src.url, path: 'images' }, here);
      expect(repo.store.has(sha('C'))).toBe(true);
      expect(read(here, 'images/c.png')).toBe('C');
      expect(fs.existsSync(path.join(here, 'images.tdv'))).toBe(false);
      const err = await rejectsWith(get(repo, { url: src.url, path: 'README.md', out: path.join(here, 'kept.txt'), force: true }, here), 'UNSAFE_PATH');
      expect(err.message).toContain('kept.txt');
      expect(read(here, 'kept.txt')).toBe('mine');
      await rejectsWith(get(repo, { url: src.url, path: 'README.md', out: path.join(here, '.tdv', 'cache', 'x') }, here), 'USAGE');
      await rejectsWith(get(repo, { url: src.url, path: 'README.md', out: path.join(here, '.git', 'x') }, here), 'UNSAFE_PATH');
    });
  });

  it('refuses an existing output unless --force, and --force does not follow a symlink in it', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    write(out, 'trips.csv', 'mine');
    await rejectsWith(get(undefined, { url: src.url, path: 'data/trips.csv' }, out), 'EXISTS');
    expect(read(out, 'trips.csv')).toBe('mine');
    await get(undefined, { url: src.url, path: 'data/trips.csv', force: true }, out);
    expect(read(out, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    const elsewhere = fs.realpathSync(tmpDir());
    fs.mkdirSync(path.join(out, 'images'));
    fs.symlinkSync(elsewhere, path.join(out, 'images', 'sub'));
    await get(undefined, { url: src.url, path: 'images', force: true }, out);
    expect(fs.readdirSync(elsewhere)).toEqual([]);
    expect(fs.lstatSync(path.join(out, 'images', 'sub')).isDirectory()).toBe(true);
    expect(read(out, 'images/sub/b.png')).toBe('B');
  });

  it('writes nothing when an object is missing from the remote or damaged there', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    damageRemoteObject(src.remote, sha('C'), 'X');
    await rejectsWith(get(undefined, { url: src.url, path: 'images' }, out), 'CORRUPT_ON_REMOTE');
    // The pack holding it gone while its index still names it: the remote is damaged (the fix is push --repair).
    fs.rmSync(packedObjects(src.remote).get(sha('C'))!.pack);
    await rejectsWith(get(undefined, { url: src.url, path: 'images' }, out), 'CORRUPT_ON_REMOTE');
    expect(fs.readdirSync(out)).toEqual([]);
  });

  it('refuses a hostile pointer in the source, URLs git would read as options, and ext::', async () => {
    const src = await makeSource();
    write(src.dir, 'evil.tdv', filePointer('../../escaped', 'x'));
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'evil');
    const out = fs.realpathSync(tmpDir());
    await rejectsWith(get(undefined, { url: src.url, path: 'data/trips.csv' }, out), 'BAD_FORMAT');
    await rejectsWith(get(undefined, { url: '--upload-pack=touch pwned', path: 'x' }, out), 'USAGE');
    await rejectsWith(get(undefined, { url: `ext::sh -c touch% ${out}/pwned`, path: 'x' }, out), 'USAGE');
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.existsSync(path.join(path.dirname(src.dir), 'escaped'))).toBe(false);
  });

  it('a missing path, the root, no default remote', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    await rejectsWith(get(undefined, { url: src.url, path: 'nope' }, out), 'NOT_FOUND');
    await rejectsWith(get(undefined, { url: src.url, path: '.' }, out), 'USAGE');
    expect((await tdv(src.dir, 'remote', 'default', '--unset')).code).toBe(0);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'no default');
    await rejectsWith(get(undefined, { url: src.url, path: 'data/trips.csv' }, out), 'NO_REMOTE');
    // A Git file needs no remote.
    await get(undefined, { url: src.url, path: 'src/x.py' }, out);
    expect(read(out, 'x.py')).toBe('print(1)\n');
  });
});

describe('get: hostile sources', () => {
  it('refuses a manifest whose paths leave the directory, writing nothing', async () => {
    const src = await makeSource();
    const m = manifest([
      { relpath: 'ok.png', content: 'A' },
      { relpath: '../../escaped.png', content: 'B' },
    ]);
    const obj = path.join(src.remote, 'files', 'sha256', m.oid.slice(0, 2), m.oid.slice(2));
    fs.mkdirSync(path.dirname(obj), { recursive: true });
    fs.writeFileSync(obj, m.text);
    write(src.dir, 'evil.tdv', `outs:\n- path: evil\n  sha256: ${m.oid}\n  size: ${m.size}\n  nfiles: 2\n`);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'evil');
    const out = fs.realpathSync(path.join(tmpDir(), '.'));
    const err = await rejectsWith(get(undefined, { url: src.url, path: 'evil' }, out), 'BAD_FORMAT');
    expect(err.message).toContain('escaped.png');
    // Which directory of which repository: the cache file it names alone tells the user nothing.
    expect(err.message).toMatch(new RegExp(`^evil at HEAD of ${src.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} cannot be read: `));
    expect(fs.readdirSync(out)).toEqual([]);
    expect(fs.existsSync(path.join(path.dirname(out), 'escaped.png'))).toBe(false);
  });

  it('refuses a source config too large to be one', async () => {
    const src = await makeSource();
    fs.appendFileSync(path.join(src.dir, '.tdv', 'config.yaml'), `# ${'x'.repeat(9 * 2 ** 20)}\n`);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'big config');
    await rejectsWith(get(undefined, { url: src.url, path: 'data/trips.csv' }, fs.realpathSync(tmpDir())), 'TOO_LARGE');
  });

  it('removes the partial temp files a killed `tdv get` left beside and inside its output, not those of a running one', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const dead = (await execa('node', ['-e', 'process.stdout.write(String(process.pid))'])).stdout;
    // What a `tdv get` killed while copying leaves: a hidden, read-only partial file.
    write(out, `.tdvtmp.${dead}.00ab12cd34`, 'partial');
    write(out, `imgs/sub/.tdvtmp.${dead}.00ab12cd35`, 'partial');
    write(out, `.tdvtmp.${process.pid}.00ab12cd36`, 'being written');
    await get(undefined, { url: src.url, path: 'data/trips.csv' }, out);
    await get(undefined, { url: src.url, path: 'images', out: path.join(out, 'imgs'), force: true }, out);
    expect(Object.keys(snapshot(out)).sort()).toEqual([`.tdvtmp.${process.pid}.00ab12cd36`, 'imgs/a.png', 'imgs/c.png', 'imgs/sub/b.png', 'trips.csv']);
  });

  it('removes the partial objects a killed download left in the per-user cache, not those of a running one', async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const dead = (await execa('node', ['-e', 'process.stdout.write(String(process.pid))'])).stdout;
    const tmp = path.join(userCache(), 'objects', 'tmp');
    write(tmp, `obj.${dead}.00ab12cd01`, 'partial');
    write(tmp, `obj.${process.pid}.00ab12cd02`, 'being written');
    await get(undefined, { url: src.url, path: 'data/trips.csv' }, out);
    expect(fs.readdirSync(tmp)).toEqual([`obj.${process.pid}.00ab12cd02`]);
  });

  it('a Git file a source committed below one of its data files is hidden by it: listed once, and get writes the data', async () => {
    const src = await makeSource();
    // Git holds data/trips.csv/readme while a pointer tracks data/trips.csv: only plumbing makes such a tree.
    const blob = (await execa('git', ['hash-object', '-w', '--stdin'], { cwd: src.dir, input: 'hidden\n' })).stdout.trim();
    await execa('git', ['update-index', '--add', '--cacheinfo', `100644,${blob},data/trips.csv/readme`], { cwd: src.dir });
    await execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'hostile tree'], { cwd: src.dir });
    const { ls } = await import('../../src/repo/ls.js');
    const listed = await ls(undefined, { url: src.url, path: 'data', recursive: true });
    expect(listed.entries.map((e) => e.path)).toEqual(['.gitignore', 'trips.csv', 'trips.csv.tdv']);
    const out = fs.realpathSync(tmpDir());
    await get(undefined, { url: src.url, path: 'data' }, out);
    expect(snapshot(path.join(out, 'data'))).toEqual({ '.gitignore': expect.any(String), 'trips.csv': Buffer.from('id,km\n1,v2\n2,v2\n').toString('base64') });
  });

  it('refuses a tracked directory holding a file named like a pointer (it would become a pointer file here), writing nothing', async () => {
    const src = await makeSource();
    const planted = `outs:\n- path: planted\n  sha256: ${sha('A')}\n  size: 1\n`;
    const m = manifest([
      { relpath: 'ok.png', content: 'A' },
      { relpath: 'planted.tdv', content: planted },
    ]);
    const objects: [string, string][] = [
      [m.oid, m.text],
      [sha('A'), 'A'],
      [sha(planted), planted],
    ];
    for (const [oid, bytes] of objects) {
      const obj = path.join(src.remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
      fs.mkdirSync(path.dirname(obj), { recursive: true });
      fs.writeFileSync(obj, bytes);
    }
    write(src.dir, 'evil.tdv', `outs:\n- path: evil\n  sha256: ${m.oid}\n  size: ${m.size}\n  nfiles: 2\n`);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'evil');
    const here = await makeRepo();
    await withRepo(here, async (repo) => {
      const err = await rejectsWith(get(repo, { url: src.url, path: 'evil' }, here), 'UNSAFE_PATH');
      expect(err.message).toContain('evil/planted.tdv');
    });
    expect(fs.existsSync(path.join(here, 'evil'))).toBe(false);
  });

  it("never writes into, or replaces, tdv's per-user cache or a directory holding this repository's cache", async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    await get(undefined, { url: src.url, path: 'README.md' }, out); // the per-user cache now exists
    await rejectsWith(get(undefined, { url: src.url, path: 'images', out: path.join(userCache(), 'objects', 'files'), force: true }, out), 'USAGE');
    await rejectsWith(get(undefined, { url: src.url, path: 'README.md', out: path.join(userCache(), 'objects', 'files', 'x') }, out), 'USAGE');
    await rejectsWith(get(undefined, { url: src.url, path: 'images', out: userCache(), force: true }, out), 'USAGE');
    // Objects were fetched (that comes first), but nothing was written among them, and nothing replaced.
    expect(fs.readdirSync(path.join(userCache(), 'objects', 'files'))).toEqual(['sha256']);
    expect(fs.readdirSync(userCache()).sort()).toEqual(['objects', 'repos']);
    // cache.dir outside the repository: replacing a directory that holds it would delete every object.
    const here = await makeRepo();
    const shared = fs.realpathSync(tmpDir());
    fs.mkdirSync(path.join(shared, 'cache'));
    fs.writeFileSync(path.join(here, '.tdv', 'config.local.yaml'), `cache:\n  dir: ${path.join(shared, 'cache')}\n`);
    await withRepo(here, async (repo) => {
      const err = await rejectsWith(get(repo, { url: src.url, path: 'images', out: shared, force: true }, out), 'USAGE');
      expect(err.message).toContain("this repository's cache");
    });
    expect(fs.existsSync(path.join(shared, 'cache'))).toBe(true);
  });
});
