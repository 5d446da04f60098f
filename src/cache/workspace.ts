import fs from 'node:fs';
import { errnoCode, TdvError, vanished } from '../errors.js';
import { compareCodePoints, type ManifestEntry, serializeManifest, sortEntries } from '../formats/manifest.js';
import { CHUNK, hashHandle, READ_FLAGS, sha256 } from './hash.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { execOf, FILES_SHARD, type PackedShard, packedExec, packedOid, packedRecordOk, sameVersion, type StatCache, type StatKey, walkFingerprint } from './statcache.js';
import type { Tasks } from './tasks.js';
import type { Progress } from '../util/progress.js';
import type { Moved, ObjectStore } from './store.js';
import { isLinkOf } from './linked.js';
import { openForWriting } from './writers.js';
import { entryPath, fingerprintWalk, objectLinkOid, walkDir, type WalkEntry } from './walk.js';

/** What is at a tracked path in the workspace, hashed. */
export type TargetState =
  | { kind: 'missing' }
  /** A symlink (not tdv's own), socket, FIFO or device: never followed, never overwritten silently. */
  | { kind: 'other' }
  | { kind: 'file'; oid: Oid; size: number; isexec: boolean; st: fs.Stats; inUse?: ReadonlySet<string> }
  /** `walk` is absent only when the directory matched its stat-cache fingerprint and neither `write` nor `needEntries` was asked. */
  | { kind: 'dir'; oid: Oid; size: number; nfiles: number; entries?: ManifestEntry[]; walk?: WalkEntry[]; inUse?: ReadonlySet<string> };

/*
 * `inUse` (with write: 'move' only): files another process held open for
 * writing, by walk rel (for a file target, its rel). They were stored as
 * copies and must stay as they are in the workspace: replacing one by a link
 * to its object would send that process's later writes into a file nobody
 * sees (or, were it linked, into the cache).
 */

export interface HashOptions {
  statCache: StatCache;
  store: ObjectStore;
  /** `store`: also put every object into the cache (tdv add); `move` links files in instead of copying. */
  write?: 'store' | 'move';
  /** Relative to the walked directory; true leaves a path out. */
  ignored?: (rel: string, isDir: boolean) => boolean;
  /** Need the per-file entries even when the directory is unchanged (checkout, diff). */
  needEntries?: boolean;
  jobs?: number;
  onSkip?: (abs: string, reason: string) => void;
  /** Hears of the files to hash and of the files and bytes done. */
  progress?: Progress;
  /**
   * Hears of a cache object found damaged: a workspace file that was a hard
   * link of it (as tdv recorded) was modified in place, which modified the
   * object. The object has been moved to quarantine (`ObjectStore.quarantine`),
   * so it is never linked again; `damagedMessage` words it for people.
   */
  onDamaged?: (abs: string, oid: Oid, quarantined: string | undefined) => void;
}

/**
 * Hashes the file or directory at `abs` (repo-relative `rel`), cheapest check
 * first: a directory whose walk fingerprint matches the stat cache costs one
 * walk; otherwise only files whose stat key changed are read.
 */
export async function hashTarget(abs: string, rel: string, opts: HashOptions): Promise<TargetState> {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return { kind: 'missing' };
  // Without `against`, never 'differs'.
  if (st.isDirectory()) return hashDirectory(abs, rel, opts) as Promise<TargetState>;
  const linkOid = st.isSymbolicLink() ? objectLinkOid(abs, opts.store.objectsDir) : undefined;
  if (!st.isFile() && !linkOid) return { kind: 'other' };
  const walk: WalkEntry = { rel, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, size: st.size, mode: st.mode, linkOid };
  const inUse = new Set<string>();
  const [entry] = await hashEntries(abs.slice(0, abs.length - rel.length - 1), [walk], FILES_SHARD, opts, inUse);
  const state = { kind: 'file', oid: entry!.sha256, size: entry!.size, isexec: entry!.isexec === true, st } as const;
  return inUse.size > 0 ? { ...state, inUse } : state;
}

