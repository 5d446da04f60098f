import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, describeFsError, MissingObjectsError } from '../errors.js';
import { LinkBatchError, linkAll } from '../cache/link-pool.js';
import type { ManifestEntry } from '../cache/manifest.js';
import { isDirOid, type Oid } from '../cache/oid.js';
import { FILES_SHARD, type StatKey, walkFingerprint } from '../cache/statcache.js';
import type { CacheStamp } from '../cache/store.js';
import { entryPath, walkDir, type WalkEntry } from '../cache/walk.js';
import { pruneEmptyDirs, rmQuiet } from '../util/fs.js';
import { hashWorkspace, ignoredUnder } from './hashing.js';
import { findPointers, type Selected, selectTargets } from './pointers.js';
import type { Repo } from './repo.js';

export interface CheckoutOptions {
  targets?: string[];
  /** Overwrite or delete workspace files whose content is not in the cache. */
  force?: boolean;
  /** Re-create every file from the cache (e.g. after changing cache.type). */
  relink?: boolean;
  /** Stop after planning. */
  dry?: boolean;
}

interface PlannedDir {
  sel: Selected;
  oid: Oid;
  size: number;
  nfiles: number;
  changed: boolean;
  /** The recorded manifest, and the workspace walk the plan was made from. */
  recorded?: ManifestEntry[];
  before?: WalkEntry[];
}

interface Write {
  rel: string;
  abs: string;
  oid: Oid;
  isexec: boolean;
  /** Where the stat cache keeps this file: its tracked directory (key relative to it), or the files shard. */
  shard: string;
  key: string;
}

/** What a checkout will do, computed before anything is touched. */
export interface CheckoutPlan {
  writes: Write[];
  /** Repo-relative paths to delete (files in tracked directories the recorded version lacks). */
  deletes: { rel: string; abs: string }[];
  /** Whole paths to clear first because their kind changes (a file where a directory belongs...). */
  clears: string[];
  /** Workspace files that would be lost: content not in the cache. */
  conflicts: string[];
  /** Recorded files whose object is not in the cache. */
  missing: string[];
  /** Whole directories that will match their recorded version; `changed` ones are re-fingerprinted. */
  dirs: PlannedDir[];
}

export interface CheckoutResult {
  /** Repo-relative paths written. */
  restored: string[];
  deleted: string[];
  unchanged: number;
}

/** Makes the workspace match the pointers, never destroying uncached data without `force`. */
export async function checkout(repo: Repo, opts: CheckoutOptions = {}): Promise<CheckoutResult> {
  return repo.withLock('checkout', async () => {
    const selected = selectTargets(repo, await findPointers(repo), opts.targets ?? []);
    const plan = await planCheckout(repo, selected, opts);
    if (plan.missing.length > 0) {
      throw new MissingObjectsError(
        `${plan.missing.length} file(s) are not in the cache: ${summarize(plan.missing)}; run \`tdv pull\` to fetch them`,
        plan.missing,
      );
    }
    if (plan.conflicts.length > 0) {
      throw new ConflictError(
        `${plan.conflicts.length} workspace file(s) have changes that are not in the cache and would be lost: ${summarize(plan.conflicts)}; ` +
          'run `tdv add` to keep them, or `tdv checkout --force` to discard them',
        plan.conflicts,
      );
    }
    const unchanged = countUnchanged(plan, selected);
    if (opts.dry) return { restored: plan.writes.map((w) => w.rel), deleted: plan.deletes.map((d) => d.rel), unchanged };
    await applyCheckout(repo, plan);
    return { restored: plan.writes.map((w) => w.rel), deleted: plan.deletes.map((d) => d.rel), unchanged };
  });
}

function summarize(paths: string[]): string {
  return paths.length <= 5 ? paths.join(', ') : `${paths.slice(0, 5).join(', ')} and ${paths.length - 5} more`;
}

