import { type ManifestEntry, parseManifest } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { errnoCode, RemoteError, TdvError, UsageError } from '../errors.js';
import type { Remote } from '../remote/remote.js';
import type { PackedRemote } from '../remote/packed.js';
import { readVerified } from '../remote/transfer/executor.js';
import { findPointers, allOuts, type Selected } from './lib/pointers.js';
import type { Repo } from './repo.js';
import type { Progress } from '../util/progress.js';
import { type HistoryScope, INDEX_LABEL, openHistory, outsInScope, pointersInIndex, scopeIsEmpty } from './lib/revision.js';
import type { GitHistory } from '../git/history.js';
import { type SharedCache, sharedCache } from './lib/cache-dir.js';
import { type SharedRemote, sharedRemote, sharedRemoteError } from './lib/remote-owner.js';

export interface GcOptions {
  /** Keep what the workspace's pointers reference (always kept; alone, nothing else is). */
  workspace?: boolean;
  /** Also keep the data of every local branch's tip. */
  allBranches?: boolean;
  /** Also keep the data of every tag. */
  allTags?: boolean;
  /** Also keep the data of every commit reachable from a branch, tag, HEAD or stash entry. */
  allCommits?: boolean;
  /** Also delete unreferenced objects from a remote (`remote`: its name; the default otherwise). */
  cloud?: boolean;
  /**
   * DVC's `--not-in-remote`: keep a referenced object only if the remote
   * (`remote`, or the default) lacks it; what is safely there is deleted from
   * the cache too (`tdv fetch` gets it back). Never deletes an object the
   * remote does not hold, referenced or not... unless nothing references it.
   */
  notInRemote?: boolean;
  remote?: string;
  jobs?: number;
  dry?: boolean;
  /**
   * Collect a cache outside the repository (`cache.dir`, or a `.tdv/cache`
   * symlink) even though other repositories may use it: their objects that
   * this repository does not reference are deleted too.
   */
  sharedCache?: boolean;
  /**
   * With `cloud`: collect a remote other repositories push to too (their
   * markers, `repos/<id>`, are there, or objects without a marker of this
   * repository): their objects this repository does not reference are deleted.
   */
  sharedRemote?: boolean;
  /** Asked before deleting; return false to cancel. Not given means "do not delete". */
  confirm?: (plan: GcPlan) => Promise<boolean>;
  /** Hears of the objects to delete, and of those deleted. */
  progress?: Progress;
  /** Opens the `--cloud` remote (tests inject one that fails in ways a test cannot cause). */
  openRemote?: (repo: Repo, name?: string, jobs?: number) => Promise<Remote>;
}

export interface GcPlan {
  /** Objects no pointer references, with their sizes. */
  unused: { oid: Oid; size: number }[];
  bytes: number;
  kept: number;
  /**
   * Directories in the kept history whose manifest is in neither the cache
   * nor (with --cloud) the remote: which files they use is unknown, so only
   * files other kept versions use are kept for them.
   */
  unknown: { path: string; /** The commit, or INDEX_LABEL for a pointer staged in the Git index. */ commit: string; oid: Oid }[];
  /** With `notInRemote`: the remote checked, and how many referenced objects it holds (deleted from the cache). */
  inRemote?: { remote: string; objects: number };
  /**
   * With `cloud`: the remote's unreferenced objects. Once removed from a
   * packed remote, also what became of its packs (`packs`: deleted with no
   * live blob left, rewritten into new ones, kept, created), the indexes
   * replaced, the bytes reclaimed, and packs no index names (`unnamed`).
   */
  cloud?: {
    remote: string;
    unused: Oid[];
    kept: number;
    packs?: { deleted: number; rewritten: number; kept: number; created: number };
    indexes?: { replaced: number; written: number };
    bytesReclaimed?: number;
    unnamed?: { deleted: number; waiting: number };
  };
  /** The cache is outside the repository, so other repositories may use it (see `sharedCache`). */
  shared?: SharedCache;
  /** With `cloud`: the remote is used by other repositories too (see `sharedRemote`). */
  sharedRemote?: SharedRemote;
}

export interface GcResult extends GcPlan {
  removed: boolean;
}

/**
 * Deletes cache objects (and with `cloud`, remote objects) that nothing in
 * the chosen scopes references: the workspace's pointers and tdv.lock always,
 * plus the commits `--all-branches`, `--all-tags`, `--all-commits` name.
 */
