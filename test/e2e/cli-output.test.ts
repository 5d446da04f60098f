import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { git, read, TDV_BIN, tdvBin, write } from '../helpers/repo.js';
import { newRepo } from '../helpers/expect.js';

/** End-to-end: how the real bin/tdv.js talks to the programs around it. Needs `npm run build` first. */

/**
 * Runs bin/tdv.js with a stdout nobody reads: the read end of its pipe is
 * closed at once, as `tdv log | true` or `| head -1` (after its line) do, so
 * every write tdv makes there fails with EPIPE.
 */
function withClosedStdout(cwd: string, args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('node', [TDV_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('output cut short', () => {
  it('a reader that stops reading is not an error: --help, status, log and checkout exit quietly with their own code', async () => {
    const dir = await newRepo();
    for (let i = 0; i < 50; i++) write(dir, `data/f${i}.csv`, `${i}\n`);
    write(dir, 'a.csv', 'a\n');
    expect((await tdvBin(dir, ['add', 'data', 'a.csv'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    // Something for status to print, line after line.
    for (let i = 0; i < 50; i++) write(dir, `data/f${i}.csv`, `changed ${i}\n`);
    for (const args of [['--help'], ['status', '--help'], ['status'], ['status', '--json'], ['log'], ['diff']]) {
      const r = await withClosedStdout(dir, args);
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
    // A writing command whose summary nobody reads still does all its work.
    write(dir, 'a.csv', 'edited\n');
    const co = await withClosedStdout(dir, ['checkout', '--force']);
    expect({ code: co.code, stderr: co.stderr }).toEqual({ code: 0, stderr: '' });
    expect(read(dir, 'a.csv')).toBe('a\n');
    expect(read(dir, 'data/f7.csv')).toBe('7\n');
    // A failure still fails: the error line goes to stderr, the exit code is kept.
    const bad = await withClosedStdout(dir, ['status', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error: nope is not tracked by tdv/);
  });

  it.skipIf(!fs.existsSync('/dev/full'))('output that cannot be written (a full disk: /dev/full) is one error line and exit 1, not a stack trace', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    expect((await tdvBin(dir, ['add', 'a.csv'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    for (const args of [['ls'], ['log'], ['status', '--json']]) {
      const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const full = fs.openSync('/dev/full', 'w');
        const child = spawn('node', [TDV_BIN, ...args], { cwd: dir, stdio: ['ignore', full, 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
        fs.closeSync(full);
        let stderr = '';
        child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stderr }));
      });
      expect({ args, code: r.code, stderr: r.stderr }).toEqual({ args, code: 1, stderr: 'error: cannot write the output: ENOSPC: no space left on device, write\n' });
    }
  });
});
