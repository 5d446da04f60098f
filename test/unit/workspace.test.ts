import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHUNK, sha256 } from '../../src/cache/hash.js';
import { serializeManifest, sortEntries } from '../../src/formats/manifest.js';
import { FILES_SHARD, StatCache } from '../../src/cache/statcache.js';
import { ObjectStore } from '../../src/cache/store.js';
import { diffManifests, hashTarget, type HashOptions } from '../../src/cache/workspace.js';
import { sleep, useTmpDirs } from '../helpers/tmp.js';
import { NO_PROGRESS } from '../../src/util/progress.js';

const tmp = useTmpDirs();
const PAST = Math.floor(Date.now() / 1000) - 3600;

function setup() {
  const base = tmp();
  const ws = path.join(base, 'ws');
  fs.mkdirSync(ws);
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
  const scDir = path.join(base, 'tmp');
  return { ws, store, scDir, opts: (extra: Partial<HashOptions> = {}): HashOptions => ({ statCache: new StatCache(scDir), store, ...extra }) };
}

function put(root: string, rel: string, content: string, exec = false): string {
  const p = path.join(root, ...rel.split('/'));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  if (exec) fs.chmodSync(p, 0o755);
  fs.utimesSync(p, PAST, PAST); // older than any stat cache file written below: never racy
  return p;
}

describe('hashTarget', () => {
  it('reports a missing path as missing', async () => {
    const { ws, opts } = setup();
    expect(await hashTarget(path.join(ws, 'nope'), 'nope', opts())).toEqual({ kind: 'missing' });
  });

  it('hashes a file to its SHA-256 and size without storing it by default', async () => {
    const { ws, store, opts } = setup();
    const f = put(ws, 'a.csv', 'a,b\n');
    const r = await hashTarget(f, 'a.csv', opts());
    expect(r).toMatchObject({ kind: 'file', oid: sha256('a,b\n'), size: 4, isexec: false });
    expect(store.has(sha256('a,b\n'))).toBe(false);
  });

  it('hashes a directory to the id of its canonical manifest, with total size and file count', async () => {
    const { ws, opts } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/b.csv', 'bb');
    put(ws, 'data/sub/a.csv', 'a');
    put(ws, 'data/run.sh', '#!/bin/sh\n', true);
    const r = await hashTarget(d, 'data', opts());
    const expected = serializeManifest([
      { relpath: 'b.csv', sha256: sha256('bb'), size: 2 },
      { relpath: 'run.sh', sha256: sha256('#!/bin/sh\n'), size: 10, isexec: true },
      { relpath: 'sub/a.csv', sha256: sha256('a'), size: 1 },
    ]);
    expect(r).toMatchObject({ kind: 'dir', oid: `${sha256(expected)}.dir`, size: 13, nfiles: 3 });
  });

  it('with write: store puts every file and the manifest into the cache', async () => {
    const { ws, store, opts } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/x', 'xx');
    put(ws, 'data/y/z', 'zzz');
    const r = await hashTarget(d, 'data', opts({ write: 'store' }));
    if (r.kind !== 'dir') throw new Error('expected a directory');
    expect(store.hasAll(r.oid)).toBe(true);
    expect(store.readManifest(r.oid).map((e) => e.relpath)).toEqual(['x', 'y/z']);
    // The workspace files are untouched copies, still writable.
    expect(fs.statSync(path.join(d, 'x')).mode & 0o200).toBe(0o200);
  });

  it('leaves out ignored files from the directory id', async () => {
    const { ws, opts } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/keep', 'k');
    const without = await hashTarget(d, 'data', opts());
    put(ws, 'data/skip.log', 'noise');
    const ignored = await hashTarget(d, 'data', opts({ ignored: (rel) => rel.endsWith('.log') }));
    expect(ignored).toMatchObject({ oid: (without as { oid: string }).oid, nfiles: 1 });
  });

  it('does not read an unchanged file twice: the stat cache answers after save and reload', async () => {
    const { ws, scDir, store } = setup();
    const f = put(ws, 'big.bin', 'x'.repeat(1000));
    const sc = new StatCache(scDir);
    let bytes = 0;
    await hashTarget(f, 'big.bin', { statCache: sc, store, progress: { ...NO_PROGRESS, bytes: (n) => (bytes += n) } });
    expect(bytes).toBe(1000);
    await sleep(20);
    sc.save();
    bytes = 0;
    const r = await hashTarget(f, 'big.bin', { statCache: new StatCache(scDir), store, progress: { ...NO_PROGRESS, bytes: (n) => (bytes += n) } });
    expect(bytes).toBe(0);
    expect(r).toMatchObject({ oid: sha256('x'.repeat(1000)) });
  });

  it('never records a stat key taken before a change: a file appended to while it is read fails and is not remembered', async () => {
    // The append happens inside the read itself (after its first chunk), exactly as a writer would.
    for (const write of [undefined, 'store'] as const) {
      const { ws, scDir, store } = setup();
      const f = put(ws, 'growing.bin', 'x'.repeat(3 * CHUNK));
      const sc = new StatCache(scDir);
      const walked = fs.lstatSync(f);
      let appended = false;
      const onBytes = () => {
        if (!appended) fs.appendFileSync(f, 'written meanwhile');
        appended = true;
      };
      await expect(hashTarget(f, 'growing.bin', { statCache: sc, store, write, progress: { ...NO_PROGRESS, bytes: onBytes } })).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
      expect(sc.getFile(FILES_SHARD, 'growing.bin', walked)).toBeUndefined();
      expect(sc.getFile(FILES_SHARD, 'growing.bin', fs.lstatSync(f))).toBeUndefined();
      expect([...store.list()]).toEqual([]);
    }
  });

  it('re-reads only the changed file of a directory, and gets the new id', async () => {
    const { ws, scDir, store } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/a', 'aaaa');
    put(ws, 'data/b', 'bbbb');
    const sc = new StatCache(scDir);
    const first = await hashTarget(d, 'data', { statCache: sc, store });
    await sleep(20);
    sc.save();
    put(ws, 'data/b', 'BBBBBB');
    let bytes = 0;
    const second = await hashTarget(d, 'data', { statCache: new StatCache(scDir), store, progress: { ...NO_PROGRESS, bytes: (n) => (bytes += n) } });
    expect(bytes).toBe(6);
    expect((second as { oid: string }).oid).not.toBe((first as { oid: string }).oid);
    expect(second).toMatchObject({ size: 10, nfiles: 2 });
  });

  it('returns the entries of an unchanged directory from its manifest when asked', async () => {
    const { ws, scDir, store } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/a', 'a');
    const sc = new StatCache(scDir);
    await hashTarget(d, 'data', { statCache: sc, store, write: 'store' });
    await sleep(20);
    sc.save();
    const r = await hashTarget(d, 'data', { statCache: new StatCache(scDir), store, needEntries: true });
    expect(r).toMatchObject({ kind: 'dir', entries: [{ relpath: 'a', sha256: sha256('a'), size: 1 }] });
  });

  it('re-stores objects of an unchanged directory after gc removed them (epoch changed)', async () => {
    const { ws, scDir, store } = setup();
    const d = path.join(ws, 'data');
    put(ws, 'data/a', 'a');
    const sc = new StatCache(scDir);
    const r = await hashTarget(d, 'data', { statCache: sc, store, write: 'store' });
    await sleep(20);
    sc.save();
    store.remove([...store.list()]); // what `tdv gc` does
    const later = new ObjectStore(store.root, store.tmpDir); // the next command
    const again = await hashTarget(d, 'data', { statCache: new StatCache(scDir), store: later, write: 'store' });
    expect((again as { oid: string }).oid).toBe((r as { oid: string }).oid);
    expect(later.hasAll((r as { oid: string }).oid)).toBe(true);
  });
});