export async function gc(repo: Repo, opts: GcOptions): Promise<GcResult> {
  // --all-commits keeps the stashes too: stash@{n} holds pointers nobody committed.
  const scope: HistoryScope = { allBranches: opts.allBranches, allTags: opts.allTags, allCommits: opts.allCommits, stashes: opts.allCommits };
  if (!opts.workspace && scopeIsEmpty(scope)) {
    throw new UsageError('say what to keep: `tdv gc --workspace` keeps the data the workspace pointers reference; add --all-branches, --all-tags or --all-commits to keep history too');
  }
  if (opts.notInRemote && opts.cloud)
    throw new UsageError('--not-in-remote and --cloud cannot be combined: --not-in-remote deletes from the cache what the remote holds, --cloud deletes from the remote');
  // A workspace file may be a symlink into the cache: deleting its object would break it.
  if (opts.notInRemote && repo.config.cache.type.includes('symlink')) {
    throw new UsageError(
      '--not-in-remote deletes cached objects the workspace uses, and cache.type allows symlinks into the cache, which would break; set cache.type without symlink (e.g. "reflink,copy") and run `tdv checkout --relink` first, or use gc without --not-in-remote',
    );
  }
  // Both refusals come before the lock, the remote and the plan: nothing is read or deleted.
  refuseShallow(repo, scope, opts.cloud === true);
  const shared = sharedCache(repo.root, repo.config);
  if (shared && !opts.sharedCache && !opts.dry) throw sharedCacheError(shared);
  return repo.withLock('gc', async () => {
    let remote: Remote | undefined;
    if (opts.cloud || opts.notInRemote) {
      const open = opts.openRemote ?? (await import('./lib/remotes.js')).openRemote;
      remote = await open(repo, opts.remote, opts.jobs);
    }
    try {
      // Before anything is read or deleted: a remote other repositories use is theirs too.
      const foreign = remote && opts.cloud ? await sharedRemote(repo, remote) : undefined;
      if (foreign && !opts.sharedRemote && !opts.dry) throw sharedRemoteError(foreign);
      const planned = await planGc(repo, scope, remote, { notInRemote: opts.notInRemote, jobs: opts.jobs });
      const plan: GcPlan = { ...planned, ...(shared ? { shared } : {}), ...(foreign ? { sharedRemote: foreign } : {}) };
      keptOids.set(plan, keptOids.get(planned)!);
      const nothing = plan.unused.length === 0 && (plan.cloud?.unused.length ?? 0) === 0;
      if (nothing && !opts.dry && remote && plan.cloud && isPacked(remote)) {
        // No object to remove, but packs a killed upload left (past their grace period) still go: nothing anyone can read.
        await collectPacked(remote, plan);
      }
      if (opts.dry && remote && plan.cloud && plan.cloud.unused.length > 0 && isPacked(remote)) {
        // What repacking would do, read only.
        const res = await remote.collect(plan.cloud.unused, keptOids.get(plan), { dry: true });
        Object.assign(plan.cloud, { packs: res.packs, bytesReclaimed: res.bytesReclaimed, unnamed: res.unnamed });
      }
      if (opts.dry || nothing) return { ...plan, removed: false };
      if (!opts.confirm || !(await opts.confirm(plan))) return { ...plan, removed: false };
      const failed = removeReporting(repo, plan.unused, opts.progress);
      repo.store.removeStaleSides(SPOOL_STALE_MS);
      if (failed.length > 0) {
        throw new TdvError('GC_INCOMPLETE', `could not delete ${failed.length} of ${plan.unused.length} unused objects (first: ${failed[0]}); check the cache's permissions`);
      }
      if (remote && plan.cloud && plan.cloud.unused.length > 0) {
        let notDeleted: Oid[];
        if (isPacked(remote)) notDeleted = await collectPacked(remote, plan);
        else notDeleted = await remote.remove(plan.cloud.unused);
        if (notDeleted.length > 0) {
          throw new TdvError(
            'GC_INCOMPLETE',
            `could not delete ${notDeleted.length} of ${plan.cloud.unused.length} unused objects from remote "${remote.name}" (first: ${notDeleted[0]}); check its permissions and run \`tdv gc\` again`,
          );
        }
      }
      return { ...plan, removed: true };
    } finally {
      remote?.close();
    }
  });
}

/** Chunks of an interrupted download not touched for this long are dropped by gc (the pull that left them is not resuming). */
const SPOOL_STALE_MS = 24 * 60 * 60 * 1000;

/** A remote in the packed layout (remote/packed.ts; not imported here, so plain commands do not load it). */
function isPacked(remote: Remote): remote is PackedRemote {
  return (remote as Partial<PackedRemote>).packed === true && typeof (remote as Partial<PackedRemote>).collect === 'function';
}

/**
 * `plan.cloud.unused` removed from a packed remote by repacking (chunks the
 * kept data uses as whole files stay); what became of the packs goes into
 * `plan.cloud`. A pack left whole because a live blob in it is damaged fails
 * gc, naming the blob. Returns the objects not deleted.
 */
