import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkout, type CheckoutOptions } from '../../src/repo/checkout.js';
import { reproduce } from '../../src/repo/repro.js';
import { status } from '../../src/repo/status.js';
import { git, read, snapshot, write } from '../helpers/repo.js';
import { filePointer, isReadOnly, manifest, newRepo, objPath, repoWith, setConfig, sha, state } from '../helpers/expect.js';
import { abs, expectClean, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: `checkout` called directly, its CheckoutResult and error
 * codes checked. How the CLI words them (summary line, lists, error lines,
 * --json) is tested once, in test/cli/checkout.test.ts.
 */
const exists = (dir: string, rel: string) => fs.existsSync(path.join(dir, rel));
const co = (dir: string, opts: CheckoutOptions & { at?: string[] } = {}) => withRepo(dir, (r) => checkout(r, { ...opts, targets: abs(dir, ...(opts.at ?? [])) }));

describe('checkout (API): restoring', () => {
  it('restores a deleted file from the cache, writable', async () => {
    const dir = await repoWith({ 'a.csv': 'a,b\n1,2\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    expect(await co(dir)).toEqual({ restored: ['a.csv'], deleted: [], missing: [], kept: [] });
    expect(read(dir, 'a.csv')).toBe('a,b\n1,2\n');
    expect(isReadOnly(path.join(dir, 'a.csv'))).toBe(false);
    await expectClean(dir);
  });

  it('restores a deleted nested directory', async () => {
    const files = { 'data/a.csv': 'a\n', 'data/sub/b.csv': 'b\n', 'data/sub/deep/c.csv': 'c\n' };
    const dir = await repoWith(files, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const res = await co(dir);
    expect([...res.restored].sort()).toEqual(Object.keys(files).sort());
    for (const [rel, content] of Object.entries(files)) expect(read(dir, rel)).toBe(content);
    await expectClean(dir);
  });

  it('does nothing when nothing differs', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x' }, ['a.csv', 'data']);
    const before = state(dir);
    expect(await co(dir)).toEqual({ restored: [], deleted: [], missing: [], kept: [] });
    expect(state(dir)).toEqual(before);
  });

  it('restores a modified file without force when the modified content is in the cache', async () => {
    const dir = await repoWith({ 'a.csv': 'version 1\n' }, ['a.csv']);
    const v1Pointer = read(dir, 'a.csv.tdv');
    write(dir, 'a.csv', 'version 2\n');
    await track(dir, 'a.csv');
    // As after `git checkout` of the older pointer: workspace has v2 (cached), pointer says v1.
    write(dir, 'a.csv.tdv', v1Pointer);
    expect((await co(dir)).restored).toEqual(['a.csv']);
    expect(read(dir, 'a.csv')).toBe('version 1\n');
    await expectClean(dir);
  });

  it('switches a directory between two cached versions, adding, replacing and deleting files', async () => {
    const dir = await repoWith({ 'data/keep': 'k', 'data/change': 'old', 'data/gone': 'g' }, ['data']);
    const v1 = read(dir, 'data.tdv');
    write(dir, 'data/change', 'new');
    fs.rmSync(path.join(dir, 'data/gone'));
    write(dir, 'data/extra/added', 'added');
    await track(dir, 'data');
    write(dir, 'data.tdv', v1);
    const res = await co(dir);
    expect([...res.restored].sort()).toEqual(['data/change', 'data/gone']);
    expect(res.deleted).toEqual(['data/extra/added']);
    expect(read(dir, 'data/keep')).toBe('k');
    expect(read(dir, 'data/change')).toBe('old');
    expect(read(dir, 'data/gone')).toBe('g');
    expect(exists(dir, 'data/extra')).toBe(false);
    await expectClean(dir);
  });

  it('restores only the named file inside a tracked directory', async () => {
    const dir = await repoWith({ 'data/a.csv': 'a\n', 'data/b.csv': 'b\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data/a.csv'));
    fs.rmSync(path.join(dir, 'data/b.csv'));
    expect(await co(dir, { at: ['data/a.csv'] })).toEqual({ restored: ['data/a.csv'], deleted: [], missing: [], kept: [] });
    expect(read(dir, 'data/a.csv')).toBe('a\n');
    expect(exists(dir, 'data/b.csv')).toBe(false);
  });

  it('restores only the named targets, by data path or pointer file', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'c.csv': 'c\n' }, ['a.csv', 'b.csv', 'c.csv']);
    for (const f of ['a.csv', 'b.csv', 'c.csv']) fs.rmSync(path.join(dir, f));
    expect((await co(dir, { at: ['a.csv', 'b.csv.tdv'] })).restored.sort()).toEqual(['a.csv', 'b.csv']);
    expect(read(dir, 'a.csv')).toBe('a\n');
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(exists(dir, 'c.csv')).toBe(false);
  });

  it('restores the executable bit of a file and of a file inside a directory', async () => {
    const dir = await newRepo();
    write(dir, 'run.sh', '#!/bin/sh\n');
    write(dir, 'tools/go.sh', '#!/bin/sh\necho go\n');
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    fs.chmodSync(path.join(dir, 'tools/go.sh'), 0o755);
    await track(dir, 'run.sh', 'tools');
    fs.rmSync(path.join(dir, 'run.sh'));
    fs.rmSync(path.join(dir, 'tools'), { recursive: true });
    await co(dir);
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o111).not.toBe(0);
    expect(fs.statSync(path.join(dir, 'tools/go.sh')).mode & 0o111).not.toBe(0);
    expect(read(dir, 'tools/go.sh')).toBe('#!/bin/sh\necho go\n');
    // Only the mode changed: checkout puts the bit back too.
    fs.chmodSync(path.join(dir, 'run.sh'), 0o644);
    fs.chmodSync(path.join(dir, 'tools/go.sh'), 0o644);
    await co(dir);
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o100).toBe(0o100);
    expect(fs.statSync(path.join(dir, 'tools/go.sh')).mode & 0o100).toBe(0o100);
    await expectClean(dir);
  });

  it('dry plans the restore and the deletion, and changes nothing', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'b.csv': 'b' }, ['data', 'b.csv']);
    fs.rmSync(path.join(dir, 'b.csv'));
    write(dir, 'data/copy', 'a');
    const before = state(dir);
    expect(await co(dir, { dry: true })).toEqual({ restored: ['b.csv'], deleted: ['data/copy'], missing: [], kept: [] });
    expect(state(dir)).toEqual(before);
  });
});

