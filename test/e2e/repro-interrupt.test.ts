import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { TDV_BIN, write } from '../helpers/repo.js';
import { newRepo } from '../helpers/expect.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';

/** Starts `tdv repro`, presses Ctrl-C once stage `slow` is running, and returns what happened. */
async function interrupt(dir: string): Promise<{ code: number | null; stdout: string; ms: number }> {
  const child = spawn('node', [TDV_BIN, 'repro', '-j', '1'], { cwd: dir, env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stdout += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  for (let i = 0; i < 400 && !/running slow/.test(stdout); i++) await new Promise((r) => setTimeout(r, 25));
  await new Promise((r) => setTimeout(r, 300)); // let the command really start
  const t = Date.now();
  child.kill('SIGINT');
  const code = await exited;
  return { code, stdout, ms: Date.now() - t };
}

const PIPELINE = (image: string) =>
  `stages:\n  fast:\n    cmd: echo done > fast.txt\n    outs: [fast.txt]\n${image}  slow:\n    cmd: sleep 30 && echo never > slow.txt\n    deps: [fast.txt]\n    outs: [slow.txt]\n${image}`;

describe('Ctrl-C during tdv repro (local)', () => {
  it('stops the running command, records finished stages and nothing for the others', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE(''));
    const r = await interrupt(dir);
    expect(r.code).toBe(130); // 128 + SIGINT, as a shell reports Ctrl-C, after the cleanup
    expect(r.ms).toBeLessThan(8000);
    expect(r.stdout).toContain('interrupted; stages that finished are recorded in tdv.lock');
    const lock = fs.readFileSync(path.join(dir, 'tdv.lock'), 'utf8');
    expect(lock).toContain('fast:');
    expect(lock).not.toContain('slow:');
    const ps = await execa('ps', ['-eo', 'args'], { reject: false });
    expect(ps.stdout).not.toMatch(/sleep 30 && echo never/);
  });
});

describeDocker('Ctrl-C during tdv repro (Docker)', () => {
  it('removes the running container', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE(`    image: ${TEST_IMAGE}\n`));
    const r = await interrupt(dir);
    expect(r.code).not.toBe(0);
    expect(fs.readFileSync(path.join(dir, 'tdv.lock'), 'utf8')).not.toContain('slow:');
    const left = await execa('docker', ['ps', '-a', '--filter', `label=tdv.root=${dir}`, '--format', '{{.Names}}']);
    expect(left.stdout.trim()).toBe('');
  });
});
