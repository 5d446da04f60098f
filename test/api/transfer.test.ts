import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { add } from '../../src/repo/add.js';
import { checkout } from '../../src/repo/checkout.js';
import { fetch } from '../../src/repo/fetch.js';
import { remoteStatus } from '../../src/repo/lib/remote-status.js';
import { pull, type PullOptions } from '../../src/repo/pull.js';
import { push, type PushOptions } from '../../src/repo/push.js';
import { git, read, write } from '../helpers/repo.js';
import { cacheObjects, damageRemoteObject, newDir, newRepo, objPath, packedBytes, remoteObjects, SAMPLE_DATA, SAMPLE_DIR, sampleRepo, sha, state } from '../helpers/expect.js';
import { abs, expectClean, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: push, fetch and pull called directly with a local remote,
 * their TransferResult / PullResult and error codes checked. The CLI's wording
 * of them is tested once, in test/cli/transfer.test.ts.
 */

const DATA = SAMPLE_DATA;
const DIR = SAMPLE_DIR;
/** A repo with `data/` and `model.bin` tracked and committed, and a local default remote "store". */
const origin = () => sampleRepo({ commit: true });

async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

/** Bytes of all objects: the four files and the manifest. */
const BYTES = 19 + DIR.text.length;
const ALL = [DIR.oid, sha('a,1\n'), sha('b,2\n'), sha('c,3\n'), sha('weights')].sort();

const pushed = (dir: string, opts: PushOptions & { at?: string[] } = {}) => withRepo(dir, (r) => push(r, { ...opts, targets: abs(dir, ...(opts.at ?? [])) }));
const pulled = (dir: string, opts: PullOptions & { at?: string[] } = {}) => withRepo(dir, (r) => pull(r, { ...opts, targets: abs(dir, ...(opts.at ?? [])) }));

describe('push / fetch / pull (API) with a local remote', () => {
  it('push, then pull into a fresh clone with an empty cache, restores every file', async () => {
    const { dir, remote } = await origin();
    // `sent`: what went over the wire, packs and indexes (here more than the 5 tiny objects: record headers).
    expect(await pushed(dir)).toEqual({ remote: 'store', transferred: 5, skipped: 0, failed: [], bytes: BYTES, sent: packedBytes(remote) });
    expect(remoteObjects(remote)).toEqual(ALL);
    // The packed layout (the default for a new remote): read-only packs and indexes, no plain objects.
    for (const d of ['packs', 'index']) for (const f of fs.readdirSync(path.join(remote, d))) expect(fs.statSync(path.join(remote, d, f)).mode & 0o222).toBe(0);
    expect(fs.existsSync(path.join(remote, 'files'))).toBe(false);

    const b = await clone(dir);
    expect(cacheObjects(b)).toEqual([]);
    const res = await pulled(b);
    expect(res.fetch).toMatchObject({ remote: 'store', transferred: 5, skipped: 0, failed: [], bytes: BYTES });
    expect([...res.checkout.restored].sort()).toEqual([...Object.keys(DATA), 'model.bin'].sort());
    expect(res.checkout.missing).toEqual([]);
    for (const [rel, c] of Object.entries(DATA)) expect(read(b, rel)).toBe(c);
    expect(read(b, 'model.bin')).toBe('weights');
    expect(cacheObjects(b)).toEqual(ALL);
    await expectClean(b);
  });

  it("push with scope.revs pushes the data of that revision, not the workspace's", async () => {
    const { dir, remote } = await origin();
    await git(dir, 'tag', 'v1');
    write(dir, 'model.bin', 'weights v2');
    await track(dir, 'model.bin');
    expect(await pushed(dir, { at: ['model.bin'], scope: { revs: ['v1'] } })).toMatchObject({ transferred: 1, bytes: 7, failed: [] });
    expect(remoteObjects(remote)).toEqual([sha('weights')]);
    // Without a scope, the workspace's version.
    expect((await pushed(dir, { at: ['model.bin'] })).transferred).toBe(1);
    expect(remoteObjects(remote)).toEqual([sha('weights'), sha('weights v2')].sort());
  });

  it('a second push transfers nothing and rewrites nothing', async () => {
    const { dir, remote } = await origin();
    await pushed(dir);
    const before = state(remote);
    expect(await pushed(dir)).toEqual({ remote: 'store', transferred: 0, skipped: 5, failed: [], bytes: 0, sent: 0 });
    expect(state(remote)).toEqual(before);
  });

  it('two repositories pushing the same content store it once', async () => {
    const { dir, remote } = await origin();
    await pushed(dir);
    const other = await newRepo();
    fs.appendFileSync(path.join(other, '.tdv', 'config.yaml'), `core:\n  remote: s\nremote:\n  s:\n    url: ${remote}\n`);
    write(other, 'copy.bin', 'weights');
    await track(other, 'copy.bin');
    expect(await pushed(other)).toMatchObject({ transferred: 0, skipped: 1 });
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('pull of one file inside a directory downloads only that file and the manifest', async () => {
    const { dir } = await origin();
    await pushed(dir);
    const b = await clone(dir);
    const res = await pulled(b, { at: ['data/sub/c.csv'] });
    expect(res.fetch).toMatchObject({ transferred: 2, failed: [] });
    expect(res.checkout.restored).toEqual(['data/sub/c.csv']);
    expect(cacheObjects(b)).toEqual([DIR.oid, sha('c,3\n')].sort());
    expect(read(b, 'data/sub/c.csv')).toBe('c,3\n');
    expect(fs.existsSync(path.join(b, 'data/a.csv'))).toBe(false);
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
  });

  it('fetch fills the cache and leaves the workspace alone; checkout then restores', async () => {
    const { dir } = await origin();
    await pushed(dir);
    const b = await clone(dir);
    expect(await withRepo(b, (r) => fetch(r, { targets: abs(b, 'model.bin.tdv') }))).toEqual({ remote: 'store', transferred: 1, skipped: 0, failed: [], bytes: 7, received: expect.any(Number) });
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
    expect((await withRepo(b, (r) => checkout(r, { targets: abs(b, 'model.bin') }))).restored).toEqual(['model.bin']);
    expect(read(b, 'model.bin')).toBe('weights');
  });

  it('a corrupted object on the remote is a failure of that object only, never admitted; the rest is checked out', async () => {
    const { dir, remote } = await origin();
    await pushed(dir);
    const bad = sha('b,2\n');
    damageRemoteObject(remote, bad, 'b,9\n');
    const b = await clone(dir);
    const before = state(b);
    const res = await pulled(b);
    expect(res.fetch.failed).toEqual([{ oid: bad, path: 'data/b.csv', error: expect.stringContaining('corrupt') }]);
    expect(res.fetch.transferred).toBe(4);
    expect(res.checkout.missing).toEqual([{ path: 'data/b.csv', oid: bad, pointer: 'data.tdv' }]);
    expect(fs.existsSync(objPath(b, bad))).toBe(false);
    expect(cacheObjects(b)).toEqual(ALL.filter((o) => o !== bad));
    expect(
      Object.keys(state(b))
        .filter((k) => !k.startsWith('.tdv/cache/') && !k.startsWith('.tdv/tmp/'))
        .sort(),
    ).toEqual([...Object.keys(before), 'data/a.csv', 'data/sub/c.csv', 'model.bin'].sort());
    expect(read(b, 'data/a.csv')).toBe('a,1\n');
    expect(fs.existsSync(path.join(b, 'data/b.csv'))).toBe(false);
    expect(fs.readdirSync(path.join(b, '.tdv', 'tmp')).filter((n) => n.startsWith('obj.'))).toEqual([]);
  });

  it('an interrupted push never leaves a manifest without its files, and the rerun sends only the rest', async () => {
    const { dir, remote } = await origin();
    // A file where the remote needs a directory makes every upload under that prefix fail.
    const blocked = sha('b,2\n').slice(0, 2);
    fs.mkdirSync(path.join(remote, 'files', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(remote, 'files', 'sha256', blocked), 'in the way');
    const res = await pushed(dir);
    expect(res.failed.map((f) => f.path)).toEqual(expect.arrayContaining(['data/b.csv', 'data']));
    expect(remoteObjects(remote)).not.toContain(DIR.oid);
    fs.rmSync(path.join(remote, 'files', 'sha256', blocked));
    const again = await pushed(dir);
    expect(again.failed).toEqual([]);
    expect(again.transferred).toBe(ALL.length - res.transferred);
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('dry plans every upload and uploads nothing', async () => {
    const { dir, remote } = await origin();
    const res = await pushed(dir, { dry: true });
    expect(res.planned?.map((j) => j.oid).sort()).toEqual(ALL);
    expect(res.planned?.find((j) => j.oid === sha('c,3\n'))).toMatchObject({ path: 'data/sub/c.csv', size: 4 });
    expect(remoteObjects(remote)).toEqual([]);
  });

  it('data neither cached nor on the remote is a failure of its own; the rest is pushed', async () => {
    const { dir, remote } = await origin();
    fs.rmSync(objPath(dir, sha('weights')), { force: true });
    const res = await pushed(dir);
    expect(res.failed).toEqual([{ oid: sha('weights'), path: 'model.bin', error: expect.any(String) }]);
    expect(remoteObjects(remote)).toEqual(ALL.filter((o) => o !== sha('weights')));
  });

  it('remoteStatus counts what push and fetch would move', async () => {
    const { dir } = await origin();
    const before = await withRepo(dir, (r) => remoteStatus(r));
    expect(before.clean).toBe(false);
    expect(before.data).toEqual([
      { path: 'data', pointer: 'data.tdv', objects: 4, missingOnRemote: 4, missingLocally: 0 },
      { path: 'model.bin', pointer: 'model.bin.tdv', objects: 1, missingOnRemote: 1, missingLocally: 0 },
    ]);
    await pushed(dir);
    expect(await withRepo(dir, (r) => remoteStatus(r))).toMatchObject({ clean: true, remote: 'store', data: [] });
    const b = await clone(dir);
    expect((await withRepo(b, (r) => remoteStatus(r, { remote: 'store' }))).data).toEqual([
      { path: 'data', pointer: 'data.tdv', objects: 4, missingOnRemote: 0, missingLocally: 4 },
      { path: 'model.bin', pointer: 'model.bin.tdv', objects: 1, missingOnRemote: 0, missingLocally: 1 },
    ]);
  });

  it('pull restores a file deleted from the workspace', async () => {
    const { dir } = await origin();
    await pushed(dir);
    fs.rmSync(path.join(dir, 'data', 'a.csv'));
    expect((await pulled(dir)).checkout.restored).toEqual(['data/a.csv']);
    expect(read(dir, 'data/a.csv')).toBe('a,1\n');
  });
});

describe('push / pull (API): remote errors', () => {
  it('without any remote configured: NO_REMOTE', async () => {
    const dir = await newRepo();
    await rejectsWith(pushed(dir), 'NO_REMOTE');
  });

  it('an unknown remote name: UNKNOWN_REMOTE, a usage error', async () => {
    const { dir } = await origin();
    expect((await rejectsWith(pulled(dir, { remote: 'nope' }), 'UNKNOWN_REMOTE')).exitCode).toBe(2);
  });

  it('a local remote whose directory is missing: REMOTE_NOT_FOUND, and it is not created', async () => {
    const { dir, remote } = await origin();
    fs.rmSync(remote, { recursive: true });
    await rejectsWith(pushed(dir), 'REMOTE_NOT_FOUND');
    expect(fs.existsSync(remote)).toBe(false);
  });
});

describe('push / pull (API): partial and shared directories', () => {
  it('pushing one file of a directory holds its manifest back (heldBack), until the rest is there', async () => {
    const { dir, remote } = await origin();
    expect(await pushed(dir, { at: ['data/a.csv'] })).toMatchObject({ transferred: 1, failed: [], heldBack: [{ path: 'data', missing: 2 }] });
    expect(remoteObjects(remote)).toEqual([sha('a,1\n')]);
    // Once the rest is there, the manifest follows.
    expect((await pushed(dir, { at: ['data'] })).heldBack ?? []).toEqual([]);
    expect(remoteObjects(remote)).toEqual(ALL.filter((o) => o !== sha('weights')));
  });

  it('the same directory content tracked at two paths is uploaded and counted once; a second push is a no-op (attack suite #17)', async () => {
    const { dir, remote } = await origin();
    for (const [rel, c] of Object.entries(DATA)) write(dir, rel.replace('data/', 'copy/'), c);
    await withRepo(dir, (r) => add(r, { paths: abs(dir, 'copy') }));
    expect(await pushed(dir)).toMatchObject({ transferred: 5, failed: [], bytes: BYTES });
    expect(remoteObjects(remote)).toEqual(ALL);
    expect(await pushed(dir)).toMatchObject({ transferred: 0, failed: [] });
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('pulling a path the directory does not hold: NOT_TRACKED', async () => {
    const { dir } = await origin();
    await pushed(dir);
    const b = await clone(dir);
    await rejectsWith(pulled(b, { at: ['data/nope.csv'] }), 'NOT_TRACKED');
  });

  it('a corrupt manifest in the cache fails that directory only; the rest is pushed', async () => {
    const { dir, remote } = await origin();
    const m = objPath(dir, DIR.oid);
    fs.chmodSync(m, 0o644);
    fs.writeFileSync(m, '[]');
    const res = await pushed(dir);
    expect(res.failed).toEqual([{ oid: DIR.oid, path: 'data', error: expect.stringContaining('directory manifest is corrupt') }]);
    expect(remoteObjects(remote)).toEqual([sha('weights')]);
  });
});
