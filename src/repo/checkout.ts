import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, describeFsError, MissingObjectsError, TdvError, UsageError } from '../errors.js';
import { hashFile } from '../cache/hash.js';
import { inTwoThreads, ItemError } from '../cache/pool.js';
import { sameStat, type WrittenStat } from '../cache/tasks.js';
import type { ManifestEntry } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { FILES_SHARD, sameVersion, StatCache } from '../cache/statcache.js';
import type { CacheStamp } from '../cache/store.js';
import { entryPath, walkDir, type WalkEntry } from '../cache/walk.js';
import { isInside, lstatOrUndefined, tmpSuffix, toPosix } from '../util/fs.js';
import { pruneEmptyDirs, rmQuiet } from '../workspace/raw.js';
import { hashWorkspace, recordDirectory } from './lib/hashing.js';
import { allOuts, findPointers, type Selected, selectTargets } from './lib/pointers.js';
import type { TransferResult } from './lib/transfer.js';
import type { Repo } from './repo.js';
import { TDV_DIR } from '../formats/layout.js';

export interface CheckoutOptions {
  targets?: string[];
  /** Restore the data of this revision (anything Git resolves) instead of the workspace pointers'. */
  rev?: string;
  /** Write a snapshot into this directory (absolute) instead of the workspace; paths as in the repository. */
  to?: string;
  /** Fetch objects missing from the cache from a remote first (`remote`, `jobs`: as for fetch). */
  pull?: boolean;
  remote?: string;
  jobs?: number;
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
  /** Every object was seen present, as of the plan's cache stamp. */
  complete: boolean;
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
  /** The cache's stamp taken before any presence check of this plan. */
  stamp: CacheStamp;
  /** The stat cache of the destination; recorded and saved only when `record`. */
  statCache: StatCache;
  record: boolean;
}

/**
 * Where a checkout writes: the workspace (the default), or a snapshot
 * directory, whose files are never recorded in the workspace's stat cache.
 */
export interface Destination {
  root: string;
  statCache: StatCache;
  record: boolean;
}

export interface CheckoutResult {
  /** Repo-relative paths written (or, with `dry`, to be written). */
  restored: string[];
  deleted: string[];
  /** With `pull`: the fetch that came first. When it failed, nothing was checked out. */
  fetch?: TransferResult;
  /** With `rev`: the commit it named. */
  commit?: string;
}

/** Makes the workspace match the pointers, never destroying uncached data without `force`. */
export async function checkout(repo: Repo, opts: CheckoutOptions = {}): Promise<CheckoutResult> {
  return repo.withLock('checkout', () => checkoutUnlocked(repo, opts));
}

async function checkoutUnlocked(repo: Repo, opts: CheckoutOptions): Promise<CheckoutResult> {
  let selected: Selected[];
  let commit: string | undefined;
  if (opts.rev !== undefined) {
    const { openHistory, pointersAt, resolveRevision, selectAt } = await import('./lib/revision.js');
    const history = openHistory(repo);
    try {
      const at = resolveRevision(history, opts.rev);
      commit = at.commit;
      selected = selectAt(repo, await pointersAt(repo, history, at), opts.targets ?? [], at);
    } finally {
      history.close();
    }
  } else {
    selected = selectTargets(repo, await findPointers(repo), opts.targets ?? []);
  }
  let fetched: TransferResult | undefined;
  if (opts.pull) {
    const { fetchSelected, withRemote } = await import('./lib/transfer.js');
    fetched = await withRemote(repo, opts, (remote) => fetchSelected(repo, remote, selected, opts));
    if (fetched.failed.length > 0) return { restored: [], deleted: [], fetch: fetched, commit };
  }
  let dest: Destination | undefined;
  if (opts.to !== undefined) {
    // Tracked data of the revision and of the workspace: a snapshot inside either would be mixed into it.
    const tracked = opts.rev === undefined ? selected : [...selected, ...allOuts(repo, await findPointers(repo))];
    dest = snapshotDestination(repo, opts.to, tracked);
    selected = selected.map((s) => ({ ...s, abs: path.join(dest!.root, ...s.rel.split('/')) }));
  }
  const plan = await planCheckout(repo, selected, opts, dest);
  if (plan.missing.length > 0) {
    const fix = opts.rev === undefined ? 'run `tdv pull` to fetch them' : `run \`tdv pull --rev ${opts.rev}\` to fetch them, or add --pull`;
    throw new MissingObjectsError(`${plan.missing.length} file(s) are not in the cache: ${summarize(plan.missing)}; ${fix}`, plan.missing);
  }
  if (plan.conflicts.length > 0 && dest) {
    throw new ConflictError(
      `${plan.conflicts.length} file(s) in ${opts.to} are not in the cache and would be lost: ${summarize(plan.conflicts)}; choose an empty directory, or add --force to overwrite them`,
      plan.conflicts,
    );
  }
  if (plan.conflicts.length > 0) {
    throw new ConflictError(
      `${plan.conflicts.length} workspace file(s) have changes that are not in the cache and would be lost: ${summarize(plan.conflicts)}; ` +
        'run `tdv add` to keep them, or `tdv checkout --force` to discard them',
      plan.conflicts,
    );
  }
  if (!opts.dry) await applyCheckout(repo, plan);
  return { restored: plan.writes.map((w) => w.rel), deleted: plan.deletes.map((d) => d.rel), ...(fetched ? { fetch: fetched } : {}), ...(commit ? { commit } : {}) };
}

