import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, filePointer, isReadOnly, manifest, newRepo, objPath, repoWith, setConfig, sha, state } from '../helpers/expect.js';

const UP_TO_DATE = 'Data and pipelines are up to date.';

const exists = (dir: string, rel: string) => fs.existsSync(path.join(dir, rel));

async function expectClean(dir: string) {
  const st = await tdv(dir, 'status');
  expect(st.code).toBe(0);
  expect(st.stdout.trim()).toBe(UP_TO_DATE);
}

describe('tdv checkout: restoring', () => {
  it('restores a deleted file from the cache', async () => {
    const dir = await repoWith({ 'a.csv': 'a,b\n1,2\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Restored 1 file, deleted 0 files.');
    expect(read(dir, 'a.csv')).toBe('a,b\n1,2\n');
    expect(isReadOnly(path.join(dir, 'a.csv'))).toBe(false);
    await expectClean(dir);
  });

  it('restores a deleted nested directory', async () => {
    const files = { 'data/a.csv': 'a\n', 'data/sub/b.csv': 'b\n', 'data/sub/deep/c.csv': 'c\n' };
    const dir = await repoWith(files, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Restored 3 files, deleted 0 files.');
    for (const [rel, content] of Object.entries(files)) expect(read(dir, rel)).toBe(content);
    await expectClean(dir);
  });

  it('says the workspace already matches and changes nothing when nothing differs', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x' }, ['a.csv', 'data']);
    const before = state(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Workspace already matches the pointers.');
    expect(state(dir)).toEqual(before);
  });

  it('restores a modified file without --force when the modified content is in the cache', async () => {
    const dir = await repoWith({ 'a.csv': 'version 1\n' }, ['a.csv']);
    const v1Pointer = read(dir, 'a.csv.tdv');
    write(dir, 'a.csv', 'version 2\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    // As after `git checkout` of the older pointer: workspace has v2 (cached), pointer says v1.
    write(dir, 'a.csv.tdv', v1Pointer);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Restored 1 file, deleted 0 files.');
    expect(read(dir, 'a.csv')).toBe('version 1\n');
    await expectClean(dir);
  });

  it('switches a directory between two cached versions, adding, replacing and deleting files', async () => {
    const dir = await repoWith({ 'data/keep': 'k', 'data/change': 'old', 'data/gone': 'g' }, ['data']);
    const v1 = read(dir, 'data.tdv');
    write(dir, 'data/change', 'new');
    fs.rmSync(path.join(dir, 'data/gone'));
    write(dir, 'data/extra/added', 'added');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    write(dir, 'data.tdv', v1);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deleted: data/extra/added');
    expect(r.stdout).toContain('Restored 2 files, deleted 1 file.');
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
    const r = await tdv(dir, 'checkout', 'data/a.csv');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Restored 1 file, deleted 0 files.');
    expect(read(dir, 'data/a.csv')).toBe('a\n');
    expect(exists(dir, 'data/b.csv')).toBe(false);
  });

  it('restores only the named targets, by data path or pointer file', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'c.csv': 'c\n' }, ['a.csv', 'b.csv', 'c.csv']);
    for (const f of ['a.csv', 'b.csv', 'c.csv']) fs.rmSync(path.join(dir, f));
    const r = await tdv(dir, 'checkout', 'a.csv', 'b.csv.tdv');
    expect(r.code).toBe(0);
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
    expect((await tdv(dir, 'add', 'run.sh', 'tools')).code).toBe(0);
    fs.rmSync(path.join(dir, 'run.sh'));
    fs.rmSync(path.join(dir, 'tools'), { recursive: true });
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o111).not.toBe(0);
    expect(fs.statSync(path.join(dir, 'tools/go.sh')).mode & 0o111).not.toBe(0);
    expect(read(dir, 'tools/go.sh')).toBe('#!/bin/sh\necho go\n');
    // Only the mode changed: checkout puts the bit back too.
    fs.chmodSync(path.join(dir, 'run.sh'), 0o644);
    fs.chmodSync(path.join(dir, 'tools/go.sh'), 0o644);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o100).toBe(0o100);
    expect(fs.statSync(path.join(dir, 'tools/go.sh')).mode & 0o100).toBe(0o100);
    await expectClean(dir);
  });
});

