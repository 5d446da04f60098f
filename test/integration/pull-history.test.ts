import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheObjects, sampleRepo, sha } from '../helpers/expect.js';
import { git, read, tdv, tdvBin, write } from '../helpers/repo.js';

/** A repo whose model.bin was "v1 weights" at tag v1 and on branch old, and is "weights" now; all pushed; cache and workspace data then deleted. */
async function historyRepo(): Promise<string> {
  const { dir } = await sampleRepo({ commit: true });
  write(dir, 'model.bin', 'v1 weights');
  expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
  await git(dir, 'commit', '-qam', 'v1');
  await git(dir, 'tag', 'v1');
  await git(dir, 'branch', 'old');
  write(dir, 'model.bin', 'weights');
  expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
  await git(dir, 'commit', '-qam', 'v2');
  expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
  fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
  fs.rmSync(path.join(dir, 'model.bin'));
  fs.rmSync(path.join(dir, 'data'), { recursive: true });
  return dir;
}

describe('tdv pull --all-branches / --all-tags / --all-commits', () => {
  it("--all-tags fetches every tagged version into the cache and checks out the workspace's", async () => {
    const dir = await historyRepo();
    const r = await tdvBin(dir, ['pull', '--all-tags']);
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'model.bin')).toBe('weights');
    expect(read(dir, 'data/a.csv')).toBe('a,1\n');
    expect(cacheObjects(dir)).toEqual(expect.arrayContaining([sha('v1 weights'), sha('weights')]));
    // So the tagged version checks out from the cache alone.
    const c = await tdv(dir, 'checkout', '--rev', 'v1', '--to', `${dir}-v1`);
    fs.rmSync(`${dir}-v1`, { recursive: true, force: true });
    expect(c.code, c.stderr).toBe(0);
  });

  it('--all-branches and --all-commits do the same for branch tips and history; plain pull does not', async () => {
    const dir = await historyRepo();
    expect((await tdv(dir, 'pull')).code).toBe(0);
    expect(cacheObjects(dir)).not.toContain(sha('v1 weights'));
    const b = await tdv(dir, 'pull', '--all-branches');
    expect(b.code, b.stderr).toBe(0);
    expect(cacheObjects(dir)).toContain(sha('v1 weights'));
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
    const c = await tdv(dir, 'pull', '--all-commits', 'model.bin');
    expect(c.code, c.stderr).toBe(0);
    expect(cacheObjects(dir).sort()).toEqual([sha('v1 weights'), sha('weights')].sort());
    expect(read(dir, 'model.bin')).toBe('weights');
  });
});
