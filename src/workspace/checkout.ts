/**
 * The checkout engine: the one way tdv materialises cache objects in a
 * workspace (or a `--to` snapshot directory). `checkout`, `pull`, the
 * run-cache restore of `repro` and the relinking after `add` all come here.
 *
 *   targets (rel, oid, source)  --compare-->  plan (a value)  --apply-->  files
 *
 * `planCheckout` compares each target's recorded version with what is in the
 * destination and returns a plan: files to write (link from the cache), to
 * delete, to chmod, whole paths to clear first (their kind changes), conflicts
 * (workspace content not in the cache, which would be lost) and missing
 * objects. A file whose object is missing is left as it is (no write, no
 * clear, no conflict), so applying the plan restores everything else: one
 * missing object never holds back the others. Nothing is touched while planning, and every path of the plan has
 * been checked by the destination's `Guard` (legal, no symlink on the way, not
 * protected), so a refusal comes before the first write. `applyCheckout` then
 * does exactly what the plan says, every write, delete, clear, chmod and mkdir
 * through the guard; the links themselves are made on two threads, the
 * worker receiving only absolute paths the guard resolved on this thread.
 *
 * Nothing here knows about a `Repo`: the caller passes a context (the guard,
 * the object store, the destination's stat cache, the link types, the
 * `.tdvignore` matcher, a warning callback) and targets naming where each came
 * from (a pointer, tdv.lock, a run record), for the one error line.
 */
import path from 'node:path';
import { describeFsError, MissingObjectsError, TdvError } from '../errors.js';
import { hashFile } from '../cache/hash.js';
import { execOf, FILES_SHARD, sameVersion, type StatCache, type StatKey, walkFingerprint } from '../cache/statcache.js';
import type { CacheStamp, ObjectStore } from '../cache/store.js';
import { sameStat, type WrittenStat } from '../cache/tasks.js';
import { entryPath, walkDir, type WalkEntry, type WalkOptions } from '../cache/walk.js';
import { hashTarget, type HashOptions, type TargetState } from '../cache/workspace.js';
import type { ManifestEntry } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { lstatOrUndefined, toPosix } from '../util/fs.js';
import type { Guard } from './guard.js';
import type { LinkType } from './link.js';
import type { IgnoreMatcher } from './tdvignore.js';
import type { Progress } from '../util/progress.js';

/** Where and how a checkout writes. */
export interface CheckoutContext {
  /** The destination root's guard: every path of a plan is resolved, written and deleted through it. */
  guard: Guard;
  store: ObjectStore;
  /** The destination's stat cache: read while comparing; written files are recorded in it when `record`. */
  statCache: StatCache;
  /** Record what was written in `statCache` and save it (false for a snapshot directory). */
  record: boolean;
  /** Link types to try, in order (cache.type). */
  linkTypes: readonly LinkType[];
  /** The `.tdvignore` matcher, paths relative to the destination root. */
  ignore?: IgnoreMatcher;
  /** Warnings (a skipped path...). */
  onWarn?: (msg: string) => void;
  /** Hears of the files to write and of those written (apply only: planning reads, it writes nothing). */
  progress?: Progress;
}

/** One recorded version to materialise. */
export interface CheckoutTarget {
  /** Path relative to the destination root (POSIX). */
  rel: string;
  oid: Oid;
  isexec?: boolean;
  size: number;
  nfiles?: number;
  /** Only this path inside the tracked directory `rel`. */
  sub?: string;
  /** What named the target, for error lines: "data.tdv", "HEAD:data.tdv", "run record 1a2b3c4d". */
  source: string;
}

export interface PlanOptions {
  /** Overwrite or delete content that is not in the cache (it is lost). */
  force?: boolean;
  /** Re-create every file from the cache, even unchanged ones. */
  relink?: boolean;
}

/** A file to link from the cache (or, in `chmods`, a file whose mode alone changes). */
export interface PlannedWrite {
  rel: string;
  oid: Oid;
  isexec: boolean;
  source: string;
  /** Where the stat cache keeps this file: its tracked directory (key relative to it), or the files shard. */
  shard: string;
  key: string;
  /** The object's size, for progress (0 when unknown). */
  size: number;
}