describe('checkout (API): never destroys data silently', () => {
  it('refuses (CONFLICT, with the paths) to overwrite a modified file whose content is not cached, and changes nothing', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    write(dir, 'a.csv', 'precious edit\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    const before = snapshot(dir);
    const err = await rejectsWith(co(dir), 'CONFLICT');
    expect(err.data).toEqual({ paths: ['a.csv'] });
    // Conflicts are found before anything is touched: b.csv was not restored either.
    expect(snapshot(dir)).toEqual(before);
  });

  it('force overwrites the uncached change', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'a.csv', 'precious edit\n');
    expect((await co(dir, { force: true })).restored).toEqual(['a.csv']);
    expect(read(dir, 'a.csv')).toBe('a\n');
    await expectClean(dir);
  });

  it('refuses to overwrite an uncached change to a file inside a directory; force does', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    write(dir, 'data/b', 'edited');
    fs.rmSync(path.join(dir, 'data/a'));
    const before = snapshot(dir);
    expect((await rejectsWith(co(dir), 'CONFLICT')).data).toEqual({ paths: ['data/b'] });
    expect(snapshot(dir)).toEqual(before);
    await co(dir, { force: true });
    expect(read(dir, 'data/a')).toBe('a');
    expect(read(dir, 'data/b')).toBe('b');
  });

  it('lists every conflicting file', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'c.csv': 'c' }, ['data', 'c.csv']);
    write(dir, 'data/a', 'A!');
    write(dir, 'data/b', 'B!');
    write(dir, 'c.csv', 'C!');
    const err = await rejectsWith(co(dir), 'CONFLICT');
    expect([...(err.data!.paths as string[])].sort()).toEqual(['c.csv', 'data/a', 'data/b']);
  });

  it('deletes an extra file inside a tracked directory when its content is cached', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    write(dir, 'data/copy-of-a', 'a');
    write(dir, 'data/new/dir/copy-of-b', 'b');
    const res = await co(dir);
    expect(res.restored).toEqual([]);
    expect([...res.deleted].sort()).toEqual(['data/copy-of-a', 'data/new/dir/copy-of-b']);
    expect(exists(dir, 'data/copy-of-a')).toBe(false);
    expect(exists(dir, 'data/new')).toBe(false);
    expect(read(dir, 'data/a')).toBe('a');
    await expectClean(dir);
  });

  it('refuses to delete an extra file inside a tracked directory whose content is not cached; force deletes it', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    write(dir, 'data/notes.txt', 'only copy of my notes');
    const before = snapshot(dir);
    expect((await rejectsWith(co(dir), 'CONFLICT')).data).toEqual({ paths: ['data/notes.txt'] });
    expect(snapshot(dir)).toEqual(before);
    expect((await co(dir, { force: true })).deleted).toEqual(['data/notes.txt']);
    expect(exists(dir, 'data/notes.txt')).toBe(false);
    await expectClean(dir);
  });

  it('keeps files outside tracked data', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    write(dir, 'untracked.txt', 'mine');
    write(dir, 'other/x', 'x');
    fs.rmSync(path.join(dir, 'data/a'));
    await co(dir);
    expect(read(dir, 'untracked.txt')).toBe('mine');
    expect(read(dir, 'other/x')).toBe('x');
  });

  it('an untracked target is NOT_TRACKED (a usage error)', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    expect((await rejectsWith(co(dir, { at: ['nope.csv'] }), 'NOT_TRACKED')).exitCode).toBe(2);
  });
});

