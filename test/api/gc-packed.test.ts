import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { gc, type GcOptions } from '../../src/repo/gc.js';
import { pull } from '../../src/repo/pull.js';
import { push } from '../../src/repo/push.js';
import { layoutOf, openRemote } from '../../src/repo/lib/remotes.js';
import type { PackedRemote } from '../../src/remote/packed.js';
import type { Remote } from '../../src/remote/remote.js';
import type { RemoteConfig } from '../../src/formats/config.js';
import { CHUNK_THRESHOLD, chunkFile } from '../../src/remote/transfer/chunker.js';
import { git, write } from '../helpers/repo.js';
import { damageRemoteObject, newDir, newRepo, remoteObjects, sha } from '../helpers/expect.js';
import { rejectsWith, track, withRepo } from '../helpers/api.js';
import { describeS3, S3_BUCKET, s3Available, s3Env } from '../helpers/s3.js';

/**
 * `gc --cloud` on a packed remote (remote/packed.ts, PackedRemote.collect):
 * removed objects lose their index entries, packs without a live blob are
 * deleted, packs mostly dead are rewritten, and readers never meet an index
 * entry whose pack is gone.
 */

const yes = async () => true;
const collect = (dir: string, opts: Partial<GcOptions> = {}) => withRepo(dir, (r) => gc(r, { workspace: true, cloud: true, confirm: yes, ...opts }));
const pushAll = (dir: string) => withRepo(dir, (r) => push(r, { targets: [] }));

async function commitAll(dir: string, msg: string): Promise<void> {
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', msg);
}

/** A repo with a local directory remote "store" (the packed layout, the default for a new remote). */
async function localRepo(): Promise<{ dir: string; remote: string }> {
  const dir = await newRepo();
  const remote = newDir();
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
  return { dir, remote };
}

/** Every entry of every index of a local remote, chunks included. */
function indexEntries(remote: string): { index: string; id: string; kind: string; pack: string }[] {
  const out: { index: string; id: string; kind: string; pack: string }[] = [];
  const dir = path.join(remote, 'index');
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir)) {
    if (!name.endsWith('.json.gz')) continue;
    const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, name))).toString()) as { packs: string[]; blobs: [string, string, number][] };
    for (const [id, kind, p] of doc.blobs) out.push({ index: name, id, kind, pack: doc.packs[p]! });
  }
  return out;
}

function packFiles(remote: string): Map<string, number> {
  const dir = path.join(remote, 'packs');
  const out = new Map<string, number>();
  if (!fs.existsSync(dir)) return out;
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.pack')) out.set(f.slice(0, -5), fs.statSync(path.join(dir, f)).size);
  return out;
}

/** Every pack an index names exists (what a reader relies on). */
function dangling(remote: string): string[] {
  const packs = packFiles(remote);
  return [...new Set(indexEntries(remote).map((e) => e.pack))].filter((p) => !packs.has(p));
}

/** The chunk list the cache keeps for a large object (written when it was pushed). */
function recipeChunks(dir: string, oid: string): Map<string, number> {
  const r = JSON.parse(fs.readFileSync(path.join(dir, '.tdv', 'cache', 'recipes', oid.slice(0, 2), oid.slice(2)), 'utf8')) as { chunks: [string, number][] };
  return new Map(r.chunks);
}

/**
 * v1: a large file (chunked) and 100 small files, pushed; v2: the large file
 * keeping only its first MiB, the rest new, and 80 small files changed,
 * pushed. Only v2 is in the workspace, so v1's own data is garbage.
 */
async function twoVersions(dir: string) {
  const size = CHUNK_THRESHOLD + (2 << 20);
  const v1 = randomBytes(size);
  const v2 = Buffer.concat([v1.subarray(0, 1 << 20), randomBytes(size - (1 << 20))]);
  write(dir, 'big.bin', v1);
  const small1: Record<string, Buffer> = {};
  for (let i = 0; i < 100; i++) small1[`small/f${i}`] = randomBytes(2048);
  for (const [k, v] of Object.entries(small1)) write(dir, k, v);
  await track(dir, 'big.bin', 'small');
  await commitAll(dir, 'v1');
  expect((await pushAll(dir)).failed).toEqual([]);
  write(dir, 'big.bin', v2);
  const small2 = { ...small1 };
  for (let i = 0; i < 80; i++) write(dir, `small/f${i}`, (small2[`small/f${i}`] = randomBytes(2048)));
  await track(dir, 'big.bin', 'small');
  await commitAll(dir, 'v2');
  expect((await pushAll(dir)).failed).toEqual([]);
  const c1 = recipeChunks(dir, sha(v1));
  const c2 = recipeChunks(dir, sha(v2));
  const v1Only = [...c1.keys()].filter((c) => !c2.has(c));
  const v1OnlyBytes = v1Only.reduce((n, c) => n + c1.get(c)!, 0);
  const deadSmall = Array.from({ length: 80 }, (_, i) => sha(small1[`small/f${i}`]!));
  return { v1, v2, small2, v1Only, v1OnlyBytes, deadSmall, live: [...c2.keys()] };
}

