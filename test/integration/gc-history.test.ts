import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, objPath, remoteObjects, sha } from '../helpers/expect.js';
import { commitData } from '../helpers/history.js';
import { gc } from '../../src/repo/gc.js';
import { openRepo, withRepo } from '../helpers/api.js';

const sorted = (...xs: string[]) => [...new Set(xs)].sort();

/**
 * main:    c1 (tag v1, model m1) - c2 (m2) - c3 (m3, workspace)
 * feature:                          \- f1 (mf)
 * Never committed: "scratch", added and then replaced before any commit.
 */
async function history() {
  const dir = await newRepo();
  write(dir, 'model.bin', 'm1');
  await commitData(dir, 'c1', ['model.bin']);
  await git(dir, 'tag', 'v1');
  write(dir, 'model.bin', 'm2');
  await commitData(dir, 'c2', ['model.bin']);
  await git(dir, 'checkout', '-qb', 'feature');
  write(dir, 'model.bin', 'mf');
  await commitData(dir, 'f1', ['model.bin']);
  await git(dir, 'checkout', '-q', 'main');
  write(dir, 'model.bin', 'scratch');
  expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
  write(dir, 'model.bin', 'm3');
  await commitData(dir, 'c3', ['model.bin']);
  expect(cacheObjects(dir)).toEqual(sorted(sha('m1'), sha('m2'), sha('mf'), sha('scratch'), sha('m3')));
  return dir;
}

async function gcKeeps(dir: string, ...flags: string[]): Promise<string[]> {
  const r = await tdv(dir, 'gc', ...flags, '-f');
  expect(r.code, r.stderr).toBe(0);
  return cacheObjects(dir);
}

describe('tdv gc: history scopes', () => {
  it('--workspace keeps only the workspace data', async () => {
    expect(await gcKeeps(await history(), '--workspace')).toEqual([sha('m3')]);
  });

  it('--all-tags also keeps every tag, --all-branches every branch tip, and the two combine', async () => {
    expect(await gcKeeps(await history(), '--all-tags')).toEqual(sorted(sha('m3'), sha('m1')));
    expect(await gcKeeps(await history(), '--all-branches')).toEqual(sorted(sha('m3'), sha('mf')));
    expect(await gcKeeps(await history(), '--all-tags', '--all-branches')).toEqual(sorted(sha('m3'), sha('mf'), sha('m1')));
  });

  it('--all-commits keeps every committed version and drops what was never committed', async () => {
    const dir = await history();
    const dry = await tdv(dir, 'gc', '--all-commits', '--dry', '--json');
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toEqual({ removed: false, objects: 1, bytes: 7, kept: 4, unused: [{ oid: sha('scratch'), size: 7 }], unknown: [] });
    expect(await gcKeeps(dir, '--all-commits')).toEqual(sorted(sha('m1'), sha('m2'), sha('mf'), sha('m3')));
  });

  it('keeps the manifests and files of directories at every kept commit', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a1');
    write(dir, 'data/b.csv', 'b');
    await commitData(dir, 'one', ['data']);
    await git(dir, 'tag', 'v1');
    write(dir, 'data/a.csv', 'a2');
    await commitData(dir, 'two', ['data']);
    const v1 = manifest([
      { relpath: 'a.csv', content: 'a1' },
      { relpath: 'b.csv', content: 'b' },
    ]);
    const v2 = manifest([
      { relpath: 'a.csv', content: 'a2' },
      { relpath: 'b.csv', content: 'b' },
    ]);
    expect(await gcKeeps(dir, '--workspace')).toEqual(sorted(v2.oid, sha('a2'), sha('b')));
    // Rebuild the cache with both versions, then keep the tag too.
    const dir2 = await newRepo();
    write(dir2, 'data/a.csv', 'a1');
    write(dir2, 'data/b.csv', 'b');
    await commitData(dir2, 'one', ['data']);
    await git(dir2, 'tag', 'v1');
    write(dir2, 'data/a.csv', 'a2');
    await commitData(dir2, 'two', ['data']);
    expect(await gcKeeps(dir2, '--all-tags')).toEqual(sorted(v1.oid, v2.oid, sha('a1'), sha('a2'), sha('b')));
  });

  it('a kept version whose manifest is not cached is named in a warning; files other versions use are kept', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a1');
    write(dir, 'data/b.csv', 'b');
    await commitData(dir, 'one', ['data']);
    await git(dir, 'tag', 'v1');
    write(dir, 'data/a.csv', 'a2');
    await commitData(dir, 'two', ['data']);
    const v1 = manifest([
      { relpath: 'a.csv', content: 'a1' },
      { relpath: 'b.csv', content: 'b' },
    ]);
    fs.rmSync(objPath(dir, v1.oid));
    const r = await tdv(dir, 'gc', '--all-tags', '-f');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^warning: 1 directory version in the kept history has no manifest in the cache \(first: data at [0-9a-f]{12}\), so only files other versions use are kept for it\n$/);
    expect(cacheObjects(dir)).not.toContain(sha('a1'));
    expect(cacheObjects(dir)).toContain(sha('b'));
  });

  it('says what to keep when no scope is given, and -r needs --cloud', async () => {
    const dir = await history();
    const r = await tdv(dir, 'gc');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'say what to keep', '--all-commits');
    const r2 = await tdv(dir, 'gc', '--workspace', '-r', 'store');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, '-r/--remote and -j/--jobs only apply with --cloud');
  });
});