async function hashDirectory(abs: string, rel: string, opts: HashOptions, against?: Oid): Promise<TargetState | Differs> {
  const walkOpts = { ignored: opts.ignored, objectsDir: opts.store.objectsDir, onSkip: opts.onSkip };
  let walk: WalkEntry[];
  let fp: string;
  let newestMs: number;
  if (!opts.write && !opts.needEntries) {
    // Cheapest check first: a fingerprint that builds the walk's entries only if the
    // directory changed (an unchanged one is all `status` usually sees).
    const f = fingerprintWalk(abs, walkOpts);
    const rec = opts.statCache.getDir(rel, f.fp);
    if (rec) return { kind: 'dir', oid: rec.oid, size: rec.size, nfiles: rec.nfiles };
    ({ fp, newestMs } = f);
    walk = f.entries();
  } else {
    walk = walkDir(abs, walkOpts);
    ({ fp, newestMs } = walkFingerprint(walk));
  }
  const rec = opts.statCache.getDir(rel, fp);
  const stamp = opts.write ? opts.store.stamp() : undefined;
  if (rec && (!stamp || opts.statCache.isComplete(rel, rec.oid, stamp))) {
    if (!opts.needEntries) return { kind: 'dir', oid: rec.oid, size: rec.size, nfiles: rec.nfiles, walk };
    if (opts.store.has(rec.oid)) return { kind: 'dir', oid: rec.oid, size: rec.size, nfiles: rec.nfiles, entries: opts.store.readManifest(rec.oid), walk };
  }
  if (against !== undefined && !opts.write && !opts.needEntries) {
    const files = await diffWithShard(abs, rel, walk, against, opts);
    if (files) return { kind: 'differs', files };
  }
  const inUse = new Set<string>();
  const unsorted = await hashEntries(abs, walk, rel, opts, inUse);
  // A sorted copy: sortEntries sorts in place, and the shard below pairs walk entry i with
  // unsorted[i]. Sorted in place, a directory `x/` beside `x.txt` (the walk lists x/... first,
  // the manifest x.txt first) swapped their hashes in the stat cache, and the next `tdv add`
  // recorded one file's hash for the other (found by the adversarial pass of per-item stages).
  const entries = sortEntries([...unsorted]);
  const text = serializeManifest(entries);
  const oid = opts.write ? opts.store.addBufferSync(text, true) : `${sha256(text)}.dir`;
  // The shard becomes exactly this walk's files (which also forgets deleted ones): version `oid`.
  opts.statCache.replaceShard(
    rel,
    walk.map((e, i) => [e.rel, e, unsorted[i]!.sha256] as const),
    oid,
  );
  const size = entries.reduce((n, e) => n + e.size, 0);
  // Objects were just stored, so a stamp taken after storing them proves them present.
  opts.statCache.setDir(rel, { fp, oid, size, nfiles: entries.length, newestMs, complete: opts.write ? opts.store.stamp() : undefined });
  return inUse.size > 0 ? { kind: 'dir', oid, size, nfiles: entries.length, entries, walk, inUse } : { kind: 'dir', oid, size, nfiles: entries.length, entries, walk };
}

/** A directory that differs from the version it was compared with (`compareTarget`), and how. */
export interface Differs {
  kind: 'differs';
  files: ManifestDiff;
}

/**
 * `hashTarget` for a status: compares what is at `abs` with version `want`.
 * A changed directory whose stat-cache shard holds exactly `want` (see
 * `StatCache.shardVersion`) is compared with that shard, file by file, so
 * only its changed files are hashed: no manifest is read, none is built, and
 * the stat cache is not rewritten. The answer is then `differs` (with the
 * files) rather than the directory's new id. Otherwise as `hashTarget`.
 */
export async function compareTarget(abs: string, rel: string, want: Oid, opts: HashOptions): Promise<TargetState | Differs> {
  if (!isDirOid(want) || opts.write || opts.needEntries) return hashTarget(abs, rel, opts);
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st?.isDirectory()) return hashTarget(abs, rel, opts);
  return hashDirectory(abs, rel, opts, want);
}