/** A recorded file (or a directory's manifest) whose object is not in the cache: the plan leaves its path alone. */
export interface MissingObject {
  /** Destination-relative path: the file, or the tracked directory when its manifest is missing. */
  rel: string;
  /** The object: a file's, or `<hex>.dir` for a directory's manifest (none of its files can be listed). */
  oid: Oid;
  /** The target's source ("data.tdv", "tdv.lock", "v1:data.tdv"). */
  source: string;
}

/** A tracked directory that will match its recorded version (but for missing objects), and what the stat cache needs to record it. */
export interface PlannedDir {
  target: CheckoutTarget;
  /** False: already matched (only its completeness is recorded); true: re-fingerprinted after the apply. */
  changed: boolean;
  /** Every object was seen present, as of the plan's stamp. */
  complete: boolean;
  /** The recorded manifest, and the walk of the destination the plan was made from. */
  recorded?: ManifestEntry[];
  before?: WalkEntry[];
  /** Relpaths whose object is missing: what is there (if anything) is not the recorded version, whatever its stat. */
  notRestored?: ReadonlySet<string>;
}

/** What a checkout will do, computed before anything is touched. */
export interface CheckoutPlan {
  writes: PlannedWrite[];
  /** Files in tracked directories that the recorded version lacks. */
  deletes: { rel: string; source: string }[];
  /** Files whose content matches but whose executable bit does not (a plain file with one link). */
  chmods: PlannedWrite[];
  /** Whole paths to remove first because their kind changes (a file where a directory belongs, a symlink...). */
  clears: { rel: string; source: string }[];
  /** Destination files that would be lost: content not in the cache. */
  conflicts: string[];
  /** Recorded files whose object is not in the cache: not written (what is at their path stays). */
  missing: MissingObject[];
  dirs: PlannedDir[];
  /** The cache's stamp taken before any presence check of this plan. */
  stamp: CacheStamp;
}

/** Hashes what is at `rel` in the destination (a read: nothing is written to the cache unless `extra.write` says so). */
export function hashAt(ctx: CheckoutContext, rel: string, extra: Partial<HashOptions> = {}, abs = ctx.guard.resolve(rel, 'inspect')): Promise<TargetState> {
  return hashTarget(abs, rel, {
    statCache: ctx.statCache,
    store: ctx.store,
    ignored: ignoredUnder(ctx.ignore, rel),
    onSkip: (p, why) => ctx.onWarn?.(`skipped ${ctx.guard.relOf(p) ?? p}: ${why}`),
    ...extra,
  });
}

/** The `.tdvignore` matcher re-rooted at the tracked directory `rel`. */
export function ignoredUnder(ignore: IgnoreMatcher | undefined, rel: string): WalkOptions['ignored'] {
  return ignore ? (r, isDir) => ignore(`${rel}/${r}`, isDir) : undefined;
}

/**
 * Compares every target with the destination and plans what makes it match,
 * never destroying content that is not in the cache unless `force`. Throws an
 * UnsafePathError (naming the target's source) for any path the guard refuses.
 */
