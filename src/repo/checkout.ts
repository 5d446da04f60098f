import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, TdvError, UsageError } from '../errors.js';
import { quotePath, shellWord as sh } from '../formats/paths.js';
import { StatCache } from '../cache/statcache.js';
import { isInside, tmpSuffix } from '../util/fs.js';
import { isDirOid } from '../formats/oid.js';
import { Guard } from '../workspace/guard.js';
import { applyCheckout, type CheckoutTarget, type MissingObject, planCheckout } from '../workspace/checkout.js';
import { reservedDirs } from './lib/cache-dir.js';
import { workspaceContext } from './lib/hashing.js';
import { allOuts, findPointers, type Selected, selectTargets } from './lib/pointers.js';
import type { TransferResult } from './lib/transfer.js';
import type { Repo } from './repo.js';
import type { Progress } from '../util/progress.js';
import type { GitHistory } from '../git/history.js';
import { TDV_DIR } from '../formats/layout.js';

const LOCK_FILE = 'tdv.lock';

export interface CheckoutOptions {
  targets?: string[];
  /** Hears of the files to write and written (and, with `pull`, of the fetch first). */
  progress?: Progress;
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
  /** Stage targets (and path targets a stage writes) bring the outputs of the stages upstream too. */
  withDeps?: boolean;
}

/** Recorded data that a checkout could not restore: its object is not in the cache. */
export interface NotRestored {
  /** Repo-relative path of the file, or of a tracked directory whose manifest (its list of files) is missing. */
  path: string;
  /** The missing object (`<hex>.dir` for a manifest). */
  oid: string;
  /** What records it: the pointer file or `tdv.lock` (`REV:file` with `rev`). */
  pointer: string;
  /** A stage output of the workspace's tdv.lock: the stage, which `tdv repro` can run to rebuild it. */
  stage?: string;
}

/** Data no pointer tracks any more that checkout left in place, and why. */
export interface KeptData {
  path: string;
  /** `changed`: not what tdv placed; `uncached`: its object is not in the cache; `pointer-deleted`: its pointer was deleted by hand (Git still tracks it). */
  why: 'changed' | 'uncached' | 'pointer-deleted';
  /** The file that recorded it. */
  by: string;
}

export interface CheckoutResult {
  /** Repo-relative paths written (or, with `dry`, to be written). */
  restored: string[];
  deleted: string[];
  /**
   * Recorded data whose object is not in the cache, left as it was; everything
   * else was restored. Not empty: the command failed (exit 1), after doing the rest.
   */
  missing: NotRestored[];
  /**
   * Data tdv placed that no pointer tracks any more (a branch switch took its
   * pointer away) and that changed since, or is not in the cache: kept, never
   * deleted. (Unchanged such data is deleted, and listed in `deleted`.)
   */
  kept: KeptData[];
  /** With `pull`: the fetch that came first. Objects it could not fetch are in `missing`. */
  fetch?: TransferResult;
  /** With `rev`: the commit it named. */
  commit?: string;
}

/**
 * Makes the workspace match the pointers, never destroying uncached data
 * without `force`. Conflicts refuse the whole checkout before anything is
 * touched; objects missing from the cache do not: everything else is
 * restored, and the result lists what was not.
 */
export async function checkout(repo: Repo, opts: CheckoutOptions = {}): Promise<CheckoutResult> {
  return repo.withLock('checkout', () => checkoutUnlocked(repo, opts));
}