describe('checkout (API): missing cache objects', () => {
  it('restores everything else and returns what it could not in `missing` (nothing thrown)', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    expect(await co(dir)).toEqual({ restored: ['b.csv'], deleted: [], missing: [{ path: 'a.csv', oid: sha('a\n'), pointer: 'a.csv.tdv' }], kept: [] });
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(exists(dir, 'a.csv')).toBe(false);
    // The restored file is recorded: status names only the missing one.
    expect((await withRepo(dir, (r) => status(r))).data.map((d) => d.path)).toEqual(['a.csv']);
  });

  it('the only file missing: nothing restored, and it is in `missing`', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const res = await co(dir);
    expect(res.restored).toEqual([]);
    expect(res.missing.map((m) => m.path)).toEqual(['a.csv']);
  });

  it('restores the other files of a directory one of whose objects is missing, and keeps what is at the missing path', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'data/c': 'c' }, ['data']);
    fs.rmSync(path.join(dir, 'data/a'));
    fs.rmSync(path.join(dir, 'data/b'));
    fs.chmodSync(path.join(dir, 'data/c'), 0o644);
    fs.writeFileSync(path.join(dir, 'data/c'), 'my edit');
    fs.rmSync(objPath(dir, sha('b')));
    fs.rmSync(objPath(dir, sha('c')));
    const res = await co(dir, { at: ['data'] });
    expect(res.restored).toEqual(['data/a']);
    expect(res.missing).toEqual([
      { path: 'data/b', oid: sha('b'), pointer: 'data.tdv' },
      { path: 'data/c', oid: sha('c'), pointer: 'data.tdv' },
    ]);
    expect(read(dir, 'data/a')).toBe('a');
    expect(exists(dir, 'data/b')).toBe(false);
    // Not the recorded version, and its object is gone: it stays, never deleted.
    expect(read(dir, 'data/c')).toBe('my edit');
    // Once the objects are back, the next checkout finishes the directory.
    write(dir, 'data/b', 'b');
    write(dir, 'data/c', 'c');
    await track(dir, 'data');
    fs.rmSync(path.join(dir, 'data/b'));
    expect(await co(dir)).toEqual({ restored: ['data/b'], deleted: [], missing: [], kept: [] });
    await expectClean(dir);
  });

  it('a directory whose manifest is missing is one entry with the manifest id; the other data is restored', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'm.bin': 'm' }, ['data', 'm.bin']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    fs.rmSync(path.join(dir, 'm.bin'));
    const m = manifest([{ relpath: 'a', content: 'a' }]).oid;
    fs.rmSync(objPath(dir, m));
    expect(await co(dir)).toEqual({ restored: ['m.bin'], deleted: [], missing: [{ path: 'data', oid: m, pointer: 'data.tdv' }], kept: [] });
    expect(read(dir, 'm.bin')).toBe('m');
    expect(exists(dir, 'data')).toBe(false);
  });

  it('a stage output it could not restore names its stage', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n');
    expect((await withRepo(dir, (r) => reproduce(r))).ran).toEqual(['make']);
    fs.rmSync(path.join(dir, 'out.txt'));
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(objPath(dir, sha('made\n')));
    expect(await co(dir)).toEqual({ restored: ['a.csv'], deleted: [], missing: [{ path: 'out.txt', oid: sha('made\n'), pointer: 'tdv.lock', stage: 'make' }], kept: [] });
    expect(read(dir, 'a.csv')).toBe('a\n');
  });

  it("after a branch switch with one object missing, restores the rest of the branch's data", async () => {
    const dir = await repoWith({ 'data/a': 'a1', 'm.bin': 'm1' }, ['data', 'm.bin']);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'one');
    await git(dir, 'checkout', '-qb', 'two');
    write(dir, 'data/a', 'a2');
    write(dir, 'data/b', 'b2');
    write(dir, 'm.bin', 'm2');
    await track(dir, 'data', 'm.bin');
    await git(dir, 'commit', '-qam', 'two');
    await git(dir, 'checkout', '-q', 'main');
    expect((await co(dir)).missing).toEqual([]);
    expect(exists(dir, 'data/b')).toBe(false);
    fs.rmSync(objPath(dir, sha('b2')));
    await git(dir, 'checkout', '-q', 'two');
    expect((await co(dir)).missing).toEqual([{ path: 'data/b', oid: sha('b2'), pointer: 'data.tdv' }]);
    expect(read(dir, 'data/a')).toBe('a2');
    expect(read(dir, 'm.bin')).toBe('m2');
    expect(exists(dir, 'data/b')).toBe(false);
  });
});

