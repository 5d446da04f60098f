import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newRepo, objPath, sha } from '../helpers/expect.js';

const UP_TO_DATE = 'Data and pipelines are up to date.';

/**
 * A repo whose cache holds referenced objects (a file, a directory's manifest
 * and members, a pointer in a subdirectory) and unreferenced ones (an old
 * version of a file, a directory whose pointer was removed).
 */
async function repoWithGarbage() {
  const dir = await newRepo();
  write(dir, 'a.csv', 'old version\n');
  expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
  write(dir, 'a.csv', 'new version\n');
  write(dir, 'images/x.png', 'X');
  write(dir, 'images/sub/y.png', 'YY');
  write(dir, 'nested/deep/b.bin', 'B');
  write(dir, 'tmpdata/t1', 'T1');
  write(dir, 'tmpdata/t2', 'T22');
  expect((await tdv(dir, 'add', 'a.csv', 'images', 'nested/deep/b.bin', 'tmpdata')).code).toBe(0);
  expect((await tdv(dir, 'remove', 'tmpdata')).code).toBe(0);
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
  return { dir, referenced, unreferenced };
}

describe('tdv gc --workspace', () => {
  it('--dry lists each unreferenced object with its size and deletes nothing', async () => {
    const { dir, unreferenced } = await repoWithGarbage();
    const before = snapshot(dir);
    const r = await tdv(dir, 'gc', '--workspace', '--dry');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.trimEnd().split('\n');
    const listed = lines.slice(0, -1).sort();
    expect(listed).toEqual(unreferenced.map((u) => `${u.oid}  ${u.size} B`).sort());
    const total = unreferenced.reduce((n, u) => n + u.size, 0);
    expect(lines.at(-1)).toBe(`Would remove 4 objects (${total} B); kept 5.`);
    expect(snapshot(dir)).toEqual(before);
  });

  it('-f deletes exactly the unreferenced objects; checkout still works afterwards', async () => {
    const { dir, referenced, unreferenced } = await repoWithGarbage();
    const r = await tdv(dir, 'gc', '--workspace', '-f');
    expect(r.code).toBe(0);
    const total = unreferenced.reduce((n, u) => n + u.size, 0);
    expect(r.stdout.trim()).toBe(`Removed 4 objects (${total} B); kept 5.`);
    expect(cacheObjects(dir)).toEqual(referenced);
    // Remaining objects are intact.
    expect(fs.readFileSync(objPath(dir, sha('YY')), 'utf8')).toBe('YY');
    // Workspace data is untouched, including the untracked former tmpdata.
    expect(read(dir, 'tmpdata/t2')).toBe('T22');
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);

    for (const p of ['a.csv', 'images', 'nested/deep/b.bin']) fs.rmSync(path.join(dir, p), { recursive: true });
    const co = await tdv(dir, 'checkout');
    expect(co.code).toBe(0);
    expect(read(dir, 'a.csv')).toBe('new version\n');
    expect(read(dir, 'images/sub/y.png')).toBe('YY');
    expect(read(dir, 'nested/deep/b.bin')).toBe('B');
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);

    const again = await tdv(dir, 'gc', '--workspace', '-f');
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe('Nothing to collect; 5 objects in use.');
  });

  it('status notices objects that gc deleted (no stale "all present" shortcut)', async () => {
    const dir = await newRepo();
    write(dir, 'data/x', 'x');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    // Stop tracking with a plain delete of the pointer, gc everything, then bring the pointer back.
    const ptr = read(dir, 'data.tdv');
    fs.rmSync(path.join(dir, 'data.tdv'));
    expect((await tdv(dir, 'gc', '--workspace', '-f')).code).toBe(0);
    expect(cacheObjects(dir)).toEqual([]);
    write(dir, 'data.tdv', ptr);
    const r = await tdv(dir, 'status', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ clean: false, data: [{ path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' }] });
  });

  it('without -f and without a terminal refuses and deletes nothing', async () => {
    const { dir } = await repoWithGarbage();
    const before = snapshot(dir);
    const r = await tdv(dir, 'gc', '--workspace');
    expect(r.code).not.toBe(0);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'without a terminal', '-f');
    expect(snapshot(dir)).toEqual(before);
  });

  it('without --workspace is a usage error that deletes nothing', async () => {
    const { dir } = await repoWithGarbage();
    const before = snapshot(dir);
    const r = await tdv(dir, 'gc', '-f');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '--workspace');
    expect(snapshot(dir)).toEqual(before);
  });

  it('--json reports the plan as one object', async () => {
    const { dir, unreferenced } = await repoWithGarbage();
    const r = await tdv(dir, 'gc', '--workspace', '--dry', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.removed).toBe(false);
    expect(j.kept).toBe(5);
    expect(j.objects).toBe(4);
    expect(j.bytes).toBe(unreferenced.reduce((n, u) => n + u.size, 0));
    expect([...j.unused].sort((a: { oid: string }, b: { oid: string }) => a.oid.localeCompare(b.oid))).toEqual(unreferenced);
  });

  it('has nothing to collect in a fresh repository', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'gc', '--workspace', '-f');
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('Nothing to collect; 0 objects in use.');
  });
});