async function checkoutUnlocked(repo: Repo, options: CheckoutOptions): Promise<CheckoutResult> {
  const { expandStageTargets } = await import('./lib/stage-targets.js');
  const opts: CheckoutOptions = { ...options, targets: (await expandStageTargets(repo, options.targets ?? [], options)).targets };
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
    const pointers = await findPointers(repo);
    try {
      selected = selectTargets(repo, pointers, opts.targets ?? []);
    } catch (err) {
      throw (await revisionNamedAsTarget(repo, err, opts.targets ?? [])) ?? err;
    }
  }
  let fetched: TransferResult | undefined;
  if (opts.pull) {
    const { fetchSelected } = await import('./lib/transfer.js');
    const { fetchWithImports } = await import('./lib/imports.js');
    // Objects that could not be fetched are missing below: the rest is still checked out.
    fetched = await fetchWithImports(repo, selected, opts, (remote, sel) => fetchSelected(repo, remote, sel, opts));
    opts.progress?.phase('checkout');
  }
  let ctx = await workspaceContext(repo);
  let snapshotRoot: string | undefined;
  if (opts.to !== undefined) {
    // Tracked data of the revision and of the workspace: a snapshot inside either would be mixed into it.
    const tracked = opts.rev === undefined ? selected : [...selected, ...allOuts(repo, await findPointers(repo))];
    snapshotRoot = snapshotDestination(repo, opts.to, tracked);
    // Its own guard (paths as in the repository, nothing outside it, never through a symlink in it),
    // and a stat cache of its own that is never saved.
    ctx = {
      ...ctx,
      guard: new Guard(snapshotRoot, { label: 'the snapshot directory' }),
      statCache: new StatCache(path.join(repo.tmpDir, `unsaved.${tmpSuffix()}`), () => {}),
      record: false,
    };
  }
  const label = opts.rev === undefined ? '' : `${opts.rev}:`;
  const targets = selected.map((s): CheckoutTarget => ({
    rel: s.rel,
    oid: s.out.sha256,
    isexec: s.out.isexec,
    size: s.out.size,
    nfiles: s.out.nfiles,
    sub: s.sub,
    source: `${label}${repo.rel(s.ptr.file)}`,
  }));
  const plan = await planCheckout(ctx, targets, { force: opts.force, relink: opts.relink });
  if (plan.conflicts.length > 0 && snapshotRoot !== undefined) {
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
  // Only a checkout of the whole workspace to its own pointers knows what is no longer tracked.
  const whole = snapshotRoot === undefined && opts.rev === undefined && (opts.targets ?? []).length === 0;
  const stale = whole ? await untrackedPlaced(repo, ctx, selected) : undefined;
  if (!opts.dry) {
    if (snapshotRoot !== undefined) makeRoot(snapshotRoot);
    await applyCheckout({ ...ctx, progress: opts.progress }, plan);
    for (const d of stale?.deletes ?? []) {
      // A directory file by file, as its manifest lists them: what .tdvignore kept out of it stays.
      for (const f of d.files ?? [d.rel]) {
        repo.guard.remove(f, PLACED_SOURCE);
        repo.guard.pruneEmpty(path.posix.dirname(f));
      }
      if (d.files) repo.guard.pruneEmpty(d.rel);
      repo.statCache.forget(d.rel);
    }
    if (snapshotRoot === undefined && opts.rev === undefined) {
      // What the workspace now holds of tdv's: what a later branch switch may take away.
      // (Not the data of another revision, nor data whose objects were missing: not placed.)
      const { updatePlaced } = await import('./lib/placed.js');
      const lacking = (rel: string) => plan.missing.some((m) => m.rel === rel || m.rel.startsWith(`${rel}/`));
      const placed = selected.filter((s) => s.sub === undefined && !lacking(s.rel)).map((s) => ({ rel: s.rel, oid: s.out.sha256, by: repo.rel(s.ptr.file) }));
      updatePlaced(repo, placed, stale?.forget ?? []);
      if (stale?.deletes.length) repo.statCache.save();
    }
  }
  const restored = [...plan.writes, ...plan.chmods].map((w) => w.rel);
  const missing = await notRestored(repo, plan.missing);
  const deleted = [...plan.deletes.map((d) => d.rel), ...(stale?.deletes ?? []).map((d) => d.rel)];
  return { restored, deleted, missing, kept: stale?.kept ?? [], ...(fetched ? { fetch: fetched } : {}), ...(commit ? { commit } : {}) };
}

/**
 * `tdv checkout main`: a target that is no tracked data and no file, but a
 * revision Git knows (a branch, a tag, a commit), is a usage error that says
 * how to get at that revision's data, instead of suggesting `tdv add main`.
 * Undefined when `err` is anything else.
 */
