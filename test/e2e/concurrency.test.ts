/**
 * Commands that change the repository, started at the same moment as real
 * processes: the repository lock serialises them, the second says it waits,
 * then succeeds, and nothing is lost. (Two `tdv add` of different paths at once
 * are in integration/lock.test.ts.)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tdv, tdvBin, write } from '../helpers/repo.js';
import { newDir, repoWith } from '../helpers/expect.js';
import { bikeshareRepo } from '../helpers/pipeline.js';
import { hashCache } from '../helpers/verify.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const WAITING = /^warning: waiting for the repository lock held by `tdv (gc|push|repro)` \(pid \d+\)\.\.\.$/m;

describe('the repository lock serialises commands started together', () => {
  it.each([['gc first'], ['push first']])('push during gc: both succeed, the remote and the cache keep everything referenced (%s)', async (order) => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 300; i++) files[`data/f${i}.csv`] = `row,${i}\n`;
    const dir = await repoWith(files, ['data']);
    const remote = newDir();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
    // Many unused objects, so gc takes a while: a directory added, then no longer tracked.
    for (let i = 0; i < 3000; i++) write(dir, `junk/j${i}`, crypto.randomBytes(64));
    expect((await tdv(dir, 'add', 'junk')).code).toBe(0);
    expect((await tdv(dir, 'remove', 'junk.tdv')).code).toBe(0);

    const gc = () => tdvBin(dir, ['gc', '--workspace', '-f']);
    const push = () => tdvBin(dir, ['push']);
    const [start, then] = order === 'gc first' ? [gc, push] : [push, gc];
    // Started a moment apart, so they reach the lock together: the second must wait for the first.
    const [first, second] = await Promise.all([start(), sleep(40).then(then)]);
    expect(first.code, first.stderr).toBe(0);
    expect(second.code, second.stderr).toBe(0);
    expect(`${first.stderr}${second.stderr}`).toMatch(WAITING);

    // Everything referenced is in the cache, whole; nothing unused is left; the remote holds it all.
    const fsck = await tdv(dir, 'fsck', '--remote', '--json');
    expect(fsck.code, fsck.stdout).toBe(0);
    expect(JSON.parse(fsck.stdout)).toMatchObject({ clean: true, referenced: 301, objects: 301, remote: { checked: 301, missing: [], wrongSize: [] } });
    const there = hashCache(dir, remote).objects; // every remote object hashes to its name
    expect(there.size).toBe(301);
  }, 60_000);

  it('repro twice at once: the second waits for the first, then finds everything up to date', async () => {
    const dir = await bikeshareRepo({ days: 31, trips: 300 });
    // A slow first stage, so the two runs overlap.
    const yaml = fs.readFileSync(path.join(dir, 'tdv.yaml'), 'utf8').replace('cmd: sh scripts/sales.sh', 'cmd: sleep 1 && sh scripts/sales.sh');
    fs.writeFileSync(path.join(dir, 'tdv.yaml'), yaml);
    const [a, b] = await Promise.all([tdvBin(dir, ['repro']), sleep(40).then(() => tdvBin(dir, ['repro']))]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    const both = [a, b];
    const waited = both.filter((r) => WAITING.test(r.stderr));
    expect(waited).toHaveLength(1);
    const other = both.find((r) => r !== waited[0])!;
    expect(other.stdout).toMatch(/Ran 3 stages/);
    expect(waited[0]!.stdout).toMatch(/Ran 0 stages, 3 unchanged|up to date/);
    // Nothing lost or half-recorded: status is clean, fsck is clean, the outputs are the recorded ones.
    expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout)).toMatchObject({ clean: true });
    const fsck = await tdv(dir, 'fsck', '--json');
    expect(fsck.code, fsck.stdout).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'metrics/report.json'), 'utf8')).toMatch(/"total_sales":/);
  }, 60_000);
});
