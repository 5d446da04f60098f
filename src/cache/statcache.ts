import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Guard } from '../workspace/guard.js';
import { isOid, type Oid } from '../formats/oid.js';
import type { CacheStamp } from './store.js';

/**
 * The stat fields that identify a file version: inode, mtime, ctime, size (and
 * mode, for the executable bit). Times are Node's `mtimeMs`/`ctimeMs` doubles,
 * which keep sub-microsecond resolution (about 0.25 µs today), finer than the
 * kernel's timestamp granularity; BigInt stats would keep exact ns but make a
 * walk of many files markedly slower. `fs.Stats` satisfies this interface.
 */
export interface StatKey {
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  size: number;
  mode: number;
}

/** True when two stat keys name the same file version (mode aside). */
export function sameVersion(a: Omit<StatKey, 'mode'>, b: Omit<StatKey, 'mode'>): boolean {
  return a.ino === b.ino && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs && a.size === b.size;
}

/**
 * A file's stat key and hash, as a shard file holds it, and (only when true)
 * its executable bit as recorded: what a shard that holds a whole version
 * (see `StatCache.shardVersion`) needs to stand for its manifest.
 */
export type FileRec = [ino: number, mtimeMs: number, ctimeMs: number, size: number, sha256: string, isexec?: true];

/** The executable bit a manifest records for a file of this mode (a symlink into the cache never has one). */
export function execOf(mode: number): boolean {
  return (mode & 0o170000) === 0o100000 && (mode & 0o100) !== 0;
}

function fileRec(st: StatKey, sha: string): FileRec {
  return execOf(st.mode) ? [st.ino, st.mtimeMs, st.ctimeMs, st.size, sha, true] : [st.ino, st.mtimeMs, st.ctimeMs, st.size, sha];
}

/** What a tracked directory looked like when its id was last computed. */
export interface DirRec {
  /** Fingerprint of the walk: every file's path and stat key, in walk order. */
  fp: string;
  oid: Oid;
  size: number;
  nfiles: number;
  /** Newest mtime or ctime in the walk, for the racy check. */
  newestMs: number;
  /** The cache's stamp when every object of a version was last seen present. */
  complete?: CacheStamp;
  /**
   * The version `complete` is about, when not `oid`: a modified directory
   * keeps what was known of its recorded version, which `status` and
   * `checkout` ask about (the workspace's own version is not in the cache).
   */
  completeOid?: Oid;
}

/** The shard holding files tracked on their own (not inside a tracked directory). */
export const FILES_SHARD = '.';

interface Shard {
  recs: Map<string, FileRec>;
  /** mtime of the shard file when loaded: the racy threshold. */
  ref: number;
  fresh: Set<string>;
  dirty: boolean;
  /** The version of the tracked directory whose files the shard holds exactly, when known (see `shardVersion`). */
  version?: Oid;
}

const DIRS = 'statcache-dirs.json';
/** The dirs file's format version (2: see OlderStatCache). */
const DIRS_VERSION = 2;

/**
 * Remembers file hashes by stat key so an unchanged file is never hashed
 * twice, and whole tracked directories by a fingerprint of their walk so an
 * unchanged directory costs one walk and no lookups.
 *
 * File records are sharded: one shard per tracked directory (keys relative to
 * it), one for all individually tracked files. A directory's shard is always
 * "the files of its latest full walk", so it is replaced wholesale, which prunes
 * deleted files and lets a checkout write it without reading it.
 *
 * Racy entries: a file modified in the same clock tick as the stat cache was
 * written could keep its (mtime, size) while its content changed. As Git does
 * for its index, an entry is trusted only if the file's mtime and ctime are
 * strictly older than the stat cache file's own mtime; a racy entry is simply
 * re-hashed, and never written back as if it had been checked. ctime is part
 * of the key because a replaced file cannot forge it (rename or `cp -p` over a
 * file keeps mtime but not ctime).
 *
 * The cache is advisory: a damaged file is discarded and rebuilt, and writes
 * are atomic (temp + rename), so concurrent readers never see a torn file.
 */
