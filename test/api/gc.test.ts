import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkout } from '../../src/repo/checkout.js';
import { gc, type GcOptions } from '../../src/repo/gc.js';
import { remove } from '../../src/repo/remove.js';
import { status } from '../../src/repo/status.js';
import { read, snapshot, write } from '../helpers/repo.js';
import { cacheObjects, manifest, newRepo, objPath, sha } from '../helpers/expect.js';
import { expectClean, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: `gc` called directly, its GcResult (plan, removed) and
 * error codes checked. The CLI's wording (listing, summary, refusal without a
 * terminal) is tested once, in test/cli/gc.test.ts.
 */

/**
 * A repo whose cache holds referenced objects (a file, a directory's manifest
 * and members, a pointer in a subdirectory) and unreferenced ones (an old
 * version of a file, a directory whose pointer was removed).
 */
async function repoWithGarbage() {
  const dir = await newRepo();
  write(dir, 'a.csv', 'old version\n');
  await track(dir, 'a.csv');
  write(dir, 'a.csv', 'new version\n');
  write(dir, 'images/x.png', 'X');
  write(dir, 'images/sub/y.png', 'YY');
  write(dir, 'nested/deep/b.bin', 'B');
  write(dir, 'tmpdata/t1', 'T1');
  write(dir, 'tmpdata/t2', 'T22');
  await track(dir, 'a.csv', 'images', 'nested/deep/b.bin', 'tmpdata');
  await withRepo(dir, (r) => remove(r, [{ path: path.join(dir, 'tmpdata'), name: 'tmpdata' }]));
  const images = manifest([
    { relpath: 'x.png', content: 'X' },
    { relpath: 'sub/y.png', content: 'YY' },
  ]);
  const tmpdata = manifest([
    { relpath: 't1', content: 'T1' },
    { relpath: 't2', content: 'T22' },
  ]);
  const referenced = [sha('new version\n'), images.oid, sha('X'), sha('YY'), sha('B')].sort();
  const unreferenced = [
    { oid: sha('old version\n'), size: 12 },
    { oid: tmpdata.oid, size: tmpdata.text.length },
    { oid: sha('T1'), size: 2 },
    { oid: sha('T22'), size: 3 },
  ].sort((a, b) => a.oid.localeCompare(b.oid));
  expect(cacheObjects(dir)).toEqual([...referenced, ...unreferenced.map((u) => u.oid)].sort());
  return { dir, referenced, unreferenced, bytes: unreferenced.reduce((n, u) => n + u.size, 0) };
}

const byOid = (a: { oid: string }, b: { oid: string }) => a.oid.localeCompare(b.oid);
const yes = async () => true;
const collect = (dir: string, opts: Partial<GcOptions> = {}) => withRepo(dir, (r) => gc(r, { workspace: true, confirm: yes, ...opts }));

describe('gc (API), keeping the workspace', () => {
  it('dry returns the plan (each unreferenced object with its size) and deletes nothing', async () => {
    const { dir, unreferenced, bytes } = await repoWithGarbage();
    const before = snapshot(dir);
    const res = await collect(dir, { dry: true });
    expect({ ...res, unused: [...res.unused].sort(byOid) }).toEqual({ unused: unreferenced, bytes, kept: 5, unknown: [], removed: false });
    expect(snapshot(dir)).toEqual(before);
  });

  it('deletes exactly the unreferenced objects once confirmed; checkout still works afterwards', async () => {
    const { dir, referenced, unreferenced, bytes } = await repoWithGarbage();
    const res = await collect(dir);
    expect(res).toMatchObject({ removed: true, bytes, kept: 5 });
    expect([...res.unused].sort(byOid)).toEqual(unreferenced);
    expect(cacheObjects(dir)).toEqual(referenced);
    // Remaining objects are intact.
    expect(fs.readFileSync(objPath(dir, sha('YY')), 'utf8')).toBe('YY');
    // Workspace data is untouched, including the untracked former tmpdata.
    expect(read(dir, 'tmpdata/t2')).toBe('T22');
    await expectClean(dir);

    for (const p of ['a.csv', 'images', 'nested/deep/b.bin']) fs.rmSync(path.join(dir, p), { recursive: true });
    expect((await withRepo(dir, (r) => checkout(r))).missing).toEqual([]);
    expect(read(dir, 'a.csv')).toBe('new version\n');
    expect(read(dir, 'images/sub/y.png')).toBe('YY');
    expect(read(dir, 'nested/deep/b.bin')).toBe('B');
    await expectClean(dir);

    expect(await collect(dir)).toEqual({ unused: [], bytes: 0, kept: 5, unknown: [], removed: false });
  });

  it('deletes nothing when confirm says no, or is not given', async () => {
    const { dir } = await repoWithGarbage();
    const before = snapshot(dir);
    expect((await collect(dir, { confirm: async () => false })).removed).toBe(false);
    expect((await collect(dir, { confirm: undefined })).removed).toBe(false);
    expect(snapshot(dir)).toEqual(before);
  });

  it('confirm is asked with the plan', async () => {
    const { dir, bytes } = await repoWithGarbage();
    const asked: number[] = [];
    await collect(dir, {
      confirm: async (plan) => {
        asked.push(plan.unused.length, plan.bytes);
        return false;
      },
    });
    expect(asked).toEqual([4, bytes]);
  });

  it('status notices objects that gc deleted (no stale "all present" shortcut)', async () => {
    const dir = await newRepo();
    write(dir, 'data/x', 'x');
    await track(dir, 'data');
    await expectClean(dir);
    // Stop tracking with a plain delete of the pointer, gc everything, then bring the pointer back.
    const ptr = read(dir, 'data.tdv');
    fs.rmSync(path.join(dir, 'data.tdv'));
    await collect(dir);
    expect(cacheObjects(dir)).toEqual([]);
    write(dir, 'data.tdv', ptr);
    expect(await withRepo(dir, (r) => status(r))).toEqual({ clean: false, data: [{ path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' }] });
  });

  it('without a scope to keep: USAGE, nothing deleted', async () => {
    const { dir } = await repoWithGarbage();
    const before = snapshot(dir);
    await rejectsWith(
      withRepo(dir, (r) => gc(r, { confirm: yes })),
      'USAGE',
    );
    expect(snapshot(dir)).toEqual(before);
  });

  it('--not-in-remote with --cloud: USAGE', async () => {
    const { dir } = await repoWithGarbage();
    await rejectsWith(collect(dir, { notInRemote: true, cloud: true }), 'USAGE');
  });

  it('has nothing to collect in a fresh repository', async () => {
    expect(await collect(await newRepo())).toEqual({ unused: [], bytes: 0, kept: 0, unknown: [], removed: false });
  });
});
