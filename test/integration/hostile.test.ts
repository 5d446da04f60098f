/**
 * Hostile and broken input that the other suites do not cover yet. Each gets a
 * clear one-line error naming the file, and nothing is written outside the
 * repository. (The summary table of every hostile input, old and new, with a
 * snapshot of the file system around the repository, is in hostile-summary.test.ts.)
 */
import fs from 'node:fs';
import { execa } from 'execa';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, sha } from '../helpers/expect.js';

describe('tdv.yaml paths through symlinks that leave the repository', () => {
  it.each([
    ['outs', 'outs: [link/out.txt]'],
    ['metrics', 'metrics: [link/m.json]'],
    ['wdir', 'wdir: link\n    outs: [out.txt]'],
  ])('%s through such a symlink is refused before repro deletes or writes anything there', async (_key, line) => {
    const dir = await newRepo();
    const outside = newDir();
    fs.writeFileSync(path.join(outside, 'out.txt'), 'precious');
    fs.writeFileSync(path.join(outside, 'm.json'), '{}');
    const before = snapshot(outside);
    fs.symlinkSync(outside, path.join(dir, 'link'));
    write(dir, 'tdv.yaml', `stages:\n  s:\n    cmd: echo hi > out.txt\n    ${line}\n`);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    // outs and metrics name the symlink (any symlink on the way is refused, as the guard does); wdir may not leave.
    expectOneLineError(r.stderr, /^error: tdv\.yaml:\d+:\d+: /, /goes through (the symlink link \(-> |a symlink that leaves the repository)/);
    expect(snapshot(outside)).toEqual(before);
  });

  it('a dep through a symlink to data elsewhere is refused at load time: tdv reads and hashes deps, never through a link (review F15)', async () => {
    const dir = await newRepo();
    const outside = newDir();
    fs.writeFileSync(path.join(outside, 'in.txt'), 'input');
    fs.symlinkSync(outside, path.join(dir, 'mnt'));
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: cat mnt/in.txt > out.txt\n    deps: [mnt/in.txt]\n    outs: [out.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml:4:', 'goes through the symlink mnt');
    expect(fs.existsSync(path.join(dir, 'out.txt'))).toBe(false);
  });
});

describe('names the file system allows but tdv cannot record', () => {
  it('a file whose name is not valid UTF-8 is skipped with a warning naming it, never dropped silently', async () => {
    const dir = await newRepo();
    write(dir, 'd/a.csv', 'a\n');
    fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/d/bad`), Buffer.from([0xff, 0xfe]), Buffer.from('.csv')]), 'x');
    const r = await tdv(dir, 'add', 'd');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('warning: skipped d/bad\uFFFD\uFFFD.csv: its name is not valid UTF-8, so tdv cannot read or record it; rename it\n');
    expect(fs.readFileSync(path.join(dir, 'd.tdv'), 'utf8')).toContain('nfiles: 1\n');
  });

  it('a directory deeper than the system path limit elsewhere in the repository does not stop other commands; gc refuses', async () => {
    const dir = await newRepo();
    write(dir, 'd/a.csv', 'a\n');
    const name = 'x'.repeat(240);
    try {
      // mkdir -p makes it one level at a time: the whole path is longer than PATH_MAX.
      await execa('mkdir', ['-p', ['deep', ...Array(20).fill(name)].join('/')], { cwd: dir });
      const r = await tdv(dir, 'add', 'd');
      expect(r.code, r.stderr.slice(0, 300)).toBe(0);
      expect((await tdv(dir, 'status')).code).toBe(0);
      const g = await tdv(dir, 'gc', '--workspace', '--dry');
      expect(g.code).toBe(1);
      expectOneLineError(g.stderr, /^error: cannot read deep\/x+\.\.\.: its path is longer than the system allows/);
      expect(g.stderr.length).toBeLessThan(400);
    } finally {
      await execa('rm', ['-rf', path.join(dir, 'deep')]);
    }
  });
});

describe('errors name the hostile file', () => {
  it('a pointer whose path leads through a symlink out of the repository is named in the error', async () => {
    const dir = await newRepo();
    const elsewhere = newDir();
    fs.symlinkSync(elsewhere, path.join(dir, 'link'));
    write(dir, 'x', 'x');
    expect((await tdv(dir, 'add', 'x')).code).toBe(0);
    write(dir, 'evil.tdv', `outs:\n- path: link/hook\n  sha256: ${sha('x')}\n  size: 1\n`);
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'evil.tdv: link/hook goes through the symlink link', 'tdv never reads or writes through a symlink');
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });
});

describe('pointer files that are not text', () => {
  it('a pointer file with bytes that are not UTF-8 is an error naming it, not a path full of U+FFFD', async () => {
    const dir = await newRepo();
    fs.writeFileSync(path.join(dir, 'a.tdv'), Buffer.concat([Buffer.from('outs:\n- path: x'), Buffer.from([0xff, 0xfe]), Buffer.from(`\n  sha256: ${sha('x')}\n  size: 1\n`)]));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: a\.tdv: is not valid UTF-8\. /);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('x'))).toEqual([]);
  });
});
