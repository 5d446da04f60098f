import { execa } from 'execa';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdv, write } from '../helpers/repo.js';
import { repoWith } from '../helpers/expect.js';

async function deadPid(): Promise<number> {
  const p = execa('true');
  await p;
  return p.pid!;
}

describe('temp files of a command that died holding the lock', () => {
  it('are removed by the next command that takes the lock over, and only those', async () => {
    const dir = await repoWith({ 'data/a.csv': 'a\n', 'data/sub/b.csv': 'b\n', 'model.bin': 'm' }, ['data', 'model.bin']);
    const dead = await deadPid();
    write(dir, '.tdv/tmp/lock', JSON.stringify({ pid: dead, host: os.hostname(), cmd: 'checkout', since: new Date().toISOString(), token: 'x' }));
    const theirs = [
      `.tdv/tmp/obj.${dead}.01abcdef00`, // a partial download or copy
      `.tdv/tmp/.tdvtmp.${dead}.01abcdef01`, // a stat cache being saved
      `data/sub/.tdvtmp.${dead}.01abcdef02`, // a file being checked out
      `.tdvtmp.${dead}.01abcdef03`, // a pointer or tdv.lock being written
      `.tdv/tmp/lock.${dead}.01abcdef04`,
    ];
    const others = [`.tdv/tmp/obj.${process.pid}.01abcdef05`, `data/.tdvtmp.${process.pid}.01abcdef06`, '.tdvtmp.notapid'];
    for (const f of [...theirs, ...others]) write(dir, f, 'partial');
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`warning: \`tdv checkout\` (pid ${dead}) did not finish; removed the 5 temp file(s) it left\n`);
    for (const f of theirs) expect(fs.existsSync(path.join(dir, f)), f).toBe(false);
    for (const f of others) expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    // Nothing to say the next time.
    expect((await tdv(dir, 'checkout')).stderr).toBe('');
  });

  it("a job staging directory of the dead command is removed whole; another process's stays", async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const dead = await deadPid();
    write(dir, '.tdv/tmp/lock', JSON.stringify({ pid: dead, host: os.hostname(), cmd: 'repro', since: new Date().toISOString(), token: 'x' }));
    write(dir, `.tdv/tmp/jobs/train-${dead}-0a1b2c3d/out/model.bin`, 'partial');
    write(dir, `.tdv/tmp/jobs/train-${process.pid}-0a1b2c3d/out/model.bin`, 'partial');
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`warning: \`tdv repro\` (pid ${dead}) did not finish; removed the 1 temp file(s) it left\n`);
    expect(fs.readdirSync(path.join(dir, '.tdv/tmp/jobs'))).toEqual([`train-${process.pid}-0a1b2c3d`]);
  });
});