describe('tdv gc --cloud', () => {
  async function published() {
    const dir = await history();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    // Every version, and the never-committed one too (pushed while it was the workspace's).
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    fs.mkdirSync(path.join(remote, 'files/sha256', sha('scratch').slice(0, 2)), { recursive: true });
    fs.copyFileSync(objPath(dir, sha('scratch')), path.join(remote, 'files/sha256', sha('scratch').slice(0, 2), sha('scratch').slice(2)));
    expect(remoteObjects(remote)).toEqual(sorted(sha('m1'), sha('m2'), sha('mf'), sha('scratch'), sha('m3')));
    return { dir, remote };
  }

  it('--dry lists the remote objects it would delete, and deletes nothing', async () => {
    const { dir, remote } = await published();
    const r = await withRepo(dir, (repo) => gc(repo, { allTags: true, cloud: true, dry: true }));
    expect(r.cloud).toMatchObject({ remote: 'store', unused: sorted(sha('m2'), sha('mf'), sha('scratch')), kept: 2 });
    // A packed remote (the default) adds the packs' plan.
    expect(r.cloud?.packs).toBeDefined();
    expect(r.unused).toHaveLength(3);
    expect(r.removed).toBe(false);
    expect(remoteObjects(remote)).toHaveLength(5);
    expect(cacheObjects(dir)).toHaveLength(5);
  });

  it('deletes unreferenced objects from the remote and the cache with -f', async () => {
    const { dir, remote } = await published();
    const r = await tdv(dir, 'gc', '--all-branches', '--cloud', '-f', '--json');
    expect(r.code, r.stderr).toBe(0);
    const cloud = JSON.parse(r.stdout).cloud;
    expect(cloud).toMatchObject({ remote: 'store', objects: 3, kept: 2, unused: sorted(sha('m1'), sha('m2'), sha('scratch')) });
    // A packed remote (the default) also says what became of its packs.
    expect(cloud.packs.deleted + cloud.packs.rewritten + cloud.packs.kept).toBeGreaterThan(0);
    expect(cloud.bytesReclaimed).toBeGreaterThanOrEqual(0);
    expect(remoteObjects(remote)).toEqual(sorted(sha('mf'), sha('m3')));
    expect(cacheObjects(dir)).toEqual(sorted(sha('mf'), sha('m3')));
  });

  it('without a terminal and without -f, refuses and deletes nothing', async () => {
    const { dir, remote } = await published();
    const r = await tdv(dir, 'gc', '--workspace', '--cloud');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'not asking for confirmation without a terminal; pass -f');
    expect(remoteObjects(remote)).toHaveLength(5);
  });

  it('reads a kept directory manifest the cache lacks from the remote, so its files there stay', async () => {
    const dir = await newRepo();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    write(dir, 'data/a.csv', 'a1');
    await commitData(dir, 'one', ['data']);
    await git(dir, 'tag', 'v1');
    write(dir, 'data/a.csv', 'a2');
    await commitData(dir, 'two', ['data']);
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    // A clone that only ever pulled HEAD: v1's manifest and file are on the remote only.
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    expect((await tdv(clone, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    expect((await tdv(clone, 'pull')).code).toBe(0);
    const { repo, warnings } = await openRepo(clone);
    const r = await gc(repo, { allTags: true, cloud: true, confirm: async () => true });
    expect(warnings).toEqual([]);
    const v1 = manifest([{ relpath: 'a.csv', content: 'a1' }]);
    expect(remoteObjects(remote)).toContain(v1.oid);
    expect(remoteObjects(remote)).toContain(sha('a1'));
    expect({ unused: r.unused, cloud: r.cloud?.unused, unknown: r.unknown, removed: r.removed }).toEqual({ unused: [], cloud: [], unknown: [], removed: false });
  });

  it('with no remote configured, says how to add one', async () => {
    const dir = await history();
    const r = await tdv(dir, 'gc', '--workspace', '--cloud', '-f');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'no remote configured');
    expect(cacheObjects(dir)).toHaveLength(5);
  });
});

describe('tdv gc --cloud: a remote that cannot delete', () => {
  it('reports the objects it could not delete, after deleting the rest', async () => {
    // Tests run as root, so a read-only remote directory cannot be made: this remote refuses instead.
    const { gc } = await import('../../src/repo/gc.js');
    const { Repo } = await import('../../src/repo/repo.js');
    const { LocalRemote } = await import('../../src/remote/local.js');
    const dir = await history();
    const store = newDir();
    expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', store)).code).toBe(0);
    // The plain layout: the stub below is the raw per-object remote.
    expect((await tdv(dir, 'remote', 'modify', '--local', 'store', 'layout', 'plain')).code).toBe(0);
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const real = new LocalRemote('store', store);
    const stubborn = Object.assign(Object.create(real) as typeof real, {
      remove: async (oids: readonly string[]) => oids.filter((o) => o === sha('m1')),
    });
    const repo = await Repo.open(dir);
    await expect(gc(repo, { workspace: true, cloud: true, confirm: async () => true, openRemote: async () => stubborn })).rejects.toThrow(
      `could not delete 1 of 3 unused objects from remote "store" (first: ${sha('m1')}); check its permissions and run \`tdv gc\` again`,
    );
    expect(cacheObjects(dir)).toEqual([sha('m3')]);
  });
});
