import type { ManifestEntry } from '../../formats/manifest.js';
import { isDirOid, type Oid } from '../../formats/oid.js';
import type { ObjectStore } from '../../cache/store.js';
import { FormatError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import type { Job, TransferFailure, TransferProgress } from '../../remote/transfer/executor.js';
import { adapterFor } from '../../remote/transfer/adapters.js';
import type { Selected } from './pointers.js';
import type { HistoryScope } from './revision.js';
import { openRemote, remoteJobs } from './remotes.js';
import type { Repo } from '../repo.js';
import { collectWanted } from './wanted.js';
import { executePush, planFetch, planFetchManifests, planPush } from '../../remote/transfer/plan.js';

export interface TransferOptions {
  /** Absolute paths of targets; none means every pointer. */
  targets?: string[];
  /** Remote name; the default remote otherwise. */
  remote?: string;
  jobs?: number;
  /** `--limit-rate`: bytes per second, over the remote's `limit_rate`. */
  limitRate?: number;
  progress?: TransferProgress;
  /** Also transfer the run-cache (records and the objects of their outputs). */
  runCache?: boolean;
  /** Data referenced at other revisions (`--rev`, `--all-branches`, ...), instead of or beside the workspace's. */
  scope?: HistoryScope;
  /** Stage targets (and path targets a stage writes) bring the outputs of the stages upstream too. */
  withDeps?: boolean;
}

export interface PushOptions extends TransferOptions {
  /** Plan only: list what would be uploaded. */
  dry?: boolean;
  /** Upload everything selected even where the remote has it (a damaged copy there is replaced: readers take the newer one). */
  repair?: boolean;
  /**
   * Called once planned (not with `dry`), before the first upload, when the
   * push uses any object on the remote (uploads it, or finds it there).
   */
  beforeUpload?: () => Promise<void>;
}

/** The outcome of a push or fetch: the `--json` document. */
export interface TransferResult {
  remote: string;
  /** Objects moved. */
  transferred: number;
  /** Objects that were already there. */
  skipped: number;
  failed: TransferFailure[];
  /** Bytes moved: the size of the objects. */
  bytes: number;
  /** Push: bytes sent to the remote (in the packed layout compressed, only the chunks it lacked, and its indexes). */
  sent?: number;
  /** Fetch: bytes received from the remote (in the packed layout compressed, only the chunks the cache lacked). */
  received?: number;
  /** With `dry`: what would be moved. */
  planned?: Job[];
  /**
   * Directories of which only a part was pushed: their manifest stays local
   * until every file is on the remote, so others cannot pull them yet.
   */
  heldBack?: { path: string; missing: number }[];
  /** With `runCache`: run records transferred. */
  runs?: number;
  /** Imported outputs' objects, fetched from their source repositories' remotes (see lib/imports.ts). */
  imports?: ImportTransfer[];
}

/** A fetch from the remote of a source repository of imported data. */
export interface ImportTransfer extends TransferResult {
  /** The source repository, as its import records it. */
  url: string;
}
export async function pushSelected(repo: Repo, remote: Remote, selected: readonly Selected[], opts: PushOptions): Promise<TransferResult> {
  const store = repo.store;
  const jobs = remoteJobs(repo, remote, opts.jobs);
  const corrupt = new Map<Oid, string>();
  const wanted = await collectWanted(selected, cachedManifest(store, corrupt));
  const res: TransferResult = { remote: remote.name, transferred: 0, skipped: 0, failed: [], bytes: 0 };

  const plan = await planPush(remote, wanted, { jobs, repair: opts.repair, corrupt });
  res.skipped = plan.skipped;
  if (opts.dry) {
    const manifests = plan.manifests.map((d) => ({ oid: d.oid, size: store.sizeOf(d.oid), path: d.path }));
    return { ...res, failed: plan.failed, planned: [...plan.uploads, ...manifests] };
  }
  const done = await executePush(remote, store, plan, { jobs, progress: opts.progress, repair: opts.repair, beforeUpload: opts.beforeUpload });
  return { ...res, transferred: done.transferred, bytes: done.bytes, sent: done.sent, failed: done.failed, ...(done.heldBack ? { heldBack: done.heldBack } : {}) };
}

/**
 * A cached manifest's entries; undefined when it is not cached, or is corrupt
 * (recorded in `corrupt`, so one bad directory fails alone instead of the command).
 */
export function cachedManifest(store: ObjectStore, corrupt: Map<Oid, string>) {
  return async (oid: Oid): Promise<ManifestEntry[] | undefined> => {
    if (!store.has(oid)) return undefined;
    try {
      return store.readManifest(oid);
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      corrupt.set(oid, err.message);
      return undefined;
    }
  };
}

export async function withRemote<T>(repo: Repo, opts: { remote?: string; jobs?: number; limitRate?: number }, fn: (remote: Remote) => Promise<T>): Promise<T> {
  const remote = await openRemote(repo, opts.remote, opts.jobs, opts.limitRate);
  try {
    return await fn(remote);
  } finally {
    remote.close();
  }
}

/**
 * Fetches in two rounds: first the manifests of directories the cache lacks
 * (they say which files a directory has), then every missing file object. A
 * target inside a directory fetches only its files and the manifest. Every
 * object is hash-checked before it enters the cache.
 */
export async function fetchSelected(repo: Repo, remote: Remote, selected: readonly Selected[], opts: TransferOptions): Promise<TransferResult> {
  const store = repo.store;
  const jobs = remoteJobs(repo, remote, opts.jobs);
  const res: TransferResult = { remote: remote.name, transferred: 0, skipped: 0, failed: [], bytes: 0 };
  const adapter = adapterFor(remote);

  const manifests = new Set<Oid>();
  const firstRound = planFetchManifests(
    store,
    selected.filter((s) => isDirOid(s.out.sha256)).map((s) => ({ oid: s.out.sha256, path: s.rel })),
  );
  for (const j of firstRound) manifests.add(j.oid);
  const first = await adapter.download(remote, store, firstRound, { jobs });
  const failedManifests = new Map<Oid, TransferFailure>(first.failed.map((f) => [f.oid, f]));
  res.transferred += first.done.length;
  for (const j of first.done) res.bytes += j.size;
  res.received = first.received ?? first.done.reduce((n, j) => n + j.size, 0);
  res.failed.push(...first.failed);

  const corrupt = new Map<Oid, string>();
  const cached = cachedManifest(store, corrupt);
  const wanted = await collectWanted(selected, async (oid): Promise<ManifestEntry[] | undefined> => (failedManifests.has(oid) ? undefined : cached(oid)));
  res.skipped += wanted.dirs.filter((d) => !manifests.has(d.oid) && !corrupt.has(d.oid)).length;
  for (const [oid, error] of corrupt) res.failed.push({ oid, path: wanted.dirs.find((d) => d.oid === oid)!.path, error });
  const { downloads, skipped } = planFetch(store, wanted);
  res.skipped += skipped;
  opts.progress?.plan(
    downloads.length,
    downloads.reduce((n, j) => n + j.size, 0),
  );
  const files = await adapter.download(remote, store, downloads, { jobs, progress: opts.progress });
  res.transferred += files.done.length;
  for (const j of files.done) res.bytes += j.size;
  res.received += files.received ?? files.done.reduce((n, j) => n + j.size, 0);
  res.failed.push(...files.failed);
  return res;
}
