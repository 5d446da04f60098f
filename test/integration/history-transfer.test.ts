import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, remoteObjects, sha, state } from '../helpers/expect.js';
import { commitData } from '../helpers/history.js';
import { pull } from '../../src/repo/pull.js';
import { withRepo } from '../helpers/api.js';

/** The objects of one version of data/ (its files and manifest). */
function dirObjects(files: Record<string, string>): string[] {
  const m = manifest(Object.entries(files).map(([relpath, content]) => ({ relpath, content })));
  return [m.oid, ...Object.values(files).map(sha)];
}

const V1 = [...dirObjects({ 'a.csv': 'a1' }), sha('m1')];
const V2 = dirObjects({ 'a.csv': 'a2' });
const FEATURE = dirObjects({ 'a.csv': 'a2', 'f.csv': 'f' });
const C3 = [sha('m3')];
const uniq = (...xs: string[][]) => [...new Set(xs.flat())].sort();

/**
 *   c1 (tag v1) - c2 (tag v2, annotated) - c3 ------------ M  (main, workspace)
 *                                 \                        /
 *                                  f1 (branch feature) ---
 * c1: data/a.csv=a1, model.bin=m1; c2: a.csv=a2; f1: + data/f.csv; c3: model.bin=m3.
 * A local default remote (config.local.yaml, so every revision has it).
 */
async function branchy() {
  const dir = await newRepo();
  const remote = newDir();
  expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
  write(dir, 'data/a.csv', 'a1');
  write(dir, 'model.bin', 'm1');
  const c1 = await commitData(dir, 'c1', ['data', 'model.bin']);
  await git(dir, 'tag', 'v1');
  write(dir, 'data/a.csv', 'a2');
  const c2 = await commitData(dir, 'c2', ['data']);
  await git(dir, 'tag', '-a', 'v2', '-m', 'two');
  await git(dir, 'checkout', '-qb', 'feature');
  write(dir, 'data/f.csv', 'f');
  const f1 = await commitData(dir, 'f1', ['data']);
  await git(dir, 'checkout', '-q', 'main');
  expect((await tdv(dir, 'checkout')).code).toBe(0);
  write(dir, 'model.bin', 'm3');
  await commitData(dir, 'c3', ['model.bin']);
  await git(dir, 'merge', '-q', '--no-ff', '-m', 'merge feature', 'feature');
  expect((await tdv(dir, 'checkout')).code).toBe(0);
  return { dir, remote, c1, c2, f1 };
}

