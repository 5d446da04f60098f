import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, filePointer, newDir, newRepo, objPath, sha } from '../helpers/expect.js';
import { expectClean } from '../helpers/api.js';

describe('tdv init', () => {
  it('refuses a directory outside any Git work tree, suggesting git init or --no-scm, and writes nothing', async () => {
    const dir = newDir();
    const r = await tdv(dir, 'init');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not inside a Git work tree', '`git init`', '--no-scm');
    expect(r.stdout).toBe('');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('with --no-scm initializes a plain directory', async () => {
    const dir = newDir();
    const r = await tdv(dir, 'init', '--no-scm');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Initialized tdv repository in ${dir}`);
    expect(r.stdout).not.toContain('git add');
    expect(fs.existsSync(path.join(dir, '.tdv', 'config.yaml'))).toBe(true);
    expect(fs.existsSync(path.join(dir, '.tdvignore'))).toBe(true);
    // And it is usable without Git.
    write(dir, 'a.txt', 'hello\n');
    const add = await tdv(dir, 'add', 'a.txt');
    expect(add.code).toBe(0);
    expect(add.stdout).not.toContain('git add');
    expect(read(dir, 'a.txt.tdv')).toBe(filePointer('a.txt', 'hello\n'));
    await expectClean(dir);
  });

  it('creates .tdv/config.yaml, .tdv/.gitignore and a .tdvignore without patterns, and says what to commit', async () => {
    const dir = await newRepo({ init: false });
    const r = await tdv(dir, 'init');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`Initialized tdv repository in ${dir}`);
    expect(r.stdout).toContain('git add .tdv/config.yaml .tdv/.gitignore .tdvignore');
    expect(fs.statSync(path.join(dir, '.tdv', 'config.yaml')).isFile()).toBe(true);
    // The config is valid as written: a command that loads it succeeds.
    expect((await tdv(dir, 'status')).code).toBe(0);
    const ignoreLines = read(dir, '.tdvignore')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
    expect(ignoreLines).toEqual([]);
  });

  it('makes Git ignore the cache, tmp and config.local.yaml but not the committed config', async () => {
    const dir = await newRepo();
    write(dir, '.tdv/cache/files/sha256/ab/cd', 'x');
    write(dir, '.tdv/tmp/some-file', 'x');
    write(dir, '.tdv/config.local.yaml', '');
    const ignored = await git(dir, 'check-ignore', '.tdv/cache/files/sha256/ab/cd', '.tdv/tmp/some-file', '.tdv/config.local.yaml');
    expect(ignored.split('\n').sort()).toEqual(['.tdv/cache/files/sha256/ab/cd', '.tdv/config.local.yaml', '.tdv/tmp/some-file']);
    const untracked = await git(dir, 'status', '--porcelain', '--untracked-files=all');
    expect(untracked.split('\n').sort()).toEqual(['?? .tdv/.gitignore', '?? .tdv/config.yaml', '?? .tdvignore']);
  });

  it('a second init fails with "already initialized" and changes nothing', async () => {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    const before = snapshot(dir);
    const r = await tdv(dir, 'init');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'already initialized', '--force');
    expect(snapshot(dir)).toEqual(before);
  });

  it('init --force re-creates the tdv files, keeping the cache and the user’s .tdvignore', async () => {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    write(dir, 'a.txt', 'keep me\n');
    expect((await tdv(dir, 'add', 'a.txt')).code).toBe(0);
    fs.rmSync(path.join(dir, '.tdv', '.gitignore'));
    const r = await tdv(dir, 'init', '--force');
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(dir, '.tdv', '.gitignore'))).toBe(true);
    expect(read(dir, '.tdvignore')).toBe('*.tmp\n');
    expect(fs.readFileSync(objPath(dir, sha('keep me\n')), 'utf8')).toBe('keep me\n');
    await expectClean(dir);
  });

  it('refuses a subdirectory of a Git work tree unless --subdir is given', async () => {
    const dir = await newRepo({ init: false });
    fs.mkdirSync(path.join(dir, 'sub'));
    const r = await tdv(path.join(dir, 'sub'), 'init');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not the top of its Git work tree', '--subdir');
    expect(fs.readdirSync(path.join(dir, 'sub'))).toEqual([]);
    const ok = await tdv(path.join(dir, 'sub'), 'init', '--subdir');
    expect(ok.code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'sub', '.tdv', 'config.yaml'))).toBe(true);
  });
});

describe('finding the repository', () => {
  it('commands outside a tdv repository fail with a hint to run tdv init', async () => {
    const dir = await newRepo({ init: false });
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not a tdv repository', '`tdv init`');
  });

  it('commands run from a subdirectory find the root by walking up', async () => {
    const dir = await newRepo();
    write(dir, 'data/raw/a.csv', 'a\n');
    const sub = path.join(dir, 'data', 'raw');
    const add = await tdv(sub, 'add', 'a.csv');
    expect(add.code).toBe(0);
    expect(add.stdout).toContain('Added data/raw/a.csv');
    expect(read(dir, 'data/raw/a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(fs.existsSync(path.join(sub, '.tdv'))).toBe(false);
    await expectClean(sub);
  });

  it('paths on the command line are relative to the current directory', async () => {
    const dir = await newRepo();
    write(dir, 'x.csv', 'x\n');
    write(dir, 'sub/y.csv', 'y\n');
    const sub = path.join(dir, 'sub');
    const r = await tdv(sub, 'add', '../x.csv');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Added x.csv');
    expect(read(dir, 'x.csv.tdv')).toBe(filePointer('x.csv', 'x\n'));
    expect(read(dir, '.gitignore')).toBe('/x.csv\n');
    expect(fs.existsSync(path.join(sub, 'x.csv.tdv'))).toBe(false);

    fs.rmSync(path.join(dir, 'x.csv'));
    const co = await tdv(sub, 'checkout', '../x.csv');
    expect(co.code).toBe(0);
    expect(read(dir, 'x.csv')).toBe('x\n');
    // `status y.csv` from sub means sub/y.csv, which is untracked.
    const st = await tdv(sub, 'status', 'y.csv');
    expect(st.code).toBe(2);
    expectOneLineError(st.stderr, 'sub/y.csv is not tracked', '`tdv add sub/y.csv`');
  });
});