export async function planCheckout(ctx: CheckoutContext, targets: readonly CheckoutTarget[], opts: PlanOptions = {}): Promise<CheckoutPlan> {
  const { store, guard } = ctx;
  const stamp = store.stamp(); // before any presence check: see StatCache.isComplete
  const sc = ctx.statCache;
  const plan: CheckoutPlan = { writes: [], deletes: [], chmods: [], clears: [], conflicts: [], missing: [], dirs: [], stamp };
  const force = opts.force === true;
  const cached = (oid: Oid) => force || store.has(oid);
  for (const t of targets) {
    // Legal, and no symlink on the way: refused here, before anything is read or written.
    const abs = guard.resolve(t.rel, 'inspect', t.source);
    const want = t.oid;
    // Known complete and no object removed since: skip a stat per object.
    const complete = sc.isComplete(t.rel, want, stamp);
    const skipped = new Set<string>();
    // Skipped entries (symlinks, special files) are dealt with below, where they are in the way.
    const ws = await hashAt(ctx, t.rel, { needEntries: true, onSkip: (p) => skipped.add(toPosix(path.relative(abs, p))) }, abs);
    // Whatever is in the way of a write must be either cached, or discarded with --force.
    const clear = async (rel: string) => {
      if (!force) plan.conflicts.push(...(await uncachedUnder(store, guard.resolve(rel, 'inspect', t.source), rel)));
      plan.clears.push({ rel, source: t.source });
    };
    const file = (rel: string, e: { sha256: Oid; isexec?: boolean; size: number }, shard: string, key: string): PlannedWrite => ({
      rel,
      oid: e.sha256,
      isexec: e.isexec === true,
      source: t.source,
      shard,
      key,
      size: e.size,
    });
    // Only the executable bit differs: a chmod of a plain file; a link (shared with the cache) is replaced.
    const modeOnly = (w: PlannedWrite, at: string) => {
      const st = lstatOrUndefined(at);
      (st?.isFile() && st.nlink === 1 ? plan.chmods : plan.writes).push(w);
    };
    if (!isDirOid(want)) {
      const w = file(t.rel, { sha256: want, isexec: t.isexec, size: t.size }, FILES_SHARD, t.rel);
      const present = store.has(want);
      // Already the recorded content: left alone (with --relink too, when the object to relink is gone).
      if (ws.kind === 'file' && ws.oid === want && (!opts.relink || !present)) {
        if (ws.isexec !== w.isexec) modeOnly(w, abs);
        continue;
      }
      if (!present) {
        plan.missing.push({ rel: t.rel, oid: want, source: t.source });
        continue;
      }
      if (ws.kind === 'file' && ws.oid !== want && !cached(ws.oid)) plan.conflicts.push(t.rel);
      if (ws.kind === 'dir' || ws.kind === 'other') await clear(t.rel);
      plan.writes.push(w);
      continue;
    }
    if (!store.has(want)) {
      // Without its manifest nothing of the directory can be listed, so nothing of it is touched.
      plan.missing.push({ rel: t.rel, oid: want, source: t.source });
      continue;
    }
    const recorded = store.readManifest(want);
    // Every object present, as of `stamp`? Lets the next status skip this check.
    const verified = () => complete || recorded.every((e) => store.has(e.sha256));
    const inSub = (e: ManifestEntry) => t.sub === undefined || e.relpath === t.sub || e.relpath.startsWith(`${t.sub}/`);
    let current = new Map<string, ManifestEntry>();
    if (ws.kind === 'file' || ws.kind === 'other') {
      await clear(t.rel);
    } else if (ws.kind === 'dir') {
      if (ws.oid === want && !opts.relink && skipped.size === 0) {
        plan.dirs.push({ target: t, changed: false, complete: verified() });
        continue;
      }
      current = new Map((ws.entries ?? []).map((e) => [e.relpath, e]));
    }
    const wsExists = ws.kind === 'dir';
    const cleared = new Set<string>();
    const parents = new Map<string, boolean>();
    const notRestored = new Set<string>();
    for (const e of recorded) {
      if (!inSub(e)) continue;
      const have = current.get(e.relpath);
      const rel = `${t.rel}/${e.relpath}`;
      const at = entryPath(abs, e.relpath);
      const present = complete || store.has(e.sha256);
      if (have && have.sha256 === e.sha256 && (!opts.relink || !present)) {
        if (!have.isexec !== !e.isexec) modeOnly(file(rel, e, t.rel, e.relpath), at);
        continue;
      }
      if (!present) {
        // Whatever is at its path stays (an older version, say): nothing is lost, nothing is in the way.
        plan.missing.push({ rel, oid: e.sha256, source: t.source });
        notRestored.add(e.relpath);
        continue;
      }
      if (have && !cached(have.sha256)) plan.conflicts.push(rel);
      if (!have && wsExists) {
        // Not in the walk, yet something may be there: a symlink or special file (on the
        // path or at it, ignored or not), a file where a directory belongs, or a file
        // .tdvignore hides. Never write through it, never replace it unchecked.
        const blocker = blockingPrefix(e.relpath, skipped) ?? nonDirectoryParent(abs, e.relpath, parents);
        if (blocker !== undefined) {
          if (!cleared.has(blocker)) {
            cleared.add(blocker);
            await clear(`${t.rel}/${blocker}`);
          }
        } else {
          const st = lstatOrUndefined(at);
          if (st?.isFile()) {
            const { sha256: there } = await hashFile(at);
            if (there === e.sha256 && !opts.relink) continue;
            if (!cached(there)) plan.conflicts.push(rel);
          } else if (st) await clear(rel);
        }
      }
      plan.writes.push(file(rel, e, t.rel, e.relpath));
    }
    const wanted = new Set(recorded.map((e) => e.relpath));
    for (const [relpath, e] of current) {
      if (wanted.has(relpath) || !inSub(e)) continue;
      const rel = `${t.rel}/${relpath}`;
      if (!cached(e.sha256)) plan.conflicts.push(rel);
      plan.deletes.push({ rel, source: t.source });
    }
    if (t.sub === undefined) {
      if (ws.kind === 'dir' && !ws.walk) throw new Error('hashTarget returned no walk with needEntries');
      plan.dirs.push({ target: t, changed: true, complete: notRestored.size === 0 && verified(), recorded, before: ws.kind === 'dir' ? ws.walk : [], notRestored });
    }
  }
  checkPaths(guard, plan);
  return plan;
}

