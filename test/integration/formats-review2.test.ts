/**
 * Findings 6, 11 and 14 of the second adversarial review of issue 12
 * (test/attack/FINDINGS-issue12-review2.md): user data a rewrite would
 * change, text files read leniently, and two messages that contradict tdv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo } from '../helpers/expect.js';

describe('11: tdv.yaml and config files refuse bytes that are not UTF-8, as pointers and tdv.lock do', () => {
  it('tdv.yaml with a Latin-1 byte is refused with one line naming it, not read as U+FFFD', async () => {
    const dir = await newRepo();
    fs.writeFileSync(path.join(dir, 'tdv.yaml'), Buffer.concat([Buffer.from('stages:\n  a:\n    cmd: echo\n    outs: [o]\n    desc: caf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: tdv\.yaml: is not valid UTF-8\. Save it as UTF-8 text/);
  });

  it.each([
    ['freeze', 'a'],
    ['stage', 'add', '-n', 'b', '--', 'echo'],
  ])('tdv %s on such a tdv.yaml refuses it and leaves its bytes as they are (it would write U+FFFD back)', async (...args) => {
    const dir = await newRepo();
    const bytes = Buffer.concat([Buffer.from('stages:\n  a:\n    cmd: echo\n    outs: [o]\n    desc: caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
    fs.writeFileSync(path.join(dir, 'tdv.yaml'), bytes);
    const r = await tdv(dir, ...args);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: tdv\.yaml: is not valid UTF-8\. /);
    expect(fs.readFileSync(path.join(dir, 'tdv.yaml'))).toEqual(bytes);
  });

  it('tdv remove of a stage refuses such a tdv.yaml too, and leaves it as it is', async () => {
    const dir = await newRepo();
    const bytes = Buffer.concat([Buffer.from('stages:\n  a:\n    cmd: echo\n    outs: [o]\n    desc: caf'), Buffer.from([0xe9]), Buffer.from('\n  b:\n    cmd: echo\n')]);
    fs.writeFileSync(path.join(dir, 'tdv.yaml'), bytes);
    const r = await tdv(dir, 'remove', 'b');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: tdv\.yaml: is not valid UTF-8\. /);
    expect(fs.readFileSync(path.join(dir, 'tdv.yaml'))).toEqual(bytes);
  });

  it.each(['config.yaml', 'config.local.yaml'])('.tdv/%s with a byte that is not UTF-8 is refused with one line naming it', async (name) => {
    const dir = await newRepo();
    fs.writeFileSync(path.join(dir, '.tdv', name), Buffer.concat([Buffer.from('core:\n  remote: '), Buffer.from([0xff]), Buffer.from('\n')]));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, new RegExp(`^error: \\S*\\.tdv/${name.replace(/\./g, '\\.')}: is not valid UTF-8\\. Save it as UTF-8 text`));
  });
});

describe('14: commit takes a foreach group name, and status says a symlinked output is a symlink, not missing', () => {
  it('tdv commit fit commits every stage the foreach "fit" made, as repro fit and freeze fit take the name', async () => {
    const dir = await newRepo();
    write(
      dir,
      'tdv.yaml',
      'stages:\n  fit:\n    foreach: [a, b]\n    do:\n      cmd: echo ${item} > out-${item}.txt\n      outs: ["out-${item}.txt"]\n  other:\n    cmd: echo o > o.txt\n    outs: [o.txt]\n',
    );
    write(dir, 'out-a.txt', 'a\n');
    write(dir, 'out-b.txt', 'b\n');
    write(dir, 'o.txt', 'o\n');
    const r = await tdv(dir, 'commit', 'fit', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).committed).toEqual(['fit@a', 'fit@b']);
    const lock = read(dir, 'tdv.lock');
    expect(lock).toContain('fit@a:');
    expect(lock).toContain('fit@b:');
    expect(lock).not.toContain('other:');
    const unknown = await tdv(dir, 'commit', 'nope');
    expect(unknown.code).toBe(2);
    expectOneLineError(unknown.stderr, 'unknown stage "nope"');
  });

  it('a stage output replaced by a symlink: the stage says "replaced by a symlink", never also "missing"', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  t:\n    cmd: echo hi > t.txt\n    outs: [t.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    fs.rmSync(path.join(dir, 't.txt'));
    fs.symlinkSync('/etc/passwd', path.join(dir, 't.txt'));
    const r = await tdv(dir, 'status', '--json');
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.stages).toEqual([{ name: 't', reasons: ['outs replaced by a symlink: t.txt'] }]);
    expect(res.data[0]).toMatchObject({ path: 't.txt', workspace: 'modified', blocker: { kind: 'symlink', target: '/etc/passwd' } });
    const text = await tdv(dir, 'status');
    expect(text.stdout).not.toContain('missing');
    // repro --dry gives the same reason as status.
    const dry = await tdv(dir, 'repro', '--dry');
    expect(dry.stdout).toContain('outs replaced by a symlink: t.txt');
    expect(dry.stdout).not.toContain('missing');
    // Deleted, it is missing again.
    fs.rmSync(path.join(dir, 't.txt'));
    expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout).stages).toEqual([{ name: 't', reasons: ['outs missing: t.txt'] }]);
  });
});

describe('6: pointer meta that JSON cannot hold as it is is refused at its key, never rewritten changed', () => {
  async function withMeta(meta: string): Promise<{ dir: string; before: string }> {
    const dir = await newRepo();
    write(dir, 'd.txt', 'hello\n');
    expect((await tdv(dir, 'add', 'd.txt')).code).toBe(0);
    const before = meta + read(dir, 'd.txt.tdv');
    write(dir, 'd.txt.tdv', before);
    write(dir, 'd.txt', 'x\n');
    return { dir, before };
  }

  it.each([
    ['meta: {a: 1, b: !!binary aGVsbG8=}\n', 'd.txt.tdv:1:14: meta.b is binary data (!!binary)'],
    ['meta:\n  ok: [1, 2]\n  n: .nan\n', 'd.txt.tdv:3:3: meta.n is NaN'],
    ['meta: [1, 1e400]\n', 'd.txt.tdv:1:11: meta[1] is Infinity'],
    ['meta: -.inf\n', 'd.txt.tdv:1:1: meta is -Infinity'],
    ['meta: !!set {a, b}\n', 'd.txt.tdv:1:1: meta is a set (!!set)'],
    ['meta: {when: !!timestamp 2001-12-14}\n', 'd.txt.tdv:1:8: meta.when is a timestamp'],
    ['meta: !!omap [{a: 1}]\n', 'd.txt.tdv:1:1: meta is an ordered mapping'],
    ['meta: {run: 1234567890123456789}\n', 'd.txt.tdv:1:8: meta.run is a whole number past 2^53'],
  ])('add refuses %j with one line at its key; the pointer and the data are left as they are', async (meta, where) => {
    const { dir, before } = await withMeta(meta);
    const r = await tdv(dir, 'add', 'd.txt');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `error: ${where}`, 'meta must be plain data (mappings, lists, text, finite numbers, true/false, null), since tdv rewrites it as JSON');
    expect(read(dir, 'd.txt.tdv')).toBe(before);
    expect(read(dir, 'd.txt')).toBe('x\n');
  });

  it("an out's meta is checked as the pointer's is, and mv refuses it as add does", async () => {
    const dir = await newRepo();
    write(dir, 'd.txt', 'hello\n');
    expect((await tdv(dir, 'add', 'd.txt')).code).toBe(0);
    const before = `${read(dir, 'd.txt.tdv')}  meta:\n    raw: !!binary aGVsbG8=\n`;
    write(dir, 'd.txt.tdv', before);
    const r = await tdv(dir, 'mv', 'd.txt', 'e.txt');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: d\.txt\.tdv:\d+:5: outs\[0\]\.meta\.raw is binary data \(!!binary\)/);
    expect(read(dir, 'd.txt.tdv')).toBe(before);
    expect(fs.existsSync(path.join(dir, 'e.txt.tdv'))).toBe(false);
  });

  it('plain meta (mappings, lists, text, numbers, booleans, null) is still kept across add, as JSON', async () => {
    const { dir } = await withMeta('meta: {a: [1, 2.5, -3, 9007199254740991], b: {c: null, d: true}, e: text, "constructor": 1}\n');
    const r = await tdv(dir, 'add', 'd.txt');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'd.txt.tdv')).toMatch(/^meta: \{"a":\[1,2\.5,-3,9007199254740991\],"b":\{"c":null,"d":true\},"e":"text","constructor":1\}\nouts:\n/);
  });
});

describe('6 (tdv.yaml): edits keep numbers as they were written', () => {
  it("tdv remove of a stage in a flow mapping writes the other stages' numbers back as written", async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages: {a: {cmd: echo, meta: {big: 12345678901234567890, z: 007, e: 1e3}}, b: {cmd: echo}}\n');
    const r = await tdv(dir, 'remove', 'b');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'tdv.yaml')).toBe('stages: { a: { cmd: echo, meta: { big: 12345678901234567890, z: 007, e: 1e3 } } }\n');
  });
});
