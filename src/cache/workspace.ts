import fs from 'node:fs';
import { describeFsError, errnoCode, TdvError } from '../errors.js';
import { type ManifestEntry, serializeManifest, sortEntries } from './manifest.js';
import { CHUNK, hashFile, sha256 } from './hash.js';
import type { Oid } from './oid.js';
import type { StatCache } from './statcache.js';
import { walkFingerprint } from './statcache.js';
import type { ObjectStore } from './store.js';
import { objectLinkOid, walkDir, type WalkEntry } from './walk.js';

/** What is at a tracked path in the workspace, hashed. */
export type TargetState =
  | { kind: 'missing' }
  | { kind: 'file'; oid: Oid; size: number; isexec: boolean; st: fs.Stats }
  | { kind: 'dir'; oid: Oid; size: number; nfiles: number; entries?: ManifestEntry[]; walk: WalkEntry[] };

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
  onBytes?: (n: number) => void;
}

/**
 * Hashes the file or directory at `abs` (repo-relative `rel`), cheapest check
 * first: a directory whose walk fingerprint matches the stat cache costs one
 * walk; otherwise only files whose stat key changed are read.
 */
export async function hashTarget(abs: string, rel: string, opts: HashOptions): Promise<TargetState> {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return { kind: 'missing' };
  if (st.isDirectory()) return hashDirectory(abs, rel, opts);
  const linkOid = st.isSymbolicLink() ? objectLinkOid(abs, opts.store.root + '/files/sha256') : undefined;
  if (!st.isFile() && !linkOid) return { kind: 'missing' };
  const [entry] = await hashEntries([{ rel, abs, st, linkOid }], (e) => e.rel, opts);
  return { kind: 'file', oid: entry!.sha256, size: entry!.size, isexec: entry!.isexec === true, st };
}

async function hashDirectory(abs: string, rel: string, opts: HashOptions): Promise<TargetState> {
  const walk = walkDir(abs, { ignored: opts.ignored, objectsDir: `${opts.store.root}/files/sha256`, onSkip: opts.onSkip });
  const { fp, maxMtimeMs } = walkFingerprint(walk);
  const rec = opts.statCache.getDir(rel, fp);
  const stamp = opts.write ? opts.store.stamp() : undefined;
  if (rec && (!stamp || opts.statCache.isComplete(rel, rec.oid, stamp))) {
    if (!opts.needEntries) return { kind: 'dir', oid: rec.oid, size: rec.size, nfiles: rec.nfiles, walk };
    if (opts.store.has(rec.oid)) return { kind: 'dir', oid: rec.oid, size: rec.size, nfiles: rec.nfiles, entries: opts.store.readManifest(rec.oid), walk };
  }
  const entries = sortEntries(await hashEntries(walk, (e) => `${rel}/${e.rel}`, opts));
  const text = serializeManifest(entries);
  const oid = opts.write ? opts.store.addBufferSync(text, true) : `${sha256(text)}.dir`;
  const size = entries.reduce((n, e) => n + e.size, 0);
  // Objects were just stored, so the stamp taken after storing them proves them present.
  opts.statCache.setDir(rel, { fp, oid, size, nfiles: entries.length, maxMtimeMs, complete: opts.write ? opts.store.stamp() : undefined });
  return { kind: 'dir', oid, size, nfiles: entries.length, entries, walk };
}

/**
 * Hashes walk entries (from the stat cache when possible), storing objects when
 * asked, with bounded concurrency. Returns one manifest entry per walk entry.
 */
async function hashEntries(walk: readonly WalkEntry[], keyOf: (e: WalkEntry) => string, opts: HashOptions): Promise<ManifestEntry[]> {
  const out: ManifestEntry[] = new Array(walk.length);
  const todo: number[] = [];
  walk.forEach((e, i) => {
    if (e.linkOid) {
      out[i] = { relpath: e.rel, sha256: e.linkOid, size: fs.statSync(e.abs).size };
      return;
    }
    const size = e.st.size;
    const isexec = (e.st.mode & 0o100) !== 0;
    const sha = opts.statCache.getFile(keyOf(e), e.st);
    if (sha && (!opts.write || opts.store.has(sha))) out[i] = isexec ? { relpath: e.rel, sha256: sha, size, isexec } : { relpath: e.rel, sha256: sha, size };
    else todo.push(i);
  });
  if (todo.length === 0) return out;
  const record = (i: number, sha: string) => {
    const e = walk[i]!;
    const isexec = (e.st.mode & 0o100) !== 0;
    out[i] = isexec ? { relpath: e.rel, sha256: sha, size: e.st.size, isexec } : { relpath: e.rel, sha256: sha, size: e.st.size };
    opts.statCache.setFile(keyOf(e), e.st, sha);
  };
  // Small files: synchronously, in walk order. Large ones: a bounded async pool,
  // where reading, hashing and copying overlap.
  const large: number[] = [];
  for (const i of todo) {
    const e = walk[i]!;
    if (e.st.size > CHUNK || opts.write === 'move') {
      large.push(i);
      continue;
    }
    const { oid, size } = opts.store.hashSmallSync(e.abs, opts.write === 'store');
    opts.onBytes?.(size);
    if (size !== e.st.size) throw new TdvError('CHANGED_WHILE_ADDING', `${e.abs} changed while it was being read; run the command again when nothing writes to it`);
    record(i, oid);
  }
  if (large.length === 0) return out;
  const { default: pLimit } = await import('p-limit');
  const limit = pLimit(opts.jobs ?? 4);
  await Promise.all(
    large.map((i) =>
      limit(async () => {
        const e = walk[i]!;
        try {
          if (opts.write === 'store') record(i, await opts.store.addFileCopy(e.abs, e.st, opts.onBytes));
          else if (opts.write === 'move') record(i, await opts.store.addFileMove(e.abs, opts.onBytes));
          else record(i, (await hashFile(e.abs, opts.onBytes)).sha256);
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') throw describeFsError(err, e.abs);
          throw err;
        }
      }),
    ),
  );
  return out;
}

/** Files that differ between two manifests, by relpath. */
export interface ManifestDiff {
  added: string[];
  modified: string[];
  deleted: string[];
}

export function diffManifests(oldEntries: readonly ManifestEntry[], newEntries: readonly ManifestEntry[]): ManifestDiff {
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