/**
 * Re-hashing more than this many files (or bytes) on every status would cost
 * more than recording the changed directory once: `diffWithShard` then leaves
 * it to the full hash, whose records the next status reuses.
 */
const SHARD_DIFF_MAX_FILES = 256;
const SHARD_DIFF_MAX_BYTES = 16 << 20;

/**
 * The files of `walk` (directory `rel`, changed since its fingerprint) that
 * differ from version `want`, from the shard when it holds exactly `want`:
 * a file whose stat key matches its record (and is not racy) is that
 * record's content; the others are hashed (checking, as `hashEntries` does,
 * for a cache object modified through a hard link). Undefined when the shard
 * cannot answer, when too much would be re-hashed, or when nothing differs
 * (the directory is `want` again: the full hash records that).
 */
async function diffWithShard(abs: string, rel: string, walk: readonly WalkEntry[], want: Oid, opts: HashOptions): Promise<ManifestDiff | undefined> {
  const sc = opts.statCache;
  const packed = sc.packedShard(rel);
  if (packed) {
    if (packed.shard.version !== want) return undefined;
    const d = await diffAligned(abs, rel, walk, packed.shard, packed.ref, opts);
    if (d !== null) return d;
  }
  if (sc.shardVersion(rel) !== want) return undefined;
  const recs = sc.shardRecords(rel);
  const d: ManifestDiff = { added: [], modified: [], deleted: [] };
  const rehash: WalkEntry[] = [];
  let bytes = 0;
  let seen = 0;
  for (const e of walk) {
    const r = recs.get(e.rel);
    if (r === undefined) {
      d.added.push(e.rel);
      continue;
    }
    seen++;
    const isexec = execOf(e.mode);
    if (e.linkOid !== undefined) {
      if (e.linkOid !== r[4] || r[5] === true) d.modified.push(e.rel);
    } else if (sc.getFile(rel, e.rel, e) !== undefined) {
      if (isexec !== (r[5] === true)) d.modified.push(e.rel);
    } else {
      rehash.push(e);
      bytes += e.size;
      if (rehash.length > SHARD_DIFF_MAX_FILES || bytes > SHARD_DIFF_MAX_BYTES) return undefined;
    }
  }
  if (seen < recs.size) {
    const names = new Set(walk.map((e) => e.rel));
    for (const key of recs.keys()) if (!names.has(key)) d.deleted.push(key);
  }
  if (rehash.length > 0) {
    for (const h of await hashEntries(abs, rehash, rel, opts, new Set())) {
      const r = recs.get(h.relpath)!;
      if (h.sha256 !== r[4] || (h.isexec === true) !== (r[5] === true)) d.modified.push(h.relpath);
    }
  }
  if (d.added.length + d.modified.length + d.deleted.length === 0) return undefined;
  // In manifest order, as diffManifests lists them.
  for (const list of [d.added, d.modified, d.deleted]) list.sort(compareCodePoints);
  return d;
}

/**
 * `diffWithShard` without building the shard's records, when the walk lists
 * exactly the shard's names in the same order (what a directory whose files
 * were only modified gives: readdir order is stable): records and walk
 * entries are then compared by index, numbers with numbers. Null when they
 * do not line up (or a record is damaged): ask the records by name instead.
 */