export class StatCache {
  private readonly dirs = new Map<string, DirRec>();
  private dirsRef = 0;
  private readonly freshDirs = new Set<string>();
  private readonly freshComplete = new Set<string>();
  private dirtyDirs = false;
  private readonly shards = new Map<string, Shard>();
  /** Shard files read but not yet unpacked into `shards` (null: none usable). */
  private readonly packed = new Map<string, { shard: PackedShard; ref: number } | null>();

  private readonly files: { guard: Guard; rel: string };

  /**
   * `dir` holds the stat cache's files. They are written through `files`
   * (the repository's own guard and `dir` relative to it); by default a guard
   * rooted at `dir`'s parent, a directory the caller chose, not one a file named.
   */
  constructor(
    private readonly dir: string,
    private readonly onWarn?: (msg: string) => void,
    files?: { guard: Guard; rel: string },
  ) {
    this.files = files ?? { guard: new Guard(path.dirname(dir), { label: path.dirname(dir) }), rel: path.basename(dir) };
    const loaded = this.read(DIRS);
    const d = loaded && (loaded.json as { dirs?: unknown }).dirs;
    if (loaded && typeof d === 'object' && d !== null) {
      for (const [k, v] of Object.entries(d)) if (isDirRec(v)) this.dirs.set(k, v);
      this.dirsRef = loaded.mtimeMs;
    }
  }

  /** The id of a directory whose walk fingerprint is unchanged and not racy. */
  getDir(rel: string, fp: string): DirRec | undefined {
    const rec = this.dirs.get(rel);
    if (!rec || rec.fp !== fp) return undefined;
    if (!this.freshDirs.has(rel) && !(rec.newestMs < this.dirsRef)) return undefined;
    return rec;
  }

  setDir(rel: string, rec: DirRec): void {
    const prev = this.dirs.get(rel);
    if (rec.complete) this.freshComplete.add(rel);
    else if (prev?.complete) {
      // What was known of a version stays known, whatever the workspace holds now: a
      // modified directory's status asks about the version its pointer records. The
      // mark keeps its own racy check (fresh only if it was made in this session).
      const about = prev.completeOid ?? prev.oid;
      rec = { ...rec, complete: prev.complete };
      if (about !== rec.oid) rec.completeOid = about;
    }
    this.dirs.set(rel, rec);
    this.freshDirs.add(rel);
    this.dirtyDirs = true;
  }

  /**
   * True when every object of directory `rel`'s version `oid` was seen present
   * and the cache's object directories have not changed since (`stamp`). A
   * stamp as recent as the stat cache itself is not trusted (racy, as above).
   * One version per directory is remembered: the last one marked.
   */
  isComplete(rel: string, oid: Oid, stamp: CacheStamp): boolean {
    const rec = this.dirs.get(rel);
    if (rec === undefined || (rec.completeOid ?? rec.oid) !== oid) return false;
    const c = rec.complete;
    return c !== undefined && c.fp === stamp.fp && (this.freshComplete.has(rel) || c.newestMs < this.dirsRef);
  }

  /** Records that every object of `oid` was present at `stamp` (taken before checking), for a directory tdv knows. */
  markComplete(rel: string, oid: Oid, stamp: CacheStamp): void {
    const rec = this.dirs.get(rel);
    if (rec && !this.isComplete(rel, oid, stamp)) {
      rec.complete = stamp;
      if (oid === rec.oid) delete rec.completeOid;
      else rec.completeOid = oid;
      this.freshComplete.add(rel);
      this.dirtyDirs = true;
    }
  }

  /** Forgets a tracked path: its directory record and its shard. */
  forget(rel: string): void {
    if (this.dirs.delete(rel)) this.dirtyDirs = true;
    this.replaceShard(rel, []);
  }

