import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalRunner } from '../../src/stages/runners/local.js';
import { makeRoot, runCapture, runnerContract, waitFor } from './runner.contract.js';

/** The pids in `pidFile` that are still alive. */
function alive(pidFile: string): string[] {
  if (!fs.existsSync(pidFile)) return [];
  return fs
    .readFileSync(pidFile, 'utf8')
    .split(/\s+/)
    .filter(Boolean)
    .filter((pid) => {
      try {
        process.kill(Number(pid), 0);
      } catch {
        return false;
      }
      // A killed process whose parent has not reaped it yet is a zombie: dead, not a leftover.
      try {
        return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    });
}

runnerContract('local', async () => ({
  runner: new LocalRunner(),
  leftovers: async (_root, pidFile) => alive(pidFile),
}));

describe('local runner', () => {
  it('adds the stage env to its own environment', async () => {
    const r = { runner: new LocalRunner({ env: { ...process.env, FROM_BASE: 'base' } }), leftovers: async () => [] };
    const c = await runCapture(r, makeRoot(), 'echo "$FROM_BASE $FROM_STAGE"', { env: { FROM_STAGE: 'stage' } });
    expect(c.stdout).toBe('base stage\n');
  });

  it('abort kills a command that ignores SIGTERM after the grace period', async () => {
    const r = { runner: new LocalRunner({ killGraceMs: 500 }), leftovers: async () => [] };
    const root = makeRoot();
    const ac = new AbortController();
    const started = path.join(root, 'started');
    const running = runCapture(r, root, `trap '' TERM; touch ${started}; sleep 30 & echo $! > bg.pid; wait; wait`, { signal: ac.signal });
    await waitFor(() => fs.existsSync(started) && fs.existsSync(path.join(root, 'bg.pid')), 10_000);
    const t = performance.now();
    ac.abort();
    const c = await running;
    expect(performance.now() - t).toBeLessThan(3_000);
    expect(c.result).toEqual({ exitCode: null, signal: 'SIGKILL' });
    await waitFor(() => alive(path.join(root, 'bg.pid')).length === 0, 2_000);
  });

  it('reports a shell that cannot be started as a TdvError', async () => {
    const r = { runner: new LocalRunner({ shell: 'no-such-shell-tdv' }), leftovers: async () => [] };
    await expect(runCapture(r, makeRoot(), 'true')).rejects.toMatchObject({ code: 'STAGE_START_FAILED' });
  });
});