/**
 * Every path of the plan through the guard before anything is touched: a
 * protected file (Git-tracked, say) or a symlink on the way is refused now,
 * not halfway through the apply. A write below a path the plan clears (a
 * symlink replaced by a real directory) is checked when it is written.
 */
function checkPaths(guard: Guard, plan: CheckoutPlan): void {
  const cleared = new Set(plan.clears.map((c) => c.rel));
  const underClear = (rel: string) => {
    if (cleared.size === 0) return false;
    for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) if (cleared.has(rel.slice(0, i))) return true;
    return cleared.has(rel);
  };
  for (const c of plan.clears) if (!underClear(parentOf(c.rel))) guard.resolve(c.rel, 'delete', c.source);
  for (const d of plan.deletes) guard.resolve(d.rel, 'delete', d.source);
  for (const w of plan.writes) if (!underClear(w.rel)) guard.resolve(w.rel, 'write', w.source);
  for (const w of plan.chmods) guard.resolve(w.rel, 'write', w.source);
}

/**
 * The first parent of `relpath` (inside `base`) that exists but is not a real
 * directory: a file, or a symlink even to a directory. `known` memoises parents.
 */
function nonDirectoryParent(base: string, relpath: string, known: Map<string, boolean>): string | undefined {
  for (let i = relpath.indexOf('/'); i !== -1; i = relpath.indexOf('/', i + 1)) {
    const p = relpath.slice(0, i);
    let isDir = known.get(p);
    if (isDir === undefined) {
      const st = lstatOrUndefined(entryPath(base, p));
      if (!st) return undefined; // the rest does not exist yet: mkdir makes real directories
      isDir = st.isDirectory();
      known.set(p, isDir);
    }
    if (!isDir) return p;
  }
  return undefined;
}

/** The first of `relpath`'s own path or its parent directories that the walk skipped. */
function blockingPrefix(relpath: string, skipped: ReadonlySet<string>): string | undefined {
  if (skipped.size === 0) return undefined;
  for (let i = relpath.indexOf('/'); i !== -1; i = relpath.indexOf('/', i + 1)) if (skipped.has(relpath.slice(0, i))) return relpath.slice(0, i);
  return skipped.has(relpath) ? relpath : undefined;
}

/**
 * Files under `abs` (a file, directory, symlink or special file in the way of
 * a checkout) whose content is not in the cache: they would be lost. Looks at
 * everything, ignoring .tdvignore; symlinks and special files count as lost
 * (they are removed, never followed).
 */
