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
    expectOneLineError(r.stderr, 'other.csv is neither data a pointer tracks nor a stage of tdv.yaml');
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

describe('tdv remove: stages and their outputs', () => {
  const PIPELINE = '# my pipeline\nstages:\n  one:  # first\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n';

  async function twoStages(): Promise<string> {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE);
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, '.gitignore')).toBe('/o1.txt\n/o2.txt\n');
    return dir;
  }

  it('a stage output named by its path is refused with the stage to remove; tdv.lock and the .gitignore lines stay', async () => {
    const dir = await twoStages();
    const before = snapshot(dir);
    const r = await tdv(dir, 'remove', 'o1.txt');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'o1.txt is an output of stage "one" (tdv.lock), not data a pointer tracks; `tdv remove one` removes the stage from tdv.yaml and tdv.lock and keeps its outputs');
    expect(snapshot(dir)).toEqual(before);
  });

  it('a stage name removes that stage from tdv.yaml and tdv.lock and its .gitignore line; the other stage and the outputs stay', async () => {
    const dir = await twoStages();
    const r = await tdv(dir, 'remove', 'one');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Removed stage "one" (its outputs stay)');
    expect(r.stdout).toContain('git add tdv.yaml tdv.lock .gitignore');
    expect(read(dir, 'tdv.yaml')).toBe('# my pipeline\nstages:\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n');
    expect(read(dir, 'tdv.lock')).not.toContain('one:');
    expect(read(dir, 'tdv.lock')).toContain('o2.txt');
    expect(read(dir, '.gitignore')).toBe('/o2.txt\n');
    expect(read(dir, 'o1.txt')).toBe('1\n');
    expect(isReadOnly(path.join(dir, 'o1.txt'))).toBe(false);
    const st = await tdv(dir, 'status');
    expect(st.stdout.trim()).toBe(UP_TO_DATE);
  });

  it('removing the last stage deletes tdv.lock', async () => {
    const dir = await twoStages();
    const r = await tdv(dir, 'remove', 'one', 'two');
    expect(r.code, r.stderr).toBe(0);
    expect(exists(dir, 'tdv.lock')).toBe(false);
    expect(exists(dir, '.gitignore')).toBe(false);
    expect(r.stdout).toContain('git rm -q --cached --ignore-unmatch tdv.lock .gitignore && git add tdv.yaml');
    expect(read(dir, 'tdv.yaml')).toBe('# my pipeline\nstages: {}\n');
  });

  it('a path that is neither tracked data nor a stage is an error saying what remove takes, not to `tdv add` it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'remove', 'data/nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'data/nope is neither data a pointer tracks nor a stage of tdv.yaml; `tdv remove` takes pointer files (data.tdv), the paths they track, or stage names');
    expect(r.stderr).not.toContain('tdv add');
  });
});