describe('checkout (API) after a branch switch took a pointer away', () => {
  /** main tracks a.csv and (second commit) b.csv and data/; branch "old" is the first commit, with a.csv only. */
  async function twoBranches(): Promise<string> {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    write(dir, 'a.csv', 'a\n');
    await track(dir, 'a.csv');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'a');
    await git(dir, 'branch', 'old');
    write(dir, 'b.csv', 'b\n');
    write(dir, 'data/x', 'x');
    write(dir, 'data/sub/y', 'y');
    await track(dir, 'b.csv', 'data');
    write(dir, 'data/scratch.tmp', 'mine, never added');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'b and data');
    return dir;
  }

  it('deletes the data whose pointer is gone when it is unchanged from the cache, and brings it back on the way back', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    expect(exists(dir, 'b.csv')).toBe(true);
    expect(await co(dir)).toEqual({ restored: [], deleted: ['b.csv', 'data'], missing: [], kept: [] });
    expect(exists(dir, 'b.csv')).toBe(false);
    expect(exists(dir, 'data/x')).toBe(false);
    expect(exists(dir, 'data/sub')).toBe(false);
    // What .tdvignore kept out of the directory was never tdv's: it stays.
    expect(read(dir, 'data/scratch.tmp')).toBe('mine, never added');
    expect(read(dir, 'a.csv')).toBe('a\n');
    // Git sees nothing left behind but the user's own file.
    expect(await git(dir, 'status', '--porcelain', '--untracked-files=all')).toBe('?? data/scratch.tmp');
    await git(dir, 'checkout', '-q', 'main');
    await co(dir);
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(read(dir, 'data/sub/y')).toBe('y');
    await expectClean(dir);
  });

  it('dry plans the deletion and deletes nothing', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    expect((await co(dir, { dry: true })).deleted).toEqual(['b.csv', 'data']);
    expect(read(dir, 'b.csv')).toBe('b\n');
  });

  it('keeps data that changed since (why: changed), and data the cache lacks (why: uncached)', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    fs.chmodSync(path.join(dir, 'b.csv'), 0o644);
    fs.writeFileSync(path.join(dir, 'b.csv'), 'my edit\n');
    fs.rmSync(objPath(dir, sha('y')));
    const res = await co(dir);
    expect(res.deleted).toEqual([]);
    expect(res.kept.map((k) => [k.path, k.why])).toEqual([
      ['b.csv', 'changed'],
      ['data', 'uncached'],
    ]);
    expect(read(dir, 'b.csv')).toBe('my edit\n');
    expect(read(dir, 'data/sub/y')).toBe('y');
  });

  it('never deletes data whose pointer was deleted by hand (why: pointer-deleted), nor data `tdv remove` released', async () => {
    const dir = await twoBranches();
    fs.rmSync(path.join(dir, 'b.csv.tdv'));
    const { remove } = await import('../../src/repo/remove.js');
    await withRepo(dir, (r) => remove(r, [{ path: path.join(dir, 'data'), name: 'data' }]));
    const res = await co(dir);
    expect(res.deleted).toEqual([]);
    expect(res.kept).toEqual([{ path: 'b.csv', why: 'pointer-deleted', by: 'b.csv.tdv' }]);
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(read(dir, 'data/x')).toBe('x');
  });

  it('never deletes data whose pointer `git rm` took away (HEAD still commits it: no branch switch)', async () => {
    const dir = await twoBranches();
    await git(dir, 'rm', '-q', 'b.csv.tdv');
    const res = await co(dir);
    expect(res.deleted).toEqual([]);
    expect(res.kept).toEqual([{ path: 'b.csv', why: 'pointer-deleted', by: 'b.csv.tdv' }]);
    expect(read(dir, 'b.csv')).toBe('b\n');
  });

  it('never deletes stage outputs when tdv.lock was deleted by hand (`rm tdv.lock` is no branch switch)', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo result > out.txt\n    outs: [out.txt]\n');
    await withRepo(dir, (r) => reproduce(r));
    await git(dir, 'add', 'tdv.yaml', 'tdv.lock', '.gitignore');
    await git(dir, 'commit', '-qm', 'stage');
    fs.rmSync(path.join(dir, 'out.txt'));
    expect((await co(dir)).restored).toEqual(['out.txt']);
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const res = await co(dir);
    expect(res.deleted).toEqual([]);
    expect(res.kept).toEqual([{ path: 'out.txt', why: 'pointer-deleted', by: 'tdv.lock' }]);
    expect(read(dir, 'out.txt')).toBe('result\n');
  });

  it("a path Git tracks on the new branch is Git's, never deleted nor reported", async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    await git(dir, 'checkout', '-qb', 'plain');
    // On this branch b.csv is committed to Git itself, same content.
    await git(dir, 'add', '-f', 'b.csv');
    await git(dir, 'commit', '-qm', 'b in git');
    const res = await co(dir);
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect([...res.deleted, ...res.kept.map((k) => k.path)]).not.toContain('b.csv');
  });
});

