import fs from 'node:fs';
import path from 'node:path';
import { ConflictError, MissingObjectsError, UsageError } from '../errors.js';
import { StatCache } from '../cache/statcache.js';
import { isInside, tmpSuffix } from '../util/fs.js';
import { Guard } from '../workspace/guard.js';
import { applyCheckout, type CheckoutTarget, planCheckout } from '../workspace/checkout.js';
import { workspaceContext } from './lib/hashing.js';
import { allOuts, findPointers, type Selected, selectTargets } from './lib/pointers.js';
import type { TransferResult } from './lib/transfer.js';
import type { Repo } from './repo.js';
import type { Progress } from '../util/progress.js';
import { TDV_DIR } from '../formats/layout.js';

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
  const targets = selected.map((s): CheckoutTarget => ({ rel: s.rel, oid: s.out.sha256, isexec: s.out.isexec, size: s.out.size, nfiles: s.out.nfiles, sub: s.sub, source: `${label}${repo.rel(s.ptr.file)}` }));
  const plan = await planCheckout(ctx, targets, { force: opts.force, relink: opts.relink });
  if (plan.missing.length > 0) {
    const fix = opts.rev === undefined ? 'run `tdv pull` to fetch them' : `run \`tdv pull --rev ${opts.rev}\` to fetch them, or add --pull`;
    throw new MissingObjectsError(`${plan.missing.length} file(s) are not in the cache: ${summarize(plan.missing)}; ${fix}`, plan.missing);
  }
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
  if (!opts.dry) {
    if (snapshotRoot !== undefined) makeRoot(snapshotRoot);
    await applyCheckout({ ...ctx, progress: opts.progress }, plan);
  }
  const restored = [...plan.writes, ...plan.chmods].map((w) => w.rel);
  return { restored, deleted: plan.deletes.map((d) => d.rel), ...(fetched ? { fetch: fetched } : {}), ...(commit ? { commit } : {}) };
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
  const st = fs.statSync(real, { throwIfNoEntry: false });
  if (st && !st.isDirectory()) throw refuse('it is not a directory');
  // Anywhere else in the work tree, a snapshot is untracked data Git would commit, and its
  // files could land on files Git tracks: a snapshot goes outside the repository.
  const workTree = realpathAllowingMissing(repo.git?.root ?? repo.root);
  if (isInside(workTree, real)) throw refuse('it is inside the repository, where Git would see the snapshot as new files to commit (and it could overwrite files Git tracks); write it outside, e.g. /tmp/snapshot');
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