async function collectPacked(remote: PackedRemote, plan: GcPlan): Promise<Oid[]> {
  const res = await remote.collect(plan.cloud!.unused, keptOids.get(plan));
  Object.assign(plan.cloud!, { packs: res.packs, indexes: res.indexes, bytesReclaimed: res.bytesReclaimed, unnamed: res.unnamed });
  if (res.damaged.length > 0) {
    const one = res.damaged.length === 1;
    throw new TdvError('GC_INCOMPLETE', `${one ? 'a pack was' : `${res.damaged.length} packs were`} not repacked and nothing of ${one ? 'it' : 'them'} was deleted: ${res.damaged[0]!.message}`, {
      data: { packs: res.damaged.map((d) => d.pack) },
    });
  }
  return res.notDeleted;
}

/** Deletes cache objects in batches, telling `progress` after each; returns those that could not be deleted. */
function removeReporting(repo: Repo, unused: GcPlan['unused'], progress: Progress | undefined): Oid[] {
  if (!progress) return repo.store.remove(unused.map((u) => u.oid));
  progress.plan(
    unused.length,
    unused.reduce((n, u) => n + u.size, 0),
  );
  const failed: Oid[] = [];
  const BATCH = 500;
  for (let i = 0; i < unused.length; i += BATCH) {
    const batch = unused.slice(i, i + BATCH);
    failed.push(...repo.store.remove(batch.map((u) => u.oid)));
    progress.files(batch.length);
    progress.bytes(batch.reduce((n, u) => n + u.size, 0));
  }
  return failed;
}

/**
 * A shallow clone lacks the older commits, which may still reference objects:
 * `--all-*` would keep only what the commits it has use, and `--cloud` would
 * delete from a remote that other, complete clones rely on. Refused, saying how
 * to get the history.
 */
function refuseShallow(repo: Repo, scope: HistoryScope, cloud: boolean): void {
  if ((scopeIsEmpty(scope) && !cloud) || !repo.git) return;
  let shallow: boolean;
  try {
    const history = openHistory(repo);
    shallow = history.isShallow;
    history.close();
  } catch {
    return; // history tdv cannot read (SHA-256): the scopes fail when they read it, saying why
  }
  if (!shallow) return;
  const flags = [scope.allBranches && '--all-branches', scope.allTags && '--all-tags', scope.allCommits && '--all-commits', cloud && '--cloud'].filter(Boolean).join(' ');
  throw new TdvError(
    'SHALLOW_CLONE',
    `this Git clone is shallow, so the commits that may still use objects are not here and \`tdv gc ${flags}\` would delete ${cloud ? 'data other clones need from the remote' : 'their data'}; run \`git fetch --unshallow\` first (in CI: a checkout with fetch-depth: 0)`,
    { data: { flags } },
  );
}

/** The refusal to collect a cache other repositories may use, naming it, how it is set, and who could lose data. */
function sharedCacheError(s: SharedCache): UsageError {
  const who = s.owner ? `the repository ${s.owner} (whose own cache it is) and any other repository using it` : `every other repository or clone whose cache.dir or .tdv/cache leads there`;
  return new UsageError(
    `the cache ${s.dir} is outside this repository (${s.via}): gc sees only this repository's pointers, so ${who} would lose the objects only they reference; pass --shared-cache to collect it anyway, or --dry to see the plan`,
    { dir: s.dir },
  );
}

/** The objects a plan keeps (not part of its JSON): a packed remote keeps chunks whose ids these are. */
const keptOids = new WeakMap<GcPlan, ReadonlySet<Oid>>();

/**
 * What gc would delete. With `remote` and not `notInRemote` (`--cloud`), the
 * remote's unreferenced objects too; with `notInRemote`, the remote only
 * tells which referenced objects need not stay in the cache.
 */
