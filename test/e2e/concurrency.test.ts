/**
 * Commands that change the repository, started at the same moment as real
 * processes: the repository lock serialises them, the second says it waits,
 * then succeeds, and nothing is lost. (Two `tdv add` of different paths at once
 * are in integration/lock.test.ts.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdv, tdvBin, write } from '../helpers/repo.js';
import { newDir, repoWith, sha } from '../helpers/expect.js';
import { bikeshareRepo } from '../helpers/pipeline.js';
import { hashCache } from '../helpers/verify.js';

const N = 20_000;

/** Resolves once a command holds the repository lock: one started then must wait for it. */
async function lockTaken(dir: string): Promise<void> {
  const lock = path.join(dir, '.tdv', 'tmp', 'lock');
  for (let i = 0; i < 3000 && !fs.existsSync(lock); i++) await new Promise((r) => setTimeout(r, 5));
  expect(fs.existsSync(lock), 'the first command never took the lock').toBe(true);
}

const WAITING = /^warning: waiting for the repository lock held by `tdv (gc|push|repro)` \(pid \d+\)\.\.\.$/m;

describe('the repository lock serialises commands started together', () => {
  it.each([['gc first'], ['push first']])(
    'push during gc: both succeed, the remote and the cache keep everything referenced (%s)',
    async (order) => {
      // Enough work that the first command holds the lock for a good while: 20,000 files to
      // push, 20,000 unused objects to delete.
      const files: Record<string, string> = {};
      for (let i = 0; i < N; i++) files[`data/f${i}.csv`] = `row,${i}\n`;
      const dir = await repoWith(files, ['data']);
      const remote = newDir();
      // Plain: hashCache below reads every object the remote holds under files/sha256.
      fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n    layout: plain\n`);
      for (let i = 0; i < N; i++) {
        const bytes = `unused ${i}\n`;
        write(dir, `.tdv/cache/files/sha256/${sha(bytes).slice(0, 2)}/${sha(bytes).slice(2)}`, bytes);
      }

      const gc = () => tdvBin(dir, ['gc', '--workspace', '-f']);
      const push = () => tdvBin(dir, ['push']);
      const [start, then] = order === 'gc first' ? [gc, push] : [push, gc];
      const a = start();
      await lockTaken(dir); // the second starts while the first holds the lock
      const [first, second] = await Promise.all([a, then()]);
      expect(first.code, first.stderr).toBe(0);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stderr).toMatch(WAITING);
      expect(first.stderr).not.toMatch(WAITING);

      // Everything referenced is in the cache, whole; nothing unused is left; the remote holds it all.
      const fsck = await tdv(dir, 'fsck', '--remote', '--json');
      expect(fsck.code, fsck.stdout).toBe(0);
      expect(JSON.parse(fsck.stdout)).toMatchObject({ clean: true, referenced: N + 1, objects: N + 1, remote: { checked: N + 1, missing: [], wrongSize: [] } });
      expect(hashCache(dir, remote).objects.size).toBe(N + 1); // every remote object hashes to its name
    },
    120_000,
  );

  it('repro twice at once: the second waits for the first, then finds everything up to date', async () => {
    const dir = await bikeshareRepo({ days: 31, trips: 300 });
    // A slow first stage, so the two runs overlap.
    const yaml = fs.readFileSync(path.join(dir, 'tdv.yaml'), 'utf8').replace('cmd: sh scripts/sales.sh', 'cmd: sleep 2 && sh scripts/sales.sh');
    fs.writeFileSync(path.join(dir, 'tdv.yaml'), yaml);
    const first = tdvBin(dir, ['repro']);
    await lockTaken(dir);
    const [a, b] = await Promise.all([first, tdvBin(dir, ['repro'])]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(a.stderr).not.toMatch(WAITING);
    expect(b.stderr).toMatch(WAITING);
    expect(a.stdout).toMatch(/Ran 3 stages/);
    expect(b.stdout).toMatch(/Pipeline is up to date/);
    // Nothing lost or half-recorded: status is clean, fsck is clean, the outputs are the recorded ones.
    expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout)).toMatchObject({ clean: true });
    const fsck = await tdv(dir, 'fsck', '--json');
    expect(fsck.code, fsck.stdout).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'metrics/report.json'), 'utf8')).toMatch(/"total_sales":/);
  }, 60_000);
});
