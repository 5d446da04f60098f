/**
 * Messages the adversarial review of issue 12 found wrong (findings 6 to 8 of
 * test/attack/FINDINGS-issue12-review.md), with the real bin/tdv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';

describe('adversarial review of issue 12: messages', () => {
  it('6: commit of a stage output that is a symlink says it is a symlink, not "run the command again"; nothing is read through it', async () => {
    const dir = await newRepo();
    const outside = newDir();
    write(outside, 'secret', 'TOPSECRET\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo hi > o.txt\n    outs: [o.txt]\n');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dir, 'o.txt'));
    const r = await tdv(dir, 'commit', 's');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'o.txt is a symlink', 'write a file, not a link');
    expect(r.stderr).not.toContain('run the command again');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    expect(fs.readlinkSync(path.join(dir, 'o.txt'))).toBe(path.join(outside, 'secret'));
  });

  it('7: freeze and unfreeze accept a foreach group name and set frozen under do:, which freezes every stage it makes', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  fit:\n    foreach: [a, b]\n    do:\n      cmd: echo ${item} > out-${item}.txt\n      outs:\n        - out-${item}.txt\n');
    const f = await tdv(dir, 'freeze', 'fit');
    expect(f.code, f.stderr).toBe(0);
    expect(read(dir, 'tdv.yaml')).toMatch(/do:\n(?: {6}.*\n)*? {6}frozen: true\n/);
    const dry = await tdv(dir, 'repro', '--dry');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).not.toMatch(/^would run/m);
    expect(dry.stdout).toContain('frozen fit@a: not run (`tdv unfreeze fit` to run it again)');
    const one = await tdv(dir, 'unfreeze', 'fit@a');
    expect(one.code).toBe(2);
    expectOneLineError(one.stderr, 'stage "fit@a" is made by the foreach or matrix of "fit"', '`tdv unfreeze fit`');
    const u = await tdv(dir, 'unfreeze', 'fit');
    expect(u.code, u.stderr).toBe(0);
    expect(read(dir, 'tdv.yaml')).not.toContain('frozen');
  });

  it('8: a bad stage name given with -n is reported as coming from -n, and tdv.yaml is not written', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'stage', 'add', '-n', 'a b', '-o', 'o.txt', 'echo hi > o.txt');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'stage name "a b" (from -n) is not allowed', 'letters, digits');
    expect(r.stderr).not.toMatch(/tdv\.yaml:\d+/);
    expect(fs.existsSync(path.join(dir, 'tdv.yaml'))).toBe(false);
    // A usage error, so before the repository is opened: the same line (exit 2) outside one.
    const outside = await tdv(newDir(), 'stage', 'add', '-n', 'a b', '--', 'echo', 'hi');
    expect(outside.code).toBe(2);
    expectOneLineError(outside.stderr, 'stage name "a b" (from -n) is not allowed');
  });
});

describe('tdv.yaml, tdv.lock and .tdvignore are never read through a symlink (attack run 20261203, case 8482)', () => {
  it('a committed tdv.lock that links outside is a one-line error; checkout restores nothing it names', async () => {
    const dir = await newRepo();
    const outside = newDir();
    write(dir, 'model.bin', 'weights\n');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  copy:\n    cmd: cp model.bin out.bin\n    deps: [model.bin]\n    outs: [out.bin]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    // A lock elsewhere that also "records" an output tdv.yaml never declares.
    const lock = read(dir, 'tdv.lock').replace('    outs:\n', '    outs:\n      - path: planted\n        sha256: ' + /sha256: ([0-9a-f]{64})/.exec(read(dir, 'tdv.lock'))![1] + '\n        size: 8\n');
    write(outside, 'lock', lock);
    fs.rmSync(path.join(dir, 'tdv.lock'));
    fs.symlinkSync(path.join(outside, 'lock'), path.join(dir, 'tdv.lock'));
    for (const args of [['checkout', '--force'], ['status']]) {
      const r = await tdv(dir, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expectOneLineError(r.stderr, 'tdv.lock is a symlink', 'regular file');
    }
    expect(fs.existsSync(path.join(dir, 'planted'))).toBe(false);
    expect(fs.readlinkSync(path.join(dir, 'tdv.lock'))).toBe(path.join(outside, 'lock'));
  });

  it('a tdv.yaml or .tdvignore that is a symlink is refused the same way', async () => {
    const dir = await newRepo();
    const outside = newDir();
    write(outside, 'p.yaml', 'stages:\n  s:\n    cmd: echo hi > o.txt\n    outs: [o.txt]\n');
    fs.symlinkSync(path.join(outside, 'p.yaml'), path.join(dir, 'tdv.yaml'));
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml is a symlink');
    expect(fs.existsSync(path.join(dir, 'o.txt'))).toBe(false);
    fs.rmSync(path.join(dir, 'tdv.yaml'));
    write(outside, 'ign', '*\n');
    fs.rmSync(path.join(dir, '.tdvignore'), { force: true });
    fs.symlinkSync(path.join(outside, 'ign'), path.join(dir, '.tdvignore'));
    write(dir, 'd/a', 'a\n');
    const a = await tdv(dir, 'add', 'd');
    expect(a.code).toBe(1);
    expectOneLineError(a.stderr, '.tdvignore is a symlink');
  });
});

describe('review 2 of issue 12: inputs that are not plain data, and numbers that are not decimal', () => {
  it('7: a mapping key that is a list is an error at that key, and the YAML library prints nothing of its own', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n    meta:\n      ? [x, y]\n      : 1\n');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml:6:9', 'a mapping key is a list or mapping');
  });

  it('10: a tdv.lock of another schema version is refused, naming the fix', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.lock', read(dir, 'tdv.lock').replace('schema: 1', 'schema: 2'));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.lock', 'newer tdv');
  });

  it('12: --jobs takes decimal whole numbers only, up to 1024; -n takes any count; --md and --json exclude each other', async () => {
    const dir = await newRepo();
    for (const j of ['0x10', '1e3', ' 4', '0', '-1']) {
      const r = await tdv(dir, 'status', '--remote', '-j', j);
      expect(r.code, j).toBe(2);
      expectOneLineError(r.stderr, '--jobs must be a whole number >= 1');
    }
    const big = await tdv(dir, 'status', '--remote', '-j', '99999999999');
    expect(big.code).toBe(2);
    expectOneLineError(big.stderr, '--jobs must be at most 1024');
    const log = await tdv(dir, 'log', '-n', '99999999999');
    expect(log.stderr).not.toContain('-n must');
    // --md and --json are two renderings of one result: asking for both is a usage error.
    for (const cmd of [
      ['metrics', 'show'],
      ['metrics', 'diff'],
      ['params', 'show'],
      ['params', 'diff'],
    ]) {
      const both = await tdv(dir, ...cmd, '--md', '--json');
      expect(both.code, cmd.join(' ')).toBe(2);
      expect(both.stderr).toContain("option '--md' cannot be used with option '--json'");
    }
  });
});

describe('review 2 of issue 12, finding 13: --json on init and dag', () => {
  it('init --json prints the root and the files it created; dag --json the stages in run order with what each waits for', async () => {
    const dir = await newRepo({ init: false });
    const init = await tdv(dir, 'init', '--json');
    expect(init.code, init.stderr).toBe(0);
    expect(init.stderr).toBe('');
    const res = JSON.parse(init.stdout);
    expect(res.root).toBe(dir);
    expect(res.created).toEqual(expect.arrayContaining(['.tdv/config.yaml']));
    write(dir, 'tdv.yaml', 'stages:\n  b:\n    cmd: cp a.txt b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n');
    const dag = await tdv(dir, 'dag', '--json');
    expect(dag.code, dag.stderr).toBe(0);
    expect(JSON.parse(dag.stdout)).toEqual({
      stages: [
        { name: 'a', upstream: [] },
        { name: 'b', upstream: ['a'] },
      ],
    });
    const both = await tdv(dir, 'dag', '--json', '--dot');
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('choose one of --dot, --mermaid and --json');
  });
});
