import fs from 'node:fs';
import type { ManifestEntry } from '../../formats/manifest.js';
import { isDirOid, type Oid, shortOid } from '../../formats/oid.js';
import type { ObjectStore } from '../../cache/store.js';
import { damagedPushMessage, LinkedObjectCheck } from '../../cache/linked.js';
import { FormatError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import { type Job, remoteHas, type TransferFailure, type TransferProgress } from '../../remote/transfer/executor.js';
import { adapterFor } from '../../remote/transfer/adapters.js';
import type { Selected } from './pointers.js';
import type { HistoryScope } from './revision.js';
import { openRemote, remoteJobs } from './remotes.js';
import type { Repo } from '../repo.js';
import { collectWanted, type WantedDir } from './wanted.js';

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
  /** Bytes moved. */
  bytes: number;
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

  // Cheapest check first: a directory whose manifest is on the remote is there whole.
  const has = (oids: Oid[]) => (opts.repair ? Promise.resolve(new Set<Oid>()) : remoteHas(remote, oids, jobs));
  const manifestsThere = await has(wanted.dirs.map((d) => d.oid));
  const onRemote = new Set<Oid>();
  const check: Oid[] = [];
  for (const [oid] of wanted.files) check.push(oid);
  const complete = new Set<Oid>();
  for (const d of wanted.dirs) {
    if (!manifestsThere.has(d.oid)) continue;
    complete.add(d.oid);
    for (const c of d.children) onRemote.add(c.oid);
  }
  const unknown = check.filter((o) => !onRemote.has(o));
  for (const o of await has(unknown)) onRemote.add(o);

  const uploads: Job[] = [];
  for (const [oid, job] of wanted.files) {
    if (onRemote.has(oid)) res.skipped++;
    else uploads.push(job);
  }
  // The same directory content may be tracked at several paths: one manifest each.
  const manifestJobs: WantedDir[] = [];
  const seen = new Set<Oid>();
  for (const d of wanted.dirs) {
    if (seen.has(d.oid)) {
      // (The first was skipped as complete, or failed: then there is no job to widen.)
      const job = manifestJobs.find((m) => m.oid === d.oid);
      if (job && !d.partial) job.partial = false;
      continue;
    }
    seen.add(d.oid);
    if (complete.has(d.oid)) res.skipped++;
    else if (!d.entries)
      res.failed.push({ oid: d.oid, path: d.path, error: corrupt.get(d.oid) ?? `the manifest of ${d.path} (${shortOid(d.oid)}) is not in the cache, nor on remote "${remote.name}"` });
    else manifestJobs.push({ ...d });
  }
  if (opts.dry) {
    const manifests = manifestJobs.map((d) => ({ oid: d.oid, size: store.sizeOf(d.oid), path: d.path }));
    return { ...res, planned: [...uploads, ...manifests] };
  }

  // An object hard-linked into a workspace may have been written through the link: its
  // bytes are checked before they are published under its name (the others go on).
  const damaged = damagedObjects(store, uploads);
  if (damaged.length > 0) {
    const bad = new Set(damaged.map((f) => f.oid));
    res.failed.push(...damaged);
    uploads.splice(0, uploads.length, ...uploads.filter((j) => !bad.has(j.oid)));
  }

  if (uploads.length + manifestJobs.length + res.skipped > 0) await opts.beforeUpload?.();

  const total = uploads.reduce((n, j) => n + j.size, 0) + manifestJobs.reduce((n, d) => n + store.sizeOf(d.oid), 0);
  opts.progress?.plan(uploads.length + manifestJobs.length, total);
  const adapter = adapterFor(remote);
  const files = await adapter.upload(remote, store, uploads, { jobs, progress: opts.progress, repair: opts.repair });
  for (const j of files.done) {
    onRemote.add(j.oid);
    res.bytes += j.size;
  }
  res.transferred += files.done.length;
  // No cache check per object up front: a missing source is rare, and explained here.
  for (const f of files.failed) {
    if (!store.has(f.oid)) f.error = `${f.path} is not in the cache, nor on remote "${remote.name}"; \`tdv add\` it again where the data exists`;
  }
  res.failed.push(...files.failed);

  // Manifests last, and only over complete directories. A partial target's manifest needs every file there.
  const ready: Job[] = [];
  for (const d of manifestJobs) {
    const entries = d.entries!;
    let absent = entries.filter((e) => !onRemote.has(e.sha256)).map((e) => e.sha256);
    if (absent.length > 0 && d.partial) {
      const found = await remoteHas(remote, absent, jobs);
      absent = absent.filter((o) => !found.has(o));
    }
    if (absent.length === 0) {
      ready.push({ oid: d.oid, size: store.sizeOf(d.oid), path: d.path });
      continue;
    }
    opts.progress?.files();
    if (!d.partial) res.failed.push({ oid: d.oid, path: d.path, error: `manifest of ${d.path} not uploaded: ${absent.length} of its files are not on the remote` });
    else (res.heldBack ??= []).push({ path: d.path, missing: absent.length });
  }
  const manifests = await adapter.upload(remote, store, ready, { jobs, progress: opts.progress, repair: opts.repair });
  res.transferred += manifests.done.length;
  for (const j of manifests.done) res.bytes += j.size;
  res.failed.push(...manifests.failed);
  return res;
}