describe('checkout (API): relink', () => {
  it('turns copies into hard links after cache.type is changed to hardlink, read-only, pointers untouched', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x', 'data/y': 'y' }, ['a.csv', 'data']);
    expect(fs.statSync(path.join(dir, 'a.csv')).nlink).toBe(1);
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    // Without relink nothing is rewritten.
    expect((await co(dir)).restored).toEqual([]);
    expect(fs.statSync(path.join(dir, 'a.csv')).nlink).toBe(1);
    expect([...(await co(dir, { relink: true })).restored].sort()).toEqual(['a.csv', 'data/x', 'data/y']);
    for (const [rel, content] of [
      ['a.csv', 'a\n'],
      ['data/x', 'x'],
      ['data/y', 'y'],
    ] as const) {
      expect(read(dir, rel)).toBe(content);
      expect(fs.statSync(path.join(dir, rel)).ino).toBe(fs.statSync(objPath(dir, sha(content))).ino);
      expect(isReadOnly(path.join(dir, rel))).toBe(true);
    }
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    await expectClean(dir);
  });

  it('restores deleted files as hard links with cache.type hardlink', async () => {
    const dir = await newRepo();
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    write(dir, 'data/x', 'x');
    await track(dir, 'data');
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    await co(dir);
    expect(fs.statSync(path.join(dir, 'data/x')).ino).toBe(fs.statSync(objPath(dir, sha('x'))).ino);
    await expectClean(dir);
  });
});