  getFile(shard: string, key: string, st: StatKey): string | undefined {
    const s = this.shard(shard);
    const rec = s.recs.get(key);
    if (!rec || rec[0] !== st.ino || rec[1] !== st.mtimeMs || rec[2] !== st.ctimeMs || rec[3] !== st.size) return undefined;
    if (!s.fresh.has(key) && !(Math.max(st.mtimeMs, st.ctimeMs) < s.ref)) return undefined;
    return rec[4];
  }

  /**
   * What was last recorded for `key`, whatever its stat key now: the inode and
   * hash tdv saw. A file re-hashed to another hash while still that inode was
   * modified in place (see hashEntries' check of linked objects).
   */
  recorded(shard: string, key: string): { ino: number; sha: string } | undefined {
    const rec = this.shard(shard).recs.get(key);
    return rec && { ino: rec[0], sha: rec[4] };
  }

  /** True when `key` was recorded with this size, whatever its times: a hint that its content may be unchanged. */
  knowsSize(shard: string, key: string, size: number): boolean {
    return this.shard(shard).recs.get(key)?.[3] === size;
  }

  setFile(shard: string, key: string, st: StatKey, sha: string): void {
    const s = this.shard(shard);
    s.recs.set(key, fileRec(st, sha));
    s.fresh.add(key);
    s.dirty = true;
    delete s.version; // one record changed: no longer a whole version (callers may pass mode 0)
  }

  /**
   * Replaces a shard's records without reading it (the files of a directory's
   * latest walk). `version`: the records are exactly that version of the
   * directory, every file with its hash and executable bit (the keys are its
   * manifest's relpaths), which lets `status` compare a changed directory
   * with its recorded version without reading the manifest.
   */
  replaceShard(shard: string, records: Iterable<readonly [key: string, st: StatKey, sha: string]>, version?: Oid): void {
    const s: Shard = { recs: new Map(), ref: 0, fresh: new Set(), dirty: true };
    for (const [key, st, sha] of records) {
      s.recs.set(key, fileRec(st, sha));
      s.fresh.add(key);
    }
    if (version !== undefined) s.version = version;
    this.shards.set(shard, s);
  }

  /** The version of its tracked directory that shard `name` holds exactly (see `replaceShard`), if any. */
  shardVersion(name: string): Oid | undefined {
    const packed = this.packedShard(name);
    // (A packed shard's version holds only if every record is usable: unpacking tells.)
    return packed && packed.shard.version === undefined ? undefined : this.shard(name).version;
  }

  /** Every record of shard `name`, trusted or not: check a file with `getFile` before relying on its hash. */
  shardRecords(name: string): ReadonlyMap<string, FileRec> {
    return this.shard(name).recs;
  }

  /** Writes what changed. Advisory: a failure (read-only checkout, full disk) is a warning, not an error. */
  save(): void {
    try {
      this.write();
    } catch (err) {
      this.onWarn?.(`could not save the stat cache in ${this.dir} (${(err as Error).message}); files will be re-hashed next time`);
    }
  }

  private write(): void {
    const { guard, rel } = this.files;
    guard.mkdirp(rel);
    for (const [name, s] of this.shards) {
      if (!s.dirty) continue;
      // A loaded record that failed the racy check was never re-checked: rewriting it
      // with a newer file time would make it trusted. Drop it instead.
      for (const [key, r] of s.recs) {
        if (!s.fresh.has(key) && !(Math.max(r[1], r[2]) < s.ref)) {
          s.recs.delete(key);
          delete s.version; // a file dropped: not the whole version any more
        }
      }
      const file = `${rel}/${shardFile(name)}`;
      if (s.recs.size === 0) guard.remove(file);
      else guard.writeFile(file, encodeShard(name, s.recs, s.version));
      // The JSON shard of tdv before 0.x (replaced by the binary one): never read again.
      guard.removeQuiet(file.replace(/\.bin$/, '.json'));
      s.dirty = false;
    }
    if (this.dirtyDirs) {
      for (const [rel, r] of this.dirs) {
        if (!this.freshDirs.has(rel) && !(r.newestMs < this.dirsRef)) this.dirs.delete(rel);
        else if (r.complete && !this.freshComplete.has(rel) && !(r.complete.newestMs < this.dirsRef)) {
          // Never checked in this session and racy: rewritten under a newer file time it would be trusted.
          delete r.complete;
          delete r.completeOid;
        }
      }
      guard.writeFile(`${rel}/${DIRS}`, JSON.stringify({ v: DIRS_VERSION, dirs: Object.fromEntries(this.dirs) }));
      this.dirtyDirs = false;
    }
  }

