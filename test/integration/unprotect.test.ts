import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, isReadOnly, newRepo, objPath, setConfig, sha } from '../helpers/expect.js';
import { expectClean } from '../helpers/api.js';

async function linkedRepo(type: 'hardlink' | 'symlink', files: Record<string, string>, add: string[]) {
  const dir = await newRepo();
  setConfig(dir, `cache:\n  type: ${type}\n  allow_root_links: true\n`); // the tests run as root
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  const r = await tdv(dir, 'add', ...add);
  if (r.code !== 0) throw new Error(r.stderr);
  return dir;
}

/** The object still exists, is read-only, and its bytes still hash to its name. */
function expectObjectIntact(dir: string, content: string) {
  const obj = objPath(dir, sha(content));
  const bytes = fs.readFileSync(obj);
  expect(sha(bytes)).toBe(sha(content));
  expect(bytes.toString()).toBe(content);
  expect(isReadOnly(obj)).toBe(true);
}

describe('tdv unprotect', () => {
  for (const type of ['hardlink', 'symlink'] as const) {
    it(`after a ${type} add, makes a file writable and independent of its cache object`, async () => {
      const dir = await linkedRepo(type, { 'model.bin': 'weights v1\n' }, ['model.bin']);
      const file = path.join(dir, 'model.bin');
      expect(isReadOnly(file)).toBe(true);
      const r = await tdv(dir, 'unprotect', 'model.bin');
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe('Unprotected 1 file.');
      expect(fs.lstatSync(file).isFile()).toBe(true);
      expect(fs.statSync(file).nlink).toBe(1);
      expect(isReadOnly(file)).toBe(false);
      expect(read(dir, 'model.bin')).toBe('weights v1\n');
      // Unprotecting changes no content: status is clean.
      await expectClean(dir);
      // Editing the copy leaves the object alone.
      fs.writeFileSync(file, 'weights v2, edited in place\n');
      expectObjectIntact(dir, 'weights v1\n');
      const st = await tdv(dir, 'status');
      expect(st.stdout).toMatch(/modified: +model\.bin/);
    });
  }

  it('unprotects every file of a tracked directory', async () => {
    const dir = await linkedRepo('hardlink', { 'data/a': 'A', 'data/sub/b': 'B' }, ['data']);
    const r = await tdv(dir, 'unprotect', 'data');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Unprotected 2 files.');
    for (const [rel, content] of [
      ['data/a', 'A'],
      ['data/sub/b', 'B'],
    ] as const) {
      expect(isReadOnly(path.join(dir, rel))).toBe(false);
      fs.appendFileSync(path.join(dir, rel), '!');
      expectObjectIntact(dir, content);
    }
  });

  it('unprotects just the named file inside a tracked directory', async () => {
    const dir = await linkedRepo('hardlink', { 'data/a': 'A', 'data/b': 'B' }, ['data']);
    const r = await tdv(dir, 'unprotect', 'data/a');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Unprotected 1 file.');
    expect(isReadOnly(path.join(dir, 'data/a'))).toBe(false);
    expect(isReadOnly(path.join(dir, 'data/b'))).toBe(true);
  });

  it('is a no-op on files that are already copies', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    const before = snapshot(dir);
    const r = await tdv(dir, 'unprotect', 'a.csv');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Unprotected 0 files.');
    expect(snapshot(dir)).toEqual(before);
  });

  it('an untracked target is an error that changes nothing', async () => {
    const dir = await linkedRepo('hardlink', { 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'loose.txt', 'l');
    const before = snapshot(dir);
    const r = await tdv(dir, 'unprotect', 'loose.txt');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'loose.txt is not tracked by tdv');
    expect(snapshot(dir)).toEqual(before);
    expect(isReadOnly(path.join(dir, 'a.csv'))).toBe(true);
  });

  it('no targets is a usage error', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'unprotect');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, "missing required argument 'targets'");
  });
});