async function diffAligned(abs: string, rel: string, walk: readonly WalkEntry[], p: PackedShard, ref: number, opts: HashOptions): Promise<ManifestDiff | undefined | null> {
  const n = walk.length;
  if (p.count !== n || n === 0) return null;
  // The same names in the same order: each walk name where the shard's next key starts (no string built).
  const keys = p.keys;
  let at = 0;
  for (const e of walk) {
    if (!keys.startsWith(e.rel, at) || keys.charCodeAt(at + e.rel.length) !== 0) return null;
    at += e.rel.length + 1;
  }
  if (at !== keys.length) return null;
  const modified: string[] = [];
  const rehash: number[] = [];
  let bytes = 0;
  const nums = p.nums;
  for (let i = 0; i < n; i++) {
    if (!packedRecordOk(p, i)) return null;
    const e = walk[i]!;
    const j = i * 4;
    if (e.linkOid !== undefined) {
      const r = packedOid(p, i);
      if (e.linkOid !== r.sha || r.isexec) modified.push(e.rel);
    } else if (nums[j] === e.ino && nums[j + 1] === e.mtimeMs && nums[j + 2] === e.ctimeMs && nums[j + 3] === e.size && Math.max(e.mtimeMs, e.ctimeMs) < ref) {
      // That very file version (and not racy): the record's content; only the mode may differ.
      if (execOf(e.mode) !== packedExec(p, i)) modified.push(e.rel);
    } else {
      rehash.push(i);
      bytes += e.size;
      if (rehash.length > SHARD_DIFF_MAX_FILES || bytes > SHARD_DIFF_MAX_BYTES) return undefined;
    }
  }
  if (rehash.length > 0) {
    const recorded = (i: number) => packedOid(p, rehash[i]!);
    const hashed = await hashEntries(
      abs,
      rehash.map((i) => walk[i]!),
      rel,
      opts,
      new Set(),
      (k) => ({ ino: nums[rehash[k]! * 4]!, sha: recorded(k).sha }),
    );
    hashed.forEach((h, k) => {
      const r = recorded(k);
      if (h.sha256 !== r.sha || (h.isexec === true) !== r.isexec) modified.push(h.relpath);
    });
  }
  if (modified.length === 0) return undefined;
  return { added: [], modified: modified.sort(compareCodePoints), deleted: [] };
}

/**
 * Hashes walk entries under `base` (from the stat cache's `shard` when
 * possible), storing objects when asked. Returns one manifest entry per walk
 * entry, in walk order.
 */