describe('tdv checkout: never destroys data silently', () => {
  it('refuses to overwrite a modified file whose content is not cached, listing it, and changes nothing', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    write(dir, 'a.csv', 'precious edit\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'a.csv', 'not in the cache', '`tdv add`', '`tdv checkout --force`');
    expect(r.stderr).not.toContain('b.csv');
    // Conflicts are found before anything is touched: b.csv was not restored either.
    expect(snapshot(dir)).toEqual(before);
  });

  it('--force overwrites the uncached change', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'a.csv', 'precious edit\n');
    const r = await tdv(dir, 'checkout', '--force');
    expect(r.code).toBe(0);
    expect(read(dir, 'a.csv')).toBe('a\n');
    await expectClean(dir);
  });

  it('refuses to overwrite an uncached change to a file inside a directory', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    write(dir, 'data/b', 'edited');
    fs.rmSync(path.join(dir, 'data/a'));
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '1 workspace file(s)', 'data/b', '--force');
    expect(snapshot(dir)).toEqual(before);
    const forced = await tdv(dir, 'checkout', '--force');
    expect(forced.code).toBe(0);
    expect(read(dir, 'data/a')).toBe('a');
    expect(read(dir, 'data/b')).toBe('b');
  });

  it('lists every conflicting file', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'c.csv': 'c' }, ['data', 'c.csv']);
    write(dir, 'data/a', 'A!');
    write(dir, 'data/b', 'B!');
    write(dir, 'c.csv', 'C!');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '3 workspace file(s)', 'data/a', 'data/b', 'c.csv');
  });

  it('deletes an extra file inside a tracked directory when its content is cached', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    write(dir, 'data/copy-of-a', 'a');
    write(dir, 'data/new/dir/copy-of-b', 'b');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('deleted: data/copy-of-a\n');
    expect(r.stdout).toContain('deleted: data/new/dir/copy-of-b\n');
    expect(r.stdout).toContain('Restored 0 files, deleted 2 files.');
    expect(exists(dir, 'data/copy-of-a')).toBe(false);
    expect(exists(dir, 'data/new')).toBe(false);
    expect(read(dir, 'data/a')).toBe('a');
    await expectClean(dir);
  });

  it('refuses to delete an extra file inside a tracked directory whose content is not cached; --force deletes it', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    write(dir, 'data/notes.txt', 'only copy of my notes');
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/notes.txt', 'would be lost', '--force');
    expect(snapshot(dir)).toEqual(before);
    const forced = await tdv(dir, 'checkout', '--force');
    expect(forced.code).toBe(0);
    expect(forced.stdout).toContain('deleted: data/notes.txt');
    expect(exists(dir, 'data/notes.txt')).toBe(false);
    await expectClean(dir);
  });

  it('keeps files outside tracked data', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    write(dir, 'untracked.txt', 'mine');
    write(dir, 'other/x', 'x');
    fs.rmSync(path.join(dir, 'data/a'));
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(read(dir, 'untracked.txt')).toBe('mine');
    expect(read(dir, 'other/x')).toBe('x');
  });
});

