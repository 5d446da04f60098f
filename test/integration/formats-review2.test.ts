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
    // Deleted, it is missing again.
    fs.rmSync(path.join(dir, 't.txt'));
    expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout).stages).toEqual([{ name: 't', reasons: ['outs missing: t.txt'] }]);
  });
});