async function revisionNamedAsTarget(repo: Repo, err: unknown, targets: readonly string[]): Promise<UsageError | undefined> {
  if (!(err instanceof TdvError) || err.code !== 'NOT_TRACKED' || !repo.git) return undefined;
  const { openHistory } = await import('./lib/revision.js');
  const history = openHistory(repo);
  try {
    for (const t of targets) {
      if (fs.lstatSync(t, { throwIfNoEntry: false }) !== undefined) continue;
      const name = repo.rel(t);
      try {
        history.resolve(name);
      } catch {
        continue;
      }
      return new UsageError(
        `${quotePath(name)} is not tracked data but a Git revision; \`tdv checkout --rev ${sh(name)}\` restores its data, or \`git checkout ${sh(name)}\` and then \`tdv checkout\` switches to it`,
      );
    }
    return undefined;
  } finally {
    history.close();
  }
}

const PLACED_SOURCE = 'the record of what tdv placed (.tdv/tmp/placed.json)';

/**
 * Data tdv placed (see lib/placed.ts) that no output tracks now: deleted when
 * it is still exactly what tdv placed and that object is in the cache (as
 * DVC removes outputs a branch switch took away), kept and reported when it
 * changed, when its object is gone (tdv never deletes data the cache lacks),
 * or when its pointer was deleted by hand (Git still tracks the pointer: that
 * is no branch switch, and `tdv remove` is how tracking stops). `forget`: the
 * record entries done with.
 */
async function untrackedPlaced(
  repo: Repo,
  ctx: Awaited<ReturnType<typeof workspaceContext>>,
  current: readonly Selected[],
): Promise<{ deletes: { rel: string; files?: string[] }[]; kept: KeptData[]; forget: string[] }> {
  const res = { deletes: [] as { rel: string; files?: string[] }[], kept: [] as KeptData[], forget: [] as string[] };
  if (!repo.git) return res;
  const { openHistory } = await import('./lib/revision.js');
  // A pointer HEAD still commits was taken away by hand (`git rm data.csv.tdv`, which also
  // drops it from the index), not by a branch switch: its data is the user's to keep.
  // History tdv cannot read counts as "still committed": the data stays.
  let head: { history: GitHistory; commit: string } | null | undefined;
  const inHead = (by: string): boolean => {
    if (head === undefined) {
      try {
        const history = openHistory(repo);
        head = history.hasCommits() ? { history, commit: history.resolve('HEAD') } : null;
        if (head === null) history.close();
      } catch {
        return true;
      }
    }
    if (head === null) return false;
    try {
      return head.history.readFileAt(head.commit, repo.gitPath(by)) !== undefined;
    } catch {
      return true;
    }
  };
  try {
    return await untrackedPlacedIn(repo, ctx, current, inHead, res);
  } finally {
    head?.history.close();
  }
}

async function untrackedPlacedIn(
  repo: Repo,
  ctx: Awaited<ReturnType<typeof workspaceContext>>,
  current: readonly Selected[],
  inHead: (by: string) => boolean,
  res: { deletes: { rel: string; files?: string[] }[]; kept: KeptData[]; forget: string[] },
): Promise<{ deletes: { rel: string; files?: string[] }[]; kept: KeptData[]; forget: string[] }> {
  const { readPlaced } = await import('./lib/placed.js');
  const { hashAt } = await import('../workspace/checkout.js');
  let lockMissing: boolean | undefined;
  const lockGone = () => (lockMissing ??= fs.lstatSync(path.join(repo.root, LOCK_FILE), { throwIfNoEntry: false }) === undefined);
  const overlaps = (rel: string) => current.some((s) => s.rel === rel || rel.startsWith(`${s.rel}/`) || s.rel.startsWith(`${rel}/`));
  for (const [rel, e] of readPlaced(repo)) {
    if (overlaps(rel)) continue;
    res.forget.push(rel);
    // Git's now (a branch that commits it), or not there: nothing of tdv's to clean up.
    if (repo.gitTracked().has(repo.gitPath(rel)) || repo.gitTracked().firstUnder(repo.gitPath(rel)) !== undefined) continue;
    let st;
    try {
      st = repo.guard.lstat(rel, PLACED_SOURCE);
    } catch {
      continue; // A path the guard refuses (a symlink on the way): never touched.
    }
    if (st === undefined) continue;
    // tdv.lock deleted by hand (`rm tdv.lock` to make stages run again) is no branch switch either.
    const byGone = e.by !== LOCK_FILE || lockGone();
    if (byGone && (repo.gitTracked().has(repo.gitPath(e.by)) || inHead(e.by))) {
      res.kept.push({ path: rel, why: 'pointer-deleted', by: e.by });
      continue;
    }
    // Every byte must be in the cache: a directory's manifest and each of its files.
    const files = isDirOid(e.oid) && repo.store.has(e.oid) ? repo.store.readManifest(e.oid) : undefined;
    if (!repo.store.has(e.oid) || (files && !files.every((f) => repo.store.has(f.sha256)))) {
      res.kept.push({ path: rel, why: 'uncached', by: e.by });
      continue;
    }
    const now = await hashAt(ctx, rel);
    if (now.kind === 'file' && now.oid === e.oid) res.deletes.push({ rel });
    else if (now.kind === 'dir' && now.oid === e.oid && files) res.deletes.push({ rel, files: files.map((f) => `${rel}/${f.relpath}`) });
    else res.kept.push({ path: rel, why: 'changed', by: e.by });
  }
  return res;
}