async function cloneOf(dir: string, remote: string): Promise<string> {
  const clone = path.join(newDir(), 'clone');
  await git(path.dirname(clone), 'clone', '-q', dir, clone);
  expect((await tdv(clone, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
  return clone;
}

describe('push beyond the workspace', () => {
  it('plain push sends only what the workspace pointers reference', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push')).code).toBe(0);
    expect(remoteObjects(remote)).toEqual(uniq(FEATURE, C3));
  });

  it('--all-tags adds the data of every tag, annotated ones included', async () => {
    const { dir, remote } = await branchy();
    const r = await tdv(dir, 'push', '--all-tags');
    expect(r.code, r.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual(uniq(FEATURE, C3, V1, V2));
  });

  it('--all-branches adds the data of every branch tip', async () => {
    const { dir, remote } = await branchy();
    await git(dir, 'branch', 'old', 'v1');
    const r = await tdv(dir, 'push', '--all-branches', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ remote: 'store', failed: 0 });
    expect(remoteObjects(remote)).toEqual(uniq(FEATURE, C3, V1));
  });

  it('--all-commits publishes every version, so a clone can check out any commit', async () => {
    const { dir, remote, c1, c2, f1 } = await branchy();
    const r = await tdv(dir, 'push', '--all-commits');
    expect(r.code, r.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual(uniq(FEATURE, C3, V1, V2));
    const clone = await cloneOf(dir, remote);
    for (const [rev, model, data] of [
      [c1, 'm1', { 'a.csv': 'a1' }],
      [c2, 'm1', { 'a.csv': 'a2' }],
      [f1, 'm1', { 'a.csv': 'a2', 'f.csv': 'f' }],
    ] as const) {
      const p = await tdv(clone, 'pull', '--rev', rev);
      expect(p.code, p.stderr).toBe(0);
      expect(read(clone, 'model.bin')).toBe(model);
      for (const [f, c] of Object.entries(data)) expect(read(clone, `data/${f}`)).toBe(c);
    }
  });

  it('combined with targets, pushes only those paths at every commit', async () => {
    const { dir, remote } = await branchy();
    const r = await tdv(dir, 'push', '--all-commits', 'model.bin');
    expect(r.code, r.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual(uniq([sha('m1')], C3));
  });

  it('a version whose objects are not in the cache fails for those objects, and pushes the rest', async () => {
    const { dir, remote } = await branchy();
    fs.chmodSync(path.join(dir, '.tdv/cache/files/sha256', sha('m1').slice(0, 2)), 0o755);
    fs.rmSync(path.join(dir, '.tdv/cache/files/sha256', sha('m1').slice(0, 2), sha('m1').slice(2)), { force: true });
    const r = await tdv(dir, 'push', '--all-tags');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/model\.bin \([0-9a-f]{12}\): model\.bin is not in the cache, nor on remote "store"/);
    expect(remoteObjects(remote)).toEqual(uniq(FEATURE, C3, V2, dirObjects({ 'a.csv': 'a1' })));
  });
});

describe('fetch and pull --rev', () => {
  it('fetch --rev brings exactly the objects of that revision, and leaves the workspace alone', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const clone = await cloneOf(dir, remote);
    const before = state(clone);
    const r = await tdv(clone, 'fetch', '--rev', 'v1');
    expect(r.code, r.stderr).toBe(0);
    expect(cacheObjects(clone)).toEqual(uniq(V1));
    const after = state(clone);
    for (const k of Object.keys(after)) if (k.startsWith('.tdv/cache/')) delete after[k];
    expect(after).toEqual(before);
    // Repeatable: two revisions at once.
    expect((await tdv(clone, 'fetch', '--rev', 'v2', '--rev', 'origin/feature')).code).toBe(0);
    expect(cacheObjects(clone)).toEqual(uniq(V1, V2, FEATURE, [sha('m1')]));
  });

  it('fetch --all-tags brings the data of the workspace and of every tag', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const clone = await cloneOf(dir, remote);
    expect((await tdv(clone, 'fetch', '--all-tags')).code).toBe(0);
    expect(cacheObjects(clone)).toEqual(uniq(FEATURE, C3, V1, V2));
  });

  it('pull --rev of one target fetches and restores only that', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const clone = await cloneOf(dir, remote);
    const r = await withRepo(clone, (repo) => pull(repo, { rev: 'v1', targets: [path.join(clone, 'model.bin')] }));
    expect(r.fetch.failed).toEqual([]);
    expect(r.checkout).toMatchObject({ restored: ['model.bin'], deleted: [], missing: [] });
    expect(read(clone, 'model.bin')).toBe('m1');
    expect(fs.existsSync(path.join(clone, 'data'))).toBe(false);
    expect(cacheObjects(clone)).toEqual([sha('m1')]);
  });

  it('an unknown revision, or a target tracked at none of the revisions, is a usage error', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const clone = await cloneOf(dir, remote);
    const r = await tdv(clone, 'fetch', '--rev', 'v9');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown revision "v9"');
    const r2 = await tdv(clone, 'fetch', '--rev', 'v1', 'data/f.csv');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'data/f.csv is not in the recorded version of data');
    write(clone, 'notes.txt', 'x');
    const r3 = await tdv(clone, 'push', '--all-tags', 'notes.txt');
    expect(r3.code).toBe(2);
    expectOneLineError(r3.stderr, 'notes.txt is not tracked by tdv in the workspace nor at any of the 2 commit(s) asked for');
    expect(cacheObjects(clone).filter((o) => !o.endsWith('.dir'))).toEqual([]);
  });

  it('in a shallow CI clone, pull of HEAD works and --rev of an older commit says to unshallow', async () => {
    const { dir, remote } = await branchy();
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const clone = path.join(newDir(), 'ci');
    await git(path.dirname(clone), 'clone', '-q', '--depth', '1', `file://${dir}`, clone);
    expect((await tdv(clone, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    const p = await tdv(clone, 'pull');
    expect(p.code, p.stderr).toBe(0);
    expect(read(clone, 'model.bin')).toBe('m3');
    const r = await tdv(clone, 'pull', '--rev', 'HEAD~1');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'shallow clone', 'git fetch --unshallow');
  });
});