async function uncachedUnder(store: ObjectStore, abs: string, rel: string): Promise<string[]> {
  const st = lstatOrUndefined(abs);
  if (!st) return [];
  if (st.isFile()) return store.has((await hashFile(abs)).sha256) ? [] : [rel];
  if (!st.isDirectory()) return [rel];
  const lost: string[] = [];
  const walk = walkDir(abs, { reportGit: true, onSkip: (p) => lost.push(`${rel}/${toPosix(path.relative(abs, p))}`) });
  for (const e of walk) if (!store.has((await hashFile(entryPath(abs, e.rel))).sha256)) lost.push(`${rel}/${e.rel}`);
  return lost;
}

/**
 * Applies a conflict-free plan: clears and deletions, then writes (each atomic:
 * a temp file renamed into place) and mode changes, then stat-cache records.
 */
export async function applyCheckout(ctx: CheckoutContext, plan: CheckoutPlan): Promise<void> {
  const { guard } = ctx;
  const sc = ctx.statCache;
  try {
    for (const c of plan.clears) guard.remove(c.rel, c.source);
    for (const d of plan.deletes) {
      // Planned as a file: a directory there now appeared since, and is not the plan's to remove.
      if (guard.lstat(d.rel, d.source)?.isDirectory() === false) guard.remove(d.rel, d.source);
      guard.pruneEmpty(parentOf(d.rel));
    }
    const stats = await linkFiles(ctx, plan.writes, ctx.progress);
    const modes = plan.chmods.map((c) => setExec(guard, c));
    if (!ctx.record) return;
    // The stat each file had right after tdv wrote it: trusted later only if it is still that.
    const written = new Map<string, WrittenStat>();
    plan.writes.forEach((w, i) => written.set(w.rel, stats[i]!));
    plan.chmods.forEach((c, i) => written.set(c.rel, modes[i]!));
    for (const d of plan.dirs) {
      const t = d.target;
      if (!d.changed) {
        if (d.complete) sc.markComplete(t.rel, t.oid, plan.stamp);
        continue;
      }
      // A file the plan left alone keeps its hash only if its stat key is the one the plan verified.
      const before = new Map((d.before ?? []).map((e) => [e.rel, e]));
      const entries = d.recorded ?? [];
      await recordDirectory(ctx, t.rel, { oid: t.oid, size: t.size, nfiles: t.nfiles ?? entries.length, entries }, d.complete ? plan.stamp : undefined, (e) => {
        const w = written.get(`${t.rel}/${e.rel}`);
        if (w) return sameStat(w, e);
        if (d.notRestored?.has(e.rel)) return false;
        const b = before.get(e.rel);
        return b !== undefined && sameVersion(b, e);
      });
    }
    const recorded = new Set(plan.dirs.filter((d) => d.changed).map((d) => d.target.rel));
    for (const w of [...plan.writes, ...plan.chmods]) {
      if (recorded.has(w.shard)) continue;
      const [ino, mtimeMs, ctimeMs, size] = written.get(w.rel)!;
      sc.setFile(w.shard, w.key, { ino, mtimeMs, ctimeMs, size, mode: 0 }, w.oid);
    }
  } finally {
    if (ctx.record) sc.save();
  }
}

/** Sets or clears a plain file's executable bits (x where r is set, as git does) and returns its new stat. */
function setExec(guard: Guard, c: PlannedWrite): WrittenStat {
  const st = guard.lstat(c.rel, c.source);
  if (!st) throw new TdvError('NOT_FOUND', `${c.rel} disappeared during the checkout; run the command again`);
  const mode = st.mode & 0o7777;
  guard.chmod(c.rel, c.isexec ? mode | ((mode & 0o444) >> 2) : mode & ~0o111, c.source);
  const now = guard.lstat(c.rel, c.source)!;
  return [now.ino, now.mtimeMs, now.ctimeMs, now.size];
}

/**
 * Links cache objects to destination paths: parents made as real directories
 * and every path resolved by the guard on this thread, then the links made on
 * two threads (see cache/pool.ts). Returns each new file's stat key, taken
 * right after it was written.
 */