async function hashEntries(
  base: string,
  walk: readonly WalkEntry[],
  shard: string,
  opts: HashOptions,
  inUse: Set<string>,
  /** Given: every entry is to be hashed (the stat cache is not asked), and this is what was recorded for entry `i`. */
  recorded?: (i: number) => { ino: number; sha: string },
): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = new Array(walk.length);
  const sc = opts.statCache;
  const entry = (i: number, sha: string) => {
    const e = walk[i]!;
    out[i] = (e.mode & 0o100) !== 0 ? { relpath: e.rel, sha256: sha, size: e.size, isexec: true } : { relpath: e.rel, sha256: sha, size: e.size };
  };
  // A hashed file is recorded; a directory's shard is replaced wholesale by the caller.
  const record = (i: number, sha: string) => {
    entry(i, sha);
    checkLinkedObject(base, walk[i]!, recorded ? recorded(i) : opts.statCache.recorded(shard, walk[i]!.rel), sha, opts);
    if (shard === FILES_SHARD) sc.setFile(shard, walk[i]!.rel, walk[i]!, sha);
  };
  const small: number[] = [];
  const large: number[] = [];
  for (let i = 0; i < walk.length; i++) {
    const e = walk[i]!;
    if (e.linkOid) {
      // tdv's own symlink into the cache: its target names the content.
      out[i] = { relpath: e.rel, sha256: e.linkOid, size: fs.statSync(entryPath(base, e.rel)).size };
      continue;
    }
    const sha = recorded ? undefined : sc.getFile(shard, e.rel, e);
    if (sha && (!opts.write || opts.store.has(sha))) {
      entry(i, sha);
      continue;
    }
    if (e.size > CHUNK || opts.write === 'move') large.push(i);
    else small.push(i);
  }
  const progress = opts.progress;
  const sizeOf = (list: number[]) => list.reduce((n, i) => n + walk[i]!.size, 0);
  const smallBytes = sizeOf(small);
  progress?.plan(small.length + large.length, smallBytes + sizeOf(large));
  const onBytes = progress && ((n: number) => progress.bytes(n));
  if (small.length > 0) {
    // Small files with synchronous calls (for many small files the per-call cost of
    // async I/O exceeds the I/O itself), on two threads when there are many.
    // Loaded here: worker_threads is a cost a status of unchanged data need not pay.
    const { inTwoThreads, ItemError } = await import('./pool.js');
    const shas = await inTwoThreads(
      'hash',
      { root: opts.store.root, tmpDir: opts.store.tmpDir, store: opts.write === 'store' },
      small.map((i) => {
        const e = walk[i]!;
        return [entryPath(base, e.rel), e.size, e.ino, e.mtimeMs, e.ctimeMs] as Tasks['hash']['item'];
      }),
      // Bytes by the average size: the count comes from both threads, without item indices.
      { onDone: progress && ((n) => (progress.files(n), progress.bytes((n * smallBytes) / small.length))) },
    ).catch((err: unknown) => {
      if (!(err instanceof ItemError)) throw err;
      const abs = entryPath(base, walk[small[err.index]!]!.rel);
      throw err.code === 'ENOENT' ? vanished(abs, err) : new TdvError('IO_ERROR', `cannot read ${abs}: ${err.message}`);
    });
    small.forEach((i, k) => record(i, shas[k]!));
  }
  if (large.length === 0) return out;
  const moved = new Map<number, Moved>();
  // Large files: a bounded async pool, where reading, hashing and copying overlap.
  const { default: pLimit } = await import('p-limit');
  const limit = pLimit(opts.jobs ?? 4);
  // On the first failure, start nothing more and let the running ones finish
  // before returning: the caller releases the lock right after.
  const settled = await Promise.allSettled(
    large.map((i) =>
      limit(async () => {
        const e = walk[i]!;
        const abs = entryPath(base, e.rel);
        try {
          if (opts.write === 'store') record(i, await opts.store.addFileCopy(abs, e, onBytes, sc.knowsSize(shard, e.rel, e.size)));
          else if (opts.write === 'move') record(i, await opts.store.addFileMove(abs, e, onBytes, (m) => moved.set(i, m)));
          else record(i, await hashWalked(abs, e, onBytes));
          progress?.files();
        } catch (err) {
          limit.clearQueue();
          if (errnoCode(err) === 'ENOENT') throw vanished(abs, err);
          throw err;
        }
      }),
    ),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  if (moved.size > 0) await copyInUse(base, walk, moved, out, opts, inUse);
  return out;
}

/**
 * Files moved into the cache that another process still holds open for
 * writing (or maps shared and writable) would let it write into the object.
 * The scan runs after every object of the batch was made read-only, so a
 * writer that opened a file meanwhile is seen too. Each such file is taken
 * back (object removed, mode restored) and stored as a copy instead, hashed
 * afresh; it is reported in `inUse` so that it is left as it is.
 */
async function copyInUse(base: string, walk: readonly WalkEntry[], moved: Map<number, Moved>, out: ManifestEntry[], opts: HashOptions, inUse: Set<string>): Promise<void> {
  const busy = openForWriting([...moved.values()]);
  if (!busy) return; // cannot be known here (not Linux): see the README's cache section
  for (const [i, m] of moved) {
    if (!busy.has(`${m.dev}:${m.ino}`)) continue;
    const e = walk[i]!;
    const abs = entryPath(base, e.rel);
    opts.store.unmove(abs, out[i]!.sha256, m);
    // Our own chmods changed its ctime: it is checked against its stat from now on.
    const now = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!now || now.ino !== e.ino || now.size !== e.size || now.mtimeMs !== e.mtimeMs)
      throw new TdvError('CHANGED_WHILE_ADDING', `${abs} changed while it was being added; run the command again when nothing writes to it`);
    // Its stat cache record (under the walk's stat key, which our chmods made stale) can never match again.
    out[i] = { ...out[i]!, sha256: await opts.store.addFileCopy(abs, now) };
    inUse.add(e.rel);
  }
}

