import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, filePointer, isReadOnly, newRepo, objPath, repoWith, setConfig, sha } from '../helpers/expect.js';

const UP_TO_DATE = 'Data and pipelines are up to date.';

const exists = (dir: string, rel: string) => fs.existsSync(path.join(dir, rel));

describe('tdv remove', () => {
  it('deletes the pointer and its .gitignore line and keeps the data', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    expect(read(dir, '.gitignore')).toBe('/a.csv\n/b.csv\n');
    const r = await tdv(dir, 'remove', 'a.csv.tdv');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('Removed a.csv.tdv\n');
    expect(r.stdout).toContain('git rm -q --cached --ignore-unmatch a.csv.tdv');
    expect(exists(dir, 'a.csv.tdv')).toBe(false);
    expect(read(dir, 'a.csv')).toBe('a\n');
    expect(read(dir, '.gitignore')).toBe('/b.csv\n');
    expect(read(dir, 'b.csv.tdv')).toBe(filePointer('b.csv', 'b\n'));
    // The cache is untouched: remove is not gc.
    expect(fs.readFileSync(objPath(dir, sha('a\n')), 'utf8')).toBe('a\n');
    const st = await tdv(dir, 'status');
    expect(st.stdout.trim()).toBe(UP_TO_DATE);
  });

  it('accepts the data path instead of the pointer, and a directory', async () => {
    const dir = await repoWith({ 'data/x': 'x', 'data/sub/y': 'y', 'keep/k.csv': 'k\n' }, ['data', 'keep/k.csv']);
    const r = await tdv(dir, 'remove', 'data');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Removed data.tdv');
    expect(exists(dir, 'data.tdv')).toBe(false);
    expect(read(dir, 'data/x')).toBe('x');
    expect(read(dir, 'data/sub/y')).toBe('y');
    // The .gitignore held only tdv's line, so it is gone; the one in keep/ stays.
    expect(exists(dir, '.gitignore')).toBe(false);
    expect(read(dir, 'keep/.gitignore')).toBe('/k.csv\n');
  });

  it('the Git hint names the pointer and the .gitignore that changed, in a subdirectory too', async () => {
    const dir = await repoWith({ 'keep/k.csv': 'k\n', 'keep/other.csv': 'o\n' }, ['keep/k.csv', 'keep/other.csv']);
    const r = await tdv(dir, 'remove', 'keep/k.csv');
    expect(r.code).toBe(0);
    expect(read(dir, 'keep/.gitignore')).toBe('/other.csv\n');
    expect(r.stdout).toContain('git rm -q --cached --ignore-unmatch keep/k.csv.tdv');
    expect(r.stdout).toMatch(/git add keep\/\.gitignore\b/);
  });

  it('keeps the user’s own .gitignore lines', async () => {
    const dir = await newRepo();
    write(dir, '.gitignore', '*.log\n');
    write(dir, 'a.csv', 'a\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    expect(read(dir, '.gitignore')).toBe('*.log\n/a.csv\n');
    expect((await tdv(dir, 'remove', 'a.csv')).code).toBe(0);
    expect(read(dir, '.gitignore')).toBe('*.log\n');
  });

  it('a removed path can be added again', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    expect((await tdv(dir, 'remove', 'a.csv')).code).toBe(0);
    const r = await tdv(dir, 'add', 'a.csv');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Added a.csv');
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(read(dir, '.gitignore')).toBe('/a.csv\n');
  });

  for (const type of ['hardlink', 'symlink'] as const) {
    it(`with cache.type ${type} the kept files become writable copies, independent of the cache`, async () => {
      const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x', 'data/sub/y': 'y' }, ['a.csv', 'data'], `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      expect(isReadOnly(path.join(dir, 'a.csv'))).toBe(true);
      const r = await tdv(dir, 'remove', 'a.csv', 'data');
      expect(r.code).toBe(0);
      for (const [rel, content] of [
        ['a.csv', 'a\n'],
        ['data/x', 'x'],
        ['data/sub/y', 'y'],
      ] as const) {
        const abs = path.join(dir, rel);
        const obj = objPath(dir, sha(content));
        expect(fs.lstatSync(abs).isFile()).toBe(true);
        expect(fs.statSync(abs).nlink).toBe(1);
        expect(fs.statSync(abs).ino).not.toBe(fs.statSync(obj).ino);
        expect(isReadOnly(abs)).toBe(false);
        expect(read(dir, rel)).toBe(content);
        // Editing the kept file leaves the object alone.
        fs.appendFileSync(abs, 'more');
        expect(fs.readFileSync(obj, 'utf8')).toBe(content);
      }
      // And a gc may now delete every object without losing the data.
      const gc = await tdv(dir, 'gc', '--workspace', '-f');
      expect(gc.code).toBe(0);
      expect(read(dir, 'data/x')).toBe('xmore');
    });
  }
});

describe('tdv remove: errors change nothing', () => {
  it('a path inside a tracked directory', async () => {
    const dir = await repoWith({ 'data/x': 'x', 'data/y': 'y' }, ['data']);
    const before = snapshot(dir);
    const r = await tdv(dir, 'remove', 'data/x');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'data/x is inside tracked data', 'data.tdv');
    expect(snapshot(dir)).toEqual(before);
  });

  it('an untracked path', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o');
    const before = snapshot(dir);
    const r = await tdv(dir, 'remove', 'a.csv', 'other.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'other.csv is not tracked by tdv');
    expect(snapshot(dir)).toEqual(before);
  });

  it('no targets is a usage error', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const before = snapshot(dir);
    const r = await tdv(dir, 'remove');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, "missing required argument 'targets'");
    expect(snapshot(dir)).toEqual(before);
  });
});