export async function linkFiles(
  ctx: Pick<CheckoutContext, 'guard' | 'store' | 'linkTypes'>,
  writes: readonly (Pick<PlannedWrite, 'rel' | 'oid' | 'isexec' | 'source'> & { size?: number })[],
  progress?: Progress,
): Promise<WrittenStat[]> {
  if (writes.length === 0) return [];
  const bytes = writes.reduce((n, w) => n + (w.size ?? 0), 0);
  progress?.plan(writes.length, bytes);
  // Done items are counted on both threads without their indices: bytes go by the average size.
  const onDone = progress && ((n: number) => (progress.files(n), progress.bytes((n * bytes) / writes.length)));
  const { guard, store } = ctx;
  const made = new Set<string>();
  const items = writes.map((w): [string, string, boolean] => {
    const dir = parentOf(w.rel);
    if (dir !== '' && !made.has(dir)) {
      guard.mkdirp(dir, w.source);
      made.add(dir);
    }
    return [store.pathOf(w.oid), guard.resolve(w.rel, 'write', w.source), w.isexec];
  });
  // Loaded here: worker_threads is a cost a command that links nothing need not pay.
  const { inTwoThreads, ItemError } = await import('../cache/pool.js');
  try {
    // ctx.linkTypes are the effective types already (see Repo.linker): the worker drops none.
    return await inTwoThreads('link', { types: [...ctx.linkTypes], allowRootLinks: true }, items, { onDone });
  } catch (err) {
    if (!(err instanceof ItemError)) throw err;
    const w = writes[err.index]!;
    // Planned as present; gone since (another process, or a damaged cache).
    if (err.code === 'ENOENT' && !store.has(w.oid)) throw new MissingObjectsError(`${w.rel} is not in the cache (object ${w.oid}); run \`tdv pull\` to fetch it`, [w.rel]);
    const described = describeFsError(Object.assign(new Error(err.message), { code: err.code }), items[err.index]![1]);
    throw described instanceof TdvError ? described : new TdvError('IO_ERROR', `cannot write ${w.rel}: ${err.message}`);
  }
}

/**
 * Records a tracked directory as it now is in the destination, after tdv made
 * it match version `v` (a checkout, or relinking after add): its shard gets
 * the files `trusted` vouches for (written just now, or verified unchanged),
 * and the directory gets its fingerprint only if every file is accounted for,
 * so the next status is one walk. `complete` is a cache stamp at which every
 * object of `v` was seen present.
 */
export async function recordDirectory(
  ctx: Pick<CheckoutContext, 'guard' | 'store' | 'statCache' | 'ignore'>,
  rel: string,
  v: { oid: Oid; size: number; nfiles: number; entries: readonly ManifestEntry[] },
  complete: CacheStamp | undefined,
  trusted: (e: WalkEntry) => boolean,
): Promise<void> {
  const abs = ctx.guard.mkdirp(rel);
  const walk = walkDir(abs, { ignored: ignoredUnder(ctx.ignore, rel), objectsDir: ctx.store.objectsDir });
  const recorded = new Map(v.entries.map((e) => [e.relpath, e]));
  const records: [string, StatKey, string][] = [];
  // Every file recorded, with the executable bit its version has: the shard is that version.
  let whole = walk.length === recorded.size;
  for (const e of walk) {
    const r = recorded.get(e.rel);
    if (r && trusted(e)) {
      records.push([e.rel, e, r.sha256]);
      if (execOf(e.mode) !== (r.isexec === true)) whole = false;
    } else whole = false;
  }
  ctx.statCache.replaceShard(rel, records, whole ? v.oid : undefined);
  if (records.length === walk.length && walk.length === recorded.size) {
    const { fp, newestMs } = walkFingerprint(walk);
    ctx.statCache.setDir(rel, { fp, oid: v.oid, size: v.size, nfiles: v.nfiles, newestMs, complete });
  }
}

/** The parent of a relative POSIX path ('' at the top). */
function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}
