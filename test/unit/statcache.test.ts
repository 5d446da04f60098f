import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeShard, encodeShard, type FileRec, StatCache, walkFingerprint } from '../../src/cache/statcache.js';
import { walkDir } from '../../src/cache/walk.js';
import { sleep, useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
const SHA = 'a'.repeat(64);
const SHA2 = 'b'.repeat(64);
const OID = `${'c'.repeat(64)}.dir`;
const lstat = (p: string) => fs.lstatSync(p);
/** A whole-second time one hour ago, which utimes can set back exactly (no float rounding of ns). */
const PAST = Math.floor(Date.now() / 1000) - 3600;

function setup() {
  const base = tmp();
  const cacheDir = path.join(base, '.tdv', 'tmp');
  const work = path.join(base, 'work');
  fs.mkdirSync(work);
  return { cacheDir, work };
}

/** Records `file` in a stat cache, saves it and returns a freshly loaded instance. */
async function recordAndReload(cacheDir: string, rel: string, file: string, sha = SHA): Promise<StatCache> {
  const sc = new StatCache(cacheDir);
  sc.setFile('.', rel, lstat(file), sha);
  await sleep(20); // the stat cache file's mtime must be strictly newer than the file's
  sc.save();
  return new StatCache(cacheDir);
}

describe('StatCache files', () => {
  it('returns the recorded hash for an unchanged file after save and reload', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    await sleep(20);
    const sc = await recordAndReload(cacheDir, 'a.csv', f);
    expect(sc.getFile('.', 'a.csv', lstat(f))).toBe(SHA);
    expect(sc.getFile('.', 'other.csv', lstat(f))).toBeUndefined();
  });

  it('trusts an entry set in this session even before saving', () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    const sc = new StatCache(cacheDir);
    sc.setFile('.', 'a', lstat(f), SHA);
    expect(sc.getFile('.', 'a', lstat(f))).toBe(SHA);
  });

  it('misses a file rewritten with the same size and its old mtime restored (ctime changed)', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    fs.utimesSync(f, PAST, PAST);
    const old = lstat(f);
    const sc = await recordAndReload(cacheDir, 'a.csv', f);
    expect(sc.getFile('.', 'a.csv', lstat(f))).toBe(SHA); // sanity: hit before the change
    fs.writeFileSync(f, 'jello');
    fs.utimesSync(f, PAST, PAST);
    const now = lstat(f);
    // Only ctime tells the two versions apart.
    expect(now.ino).toBe(old.ino);
    expect(now.size).toBe(old.size);
    expect(now.mtimeMs).toBe(old.mtimeMs);
    expect(now.ctimeMs).not.toBe(old.ctimeMs);
    expect(sc.getFile('.', 'a.csv', now)).toBeUndefined();
  });

  it('misses a file replaced by rename with the same size and mtime (new inode)', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    fs.utimesSync(f, PAST, PAST);
    const old = lstat(f);
    const sc = await recordAndReload(cacheDir, 'a.csv', f);
    const other = path.join(work, '.a.csv.new');
    fs.writeFileSync(other, 'HELLO');
    fs.utimesSync(other, PAST, PAST);
    fs.renameSync(other, f);
    const now = lstat(f);
    expect(now.ino).not.toBe(old.ino);
    expect(now.mtimeMs).toBe(old.mtimeMs);
    expect(now.size).toBe(old.size);
    expect(sc.getFile('.', 'a.csv', now)).toBeUndefined();
  });

  it('misses a truncated file even with its mtime restored', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello world');
    fs.utimesSync(f, PAST, PAST);
    const sc = await recordAndReload(cacheDir, 'a.csv', f);
    fs.truncateSync(f, 5);
    fs.utimesSync(f, PAST, PAST);
    expect(sc.getFile('.', 'a.csv', lstat(f))).toBeUndefined();
  });

  it('distrusts a racy entry after reload: a file whose mtime is not older than the stat cache file', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    const future = Math.floor(Date.now() / 1000) + 3600;
    fs.utimesSync(f, future, future);
    const sc1 = new StatCache(cacheDir);
    sc1.setFile('.', 'a.csv', lstat(f), SHA);
    expect(sc1.getFile('.', 'a.csv', lstat(f))).toBe(SHA); // same session: it was just hashed
    sc1.save();
    const sc2 = new StatCache(cacheDir);
    expect(sc2.getFile('.', 'a.csv', lstat(f))).toBeUndefined();
  });

  it('treats a file whose mtime or ctime is not older than the stat cache file as racy, and an older one as clean', () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    fs.utimesSync(f, PAST, PAST); // mtime in the past; ctime stays "now" (utimes cannot set it)
    const sc1 = new StatCache(cacheDir);
    sc1.setFile('.', 'a.csv', lstat(f), SHA);
    sc1.save();
    const cacheFile = path.join(cacheDir, 'statcache-files.bin');
    const ctime = lstat(f).ctimeMs / 1000;
    // The file itself is untouched, so its stat key still matches; only the reference time moves.
    fs.utimesSync(cacheFile, PAST + 1, PAST + 1); // newer than mtime, older than ctime: still racy
    expect(new StatCache(cacheDir).getFile('.', 'a.csv', lstat(f))).toBeUndefined();
    fs.utimesSync(cacheFile, ctime + 1, ctime + 1);
    expect(new StatCache(cacheDir).getFile('.', 'a.csv', lstat(f))).toBe(SHA);
  });

  it('never saves back a loaded racy record as if it had been checked', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a.csv');
    fs.writeFileSync(f, 'hello');
    const g = path.join(work, 'b.csv');
    fs.writeFileSync(g, 'other');
    const sc1 = new StatCache(cacheDir);
    sc1.setFile('.', 'a.csv', lstat(f), SHA);
    sc1.save();
    const cacheFile = path.join(cacheDir, 'statcache-files.bin');
    const ctime = lstat(f).ctimeMs / 1000;
    fs.utimesSync(cacheFile, ctime - 1, ctime - 1); // a.csv's record is now racy
    const sc2 = new StatCache(cacheDir);
    expect(sc2.getFile('.', 'a.csv', lstat(f))).toBeUndefined();
    sc2.setFile('.', 'b.csv', lstat(g), SHA2); // another record makes the shard dirty
    await sleep(20);
    sc2.save();
    const sc3 = new StatCache(cacheDir);
    expect(sc3.getFile('.', 'a.csv', lstat(f))).toBeUndefined();
    expect(sc3.getFile('.', 'b.csv', lstat(g))).toBe(SHA2);
  });

  it('ignores a damaged files cache with a warning instead of throwing', () => {
    const { cacheDir, work } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'statcache-files.bin'), '{"v":1,"files":{"a":["1","2"');
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    const warnings: string[] = [];
    const sc = new StatCache(cacheDir, (m) => warnings.push(m));
    expect(sc.getFile('.', 'a', lstat(f))).toBeUndefined();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/statcache-files\.bin/);
    expect(warnings[0]).toMatch(/re-hashed/);
  });

  it('rebuilds a damaged files cache on the next save', async () => {
    const { cacheDir, work } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'statcache-files.bin'), 'garbage');
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    await sleep(20);
    const sc = await recordAndReload(cacheDir, 'a', f);
    const warnings: string[] = [];
    const again = new StatCache(cacheDir, (m) => warnings.push(m));
    expect(again.getFile('.', 'a', lstat(f))).toBe(SHA);
    expect(sc.getFile('.', 'a', lstat(f))).toBe(SHA);
    expect(warnings).toEqual([]);
  });

  it('ignores a stat cache of another format version: a later one with a warning, an earlier one (its records untrusted) silently', async () => {
    const { cacheDir, work } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    const other = encodeShard('.', new Map());
    other[5] = 9; // "TDVSC\x09": a format this tdv does not know
    fs.writeFileSync(path.join(cacheDir, 'statcache-files.bin'), other);
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    fs.utimesSync(f, PAST, PAST);
    const warnings: string[] = [];
    expect(new StatCache(cacheDir, (m) => warnings.push(m)).getFile('.', 'a', lstat(f))).toBeUndefined();
    expect(warnings).toHaveLength(1);
    // Version 3 shards could pair a file with another's hash (workspace.ts): never read, never a warning.
    await recordAndReload(cacheDir, 'a', f);
    const file = path.join(cacheDir, 'statcache-files.bin');
    const v3 = fs.readFileSync(file);
    v3[5] = 3;
    fs.writeFileSync(file, v3);
    const silent: string[] = [];
    expect(new StatCache(cacheDir, (m) => silent.push(m)).getFile('.', 'a', lstat(f))).toBeUndefined();
    expect(silent).toEqual([]);
  });

  it('skips malformed records in an otherwise valid files cache', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    fs.utimesSync(f, PAST, PAST);
    const st = lstat(f);
    fs.mkdirSync(cacheDir, { recursive: true });
    const good: FileRec = [st.ino, st.mtimeMs, st.ctimeMs, st.size, SHA];
    await sleep(20); // the cache file must be newer than the file's ctime
    const recs = new Map<string, FileRec>([
      ['a', good],
      ['d', [st.ino, NaN, st.ctimeMs, st.size, SHA]],
      ['e', [st.ino, st.mtimeMs, st.ctimeMs, Infinity, SHA]],
    ]);
    fs.writeFileSync(path.join(cacheDir, 'statcache-files.bin'), encodeShard('.', recs));
    const sc = new StatCache(cacheDir);
    expect(sc.getFile('.', 'a', st)).toBe(SHA);
    expect(sc.getFile('.', 'd', st)).toBeUndefined();
    expect(sc.getFile('.', 'e', st)).toBeUndefined();
  });

  it('replaceShard swaps a directory shard wholesale, without touching other shards', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'x');
    fs.writeFileSync(f, 'x');
    fs.utimesSync(f, PAST, PAST);
    const sc = new StatCache(cacheDir);
    sc.replaceShard('d', [
      ['a', lstat(f), SHA],
      ['sub/b', lstat(f), SHA],
    ]);
    sc.setFile('.', 'top', lstat(f), SHA2);
    await sleep(20);
    sc.save();
    const re = new StatCache(cacheDir);
    expect(re.getFile('d', 'a', lstat(f))).toBe(SHA);
    expect(re.getFile('d', 'sub/b', lstat(f))).toBe(SHA);
    expect(re.getFile('.', 'top', lstat(f))).toBe(SHA2);
    expect(re.getFile('dd', 'a', lstat(f))).toBeUndefined();
    re.replaceShard('d', [['a', lstat(f), SHA2]]);
    await sleep(20);
    re.save();
    const again = new StatCache(cacheDir);
    expect(again.getFile('d', 'a', lstat(f))).toBe(SHA2);
    expect(again.getFile('d', 'sub/b', lstat(f))).toBeUndefined();
    expect(again.getFile('.', 'top', lstat(f))).toBe(SHA2);
  });

  it('shard files round-trip, and any damage (a flipped byte, truncation, padding, a foreign file) is refused whole', () => {
    const recs = new Map<string, FileRec>([
      ['a', [1, 1.5e12 + 0.25, 1.5e12 + 0.5, 7, SHA]],
      ['dir/ünï cödé\tname', [2, 3, 4, 5, SHA2]],
      ['big', [2 ** 52, 0, 0, 2 ** 40, `${SHA}.dir`]],
    ]);
    const buf = encodeShard('data/sub', recs);
    expect(decodeShard(buf)).toEqual({ shard: 'data/sub', recs });
    expect(decodeShard(encodeShard('.', new Map()))).toEqual({ shard: '.', recs: new Map() });
    // With the version it holds and an executable file: both read back, and a damaged version is refused.
    const versioned = new Map<string, FileRec>([...recs, ['run.sh', [9, 8, 7, 6, SHA, true]]]);
    const vbuf = encodeShard('data', versioned, OID);
    expect(decodeShard(vbuf)).toEqual({ shard: 'data', recs: versioned, version: OID });
    const badVersion = Buffer.from(vbuf);
    badVersion[vbuf.length - 21] = 0x7a; // the version's last character ('r' of ".dir")
    expect(() => decodeShard(badVersion)).toThrow();
    for (const at of [0, 9, 30, buf.length - 30, buf.length - 1]) {
      const bad = Buffer.from(buf);
      bad[at]! ^= 1;
      expect(() => decodeShard(bad), `byte ${at}`).toThrow();
    }
    expect(() => decodeShard(buf.subarray(0, buf.length - 1))).toThrow();
    expect(() => decodeShard(Buffer.concat([buf, Buffer.from([0])]))).toThrow();
    expect(() => decodeShard(Buffer.from('{"v":1,"files":{}}'))).toThrow(/unknown format/);
    // Only object ids are ever written.
    expect(() => encodeShard('.', new Map<string, FileRec>([['x', [1, 2, 3, 4, 'not-a-sha']]]))).toThrow(/no object id/);
  });

  it('a shard keeps the version it holds exactly, and the executable bits, across save and reload; any other change forgets the version', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'x');
    const g = path.join(work, 'run.sh');
    fs.writeFileSync(f, 'x');
    fs.writeFileSync(g, '#!/bin/sh\n');
    fs.chmodSync(g, 0o755);
    for (const p of [f, g]) fs.utimesSync(p, PAST, PAST);
    const sc = new StatCache(cacheDir);
    sc.replaceShard(
      'd',
      [
        ['x', lstat(f), SHA],
        ['run.sh', lstat(g), SHA2],
      ],
      OID,
    );
    expect(sc.shardVersion('d')).toBe(OID);
    await sleep(20);
    sc.save();
    const re = new StatCache(cacheDir);
    expect(re.shardVersion('d')).toBe(OID);
    expect([...re.shardRecords('d')].map(([k, r]) => [k, r[4], r[5] === true])).toEqual([
      ['x', SHA, false],
      ['run.sh', SHA2, true],
    ]);
    // One record set by hand (its mode may be unknown): the shard is no longer that version, on disk either.
    re.setFile('d', 'x', lstat(f), SHA2);
    expect(re.shardVersion('d')).toBeUndefined();
    await sleep(20);
    re.save();
    expect(new StatCache(cacheDir).shardVersion('d')).toBeUndefined();
    // A shard without a version (as earlier tdv wrote them) reads as holding none.
    const plain = new StatCache(cacheDir);
    plain.replaceShard('e', [['x', lstat(f), SHA]]);
    await sleep(20);
    plain.save();
    expect(new StatCache(cacheDir).shardVersion('e')).toBeUndefined();
  });

  it('removes the JSON shard an older tdv wrote when it saves the binary one', async () => {
    const { cacheDir, work } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'statcache-files.json'), '{"v":1,"files":{}}');
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    await recordAndReload(cacheDir, 'a', f);
    expect(fs.readdirSync(cacheDir).sort()).toEqual(['statcache-files.bin']);
  });

  it('writes its files atomically, leaving no temp file beside them', async () => {
    const { cacheDir, work } = setup();
    const f = path.join(work, 'a');
    fs.writeFileSync(f, 'x');
    await recordAndReload(cacheDir, 'a', f);
    expect(fs.readdirSync(cacheDir).sort()).toEqual(['statcache-files.bin']);
  });
});

