import type { ManifestEntry } from '../cache/manifest.js';
import { isDirOid, type Oid } from '../cache/oid.js';
import type { Remote } from '../remote/remote.js';
import { downloadVerified, type Job, runJobs, type TransferFailure } from '../remote/transfer.js';
import type { Selected } from './pointers.js';
import { selectForTransfer } from './revision.js';
import { cachedManifest, type TransferOptions, type TransferResult } from './push.js';
import { openRemote, remoteJobs } from './remotes.js';
import type { Repo } from './repo.js';
import { collectWanted } from './wanted.js';

/** Downloads the objects the selected pointers reference that the cache lacks. */
export async function fetch(repo: Repo, opts: TransferOptions = {}): Promise<TransferResult> {
  return repo.withLock('fetch', async () => {
    const selected = await selectForTransfer(repo, opts);
    return withRemote(repo, opts, (remote) => fetchWithRuns(repo, remote, selected, opts));
  });
}

/** fetchSelected, then the run-cache when asked. */
export async function fetchWithRuns(repo: Repo, remote: Remote, selected: readonly Selected[], opts: TransferOptions): Promise<TransferResult> {
  const res = await fetchSelected(repo, remote, selected, opts);
  if (!opts.runCache) return res;
  const { fetchRuns, mergeTransfers } = await import('./run-sync.js');
  return mergeTransfers(res, await fetchRuns(repo, remote, { ...opts, progress: undefined }));
}

export async function withRemote<T>(repo: Repo, opts: { remote?: string; jobs?: number }, fn: (remote: Remote) => Promise<T>): Promise<T> {
  const remote = await openRemote(repo, opts.remote, opts.jobs);
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
  const get = async (job: Job, onBytes: (n: number) => void) => {
    job.size = await downloadVerified(remote, store, job.oid, onBytes);
  };

  const manifests = new Map<Oid, Job>();
  for (const s of selected) {
    const oid = s.out.sha256;
    if (isDirOid(oid) && !store.has(oid) && !manifests.has(oid)) manifests.set(oid, { oid, size: 0, path: s.rel });
  }
  const first = await runJobs([...manifests.values()], jobs, get);
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
  opts.progress?.start?.(downloads.length, downloads.reduce((n, j) => n + j.size, 0));
  const files = await runJobs(downloads, jobs, get, opts.progress);
  res.transferred += files.done.length;
  for (const j of files.done) res.bytes += j.size;
  res.failed.push(...files.failed);
  return res;
}