  private shard(name: string): Shard {
    let s = this.shards.get(name);
    if (s) return s;
    s = { recs: new Map(), ref: 0, fresh: new Set(), dirty: false };
    const packed = this.packedFile(name);
    this.packed.delete(name);
    if (packed) {
      const { recs, version } = unpackShard(packed.shard);
      s.recs = recs;
      s.ref = packed.ref;
      if (version !== undefined) s.version = version;
    }
    this.shards.set(name, s);
    return s;
  }

  /** Shard `name`'s file, parsed (once), if it is that shard's; a file of another directory (a hash collision of names, a copied file) is a miss. */
  private packedFile(name: string): { shard: PackedShard; ref: number } | undefined {
    let p = this.packed.get(name);
    if (p === undefined) {
      const loaded = this.readBytes(shardFile(name), parseShard);
      p = loaded && loaded.value.shard === name ? { shard: loaded.value, ref: loaded.mtimeMs } : null;
      this.packed.set(name, p);
    }
    return p ?? undefined;
  }

  /**
   * Shard `name` as its file holds it, records not built, with the file's
   * mtime (the racy threshold: a record is trusted only for a file whose
   * mtime and ctime are older). Undefined once the shard was loaded or
   * replaced in this process (ask `shardRecords` then), or when it has no file.
   */
  packedShard(name: string): { shard: PackedShard; ref: number } | undefined {
    return this.shards.has(name) ? undefined : this.packedFile(name);
  }

  private read(name: string): { json: unknown; mtimeMs: number } | undefined {
    const r = this.readBytes(name, (buf) => {
      const json: unknown = JSON.parse(buf.toString('utf8'));
      if (typeof json === 'object' && json !== null && (json as { v?: unknown }).v === 1) throw new OlderStatCache();
      if (typeof json !== 'object' || json === null || (json as { v?: unknown }).v !== DIRS_VERSION) throw new Error('unknown format');
      return json;
    });
    return r && { json: r.value, mtimeMs: r.mtimeMs };
  }