describe('diffManifests', () => {
  const A = 'a'.repeat(64);
  const B = 'b'.repeat(64);

  it('lists added, modified (content or exec bit) and deleted paths', () => {
    const d = diffManifests(
      [
        { relpath: 'same', sha256: A, size: 1 },
        { relpath: 'changed', sha256: A, size: 1 },
        { relpath: 'chmod', sha256: A, size: 1 },
        { relpath: 'gone', sha256: A, size: 1 },
      ],
      [
        { relpath: 'same', sha256: A, size: 1 },
        { relpath: 'changed', sha256: B, size: 1 },
        { relpath: 'chmod', sha256: A, size: 1, isexec: true },
        { relpath: 'new', sha256: B, size: 1 },
      ],
    );
    expect(d).toEqual({ added: ['new'], modified: ['changed', 'chmod'], deleted: ['gone'] });
  });

  it('gives the same answer for sorted lists (merged) as for any order (mapped)', () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const names = ['a', 'a-b', 'a.b', 'a/b', 'b', 'x/\u{1F600}', 'x/\uFFFD', 'x/y/z', 'Z', 'é'];
    for (let round = 0; round < 50; round++) {
      const pick = () => names.filter(() => rnd(3) > 0).map((relpath) => ({ relpath, sha256: rnd(2) ? A : B, size: 1, ...(rnd(4) === 0 ? { isexec: true } : {}) }));
      const [o, n] = [sortEntries(pick()), sortEntries(pick())];
      const shuffled = [...n].reverse();
      const sorted = diffManifests(o, n);
      const mapped = diffManifests(o, shuffled);
      for (const k of ['added', 'modified', 'deleted'] as const) expect([...sorted[k]].sort()).toEqual([...mapped[k]].sort());
    }
    // A list with a name twice is not "sorted": the map's answer, not a merge's.
    expect(
      diffManifests(
        [{ relpath: 'a', sha256: A, size: 1 }],
        [
          { relpath: 'a', sha256: A, size: 1 },
          { relpath: 'a', sha256: B, size: 1 },
        ],
      ),
    ).toEqual({ added: [], modified: ['a'], deleted: [] });
  });

  it('finds nothing between identical manifests, treating isexec:false like no isexec', () => {
    expect(diffManifests([{ relpath: 'x', sha256: A, size: 1, isexec: false }], [{ relpath: 'x', sha256: A, size: 1 }])).toEqual({ added: [], modified: [], deleted: [] });
  });
});
