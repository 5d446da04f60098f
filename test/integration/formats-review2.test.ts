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