  /** One of the stat cache's files, decoded; undefined (with a warning when damaged) when absent or unusable. */
  private readBytes<T>(name: string, decode: (buf: Buffer) => T): { value: T; mtimeMs: number } | undefined {
    const file = path.join(this.dir, name);
    let fd: number;
    try {
      // Never through a symlink, never blocking on a FIFO: the file is tdv's, but a clone or a
      // careless hand could have put something else there.
      fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    } catch {
      return undefined;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > MAX_STATCACHE_BYTES) throw new Error(`larger than ${MAX_STATCACHE_BYTES} bytes`);
      return { value: decode(fs.readFileSync(fd)), mtimeMs: st.mtimeMs };
    } catch (err) {
      if (err instanceof OlderStatCache) return undefined;
      this.onWarn?.(`ignoring damaged stat cache ${file} (${(err as Error).message}); files will be re-hashed`);
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** A stat cache file larger than this is ignored (about 2.5 million files' records). */
const MAX_STATCACHE_BYTES = 256 << 20;

function shardFile(name: string): string {
  return name === FILES_SHARD ? 'statcache-files.bin' : `statcache-files-${createHash('sha1').update(name).digest('hex').slice(0, 16)}.bin`;
}

/*
 * A shard file is binary: a walk of 20,000 files would otherwise spend most of
 * a changed-directory `status` in JSON.parse and JSON.stringify of 20,000
 * small arrays. Layout (little-endian):
 *   0  "TDVSC\x04\n\0"   magic and version
 *   8  u32 count, u32 bytes of the shard name, u32 bytes of the keys, u32 bytes of the version
 *  24  f64[count * 4]     ino, mtimeMs, ctimeMs, size of each record
 *   .  u8[count * 33]     each record's object id: 32 bytes of SHA-256, then flags: 1 for a
 *                         directory (".dir"), 2 for a file recorded executable
 *   .  the shard name (UTF-8)
 *   .  the keys (UTF-8), each ended by NUL
 *   .  the version the records are exactly (an object id, ASCII), or nothing
 *   .  20 bytes: SHA-1 of everything before
 * (Files of earlier tdv have no version and no executable flags: 0 bytes, and
 * they read as shards that hold no known version.)
 * Keys are relative paths (never NUL). Object ids are stored as bytes, so what
 * is read back is an id by construction. Anything that does not add up is a
 * damaged file, discarded and rebuilt.
 */
const SHARD_MAGIC = Buffer.from('TDVSC\x04\n\0', 'latin1');

/**
 * A stat cache file of an earlier version: discarded without a warning (files are hashed
 * again). Version 4 and dirs v2: shards written before the walk/manifest pairing fix
 * (workspace.ts) can hold one file's hash under another's stat key, so none is trusted.
 */
class OlderStatCache extends Error {}
const SHARD_HEAD = 24;
const OID_BYTES = 33;

/** The bytes of a shard file. */
export function encodeShard(name: string, recs: ReadonlyMap<string, FileRec>, version?: Oid): Buffer {
  const n = recs.size;
  const nameBuf = Buffer.from(name, 'utf8');
  const verBuf = Buffer.from(version ?? '', 'latin1');
  const keys: string[] = new Array(n);
  let i = 0;
  for (const k of recs.keys()) keys[i++] = k;
  const keyBuf = Buffer.from(n === 0 ? '' : `${keys.join('\0')}\0`, 'utf8');
  const oidsAt = SHARD_HEAD + n * 32;
  const nameAt = oidsAt + n * OID_BYTES;
  const end = nameAt + nameBuf.length + keyBuf.length + verBuf.length;
  const buf = Buffer.alloc(end + 20);
  SHARD_MAGIC.copy(buf, 0);
  buf.writeUInt32LE(n, 8);
  buf.writeUInt32LE(nameBuf.length, 12);
  buf.writeUInt32LE(keyBuf.length, 16);
  buf.writeUInt32LE(verBuf.length, 20);
  const nums = new Float64Array(n * 4);
  i = 0;
  for (const r of recs.values()) {
    const j = i * 4;
    nums[j] = r[0];
    nums[j + 1] = r[1];
    nums[j + 2] = r[2];
    nums[j + 3] = r[3];
    const sha = r[4];
    // Only object ids are recorded; anything else would not read back as itself.
    if (!isOid(sha)) throw new Error(`internal: stat cache record ${JSON.stringify(keys[i])} has no object id`);
    const at = oidsAt + i * OID_BYTES;
    buf.write(sha, at, 32, 'hex');
    buf[at + 32] = (sha.length === 64 ? 0 : 1) | (r[5] === true ? 2 : 0);
    i++;
  }
  buf.set(new Uint8Array(nums.buffer), SHARD_HEAD);
  nameBuf.copy(buf, nameAt);
  keyBuf.copy(buf, nameAt + nameBuf.length);
  verBuf.copy(buf, nameAt + nameBuf.length + keyBuf.length);
  createHash('sha1').update(buf.subarray(0, end)).digest().copy(buf, end);
  return buf;
}

/**
 * A shard file checked whole (format, length, checksum, names) and split into
 * its parts, its records not yet built: comparing a whole walk with a shard
 * needs no map of 20,000 names and hashes (see `StatCache.packedShard`).
 */
export interface PackedShard {
  shard: string;
  count: number;
  /** ino, mtimeMs, ctimeMs, size of each record. */
  nums: Float64Array;
  /** Each record's 33 bytes of object id and flags (see the layout above). */
  oids: Buffer;
  /** The keys, each ended by NUL, in record order. */
  keys: string;
  version?: Oid;
}

/** Checks a shard file and splits it into its parts; throws on anything malformed (the caller discards the file). */
export function parseShard(buf: Buffer): PackedShard {
  if (buf.length >= 6 && buf.subarray(0, 5).toString('latin1') === 'TDVSC' && buf[5]! < SHARD_MAGIC[5]!) throw new OlderStatCache();
  if (buf.length < SHARD_HEAD + 20 || !buf.subarray(0, 8).equals(SHARD_MAGIC)) throw new Error('unknown format');
  const n = buf.readUInt32LE(8);
  const nameLen = buf.readUInt32LE(12);
  const keyLen = buf.readUInt32LE(16);
  const verLen = buf.readUInt32LE(20);
  const oidsAt = SHARD_HEAD + n * 32;
  const nameAt = oidsAt + n * OID_BYTES;
  const keysEnd = nameAt + nameLen + keyLen;
  const end = keysEnd + verLen;
  if (end + 20 !== buf.length) throw new Error('truncated or padded');
  if (!createHash('sha1').update(buf.subarray(0, end)).digest().equals(buf.subarray(end))) throw new Error('checksum mismatch');
  // Copied out: a Buffer from readFileSync need not be 8-byte aligned for a Float64Array view.
  const nums = new Float64Array(n * 4);
  new Uint8Array(nums.buffer).set(buf.subarray(SHARD_HEAD, oidsAt));
  const shard = buf.toString('utf8', nameAt, nameAt + nameLen);
  const keys = buf.toString('utf8', nameAt + nameLen, keysEnd);
  // Exactly n names, each ended by NUL.
  let names = 0;
  for (let i = keys.indexOf('\0'); i !== -1; i = keys.indexOf('\0', i + 1)) names++;
  if (names !== n || (n > 0 && !keys.endsWith('\0')) || (n === 0 && keys !== '')) throw new Error('wrong number of names');
  const version = verLen === 0 ? undefined : buf.toString('latin1', keysEnd, end);
  if (version !== undefined && !isOid(version)) throw new Error('unknown version');
  const p: PackedShard = { shard, count: n, nums, oids: buf.subarray(oidsAt, nameAt), keys };
  if (version !== undefined) p.version = version;
  return p;
}

/** Whether record `i` of a packed shard is usable: a plain number quadruple and known flags (a damaged one is never trusted). */
export function packedRecordOk(p: PackedShard, i: number): boolean {
  const j = i * 4;
  const flag = p.oids[i * OID_BYTES + 32]!;
  return flag <= 3 && Number.isFinite(p.nums[j]! + p.nums[j + 1]! + p.nums[j + 2]! + p.nums[j + 3]!);
}

/** Record `i`'s recorded executable bit. */
export function packedExec(p: PackedShard, i: number): boolean {
  return (p.oids[i * OID_BYTES + 32]! & 2) !== 0;
}

/** Record `i`'s object id and recorded executable bit. */
export function packedOid(p: PackedShard, i: number): { sha: Oid; isexec: boolean } {
  const at = i * OID_BYTES;
  const flag = p.oids[at + 32]!;
  const hex = p.oids.toString('hex', at, at + 32);
  return { sha: (flag & 1) !== 0 ? `${hex}.dir` : hex, isexec: (flag & 2) !== 0 };
}

/** The records of a packed shard, by key; `version` only when every record was usable. */
function unpackShard(p: PackedShard): { shard: string; recs: Map<string, FileRec>; version?: Oid } {
  const { count: n, nums, oids } = p;
  const keys = n === 0 ? [] : p.keys.split('\0');
  const recs = new Map<string, FileRec>();
  let skipped = false;
  for (let i = 0; i < n; i++) {
    const j = i * 4;
    const at = i * OID_BYTES;
    const flag = oids[at + 32]!;
    // A record that is not a plain number quadruple with an object id is skipped, never trusted.
    if (!packedRecordOk(p, i)) {
      skipped = true;
      continue;
    }
    const hex = oids.toString('hex', at, at + 32);
    const sha = (flag & 1) !== 0 ? `${hex}.dir` : hex;
    recs.set(keys[i]!, (flag & 2) !== 0 ? [nums[j]!, nums[j + 1]!, nums[j + 2]!, nums[j + 3]!, sha, true] : [nums[j]!, nums[j + 1]!, nums[j + 2]!, nums[j + 3]!, sha]);
  }
  // A shard missing a record is no longer the whole version.
  return p.version === undefined || skipped ? { shard: p.shard, recs } : { shard: p.shard, recs, version: p.version };
}

/** A shard file's name and records; throws on anything malformed (the caller discards the file). */
export function decodeShard(buf: Buffer): { shard: string; recs: Map<string, FileRec>; version?: Oid } {
  return unpackShard(parseShard(buf));
}

/** Records from disk are checked field by field: a damaged one is a miss, never an exception. */
function isDirRec(v: unknown): v is DirRec {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const c = r.complete as Record<string, unknown> | undefined | null;
  return (
    typeof r.fp === 'string' &&
    typeof r.oid === 'string' &&
    typeof r.size === 'number' &&
    typeof r.nfiles === 'number' &&
    typeof r.newestMs === 'number' &&
    (r.completeOid === undefined || typeof r.completeOid === 'string') &&
    (c === undefined || (typeof c === 'object' && c !== null && typeof c.fp === 'string' && typeof c.newestMs === 'number'))
  );
}

/**
 * Fingerprint of a directory walk: every path and stat key, in walk order.
 * Numbers are hashed as raw doubles in one buffer rather than formatted per
 * file, which matters when this is all `status` does for an unchanged tree.
 * Fed file by file, so a walk need not keep its entries to be fingerprinted.
 */
export class Fingerprint {
  private readonly h = createHash('sha1');
  private nums = new Float64Array(5 * 1024);
  private names = '';
  private newest = 0;
  count = 0;

  add(rel: string, e: StatKey): void {
    this.names += `${rel}\0`;
    if (this.names.length > 65536) {
      this.h.update(this.names);
      this.names = '';
    }
    let j = this.count * 5;
    if (j + 5 > this.nums.length) {
      const grown = new Float64Array(this.nums.length * 2);
      grown.set(this.nums);
      this.nums = grown;
    }
    const n = this.nums;
    n[j++] = e.ino;
    n[j++] = e.mtimeMs;
    n[j++] = e.ctimeMs;
    n[j++] = e.size;
    n[j] = e.mode;
    // The newest mtime or ctime, for the racy check.
    if (e.mtimeMs > this.newest) this.newest = e.mtimeMs;
    if (e.ctimeMs > this.newest) this.newest = e.ctimeMs;
    this.count++;
  }

  /** The entries added, given their names in order (and the symlinks into the cache by index). */
  entries(names: readonly string[], links: ReadonlyMap<number, Oid>): (StatKey & { rel: string; linkOid?: Oid })[] {
    const n = this.nums;
    return names.map((rel, i) => {
      const j = i * 5;
      const e: StatKey & { rel: string; linkOid?: Oid } = { rel, ino: n[j]!, mtimeMs: n[j + 1]!, ctimeMs: n[j + 2]!, size: n[j + 3]!, mode: n[j + 4]! };
      const link = links.get(i);
      if (link) e.linkOid = link;
      return e;
    });
  }

  digest(): { fp: string; newestMs: number } {
    this.h.update(this.names);
    this.h.update(new Uint8Array(this.nums.buffer, 0, this.count * 5 * 8));
    return { fp: this.h.digest('hex'), newestMs: this.newest };
  }
}

/** The `Fingerprint` of a list of walk entries. */
export function walkFingerprint(entries: readonly (StatKey & { rel: string })[]): { fp: string; newestMs: number } {
  const f = new Fingerprint();
  for (const e of entries) f.add(e.rel, e);
  return f.digest();
}