/**
 * Checks a snapshot directory: it must not hold the repository, nor lie in
 * Git's or tdv's own files, the cache, or tracked data (a snapshot there would
 * be mixed into what it copies). It gets a stat cache of its own that is never
 * saved.
 */
function snapshotDestination(repo: Repo, to: string, tracked: readonly Selected[]): Destination {
  const real = realpathAllowingMissing(to);
  const root = realpathAllowingMissing(repo.root);
  const refuse = (why: string) => new UsageError(`cannot write a snapshot into ${to}: ${why}; choose another directory`);
  if (isInside(real, root)) throw refuse('it contains the repository (to restore data into the workspace, leave out --to)');
  for (const own of [path.join(root, '.git'), path.join(root, TDV_DIR), realpathAllowingMissing(repo.cacheDir)]) {
    if (isInside(own, real)) throw refuse(`it is inside ${own}`);
  }
  for (const s of tracked) if (isInside(realpathAllowingMissing(s.abs), real)) throw refuse(`it is inside tracked data (${s.rel})`);
  const st = fs.statSync(real, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw refuse('it is not a directory');
  return { root: real, statCache: new StatCache(path.join(repo.tmpDir, `unsaved.${tmpSuffix()}`), () => {}), record: false };
}

/** The real path of `p`, resolving its existing part (symlinks included) and keeping the rest as given. */
function realpathAllowingMissing(p: string): string {
  let dir = path.resolve(p);
  const rest: string[] = [];
  while (!fs.existsSync(dir)) {
    const parent = path.dirname(dir);
    if (parent === dir) break;
    rest.unshift(path.basename(dir));
    dir = parent;
  }
  return path.join(fs.realpathSync.native(dir), ...rest);
}

function summarize(paths: string[]): string {
  return paths.length <= 5 ? paths.join(', ') : `${paths.slice(0, 5).join(', ')} and ${paths.length - 5} more`;
}

export async function planCheckout(repo: Repo, selected: readonly Selected[], opts: CheckoutOptions, dest?: Destination): Promise<CheckoutPlan> {
  const store = repo.store;
  const stamp = store.stamp(); // before any presence check: see StatCache.isComplete
  const sc = dest?.statCache ?? repo.statCache;
  const plan: CheckoutPlan = { writes: [], deletes: [], clears: [], conflicts: [], missing: [], dirs: [], stamp, statCache: sc, record: dest?.record ?? true };
  const force = opts.force === true;
  const cached = (oid: Oid) => force || store.has(oid);
  const guard = dest ? escapeGuard(dest.root, repo.cacheDir, [path.join(repo.root, '.git'), repo.tdvDir], 'the snapshot directory') : escapeGuard(repo.root, repo.cacheDir);
  for (const s of selected) {
    guard(s.abs, repo.rel(s.ptr.file));
    const want = s.out.sha256;
    // Known complete and no object removed since: skip a stat per object.
    const complete = sc.isComplete(s.rel, want, stamp);
    const skipped = new Set<string>();
    const ws = await hashWorkspace(repo, s, {
      statCache: sc,
      needEntries: true,
      // Skipped entries (symlinks, special files) are dealt with below, where they are in the way.
      onSkip: (abs) => skipped.add(toPosix(path.relative(s.abs, abs))),
    });
    // Whatever is in the way of a write must be either cached, or discarded with --force.
    const clear = async (abs: string, rel: string) => {
      if (!force) plan.conflicts.push(...(await uncachedUnder(repo, abs, rel)));
      plan.clears.push(abs);
    };
    const file = (rel: string, abs: string, e: { sha256: Oid; isexec?: boolean }, shard: string, key: string): Write => ({
      rel,
      abs,
      oid: e.sha256,
      isexec: e.isexec === true,
      shard,
      key,
    });
    if (!isDirOid(want)) {
      if (ws.kind === 'file' && ws.oid === want && !opts.relink) {
        if (ws.isexec !== (s.out.isexec === true)) plan.writes.push(file(s.rel, s.abs, s.out, FILES_SHARD, s.rel));
        continue;
      }
      if (ws.kind === 'file' && ws.oid !== want && !cached(ws.oid)) plan.conflicts.push(s.rel);
      if (ws.kind === 'dir' || ws.kind === 'other') await clear(s.abs, s.rel);
      if (!store.has(want)) plan.missing.push(s.rel);
      plan.writes.push(file(s.rel, s.abs, s.out, FILES_SHARD, s.rel));
      continue;
    }
    if (!store.has(want)) {
      plan.missing.push(`${s.rel}/ (directory manifest ${want})`);
      continue;
    }
    const recorded = store.readManifest(want);
    // Every object present, as of `stamp`? Lets the next status skip this check.
    const verified = () => complete || recorded.every((e) => store.has(e.sha256));
    const inSub = (e: ManifestEntry) => s.sub === undefined || e.relpath === s.sub || e.relpath.startsWith(`${s.sub}/`);
    let current = new Map<string, ManifestEntry>();
    if (ws.kind === 'file' || ws.kind === 'other') {
      await clear(s.abs, s.rel);
    } else if (ws.kind === 'dir') {
      if (ws.oid === want && !opts.relink && skipped.size === 0) {
        plan.dirs.push({ sel: s, oid: want, size: s.out.size, nfiles: s.out.nfiles ?? 0, changed: false, complete: verified() });
        continue;
      }
      current = new Map((ws.entries ?? []).map((e) => [e.relpath, e]));
    }
    const wsExists = ws.kind === 'dir';
    const cleared = new Set<string>();
    const parents = new Map<string, boolean>();
    for (const e of recorded) {
      if (!inSub(e)) continue;
      const have = current.get(e.relpath);
      const rel = `${s.rel}/${e.relpath}`;
      const abs = entryPath(s.abs, e.relpath);
      if (have && have.sha256 === e.sha256 && !opts.relink) {
        if (!have.isexec !== !e.isexec) plan.writes.push(file(rel, abs, e, s.rel, e.relpath));
        continue;
      }
      if (have && !cached(have.sha256)) plan.conflicts.push(rel);
      if (!have && wsExists) {
        // Not in the walk, yet something may be there: a symlink or special file (on the
        // path or at it, ignored or not), a file where a directory belongs, or a file
        // .tdvignore hides. Never write through it, never replace it unchecked.
        const blocker = blockingPrefix(e.relpath, skipped) ?? nonDirectoryParent(s.abs, e.relpath, parents);
        if (blocker !== undefined) {
          if (!cleared.has(blocker)) {
            cleared.add(blocker);
            await clear(entryPath(s.abs, blocker), `${s.rel}/${blocker}`);
          }
        } else {
          const st = lstatOrUndefined(abs);
          if (st?.isFile()) {
            const { sha256: there } = await hashFile(abs);
            if (there === e.sha256 && !opts.relink) continue;
            if (!cached(there)) plan.conflicts.push(rel);
          } else if (st) await clear(abs, rel);
        }
      }
      if (!complete && !store.has(e.sha256)) plan.missing.push(rel);
      plan.writes.push(file(rel, abs, e, s.rel, e.relpath));
    }
    const wanted = new Set(recorded.map((e) => e.relpath));
    for (const [relpath, e] of current) {
      if (wanted.has(relpath) || !inSub(e)) continue;
      const rel = `${s.rel}/${relpath}`;
      if (!cached(e.sha256)) plan.conflicts.push(rel);
      plan.deletes.push({ rel, abs: entryPath(s.abs, relpath) });
    }
    if (s.sub === undefined) {
      plan.dirs.push({ sel: s, oid: want, size: s.out.size, nfiles: s.out.nfiles ?? recorded.length, changed: true, complete: verified(), recorded, before: ws.kind === 'dir' ? walkOf(ws) : [] });
    }
  }
  // What a clear removes (a symlink, say) is replaced by a real directory before writing.
  for (const c of plan.clears) guard(c);
  for (const w of plan.writes) if (!plan.clears.some((c) => isInside(c, w.abs))) guard(w.abs);
  return plan;
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
async function uncachedUnder(repo: Repo, abs: string, rel: string): Promise<string[]> {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return [];
  if (st.isFile()) return repo.store.has((await hashFile(abs)).sha256) ? [] : [rel];
  if (!st.isDirectory()) return [rel];
  const lost: string[] = [];
  const walk = walkDir(abs, { reportGit: true, onSkip: (p) => lost.push(`${rel}/${toPosix(path.relative(abs, p))}`) });
  for (const e of walk) if (!repo.store.has((await hashFile(entryPath(abs, e.rel))).sha256)) lost.push(`${rel}/${e.rel}`);
  return lost;
}

/**
 * A check that a path, once its existing part is resolved, stays inside the
 * repository: a symlinked directory (moved data left behind as a link, or a
 * hostile committed link) must never make tdv write elsewhere.
 */
function escapeGuard(root: string, cacheDir: string, alsoForbidden: readonly string[] = [], what = 'the repository'): (abs: string, pointer?: string) => void {
  const realRoot = realpathAllowingMissing(root);
  // Inside the repository, yet never a place for data: Git's and tdv's own files, the cache.
  const forbidden = [path.join(realRoot, '.git'), path.join(realRoot, TDV_DIR), fs.existsSync(cacheDir) ? fs.realpathSync.native(cacheDir) : cacheDir, ...alsoForbidden.map((f) => (fs.existsSync(f) ? fs.realpathSync.native(f) : f))];
  const seen = new Map<string, boolean>();
  return (abs, pointer) => {
    let dir = path.dirname(abs);
    const start = dir;
    const shown = `${path.relative(root, abs)}${pointer ? ` (tracked by ${pointer})` : ''}`;
    if (seen.get(start)) return;
    if (!fs.existsSync(realRoot)) return; // a snapshot directory still to be made: only real directories will be below it
    while (!fs.existsSync(dir)) dir = path.dirname(dir);
    const real = fs.realpathSync.native(dir);
    if (!isInside(realRoot, real)) {
      throw new TdvError('UNSAFE_PATH', `${shown} lies behind a symlink that leaves ${what} (${real}); tdv will not write there. Replace the link with a directory, or run tdv from where the data really is`);
    }
    const inside = forbidden.find((f) => isInside(f, real));
    if (inside) throw new TdvError('UNSAFE_PATH', `${shown} resolves into ${inside}; tdv never writes data there. Replace the symlink on that path with a directory`);
    seen.set(start, true);
  };
}

/** Applies a conflict-free plan: deletions, then writes (each atomic), then stat-cache records. */
export async function applyCheckout(repo: Repo, plan: CheckoutPlan): Promise<void> {
  const store = repo.store;
  const sc = plan.statCache;
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
    let stats: WrittenStat[];
    try {
      stats = await inTwoThreads(
        'link',
        { types: [...repo.linker().types], allowRootLinks: repo.config.cache.allow_root_links },
        plan.writes.map((w) => [store.pathOf(w.oid), w.abs, w.isexec] as [string, string, boolean]),
      );
    } catch (err) {
      if (!(err instanceof ItemError)) throw err;
      const w = plan.writes[err.index]!;
      // Planned as present; gone since (another process, or a damaged cache).
      if (err.code === 'ENOENT' && !store.has(w.oid)) throw new MissingObjectsError(`${w.rel} is not in the cache (object ${w.oid}); run \`tdv pull\` to fetch it`, [w.rel]);
      const described = describeFsError(Object.assign(new Error(err.message), { code: err.code }), w.abs);
      throw described instanceof TdvError ? described : new TdvError('IO_ERROR', `cannot write ${w.rel}: ${err.message}`);
    }
    if (!plan.record) return;
    // The stat each file had right after tdv wrote it: trusted later only if it is still that.
    const written = new Map(plan.writes.map((w, i) => [w.rel, stats[i]!]));
    for (const d of plan.dirs) {
      if (!d.changed) {
        if (d.complete) sc.markComplete(d.sel.rel, d.oid, plan.stamp);
      } else {
        // A file the plan left alone keeps its hash only if its stat key is the one the plan verified.
        const before = new Map((d.before ?? []).map((e) => [e.rel, e]));
        await recordDirectory(repo, d.sel, { oid: d.oid, size: d.size, nfiles: d.nfiles, entries: d.recorded ?? [] }, d.complete ? plan.stamp : undefined, (e) => {
          const w = written.get(`${d.sel.rel}/${e.rel}`);
          if (w) return sameStat(w, e);
          const b = before.get(e.rel);
          return b !== undefined && sameVersion(b, e);
        });
      }
    }
    const recorded = new Set(plan.dirs.filter((d) => d.changed).map((d) => d.sel.rel));
    plan.writes.forEach((w, i) => {
      if (recorded.has(w.shard)) return;
      const [ino, mtimeMs, ctimeMs, size] = stats[i]!;
      sc.setFile(w.shard, w.key, { ino, mtimeMs, ctimeMs, size, mode: 0 }, w.oid);
    });
  } finally {
    if (plan.record) sc.save();
  }
}

/** The walk hashTarget keeps whenever entries are asked for (as checkout does). */
function walkOf(ws: { walk?: WalkEntry[] }): WalkEntry[] {
  if (!ws.walk) throw new Error('hashTarget returned no walk with needEntries');
  return ws.walk;
}