/**
 * A file re-hashed because its stat changed: if tdv recorded it as a hard link
 * of the object it then hashed to (same inode) and its bytes now hash to
 * something else, it was modified in place, and so was the object, which no
 * longer matches its name. That object is quarantined, so that no checkout
 * links or copies the altered bytes to another path, and `onDamaged` is told.
 */
function checkLinkedObject(base: string, e: WalkEntry, prev: { ino: number; sha: string } | undefined, sha: string, opts: HashOptions): void {
  if (!prev || prev.ino !== e.ino || prev.sha === sha || isDirOid(prev.sha)) return;
  const abs = entryPath(base, e.rel);
  if (!isLinkOf(abs, opts.store.pathOf(prev.sha))) return;
  opts.onDamaged?.(abs, prev.sha, opts.store.quarantine(prev.sha));
}

/**
 * Hashes a walked file that is to be recorded under its walk stat key `st`:
 * opened without following a symlink, and checked to be that very version
 * before and after the read, so that the stat cache never pairs a stat key
 * with bytes of another version.
 */
async function hashWalked(abs: string, st: Omit<StatKey, 'mode'>, onBytes?: (n: number) => void): Promise<string> {
  const changed = () => new TdvError('CHANGED_WHILE_ADDING', `${abs} changed while it was being read; run the command again when nothing writes to it`);
  let fh: fs.promises.FileHandle;
  try {
    fh = await fs.promises.open(abs, READ_FLAGS);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw changed();
    throw err;
  }
  try {
    if (!sameVersion(await fh.stat(), st)) throw changed();
    const { sha256: sha, size } = await hashHandle(fh, { onBytes, limit: st.size });
    if (size !== st.size || !sameVersion(await fh.stat(), st)) throw changed();
    return sha;
  } finally {
    await fh.close();
  }
}

/** Files that differ between two manifests, by relpath. */
export interface ManifestDiff {
  added: string[];
  modified: string[];
  deleted: string[];
}

export function diffManifests(oldEntries: readonly ManifestEntry[], newEntries: readonly ManifestEntry[]): ManifestDiff {
  const merged = diffSorted(oldEntries, newEntries);
  if (merged) return merged;
  const old = new Map(oldEntries.map((e) => [e.relpath, e]));
  const d: ManifestDiff = { added: [], modified: [], deleted: [] };
  const seen = new Set<string>();
  for (const e of newEntries) {
    seen.add(e.relpath);
    const o = old.get(e.relpath);
    if (!o) d.added.push(e.relpath);
    else if (o.sha256 !== e.sha256 || !o.isexec !== !e.isexec) d.modified.push(e.relpath);
  }
  for (const e of oldEntries) if (!seen.has(e.relpath)) d.deleted.push(e.relpath);
  return d;
}

/**
 * `diffManifests` of two lists sorted by relpath (manifests are, and so is a
 * hashed directory's entries): one merge, no map of 20,000 names. Undefined
 * when either list turns out not to be sorted (or holds a name twice).
 */
function diffSorted(a: readonly ManifestEntry[], b: readonly ManifestEntry[]): ManifestDiff | undefined {
  const d: ManifestDiff = { added: [], modified: [], deleted: [] };
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    const c = x === undefined ? 1 : y === undefined ? -1 : compareCodePoints(x.relpath, y.relpath);
    if (c < 0) {
      d.deleted.push(x!.relpath);
      i++;
    } else if (c > 0) {
      d.added.push(y!.relpath);
      j++;
    } else {
      if (x!.sha256 !== y!.sha256 || !x!.isexec !== !y!.isexec) d.modified.push(x!.relpath);
      i++;
      j++;
    }
    // Strictly increasing on both sides, or this was not a merge of sorted lists.
    if ((c <= 0 && i < a.length && i > 0 && compareCodePoints(a[i - 1]!.relpath, a[i]!.relpath) >= 0) || (c >= 0 && j < b.length && j > 0 && compareCodePoints(b[j - 1]!.relpath, b[j]!.relpath) >= 0))
      return undefined;
  }
  return d;
}