function countUnchanged(plan: CheckoutPlan, selected: Selected[]): number {
  return Math.max(0, selected.length - new Set([...plan.writes, ...plan.deletes].map((w) => w.rel.split('/')[0])).size);
}

export async function planCheckout(repo: Repo, selected: readonly Selected[], opts: CheckoutOptions): Promise<CheckoutPlan> {
  const store = repo.store;
  const plan: CheckoutPlan = { writes: [], deletes: [], clears: [], conflicts: [], missing: [], dirs: [] };
  const cached = (oid: Oid) => opts.force === true || store.has(oid);
  const stamp = store.stamp();
  for (const s of selected) {
    const want = s.out.sha256;
    // Known complete and no object removed since: skip a stat per object.
    const complete = repo.statCache.isComplete(s.rel, want, stamp);
    const ws = await hashWorkspace(repo, s, { needEntries: true });
    if (!isDirOid(want)) {
      if (ws.kind === 'file' && ws.oid === want && !opts.relink) {
        if (ws.isexec !== (s.out.isexec === true)) plan.writes.push({ rel: s.rel, abs: s.abs, oid: want, isexec: s.out.isexec === true, shard: FILES_SHARD, key: s.rel });
        continue;
      }
      if (ws.kind === 'file' && ws.oid !== want && !cached(ws.oid)) plan.conflicts.push(s.rel);
      if (ws.kind === 'dir') {
        const lost = (ws.entries ?? []).filter((e) => !cached(e.sha256)).map((e) => `${s.rel}/${e.relpath}`);
        plan.conflicts.push(...lost);
        plan.clears.push(s.abs);
      }
      if (!store.has(want)) plan.missing.push(s.rel);
      plan.writes.push({ rel: s.rel, abs: s.abs, oid: want, isexec: s.out.isexec === true, shard: FILES_SHARD, key: s.rel });
      continue;
    }
    if (!store.has(want)) {
      plan.missing.push(`${s.rel}/ (directory manifest ${want})`);
      continue;
    }
    const recorded = store.readManifest(want);
    const inSub = (e: ManifestEntry) => s.sub === undefined || e.relpath === s.sub || e.relpath.startsWith(`${s.sub}/`);
    let current = new Map<string, ManifestEntry>();
    if (ws.kind === 'file') {
      if (!cached(ws.oid)) plan.conflicts.push(s.rel);
      plan.clears.push(s.abs);
    } else if (ws.kind === 'dir') {
      if (ws.oid === want && !opts.relink) {
        plan.dirs.push({ sel: s, oid: want, size: s.out.size, nfiles: s.out.nfiles ?? 0, changed: false });
        continue;
      }
      current = new Map((ws.entries ?? []).map((e) => [e.relpath, e]));
    }
    for (const e of recorded) {
      if (!inSub(e)) continue;
      const have = current.get(e.relpath);
      const rel = `${s.rel}/${e.relpath}`;
      if (have && have.sha256 === e.sha256 && !opts.relink) {
        if (!have.isexec !== !e.isexec) plan.writes.push({ rel, abs: entryPath(s.abs, e.relpath), oid: e.sha256, isexec: e.isexec === true, shard: s.rel, key: e.relpath });
        continue;
      }
      if (have && !cached(have.sha256)) plan.conflicts.push(rel);
      if (!complete && !store.has(e.sha256)) plan.missing.push(rel);
      plan.writes.push({ rel, abs: entryPath(s.abs, e.relpath), oid: e.sha256, isexec: e.isexec === true, shard: s.rel, key: e.relpath });
    }
    const wanted = new Set(recorded.map((e) => e.relpath));
    for (const [relpath, e] of current) {
      if (wanted.has(relpath) || !inSub(e)) continue;
      const rel = `${s.rel}/${relpath}`;
      if (!cached(e.sha256)) plan.conflicts.push(rel);
      plan.deletes.push({ rel, abs: entryPath(s.abs, relpath) });
    }
    if (s.sub === undefined) {
      plan.dirs.push({ sel: s, oid: want, size: s.out.size, nfiles: s.out.nfiles ?? recorded.length, changed: true, recorded, before: ws.kind === 'dir' ? ws.walk : [] });
    }
  }
  return plan;
}