describe('tdv checkout: missing cache objects', () => {
  it('never says the workspace already matches when the only file could not be restored', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('already matches');
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):');
  });

  it('restores everything else, lists what it could not, suggests tdv pull, and exits 1', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('Restored 1 file, deleted 0 files.\nNot restored, not in the cache (1 file):\n    a.csv  [a.csv.tdv]\n');
    expectOneLineError(r.stderr, '1 file not restored, not in the cache: a.csv; everything else was restored; run `tdv pull` to fetch them');
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(exists(dir, 'a.csv')).toBe(false);
    // The restored file is recorded: status names only the missing one.
    const st = await tdv(dir, 'status', '--json');
    expect(JSON.parse(st.stdout).data.map((d: { path: string }) => d.path)).toEqual(['a.csv']);
  });

  it('restores the other files of a directory one of whose objects is missing, and keeps what is at the missing path', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'data/c': 'c' }, ['data']);
    fs.rmSync(path.join(dir, 'data/a'));
    fs.rmSync(path.join(dir, 'data/b'));
    fs.chmodSync(path.join(dir, 'data/c'), 0o644);
    fs.writeFileSync(path.join(dir, 'data/c'), 'my edit');
    fs.rmSync(objPath(dir, sha('b')));
    fs.rmSync(objPath(dir, sha('c')));
    const r = await tdv(dir, 'checkout', 'data');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Not restored, not in the cache (2 files):\n    data/b  [data.tdv]\n    data/c  [data.tdv]\n');
    expectOneLineError(r.stderr, '2 files not restored', 'data/b', 'data/c', '`tdv pull data` to fetch them');
    expect(read(dir, 'data/a')).toBe('a');
    expect(exists(dir, 'data/b')).toBe(false);
    // Not the recorded version, and its object is gone: it stays, never deleted.
    expect(read(dir, 'data/c')).toBe('my edit');
    // Once the objects are back, the next checkout finishes the directory.
    write(path.join(dir, 'data'), 'b', 'b');
    write(path.join(dir, 'data'), 'c', 'c');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    fs.rmSync(path.join(dir, 'data/b'));
    const again = await tdv(dir, 'checkout');
    expect(again.code, again.stderr).toBe(0);
    expect(read(dir, 'data/b')).toBe('b');
    await expectClean(dir);
  });

  it('names a directory whose manifest is missing, and restores the other data', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'm.bin': 'm' }, ['data', 'm.bin']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    fs.rmSync(path.join(dir, 'm.bin'));
    const m = manifest([{ relpath: 'a', content: 'a' }]).oid;
    fs.rmSync(objPath(dir, m));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`Not restored, not in the cache (1 directory):\n    data/ (its list of files, ${m.slice(0, 12)})  [data.tdv]\n`);
    expectOneLineError(r.stderr, '1 directory not restored', 'data/', '`tdv pull`');
    expect(read(dir, 'm.bin')).toBe('m');
    expect(exists(dir, 'data')).toBe(false);
  });

  it('stage outputs it could not restore: says `tdv repro` rebuilds them', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n');
    const rr = await tdv(dir, 'repro');
    expect(rr.code, rr.stderr).toBe(0);
    fs.rmSync(path.join(dir, 'out.txt'));
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(objPath(dir, sha('made\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):\n    out.txt  [output of stage "make"]\n');
    expectOneLineError(r.stderr, '1 file not restored, not in the cache: out.txt; everything else was restored; run `tdv pull` to fetch them if they were pushed, or `tdv repro make` to rebuild them');
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
    expect((await tdv(dir, 'add', 'data', 'm.bin')).code).toBe(0);
    await git(dir, 'commit', '-qam', 'two');
    await git(dir, 'checkout', '-q', 'main');
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(exists(dir, 'data/b')).toBe(false);
    fs.rmSync(objPath(dir, sha('b2')));
    await git(dir, 'checkout', '-q', 'two');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('    data/b  [data.tdv]\n');
    expect(read(dir, 'data/a')).toBe('a2');
    expect(read(dir, 'm.bin')).toBe('m2');
    expect(exists(dir, 'data/b')).toBe(false);
  });

  it('with --json: one document, the error and what was restored and not', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout', '--json');
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc).toEqual({
      error: { code: 'MISSING_OBJECTS', message: expect.stringContaining('a.csv'), data: { paths: ['a.csv'] } },
      restored: 1,
      deleted: 0,
      missing: [{ path: 'a.csv', oid: sha('a\n'), pointer: 'a.csv.tdv' }],
      kept: [],
    });
  });

  it('an untracked target is an error naming it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'checkout', 'nope.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'nope.csv is not tracked by tdv');
  });
});

