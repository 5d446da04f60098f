/**
 * Real failures the 10,000-case attack run (seed 20261203, on 06f21ff) found,
 * each reduced to the repository state that caused it: `npm run attack --
 * --seed 20261203 --case N` reproduces the original.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, repoWith, setConfig } from '../helpers/expect.js';

describe('attack run findings', () => {
  it('a pointer whose out is named .gitignore is refused: checkout never puts data where Git reads its rules (cases 4018, 9145)', async () => {
    const dir = await repoWith({ 'data/a.txt': 'a\n' }, ['data']);
    const manifestPointer = read(dir, 'data.tdv').replace('path: data', 'path: .gitignore');
    write(dir, 'scratch/evil.tdv', manifestPointer);
    const r = await tdv(dir, 'checkout', '--force');
    expect(r.code).not.toBe(0);
    expectOneLineError(r.stderr, 'scratch/evil.tdv', 'names a .gitignore file');
    expect(fs.existsSync(path.join(dir, 'scratch', '.gitignore'))).toBe(false);
  });

  it('a directory remote that is the cache (through a symlink) is refused by push and pull (case 1518)', async () => {
    const cache = path.join(newDir(), 'cache');
    const dir = await repoWith({ 'a.txt': 'a\n' }, ['a.txt'], `cache:\n  dir: ${cache}\n`);
    const link = path.join(newDir(), 'store');
    fs.symlinkSync(cache, link);
    setConfig(dir, `cache:\n  dir: ${cache}\ncore:\n  remote: r\nremote:\n  r:\n    url: ${link}\n`);
    for (const cmd of ['push', 'pull']) {
      const r = await tdv(dir, cmd);
      expect(r.code, cmd).toBe(1);
      expectOneLineError(r.stderr, 'remote "r"', "is the repository's cache");
    }
  });

  it('checkout --to into a directory remote (reached through a symlink) is refused, writing nothing there (cases 509, 1712)', async () => {
    const outside = newDir();
    const dir = await repoWith({ 'a.txt': 'a\n' }, ['a.txt']);
    fs.mkdirSync(path.join(outside, 'store'));
    const link = path.join(newDir(), 'remote-link');
    fs.symlinkSync(outside, link);
    setConfig(dir, `core:\n  remote: r\nremote:\n  r:\n    url: ${link}\n`);
    const r = await tdv(dir, 'checkout', '--to', path.join(outside, 'snap'));
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'cannot write a snapshot into', 'remote "r"');
    expect(fs.readdirSync(outside)).toEqual(['store']);
  });

  it('a stage whose metrics path is an existing directory fails before anything in it is deleted (case 3287)', async () => {
    const dir = await newRepo();
    write(dir, 'model.bin', 'm\n');
    write(dir, 'scratch/keep.txt', 'mine\n');
    write(dir, 'tdv.yaml', "stages:\n  evil:\n    cmd: cp model.bin 'scratch'\n    deps: [model.bin]\n    metrics: [scratch]\n");
    await git(dir, 'add', 'tdv.yaml', 'model.bin');
    await git(dir, 'commit', '-qm', 'pipeline');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'metrics scratch of stage "evil" is a directory');
    expect(read(dir, 'scratch/keep.txt')).toBe('mine\n');
  });
});