/**
 * The uploads whose cache object has other hard links (it is linked into a
 * workspace) and no longer hashes to its name: modified in place, so refused,
 * naming the workspace file. One lstat per object; a re-hash only for linked
 * ones (LinkedObjectCheck, as the checkout's linker does).
 */
function damagedObjects(store: ObjectStore, uploads: readonly Job[]): TransferFailure[] {
  const check = new LinkedObjectCheck();
  const out: TransferFailure[] = [];
  for (const j of uploads) {
    const file = store.pathOf(j.oid);
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    // Absent: the upload fails and says so; not a regular file: the remote refuses to read it.
    if (!st?.isFile() || st.nlink < 2) continue;
    if (!check.intact(file, st)) out.push({ oid: j.oid, path: j.path, error: damagedPushMessage(j.path, j.oid) });
  }
  return out;
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

  const manifests = new Map<Oid, Job>();
  for (const s of selected) {
    const oid = s.out.sha256;
    if (isDirOid(oid) && !store.has(oid) && !manifests.has(oid)) manifests.set(oid, { oid, size: 0, path: s.rel });
  }
  const first = await adapter.download(remote, store, [...manifests.values()], { jobs });
  const failedManifests = new Map<Oid, TransferFailure>(first.failed.map((f) => [f.oid, f]));
  res.transferred += first.done.length;
  for (const j of first.done) res.bytes += j.size;
  res.failed.push(...first.failed);

  const corrupt = new Map<Oid, string>();
  const cached = cachedManifest(store, corrupt);
  const wanted = await collectWanted(selected, async (oid): Promise<ManifestEntry[] | undefined> => (failedManifests.has(oid) ? undefined : cached(oid)));
  res.skipped += wanted.dirs.filter((d) => !manifests.has(d.oid) && !corrupt.has(d.oid)).length;
  for (const [oid, error] of corrupt) res.failed.push({ oid, path: wanted.dirs.find((d) => d.oid === oid)!.path, error });
  const downloads: Job[] = [];
  for (const [oid, job] of wanted.files) {
    if (store.has(oid)) res.skipped++;
    else downloads.push({ ...job });
  }
  opts.progress?.plan(
    downloads.length,
    downloads.reduce((n, j) => n + j.size, 0),
  );
  const files = await adapter.download(remote, store, downloads, { jobs, progress: opts.progress });
  res.transferred += files.done.length;
  for (const j of files.done) res.bytes += j.size;
  res.failed.push(...files.failed);
  return res;
}