async function cloneAndPull(dir: string, setup?: (clone: string) => void): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  setup?.(to);
  const res = await withRepo(to, (r) => pull(r, { targets: [] }));
  expect(res.fetch.failed).toEqual([]);
  return to;
}

describe('gc --cloud on a packed directory remote', () => {
  it('drops the old version: its own chunks and small files go, its pack is rewritten, v2 pulls byte-identical', async () => {
    const { dir, remote } = await localRepo();
    const t = await twoVersions(dir);
    expect(t.v1OnlyBytes).toBeGreaterThan(2 << 20);
    const before = [...packFiles(remote).values()].reduce((a, b) => a + b, 0);
    const res = await collect(dir);
    expect(res.removed).toBe(true);
    expect(res.cloud!.unused).toEqual(expect.arrayContaining([sha(t.v1), ...t.deadSmall]));
    expect(res.cloud!.packs!.rewritten).toBeGreaterThanOrEqual(1);
    expect(res.cloud!.bytesReclaimed).toBeGreaterThanOrEqual(t.v1OnlyBytes);
    const after = [...packFiles(remote).values()].reduce((a, b) => a + b, 0);
    expect(before - after).toBe(res.cloud!.bytesReclaimed);
    // Nothing of v1's own is named any more; everything v2 uses is.
    const ids = new Set(indexEntries(remote).map((e) => e.id));
    for (const c of t.v1Only) expect(ids.has(c)).toBe(false);
    for (const c of t.live) expect(ids.has(c)).toBe(true);
    expect(remoteObjects(remote)).not.toContain(sha(t.v1));
    for (const o of t.deadSmall) expect(ids.has(o)).toBe(false);
    // Every pack named exists, every pack is named.
    expect(dangling(remote)).toEqual([]);
    expect([...packFiles(remote).keys()].sort()).toEqual([...new Set(indexEntries(remote).map((e) => e.pack))].sort());
    const b = await cloneAndPull(dir);
    expect(fs.readFileSync(path.join(b, 'big.bin')).equals(t.v2)).toBe(true);
    for (const [k, v] of Object.entries(t.small2)) expect(fs.readFileSync(path.join(b, k)).equals(v)).toBe(true);
    // A second gc finds nothing left.
    expect((await collect(dir)).cloud!.unused).toEqual([]);
  });

  /** One push of a live file and a dead one (random bytes: stored as they are) into one pack. */
  async function livePlusDead(liveSize: number, deadSize: number) {
    const { dir, remote } = await localRepo();
    const live = randomBytes(liveSize);
    const dead = randomBytes(deadSize);
    write(dir, 'live.bin', live);
    write(dir, 'dead.bin', dead);
    await track(dir, 'live.bin', 'dead.bin');
    await commitAll(dir, 'both');
    await pushAll(dir);
    expect(packFiles(remote).size).toBe(1);
    fs.rmSync(path.join(dir, 'dead.bin.tdv'));
    await commitAll(dir, 'dead gone');
    return { dir, remote, live, dead, pack: [...packFiles(remote).keys()][0]! };
  }

  it('a pack mostly live is kept as it is; only its dead entry leaves the index', async () => {
    const { dir, remote, live, dead, pack } = await livePlusDead(300 << 10, 100 << 10);
    const res = await collect(dir);
    expect(res.cloud!.packs).toEqual({ deleted: 0, rewritten: 0, kept: 1, created: 0 });
    expect(res.cloud!.bytesReclaimed).toBe(0);
    expect([...packFiles(remote).keys()]).toEqual([pack]);
    expect(remoteObjects(remote)).toEqual([sha(live)]);
    expect(remoteObjects(remote)).not.toContain(sha(dead));
    const b = await cloneAndPull(dir);
    expect(fs.readFileSync(path.join(b, 'live.bin')).equals(live)).toBe(true);
  });

  it('a pack mostly dead is rewritten: its live blob is copied to a new pack and the old one deleted', async () => {
    const { dir, remote, live, pack } = await livePlusDead(100 << 10, 300 << 10);
    // --dry: the plan for the packs, read only.
    const packsBefore = [...packFiles(remote)];
    const indexesBefore = fs.readdirSync(path.join(remote, 'index'));
    const plan = await collect(dir, { dry: true });
    expect(plan.removed).toBe(false);
    expect(plan.cloud!.packs).toEqual({ deleted: 0, rewritten: 1, kept: 0, created: 0 });
    expect([...packFiles(remote)]).toEqual(packsBefore);
    expect(fs.readdirSync(path.join(remote, 'index'))).toEqual(indexesBefore);
    const res = await collect(dir);
    expect(res.cloud!.bytesReclaimed).toBe(plan.cloud!.bytesReclaimed);
    expect(res.cloud!.packs).toEqual({ deleted: 0, rewritten: 1, kept: 0, created: 1 });
    expect(res.cloud!.bytesReclaimed).toBeGreaterThanOrEqual(300 << 10);
    expect(packFiles(remote).has(pack)).toBe(false);
    expect(packFiles(remote).size).toBe(1);
    expect(remoteObjects(remote)).toEqual([sha(live)]);
    expect(dangling(remote)).toEqual([]);
    const b = await cloneAndPull(dir);
    expect(fs.readFileSync(path.join(b, 'live.bin')).equals(live)).toBe(true);
  });

  it('a damaged live blob is not copied: gc fails naming it, and its pack stays', async () => {
    const { dir, remote, live, pack } = await livePlusDead(100 << 10, 300 << 10);
    damageRemoteObject(remote, sha(live));
    const damaged = fs.readFileSync(path.join(remote, 'packs', `${pack}.pack`));
    const err = await rejectsWith(collect(dir), 'GC_INCOMPLETE');
    expect(err.message).toMatch(new RegExp(`object ${sha(live)} on remote "store" .* is corrupt: its copy in packs/${pack}\\.pack`));
    expect(err.message).toContain('push --repair');
    // The pack is neither deleted nor copied, and the index still finds the object in it.
    expect(fs.readFileSync(path.join(remote, 'packs', `${pack}.pack`)).equals(damaged)).toBe(true);
    expect([...packFiles(remote).keys()]).toEqual([pack]);
    expect(
      indexEntries(remote)
        .filter((e) => e.id === sha(live))
        .map((e) => e.pack),
    ).toEqual([pack]);
    expect(dangling(remote)).toEqual([]);
  });

  it('uploads new packs, then one index, then deletes the old indexes, then the old packs: no index ever names a missing pack', async () => {
    const { dir, remote } = await localRepo();
    await twoVersions(dir);
    const indexesBefore = fs.readdirSync(path.join(remote, 'index'));
    expect(indexesBefore.length).toBeGreaterThanOrEqual(2);
    const ops: string[] = [];
    const violations: string[] = [];
    const check = (op: string) => {
      const d = dangling(remote);
      if (d.length) violations.push(`after ${op}: ${d.join(', ')}`);
    };
    const wrap = (raw: Remote): Remote =>
      new Proxy(raw, {
        get(target, prop, receiver) {
          if (prop === 'putKey')
            return async (key: string, ...rest: unknown[]) => {
              await (target.putKey as (...a: unknown[]) => Promise<void>).call(target, key, ...rest);
              ops.push(`put ${key.split('/')[0]}`);
              check(`put ${key}`);
            };
          if (prop === 'deleteKeys')
            return async (keys: readonly string[]) => {
              const failed = await target.deleteKeys(keys);
              for (const k of keys) ops.push(`delete ${k.split('/')[0]}`);
              check(`delete ${keys.join(' ')}`);
              return failed;
            };
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    const res = await collect(dir, {
      openRemote: async (repo, name, jobs) => {
        const real = (await openRemote(repo, name, jobs)) as PackedRemote;
        return layoutOf(wrap(real.raw), { url: remote } as RemoteConfig, repo.store, 2);
      },
    });
    expect(violations).toEqual([]);
    expect(res.cloud!.packs!.rewritten).toBeGreaterThanOrEqual(1);
    const first = (op: string) => ops.indexOf(op);
    const last = (op: string) => ops.lastIndexOf(op);
    expect(ops.filter((o) => o === 'put index')).toHaveLength(1);
    expect(last('put packs')).toBeLessThan(first('put index'));
    expect(first('put index')).toBeLessThan(first('delete index'));
    expect(last('delete index')).toBeLessThan(first('delete packs'));
    // The indexes holding dead entries were replaced by one new index; the others stay.
    const after = fs.readdirSync(path.join(remote, 'index'));
    const added = after.filter((n) => !indexesBefore.includes(n));
    expect(added).toHaveLength(1);
    expect(res.cloud!.indexes).toEqual({ replaced: indexesBefore.length - (after.length - 1), written: 1 });
    expect(res.cloud!.indexes!.replaced).toBeGreaterThanOrEqual(1);
  });

  it('keeps a chunk the kept data uses as a whole file, though the large file it came from goes', async () => {
    const { dir, remote } = await localRepo();
    const big = randomBytes(CHUNK_THRESHOLD + 1000);
    write(dir, 'big.bin', big);
    await track(dir, 'big.bin');
    await pushAll(dir);
    // A small file whose bytes are one of big.bin's chunks: stored again as an object (one small blob), so an index names it as one.
    const [first, size] = [...recipeChunks(dir, sha(big))][0]!;
    const piece = big.subarray(0, size);
    expect(sha(piece)).toBe(first);
    write(dir, 'piece.bin', piece);
    await track(dir, 'piece.bin');
    const packsBefore = [...packFiles(remote).keys()];
    await pushAll(dir);
    expect([...packFiles(remote).keys()]).toHaveLength(packsBefore.length + 1);
    fs.rmSync(path.join(dir, 'big.bin.tdv'));
    await commitAll(dir, 'piece only');
    const res = await collect(dir);
    expect(res.cloud!.unused).toEqual([sha(big)]);
    expect(indexEntries(remote).some((e) => e.id === first)).toBe(true);
    expect(dangling(remote)).toEqual([]);
    const b = await cloneAndPull(dir);
    expect(fs.readFileSync(path.join(b, 'piece.bin')).equals(piece)).toBe(true);
  });

  it('never drops a chunk a live large file names, even when the object of the same id is removed', async () => {
    const { dir, remote } = await localRepo();
    const big = randomBytes(CHUNK_THRESHOLD + 1000);
    const tmp = write(newDir(), 'big.bin', big);
    let first: { sha256: string; size: number } | undefined;
    for await (const ch of chunkFile(tmp)) {
      first ??= ch;
    }
    // The piece goes first, as a small object; big.bin's first chunk is then found on the remote and not sent.
    const piece = big.subarray(0, first!.size);
    write(dir, 'piece.bin', piece);
    await track(dir, 'piece.bin');
    await pushAll(dir);
    write(dir, 'big.bin', big);
    await track(dir, 'big.bin');
    await pushAll(dir);
    expect(
      indexEntries(remote)
        .filter((e) => e.id === first!.sha256)
        .map((e) => e.kind),
    ).toEqual(['o']);
    fs.rmSync(path.join(dir, 'piece.bin.tdv'));
    await commitAll(dir, 'big only');
    const res = await collect(dir);
    expect(res.cloud!.unused).toEqual([sha(piece)]);
    expect(indexEntries(remote).some((e) => e.id === first!.sha256)).toBe(true);
    expect(dangling(remote)).toEqual([]);
    const b = await cloneAndPull(dir);
    expect(fs.readFileSync(path.join(b, 'big.bin')).equals(big)).toBe(true);
  });

  /**
   * gc against a local remote whose raw key operations call `hook` (before a
   * deleteKeys, after a putKey), to play another process acting meanwhile.
   */
  function collectRacing(dir: string, remote: string, hook: (op: 'put' | 'delete', keys: readonly string[]) => void) {
    const wrap = (raw: Remote): Remote =>
      new Proxy(raw, {
        get(target, prop, receiver) {
          if (prop === 'putKey')
            return async (key: string, ...rest: unknown[]) => {
              await (target.putKey as (...a: unknown[]) => Promise<void>).call(target, key, ...rest);
              hook('put', [key]);
            };
          if (prop === 'deleteKeys')
            return async (keys: readonly string[]) => {
              hook('delete', keys);
              return target.deleteKeys(keys);
            };
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    return collect(dir, {
      openRemote: async (repo, name, jobs) => {
        const real = (await openRemote(repo, name, jobs)) as PackedRemote;
        return layoutOf(wrap(real.raw), { url: remote } as RemoteConfig, repo.store, 2);
      },
    });
  }

  /** Another process's index naming what v1's index names (its recipe, chunks and packs), written now. */
  function copyIndexOf(remote: string, indexes: string[], oid: string): string {
    const from = indexes.map((n) => path.join(remote, 'index', n)).find((f) => zlib.gunzipSync(fs.readFileSync(f)).toString().includes(oid))!;
    const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(from)).toString()) as { written: number };
    doc.written = Date.now();
    const bytes = zlib.gzipSync(JSON.stringify(doc));
    const name = `${sha(bytes)}.json.gz`;
    fs.writeFileSync(path.join(remote, 'index', name), bytes);
    return name;
  }

  it('a push that ran meanwhile and relies on data gc drops stops gc before anything is deleted', async () => {
    const { dir, remote } = await localRepo();
    const { v1 } = await twoVersions(dir);
    const before = { packs: [...packFiles(remote).keys()].sort(), indexes: fs.readdirSync(path.join(remote, 'index')).sort() };
    let raced = '';
    const err = await rejectsWith(
      collectRacing(dir, remote, (op, keys) => {
        if (op === 'put' && keys[0]!.startsWith('packs/') && !raced) raced = copyIndexOf(remote, before.indexes, sha(v1));
      }),
      'GC_INCOMPLETE',
    );
    expect(raced).not.toBe('');
    expect(err.message).toContain('a push using data gc was dropping ran on remote "store"');
    // Nothing gc read was changed, and the packs it had uploaded are gone again.
    expect([...packFiles(remote).keys()].sort()).toEqual(before.packs);
    expect(fs.readdirSync(path.join(remote, 'index')).sort()).toEqual([...before.indexes, raced].sort());
  });

  it('another gc that replaced an index meanwhile stops this one before anything is deleted', async () => {
    const { dir, remote } = await localRepo();
    await twoVersions(dir);
    const before = { packs: [...packFiles(remote).keys()].sort(), indexes: fs.readdirSync(path.join(remote, 'index')).sort() };
    let gone = '';
    const err = await rejectsWith(
      collectRacing(dir, remote, (op, keys) => {
        if (op !== 'put' || !keys[0]!.startsWith('packs/') || gone) return;
        gone = before.indexes[0]!;
        fs.rmSync(path.join(remote, 'index', gone));
      }),
      'GC_INCOMPLETE',
    );
    expect(err.message).toContain('another gc or a push ran on remote "store"');
    expect([...packFiles(remote).keys()].sort()).toEqual(before.packs);
    expect(fs.readdirSync(path.join(remote, 'index')).sort()).toEqual(before.indexes.filter((n) => n !== gone));
  });

  it('a pack an index written at the last moment names is not deleted', async () => {
    const { dir, remote } = await localRepo();
    const { v1 } = await twoVersions(dir);
    const indexes = fs.readdirSync(path.join(remote, 'index'));
    const v1Pack = [
      ...new Set(
        indexEntries(remote)
          .filter((e) => e.id === sha(v1))
          .map((e) => e.pack),
      ),
    ];
    expect(v1Pack).toHaveLength(1);
    let raced = '';
    const res = await collectRacing(dir, remote, (op, keys) => {
      // After gc's own index, as it deletes the old ones: another process names v1's pack again.
      if (op === 'delete' && keys.some((k) => k.startsWith('index/')) && !raced) raced = copyIndexOf(remote, indexes, sha(v1));
    });
    expect(raced).not.toBe('');
    expect(packFiles(remote).has(v1Pack[0]!)).toBe(true);
    expect(dangling(remote)).toEqual([]);
    expect(res.cloud!.packs!.rewritten).toBe(0);
  });

  it('a pack no index names is deleted only by a gc a day after one first saw it', async () => {
    const { dir, remote } = await localRepo();
    await twoVersions(dir);
    const stray = randomBytes(1000);
    const name = sha(stray);
    fs.writeFileSync(path.join(remote, 'packs', `${name}.pack`), stray);
    const res = await collect(dir);
    expect(res.cloud!.unnamed).toEqual({ deleted: 0, waiting: 1 });
    expect(packFiles(remote).has(name)).toBe(true);
    // Recorded in the cache beside the remote's indexes: backdated, the next gc deletes it.
    const recDir = path.join(dir, '.tdv', 'cache', 'remotes');
    const rec = fs
      .readdirSync(recDir)
      .map((d) => path.join(recDir, d, 'unnamed-packs.json'))
      .find((f) => fs.existsSync(f))!;
    expect(JSON.parse(fs.readFileSync(rec, 'utf8'))).toHaveProperty(name);
    fs.writeFileSync(rec, JSON.stringify({ [name]: Date.now() - 25 * 3600_000 }));
    // Nothing else to collect: gc still deletes it.
    const res2 = await collect(dir);
    expect(res2.cloud!.unused).toEqual([]);
    expect(res2.cloud!.unnamed).toEqual({ deleted: 1, waiting: 0 });
    expect(packFiles(remote).has(name)).toBe(false);
    expect(dangling(remote)).toEqual([]);
  });
});

describe('gc of the cache: side files of the packed layout', () => {
  it("drops the recipe of a large object it deletes, and download spool chunks left a day ago, not today's", async () => {
    const { dir } = await localRepo();
    const v1 = randomBytes(CHUNK_THRESHOLD + 1000);
    write(dir, 'big.bin', v1);
    await track(dir, 'big.bin');
    await pushAll(dir);
    const recipe = path.join(dir, '.tdv', 'cache', 'recipes', sha(v1).slice(0, 2), sha(v1).slice(2));
    expect(fs.existsSync(recipe)).toBe(true);
    const spool = path.join(dir, '.tdv', 'tmp', 'chunks');
    const old = path.join(spool, 'aa', 'a'.repeat(62));
    const fresh = path.join(spool, 'bb', 'b'.repeat(62));
    write(spool, `aa/${'a'.repeat(62)}`, 'old chunk');
    write(spool, `bb/${'b'.repeat(62)}`, 'fresh chunk');
    const dayAgo = new Date(Date.now() - 25 * 3600_000);
    fs.utimesSync(old, dayAgo, dayAgo);
    write(dir, 'big.bin', randomBytes(1000));
    await track(dir, 'big.bin');
    const res = await withRepo(dir, (r) => gc(r, { workspace: true, confirm: yes }));
    expect(res.unused.map((u) => u.oid)).toContain(sha(v1));
    expect(fs.existsSync(recipe)).toBe(false);
    expect(fs.existsSync(old)).toBe(false);
    expect(fs.existsSync(fresh)).toBe(true);
  });
});

describeS3('gc --cloud on a packed S3 remote', () => {
  const s3Yaml = (prefix: string) =>
    `core:\n  remote: s3\nremote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    endpointurl: ${s3Available()!.endpoint}\n    force_path_style: true\n    checksum: when_required\n`;
  const keys = (dir: string, prefix: string) =>
    write(
      dir,
      '.tdv/config.local.yaml',
      `remote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    access_key_id: ${s3Env().AWS_ACCESS_KEY_ID}\n    secret_access_key: ${s3Env().AWS_SECRET_ACCESS_KEY}\n`,
    );

  it('drops the old version, reclaims its bytes, and v2 pulls byte-identical in a fresh clone', async () => {
    const dir = await newRepo();
    const prefix = `gc-packed-${randomBytes(6).toString('hex')}`;
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), s3Yaml(prefix));
    keys(dir, prefix);
    const t = await twoVersions(dir);
    const res = await collect(dir);
    expect(res.removed).toBe(true);
    expect(res.cloud!.unused).toContain(sha(t.v1));
    expect(res.cloud!.packs!.rewritten).toBeGreaterThanOrEqual(1);
    expect(res.cloud!.bytesReclaimed).toBeGreaterThanOrEqual(t.v1OnlyBytes);
    // Read back through a fresh remote: every named pack is there, nothing of v1's own is named.
    await withRepo(dir, async (repo) => {
      const remote = (await openRemote(repo)) as PackedRemote;
      try {
        const cat = await remote.catalog();
        for (const c of t.v1Only) expect(cat.has(c)).toBe(false);
        expect(cat.has(sha(t.v1))).toBe(false);
        const packs = new Set((await remote.listKeys('packs')).map((k) => k.key));
        for (const e of cat.values()) expect(packs.has(`packs/${e.pack}.pack`)).toBe(true);
      } finally {
        remote.close();
      }
    });
    const b = await cloneAndPull(dir, (to) => keys(to, prefix));
    expect(fs.readFileSync(path.join(b, 'big.bin')).equals(t.v2)).toBe(true);
    for (const [k, v] of Object.entries(t.small2)) expect(fs.readFileSync(path.join(b, k)).equals(v)).toBe(true);
  });
});