/** The plan's missing objects, each stage output of the workspace's tdv.lock with its stage. */
async function notRestored(repo: Repo, missing: readonly MissingObject[]): Promise<NotRestored[]> {
  let stageOf: ((rel: string) => string | undefined) | undefined;
  if (missing.some((m) => m.source === LOCK_FILE)) {
    const { readLock } = await import('../stages/lock.js');
    const outs = [...(await readLock(repo.root))].flatMap(([stage, s]) => s.outs.map((o) => ({ stage, path: o.path })));
    stageOf = (rel) => outs.find((o) => rel === o.path || rel.startsWith(`${o.path}/`))?.stage;
  }
  return missing.map((m) => {
    const stage = m.source === LOCK_FILE ? stageOf?.(m.rel) : undefined;
    return { path: m.rel, oid: m.oid, pointer: m.source, ...(stage !== undefined ? { stage } : {}) };
  });
}

/**
 * Checks a snapshot directory: it must not hold the repository, nor lie in
 * Git's or tdv's own files, the cache, or tracked data (a snapshot there would
 * be mixed into what it copies). Returns its real path, the root of its guard.
 */
function snapshotDestination(repo: Repo, to: string, tracked: readonly Selected[]): string {
  const real = realpathAllowingMissing(to);
  const root = realpathAllowingMissing(repo.root);
  const refuse = (why: string) => new UsageError(`cannot write a snapshot into ${to}: ${why}; choose another directory`);
  if (isInside(real, root)) throw refuse('it contains the repository (to restore data into the workspace, leave out --to)');
  for (const own of [path.join(root, '.git'), path.join(root, TDV_DIR), realpathAllowingMissing(repo.cacheDir)]) {
    if (isInside(own, real)) throw refuse(`it is inside ${own}`);
  }
  for (const s of tracked) if (isInside(realpathAllowingMissing(s.abs), real)) throw refuse(`it is inside tracked data (${s.rel})`);
  // A directory remote (or the cache, wherever cache.dir puts it): the snapshot's files would be mixed into
  // its objects (found by the attack suite: --to into a remote reached through a symlink).
  for (const r of reservedDirs(repo.root, repo.config)) if (isInside(r.dir, real) || isInside(real, r.dir)) throw refuse(`it ${isInside(r.dir, real) ? 'is inside' : 'contains'} ${r.what}`);
  const st = fs.statSync(real, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw refuse('it is not a directory');
  // Anywhere else in the work tree, a snapshot is untracked data Git would commit, and its
  // files could land on files Git tracks: a snapshot goes outside the repository.
  const workTree = realpathAllowingMissing(repo.git?.root ?? repo.root);
  if (isInside(workTree, real))
    throw refuse('it is inside the repository, where Git would see the snapshot as new files to commit (and it could overwrite files Git tracks); write it outside, e.g. /tmp/snapshot');
  return real;
}

/** Makes a snapshot directory that does not exist yet: real directories below its nearest existing ancestor. */
function makeRoot(root: string): void {
  let dir = root;
  const rest: string[] = [];
  while (!fs.existsSync(dir)) {
    rest.unshift(path.basename(dir));
    dir = path.dirname(dir);
  }
  if (rest.length > 0) new Guard(dir, { label: dir }).mkdirp(rest.join('/'));
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
