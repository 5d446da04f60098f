import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
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
    expect(r.stdout).toContain('D  data/extra/added');
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
    expect(r.stdout).toContain('D  data/copy-of-a\n');
    expect(r.stdout).toContain('D  data/new/dir/copy-of-b\n');
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
    expect(forced.stdout).toContain('D  data/notes.txt');
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
  it('names the file and suggests tdv pull, writing nothing', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'a.csv', 'not in the cache', '`tdv pull`');
    expect(r.stderr).not.toContain('b.csv');
    expect(snapshot(dir)).toEqual(before);
  });

  it('names a file of a directory whose object is missing', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    fs.rmSync(objPath(dir, sha('b')));
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/b', '`tdv pull`');
    expect(snapshot(dir)).toEqual(before);
  });

  it('names a directory whose manifest is missing', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    fs.rmSync(objPath(dir, manifest([{ relpath: 'a', content: 'a' }]).oid));
    const before = snapshot(dir);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/', '`tdv pull`');
    expect(snapshot(dir)).toEqual(before);
  });

  it('an untracked target is an error naming it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'checkout', 'nope.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'nope.csv is not tracked by tdv');
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
    expect(r.stdout).toContain('M  data/a');
    expect(r.stdout).toContain('D  data/extra');
    expect(r.stdout).toContain('Would restore 1 file and delete 1 file.');
    expect(snapshot(dir)).toEqual(before);
  });
});