describe('StatCache directories', () => {
  function makeTree(work: string): string {
    const d = path.join(work, 'data');
    fs.mkdirSync(path.join(d, 'sub'), { recursive: true });
    fs.writeFileSync(path.join(d, 'a.csv'), 'a');
    fs.writeFileSync(path.join(d, 'sub', 'b.csv'), 'bb');
    for (const p of ['a.csv', 'sub/b.csv']) fs.utimesSync(path.join(d, p), PAST, PAST);
    return d;
  }

  it('getDir hits for an unchanged walk after reload and misses once a file changes', async () => {
    const { cacheDir, work } = setup();
    const d = makeTree(work);
    const { fp, newestMs } = walkFingerprint(walkDir(d));
    const sc = new StatCache(cacheDir);
    sc.setDir('data', { fp, oid: OID, size: 3, nfiles: 2, newestMs });
    await sleep(20);
    sc.save();
    const re = new StatCache(cacheDir);
    const again = walkFingerprint(walkDir(d));
    expect(again.fp).toBe(fp);
    expect(re.getDir('data', again.fp)).toMatchObject({ oid: OID, size: 3, nfiles: 2 });
    expect(re.getDir('other', again.fp)).toBeUndefined();

    fs.writeFileSync(path.join(d, 'sub', 'b.csv'), 'BB');
    fs.utimesSync(path.join(d, 'sub', 'b.csv'), PAST, PAST);
    const changed = walkFingerprint(walkDir(d));
    expect(changed.fp).not.toBe(fp); // ctime moved
    expect(re.getDir('data', changed.fp)).toBeUndefined();
  });

  it('the walk fingerprint changes when a file is added, removed or renamed', () => {
    const { work } = setup();
    const d = makeTree(work);
    const fp0 = walkFingerprint(walkDir(d)).fp;
    fs.writeFileSync(path.join(d, 'new'), '');
    const fp1 = walkFingerprint(walkDir(d)).fp;
    fs.renameSync(path.join(d, 'new'), path.join(d, 'new2'));
    const fp2 = walkFingerprint(walkDir(d)).fp;
    fs.rmSync(path.join(d, 'new2'));
    const fp3 = walkFingerprint(walkDir(d)).fp;
    expect(new Set([fp0, fp1, fp2]).size).toBe(3);
    expect(fp3).toBe(fp0);
  });

  it('distrusts a directory record whose newest file is not older than the stat cache file', async () => {
    const { cacheDir, work } = setup();
    const d = makeTree(work);
    const future = Math.floor(Date.now() / 1000) + 3600;
    fs.utimesSync(path.join(d, 'a.csv'), future, future);
    const { fp, newestMs } = walkFingerprint(walkDir(d));
    const sc = new StatCache(cacheDir);
    sc.setDir('data', { fp, oid: OID, size: 3, nfiles: 2, newestMs });
    expect(sc.getDir('data', fp)).toBeDefined(); // same session
    sc.save();
    expect(new StatCache(cacheDir).getDir('data', fp)).toBeUndefined();
  });

  it('forget drops a directory record', async () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    sc.setDir('data', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0 });
    sc.forget('data');
    expect(sc.getDir('data', 'f')).toBeUndefined();
    await sleep(20);
    sc.save();
    expect(new StatCache(cacheDir).getDir('data', 'f')).toBeUndefined();
  });

  const stamp = (fp: string, newestMs = PAST * 1000) => ({ fp, newestMs });

  it('isComplete holds only for the oid and cache stamp recorded by markComplete, and survives reload', async () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    const S1 = stamp('s1');
    expect(sc.isComplete('data', OID, S1)).toBe(false);
    sc.setDir('data', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0 });
    expect(sc.isComplete('data', OID, S1)).toBe(false);
    sc.markComplete('data', OID, S1);
    expect(sc.isComplete('data', OID, S1)).toBe(true);
    expect(sc.isComplete('data', OID, stamp('s2'))).toBe(false); // the cache changed since
    // One version per directory is remembered: marking another moves the mark.
    const other = `${'d'.repeat(64)}.dir`;
    sc.markComplete('data', other, stamp('s3'));
    expect(sc.isComplete('data', other, stamp('s3'))).toBe(true);
    expect(sc.isComplete('data', OID, S1)).toBe(false);
    sc.markComplete('data', OID, S1);
    // Unknown directories are never complete, and marking them creates nothing.
    sc.markComplete('nope', OID, S1);
    expect(sc.isComplete('nope', OID, S1)).toBe(false);
    await sleep(20);
    sc.save();
    const re = new StatCache(cacheDir);
    expect(re.isComplete('data', OID, S1)).toBe(true);
    expect(re.isComplete('data', OID, stamp('s2'))).toBe(false);
    expect(re.isComplete('nope', OID, S1)).toBe(false);
  });

  it('distrusts after reload a stamp not older than the stat cache file (racy)', async () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    const future = stamp('s1', Date.now() + 3_600_000);
    sc.setDir('data', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0, complete: future });
    expect(sc.isComplete('data', OID, future)).toBe(true); // same session
    sc.save();
    expect(new StatCache(cacheDir).isComplete('data', OID, future)).toBe(false);
  });

  it('a directory re-recorded at another version keeps the mark of the version it was about, with its racy check', async () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    const S1 = stamp('s1');
    const modified = `${'e'.repeat(64)}.dir`;
    sc.setDir('data', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0 });
    sc.markComplete('data', OID, S1);
    // The workspace changed: its new version is recorded; the pointer's version is still known complete.
    sc.setDir('data', { fp: 'g', oid: modified, size: 0, nfiles: 0, newestMs: 0 });
    expect(sc.isComplete('data', OID, S1)).toBe(true);
    expect(sc.isComplete('data', modified, S1)).toBe(false);
    await sleep(20);
    sc.save();
    const re = new StatCache(cacheDir);
    expect(re.getDir('data', 'g')).toMatchObject({ oid: modified });
    expect(re.isComplete('data', OID, S1)).toBe(true);
    // A carried mark that is racy (not older than the file) is dropped on save, never made trusted.
    const future = stamp('s2', Date.now() + 3_600_000);
    re.markComplete('data', OID, future);
    re.save();
    const re2 = new StatCache(cacheDir);
    expect(re2.isComplete('data', OID, future)).toBe(false);
    re2.setDir('data', { fp: 'h', oid: modified, size: 0, nfiles: 0, newestMs: 0 });
    expect(re2.isComplete('data', OID, future)).toBe(false);
    await sleep(20);
    re2.save();
    expect(new StatCache(cacheDir).isComplete('data', OID, future)).toBe(false);
  });

  it('setDir with a complete stamp counts as markComplete', () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    sc.setDir('data', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0, complete: stamp('s') });
    expect(sc.isComplete('data', OID, stamp('s'))).toBe(true);
  });

  it('does not mistake Object.prototype members for directory records', () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    expect(sc.getDir('constructor', 'x')).toBeUndefined();
    expect(sc.isComplete('toString', OID, { fp: 'e', newestMs: 0 })).toBe(false);
  });

  it('ignores a damaged directories cache with a warning instead of throwing', () => {
    const { cacheDir } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(path.join(cacheDir, 'statcache-dirs.json'), '\0\0\0not json');
    const warnings: string[] = [];
    const sc = new StatCache(cacheDir, (m) => warnings.push(m));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/statcache-dirs\.json/);
    expect(sc.getDir('data', 'f')).toBeUndefined();
  });

  it('treats a directory record with damaged fields as a miss instead of throwing', () => {
    // Valid JSON, wrong content: e.g. a hand edit or a torn write by an older version.
    const { cacheDir } = setup();
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(
      path.join(cacheDir, 'statcache-dirs.json'),
      JSON.stringify({
        v: 1,
        dirs: {
          bad: { fp: 'f', oid: OID, size: 1, nfiles: 1, newestMs: 'not-a-number' },
          nomtime: { fp: 'f', oid: OID },
          nullcomplete: { fp: 'f', oid: OID, size: 1, nfiles: 1, newestMs: 0, complete: null },
          nullrec: null,
        },
      }),
    );
    const sc = new StatCache(cacheDir, () => {});
    const S = { fp: 's', newestMs: 0 };
    for (const rel of ['bad', 'nomtime', 'nullcomplete', 'nullrec']) {
      expect(() => sc.isComplete(rel, OID, S), rel).not.toThrow();
      expect(() => sc.markComplete(rel, OID, S), rel).not.toThrow();
    }
    expect(() => sc.getDir('bad', 'f')).not.toThrow();
    expect(() => sc.getDir('nomtime', 'f')).not.toThrow();
    // A record that cannot prove it is older than the stat cache file is not trusted.
    expect(sc.getDir('bad', 'f')).toBeUndefined();
    expect(sc.getDir('nomtime', 'f')).toBeUndefined();
  });

  it('keeps a record for a directory named __proto__ across save and reload', async () => {
    const { cacheDir } = setup();
    const sc = new StatCache(cacheDir);
    sc.setDir('__proto__', { fp: 'f', oid: OID, size: 0, nfiles: 0, newestMs: 0 });
    expect(sc.getDir('__proto__', 'f')).toMatchObject({ oid: OID });
    await sleep(20);
    sc.save();
    expect(new StatCache(cacheDir).getDir('__proto__', 'f')).toMatchObject({ oid: OID });
  });
});
