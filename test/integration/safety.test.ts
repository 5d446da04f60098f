import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, objPath, repoWith, sha } from '../helpers/expect.js';
import { status } from '../../src/repo/status.js';
import { withRepo } from '../helpers/api.js';

describe('checkout never writes through symlinks', () => {
  it('a tracked directory replaced by a symlink to elsewhere is a conflict; the other side is untouched', async () => {
    const dir = await repoWith({ 'data/a.csv': 'a\n' }, ['data']);
    const elsewhere = newDir();
    fs.renameSync(path.join(dir, 'data'), path.join(elsewhere, 'data'));
    fs.symlinkSync(path.join(elsewhere, 'data'), path.join(dir, 'data'));
    write(elsewhere, 'data/a.csv', 'edited elsewhere\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data', '--force');
    expect(read(elsewhere, 'data/a.csv')).toBe('edited elsewhere\n');
    // --force replaces the link itself, never what it points at.
    expect((await tdv(dir, 'checkout', '--force')).code).toBe(0);
    expect(fs.lstatSync(path.join(dir, 'data')).isDirectory()).toBe(true);
    expect(read(dir, 'data/a.csv')).toBe('a\n');
    expect(read(elsewhere, 'data/a.csv')).toBe('edited elsewhere\n');
  });

  it('a symlinked subdirectory inside a tracked directory is not written through', async () => {
    const dir = await repoWith({ 'data/sub/x.csv': 'x\n', 'data/a.csv': 'a\n' }, ['data']);
    const elsewhere = newDir();
    fs.rmSync(path.join(dir, 'data', 'sub'), { recursive: true });
    write(elsewhere, 'x.csv', 'precious\n');
    fs.symlinkSync(elsewhere, path.join(dir, 'data', 'sub'));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/sub', '--force');
    expect(read(elsewhere, 'x.csv')).toBe('precious\n');
    expect((await tdv(dir, 'checkout', '--force')).code).toBe(0);
    expect(read(dir, 'data/sub/x.csv')).toBe('x\n');
    expect(read(elsewhere, 'x.csv')).toBe('precious\n');
  });

  it('a pointer whose path goes through a symlink out of the repository is refused', async () => {
    const dir = await newRepo();
    const elsewhere = newDir();
    fs.symlinkSync(elsewhere, path.join(dir, 'link'));
    write(dir, 'evil.tdv', `outs:\n- path: link/hook\n  sha256: ${sha('x')}\n  size: 1\n`);
    write(dir, 'x', 'x');
    expect((await tdv(dir, 'add', 'x')).code).toBe(0); // puts sha('x') in the cache
    const r = await tdv(dir, 'checkout', 'evil.tdv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'evil.tdv: link/hook goes through the symlink link', 'never reads or writes through a symlink');
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });
});

describe('hostile pointer files are rejected when loaded', () => {
  for (const p of ['.git/hooks/post-checkout', '.tdv/config.yaml', 'sub/.git/config', 'other.tdv']) {
    it(`refuses path: ${p}`, async () => {
      const dir = await newRepo();
      write(dir, 'evil.tdv', `outs:\n- path: ${p}\n  sha256: ${sha('x')}\n  size: 1\n`);
      const before = snapshot(dir);
      const r = await tdv(dir, 'checkout');
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, 'evil.tdv', /Git's own files|tdv's own files|never tracks/);
      expect(snapshot(dir)).toEqual(before);
    });
  }

  it('two pointers tracking overlapping paths are an error naming both', async () => {
    const dir = await repoWith({ 'data/a.csv': 'a\n' }, ['data']);
    write(dir, 'data2.tdv', `outs:\n- path: data/a.csv\n  sha256: ${sha('a\n')}\n  size: 2\n`);
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data2.tdv', 'data.tdv');
  });

  it('a manifest entry under .git is rejected', async () => {
    const dir = await newRepo();
    const text = JSON.stringify([{ relpath: '.git/hooks/pre-commit', sha256: sha('x'), size: 1 }]);
    const oid = `${sha(text)}.dir`;
    write(dir, 'x', 'x');
    expect((await tdv(dir, 'add', 'x')).code).toBe(0);
    fs.mkdirSync(path.dirname(objPath(dir, oid)), { recursive: true });
    fs.writeFileSync(objPath(dir, oid), text);
    write(dir, 'data.tdv', `outs:\n- path: data\n  sha256: ${oid}\n  size: 1\n  nfiles: 1\n`);
    const r = await tdv(dir, 'checkout', 'data.tdv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'unsafe relpath');
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
  });
});

describe('checkout does not overwrite what the walk does not show', () => {
  it('a file hidden by .tdvignore with uncached content is a conflict, not overwritten', async () => {
    const dir = await repoWith({ 'data/run.log': 'v1\n', 'data/a.csv': 'x\n' }, ['data']);
    fs.appendFileSync(path.join(dir, '.tdvignore'), '*.log\n');
    write(dir, 'data/run.log', 'precious\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/run.log', '--force');
    expect(read(dir, 'data/run.log')).toBe('precious\n');
  });

  it('a hidden file whose content is the recorded one is left as it is', async () => {
    const dir = await repoWith({ 'data/run.log': 'v1\n', 'data/a.csv': 'x\n' }, ['data']);
    fs.appendFileSync(path.join(dir, '.tdvignore'), '*.log\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(read(dir, 'data/run.log')).toBe('v1\n');
  });

  it('a directory where a tracked file belongs is checked in full, ignored files included', async () => {
    const dir = await repoWith({ 'model.bin': 'm\n' }, ['model.bin']);
    write(dir, '.tdvignore', '*.log\n');
    fs.rmSync(path.join(dir, 'model.bin'));
    write(dir, 'model.bin/train.log', 'uncached\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'model.bin/train.log');
    expect(read(dir, 'model.bin/train.log')).toBe('uncached\n');
  });
});

describe('the "all objects present" record stays honest', () => {
  it('a checkout that changes nothing does not hide a missing object from status', async () => {
    const dir = await repoWith({ 'data/a': 'a\n', 'data/b': 'b\n' }, ['data']);
    fs.rmSync(objPath(dir, sha('b\n')));
    const cacheOfData = async () => (await withRepo(dir, (r) => status(r))).data.map((d) => [d.path, d.cache]);
    expect(await cacheOfData()).toEqual([['data', 'missing']]);
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(await cacheOfData()).toEqual([['data', 'missing']]);
  });
});

describe('odd names and paths', () => {
  it('a file name near the 255-byte limit can be added and checked out', async () => {
    const long = 'a'.repeat(240);
    const dir = await repoWith({ [`data/${long}`]: 'long\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(read(dir, `data/${long}`)).toBe('long\n');
  });

  it('adding a path under a missing directory says it does not exist', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'add', 'nosuchdir/x.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'nosuchdir/x.csv does not exist');
  });
});

describe('gc keeps everything a pointer references', () => {
  it('keeps the objects of a pointer that .tdvignore hides', async () => {
    const dir = await repoWith({ 'scratch/raw.csv': 'raw\n' }, ['scratch/raw.csv']);
    write(dir, '.tdvignore', 'scratch/\n');
    const r = await tdv(dir, 'gc', '--workspace', '-f');
    expect(r.code).toBe(0);
    expect(fs.existsSync(objPath(dir, sha('raw\n')))).toBe(true);
  });

  it('refuses to collect when a tracked directory has no manifest in the cache', async () => {
    const dir = await repoWith({ 'data/a': 'a\n' }, ['data']);
    const ptr = read(dir, 'data.tdv');
    const oid = /sha256: (\S+)/.exec(ptr)![1]!;
    fs.rmSync(objPath(dir, oid));
    const r = await tdv(dir, 'gc', '--workspace', '-f');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data', 'tdv pull');
    expect(fs.existsSync(objPath(dir, sha('a\n')))).toBe(true);
  });
});

describe('checkout checks every parent of what it writes', () => {
  it('a symlink hidden by .tdvignore is not written through', async () => {
    const dir = await repoWith({ 'data/a/x': 'x\n', 'data/b': 'b\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data', 'a'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'victim'));
    fs.symlinkSync('../victim', path.join(dir, 'data', 'a'));
    fs.appendFileSync(path.join(dir, '.tdvignore'), 'data/a\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/a', '--force');
    expect(fs.readdirSync(path.join(dir, 'victim'))).toEqual([]);
  });

  it('a file where the recorded version has a directory is replaced when its content is cached', async () => {
    const dir = await repoWith({ 'data/a/b.txt': 'b\n', 'data/c': 'c\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data', 'a'), { recursive: true });
    write(dir, 'data/a', 'c\n'); // cached content (same as data/c)
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(0);
    expect(read(dir, 'data/a/b.txt')).toBe('b\n');
  });

  it('...and is a conflict, not a crash, when it is not cached', async () => {
    const dir = await repoWith({ 'data/a/b.txt': 'b\n', 'data/c': 'c\n' }, ['data']);
    fs.rmSync(path.join(dir, 'data', 'a'), { recursive: true });
    write(dir, 'data/a', 'precious\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/a', '--force');
    expect(read(dir, 'data/a')).toBe('precious\n');
    expect((await tdv(dir, 'checkout', '--force')).code).toBe(0);
    expect(read(dir, 'data/a/b.txt')).toBe('b\n');
  });

  it('a Git repository inside a directory in the way counts as data that would be lost', async () => {
    const dir = await repoWith({ 'model.bin': 'm\n' }, ['model.bin']);
    fs.rmSync(path.join(dir, 'model.bin'));
    write(dir, 'model.bin/.git/HEAD', 'ref: refs/heads/main\n');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'model.bin/.git');
    expect(read(dir, 'model.bin/.git/HEAD')).toBe('ref: refs/heads/main\n');
  });
});