describe('tdv checkout after a branch switch took a pointer away', () => {
  /** main tracks a.csv and (second commit) b.csv and data/; branch "old" is the first commit, with a.csv only. */
  async function twoBranches(): Promise<string> {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    write(dir, 'a.csv', 'a\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'a');
    await git(dir, 'branch', 'old');
    write(dir, 'b.csv', 'b\n');
    write(dir, 'data/x', 'x');
    write(dir, 'data/sub/y', 'y');
    expect((await tdv(dir, 'add', 'b.csv', 'data')).code).toBe(0);
    write(dir, 'data/scratch.tmp', 'mine, never added');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'b and data');
    return dir;
  }

  it('deletes the data whose pointer is gone when it is unchanged from the cache, and brings it back on the way back', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    expect(exists(dir, 'b.csv')).toBe(true);
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('deleted: b.csv\n');
    expect(r.stdout).toContain('deleted: data\n');
    expect(r.stdout).not.toMatch(/^D {2}/m);
    expect(exists(dir, 'b.csv')).toBe(false);
    expect(exists(dir, 'data/x')).toBe(false);
    expect(exists(dir, 'data/sub')).toBe(false);
    // What .tdvignore kept out of the directory was never tdv's: it stays.
    expect(read(dir, 'data/scratch.tmp')).toBe('mine, never added');
    expect(read(dir, 'a.csv')).toBe('a\n');
    // Git sees nothing left behind but the user's own file.
    expect(await git(dir, 'status', '--porcelain', '--untracked-files=all')).toBe('?? data/scratch.tmp');
    await git(dir, 'checkout', '-q', 'main');
    const back = await tdv(dir, 'checkout');
    expect(back.code, back.stderr).toBe(0);
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(read(dir, 'data/sub/y')).toBe('y');
    await expectClean(dir);
  });

  it('--dry lists the deletion and deletes nothing', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    const r = await tdv(dir, 'checkout', '--dry');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('delete: b.csv\n');
    expect(read(dir, 'b.csv')).toBe('b\n');
  });

  it('keeps and reports data that changed since, and data the cache lacks', async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    fs.chmodSync(path.join(dir, 'b.csv'), 0o644);
    fs.writeFileSync(path.join(dir, 'b.csv'), 'my edit\n');
    fs.rmSync(objPath(dir, sha('y')));
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept: b.csv (no pointer tracks it now, and it changed since tdv placed it; delete it yourself, or `tdv add b.csv` to track this version)');
    expect(r.stdout).toContain('kept: data (no pointer tracks it now, and the cache lacks its data, so deleting it would lose it)');
    expect(read(dir, 'b.csv')).toBe('my edit\n');
    expect(read(dir, 'data/sub/y')).toBe('y');
  });

  it('never deletes data whose pointer was deleted by hand, nor data `tdv remove` released', async () => {
    const dir = await twoBranches();
    fs.rmSync(path.join(dir, 'b.csv.tdv'));
    expect((await tdv(dir, 'remove', 'data')).code).toBe(0);
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept: b.csv (b.csv.tdv was deleted, but Git still tracks it: `tdv remove` stops tracking data, `git checkout -- b.csv.tdv` brings the pointer back)');
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(read(dir, 'data/x')).toBe('x');
  });

  it('never deletes data whose pointer `git rm` took away (HEAD still commits it: no branch switch)', async () => {
    const dir = await twoBranches();
    await git(dir, 'rm', '-q', 'b.csv.tdv');
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept: b.csv (b.csv.tdv was deleted');
    expect(read(dir, 'b.csv')).toBe('b\n');
  });

  it('never deletes stage outputs when tdv.lock was deleted by hand (`rm tdv.lock` is no branch switch)', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo result > out.txt\n    outs: [out.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', 'tdv.yaml', 'tdv.lock', '.gitignore');
    await git(dir, 'commit', '-qm', 'stage');
    fs.rmSync(path.join(dir, 'out.txt'));
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('kept: out.txt (tdv.lock was deleted');
    expect(read(dir, 'out.txt')).toBe('result\n');
  });

  it("a path Git tracks on the new branch is Git's, never deleted", async () => {
    const dir = await twoBranches();
    await git(dir, 'checkout', '-q', 'old');
    await git(dir, 'checkout', '-qb', 'plain');
    // On this branch b.csv is committed to Git itself, same content.
    await git(dir, 'add', '-f', 'b.csv');
    await git(dir, 'commit', '-qm', 'b in git');
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'b.csv')).toBe('b\n');
    expect(r.stdout).not.toContain('b.csv');
  });
});

describe('tdv checkout --relink', () => {
  it('turns copies into hard links after cache.type is changed to hardlink', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x', 'data/y': 'y' }, ['a.csv', 'data']);
    expect(fs.statSync(path.join(dir, 'a.csv')).nlink).toBe(1);
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    // Without --relink nothing is rewritten.
    expect((await tdv(dir, 'checkout')).stdout.trim()).toBe('Workspace already matches the pointers.');
    expect(fs.statSync(path.join(dir, 'a.csv')).nlink).toBe(1);
    const r = await tdv(dir, 'checkout', '--relink');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Restored 3 files, deleted 0 files.');
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
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(fs.statSync(path.join(dir, 'data/x')).ino).toBe(fs.statSync(objPath(dir, sha('x'))).ino);
    await expectClean(dir);
  });
});

describe('tdv checkout --dry', () => {
  it('lists what it would restore and delete, and changes nothing', async () => {
    const dir = await repoWith({ 'data/a': 'a\n', 'data/b': 'b\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data', 'a'));
    write(dir, 'data/extra', 'b\n'); // content cached (same as b), so deleting it is allowed
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout', '--dry');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('restore: data/a');
    expect(r.stdout).toContain('delete: data/extra');
    expect(r.stdout).toContain('Would restore 1 file and delete 1 file.');
    expect(snapshot(dir)).toEqual(before);
  });
});