/**
 * Records a directory as it now is, so the next status is one walk. The walk's
 * stats double as the records of the files just written; files left alone keep
 * their recorded hash only if their stat key is the one the plan verified.
 */
async function recordDirectory(repo: Repo, d: PlannedDir, written: ReadonlySet<string>, stamp: CacheStamp): Promise<void> {
  const store = repo.store;
  fs.mkdirSync(d.sel.abs, { recursive: true });
  const walk = walkDir(d.sel.abs, { ignored: await ignoredUnder(repo, d.sel.rel), objectsDir: `${store.root}/files/sha256` });
  const oids = new Map((d.recorded ?? []).map((e) => [e.relpath, e.sha256]));
  const before = new Map((d.before ?? []).map((e) => [e.rel, e]));
  const records: [string, StatKey, string][] = [];
  for (const e of walk) {
    const oid = oids.get(e.rel);
    if (!oid) continue;
    const b = before.get(e.rel);
    const verified = written.has(`${d.sel.rel}/${e.rel}`) || (b !== undefined && b.ino === e.ino && b.mtimeMs === e.mtimeMs && b.ctimeMs === e.ctimeMs && b.size === e.size);
    if (verified) records.push([e.rel, e, oid]);
  }
  repo.statCache.replaceShard(d.sel.rel, records);
  // Only claim "this walk is version oid" if every file is accounted for.
  if (records.length === walk.length && walk.length === oids.size) {
    const { fp, maxMtimeMs } = walkFingerprint(walk);
    repo.statCache.setDir(d.sel.rel, { fp, oid: d.oid, size: d.size, nfiles: d.nfiles, maxMtimeMs, complete: stamp });
  }
}

/** Applies a conflict-free plan: deletions, then writes (each atomic), then stat-cache records. */
export async function applyCheckout(repo: Repo, plan: CheckoutPlan): Promise<void> {
  const store = repo.store;
  const sc = repo.statCache;
  const linker = repo.linker();
  try {
    for (const p of plan.clears) fs.rmSync(p, { recursive: true, force: true });
    for (const d of plan.deletes) {
      rmQuiet(d.abs);
      pruneEmptyDirs(path.dirname(d.abs), repo.root);
    }
    const made = new Set<string>();
    for (const w of plan.writes) {
      const dir = path.dirname(w.abs);
      if (!made.has(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        made.add(dir);
      }
    }
    const byDest = new Map(plan.writes.map((w) => [w.abs, w]));
    try {
      await linkAll(
        linker,
        plan.writes.map((w) => ({ object: store.pathOf(w.oid), dest: w.abs, isexec: w.isexec })),
      );
    } catch (err) {
      if (!(err instanceof LinkBatchError)) throw err;
      const w = byDest.get(err.item.dest)!;
      // Planned as present; gone since (another process, or a damaged cache).
      if (err.code === 'ENOENT' && !store.has(w.oid)) throw new MissingObjectsError(`${w.rel} is not in the cache (object ${w.oid}); run \`tdv pull\` to fetch it`, [w.rel]);
      throw describeFsError(Object.assign(new Error(err.message), { code: err.code }), w.abs);
    }
    const written = new Set(plan.writes.map((w) => w.rel));
    const stamp = store.stamp();
    for (const d of plan.dirs) {
      if (!d.changed) sc.markComplete(d.sel.rel, d.oid, stamp);
      else await recordDirectory(repo, d, written, stamp);
    }
    const recorded = new Set(plan.dirs.filter((d) => d.changed).map((d) => d.sel.rel));
    for (const w of plan.writes) {
      if (recorded.has(w.shard)) continue;
      const st = fs.lstatSync(w.abs, { throwIfNoEntry: false });
      if (st) sc.setFile(w.shard, w.key, st, w.oid);
    }
  } finally {
    sc.save();
  }
}