export async function planGc(repo: Repo, scope: HistoryScope = {}, remote?: Remote, opts: { notInRemote?: boolean; jobs?: number } = {}): Promise<GcPlan> {
  const store = repo.store;
  const keep = new Set<Oid>();
  const unknown: GcPlan['unknown'] = [];
  const keepEntries = (entries: readonly ManifestEntry[]) => {
    for (const e of entries) keep.add(e.sha256);
  };
  for (const s of allOuts(repo, await findPointers(repo, { everything: true }))) {
    keep.add(s.out.sha256);
    if (!isDirOid(s.out.sha256)) continue;
    if (!store.has(s.out.sha256)) {
      // Without the manifest, which file objects belong to this directory is unknown.
      throw new TdvError(
        'MISSING_OBJECTS',
        `cannot tell which objects ${s.rel} uses: its manifest ${s.out.sha256} is not in the cache; run \`tdv pull\` first, or \`tdv remove ${repo.rel(s.ptr.file)}\` if it is no longer needed`,
      );
    }
    keepEntries(store.readManifest(s.out.sha256));
  }
  const historic = await keptHistory(repo, scope);
  {
    const seen = new Set<Oid>();
    for (const s of historic) {
      const oid = s.out.sha256;
      keep.add(oid);
      if (!isDirOid(oid) || seen.has(oid)) continue;
      seen.add(oid);
      const entries = store.has(oid) ? store.readManifest(oid) : remote ? await remoteManifest(remote, repo, oid) : undefined;
      if (entries) keepEntries(entries);
      else unknown.push({ path: s.rel, commit: s.at.commit, oid });
    }
  }
  // The directory manifests run records name stay (small, without their files): a per-item
  // stage finds by them which output files belonged to an item that changed or went, where
  // without them it would run every item again (lib/items.ts).
  {
    const { RunCache } = await import('../stages/run-cache.js');
    const runs = new RunCache(store);
    for (const key of runs.list()) for (const o of runs.get(key)?.outs ?? []) if (isDirOid(o.sha256) && store.has(o.sha256)) keep.add(o.sha256);
  }
  let inRemote: GcPlan['inRemote'];
  if (remote && opts.notInRemote) {
    // DVC's meaning: referenced objects the remote holds are not kept. Asked of the remote for
    // exactly the kept objects, so an object absent there (or whose check failed) always stays.
    const { remoteHas } = await import('../remote/transfer/executor.js');
    const { remoteJobs } = await import('./lib/remotes.js');
    const jobs = remoteJobs(repo, remote, opts.jobs);
    const named = await remoteHas(remote, [...keep], jobs);
    // A name on the remote is not a copy: a truncated upload or a broken remote has the
    // name with other bytes, and deleting the cache's object would lose the only good one.
    // Only an object the remote stores at exactly the cached size leaves the cache.
    const { default: pLimit } = await import('p-limit');
    const limit = pLimit(jobs);
    const there = new Set<Oid>();
    await Promise.all(
      [...named].map((oid) =>
        limit(async () => {
          let size: number;
          try {
            size = store.sizeOf(oid);
          } catch {
            return; // Not in the cache: nothing to delete.
          }
          const st = await remote.stat(oid).catch(() => undefined);
          if (st?.size === size) there.add(oid);
        }),
      ),
    );
    for (const oid of there) keep.delete(oid);
    inRemote = { remote: remote.name, objects: there.size };
  }
  const unused: GcPlan['unused'] = [];
  let bytes = 0;
  let kept = 0;
  for (const oid of store.list()) {
    if (keep.has(oid)) {
      kept++;
      continue;
    }
    let size = 0;
    try {
      size = store.sizeOf(oid);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      continue;
    }
    unused.push({ oid, size });
    bytes += size;
  }
  const plan: GcPlan = { unused, bytes, kept, unknown, ...(inRemote ? { inRemote } : {}) };
  keptOids.set(plan, keep);
  if (remote && !opts.notInRemote) {
    const cloudUnused: Oid[] = [];
    let cloudKept = 0;
    for await (const oid of remote.list()) {
      if (keep.has(oid)) cloudKept++;
      else cloudUnused.push(oid);
    }
    plan.cloud = { remote: remote.name, unused: cloudUnused.sort(), kept: cloudKept };
  }
  return plan;
}

/**
 * The outputs gc keeps beyond the workspace: those at the scope's commits and
 * those staged in the Git index (always: a pointer `git add`ed, then changed
 * again in the workspace, is what the next commit records).
 */
async function keptHistory(repo: Repo, scope: HistoryScope): Promise<(Selected & { at: { commit: string } })[]> {
  if (!repo.git) return [];
  let history: GitHistory;
  try {
    history = openHistory(repo);
  } catch (err) {
    // History tdv cannot read (SHA-256): --workspace alone still works, as before, without the index.
    if (scopeIsEmpty(scope) && err instanceof TdvError && err.code === 'GIT_UNSUPPORTED') return [];
    throw err;
  }
  try {
    const out: (Selected & { at: { commit: string } })[] = scopeIsEmpty(scope) ? [] : await outsInScope(repo, history, scope);
    for (const s of allOuts(repo, await pointersInIndex(repo, history))) out.push({ ...s, at: { commit: INDEX_LABEL } });
    return out;
  } finally {
    history.close();
  }
}

/**
 * A kept directory's manifest that the cache lacks, read (verified) from the
 * remote being collected: its files on the remote are still in use. Absent
 * there too: undefined.
 */
async function remoteManifest(remote: Remote, repo: Repo, oid: Oid): Promise<ManifestEntry[] | undefined> {
  try {
    return parseManifest((await readVerified(remote, repo.store, oid)).toString('utf8'), `${oid} on remote "${remote.name}"`);
  } catch (err) {
    if (err instanceof RemoteError && err.code === 'OBJECT_NOT_ON_REMOTE') return undefined;
    throw err;
  }
}
