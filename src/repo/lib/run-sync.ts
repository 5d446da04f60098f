import path from 'node:path';
import { RemoteError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import { parseRunEntry, RunCache, type RunEntry } from '../../stages/run-cache.js';
import { fetchSelected } from './transfer.js';
import type { Selected } from './pointers.js';
import { pushSelected, type TransferOptions, type TransferResult } from './transfer.js';
import type { Repo } from '../repo.js';

/**
 * The run-cache travels with the data: `push --run-cache` uploads the run
 * records the remote lacks, after the objects of their outputs; `fetch/pull
 * --run-cache` downloads the records the cache lacks and their objects, so a
 * teammate's `tdv repro` restores instead of rerunning.
 */
export function runCacheOf(repo: Repo): RunCache {
  return new RunCache(repo.store);
}

/** A run's outputs as transfer targets (they have no pointer; paths are for messages). */
function asSelected(repo: Repo, key: string, e: RunEntry): Selected[] {
  const file = path.join(repo.cacheDir, 'runs', key.slice(0, 2), key.slice(2));
  return [...e.outs, ...e.metrics].map((o) => ({
    ptr: { file, outs: [] },
    out: { path: o.path, sha256: o.sha256, size: o.size, ...(o.nfiles !== undefined ? { nfiles: o.nfiles } : {}) },
    abs: path.join(repo.root, o.path),
    rel: `${o.path} (run ${key.slice(0, 8)})`,
  }));
}

export async function pushRuns(repo: Repo, remote: Remote, opts: TransferOptions): Promise<TransferResult & { runs: number }> {
  const cache = runCacheOf(repo);
  const there = new Set(await remote.listRuns());
  const todo = cache.list().filter((k) => !there.has(k));
  const entries = todo.map((k) => [k, cache.get(k)] as const).filter((x): x is [string, RunEntry] => x[1] !== undefined);
  const res = await pushSelected(
    repo,
    remote,
    entries.flatMap(([k, e]) => asSelected(repo, k, e)),
    opts,
  );
  const failed = new Set(res.failed.map((f) => f.oid));
  let runs = 0;
  for (const [k, e] of entries) {
    // A record goes up only once everything it would restore is there.
    if ([...e.outs, ...e.metrics].some((o) => failed.has(o.sha256))) continue;
    await remote.putRun(k, Buffer.from(JSON.stringify(e)));
    runs++;
  }
  return { ...res, runs };
}

export async function fetchRuns(repo: Repo, remote: Remote, opts: TransferOptions): Promise<TransferResult & { runs: number }> {
  const cache = runCacheOf(repo);
  const have = new Set(cache.list());
  const entries: [string, RunEntry][] = [];
  for (const k of await remote.listRuns()) {
    if (have.has(k)) continue;
    const e = await getRunEntry(repo, remote, k);
    if (e) entries.push([k, e]);
  }
  const res = await fetchSelected(
    repo,
    remote,
    entries.flatMap(([k, e]) => asSelected(repo, k, e)),
    opts,
  );
  const failed = new Set(res.failed.map((f) => f.oid));
  let runs = 0;
  for (const [k, e] of entries) {
    if ([...e.outs, ...e.metrics].some((o) => failed.has(o.sha256))) continue;
    cache.put(k, e);
    runs++;
  }
  return { ...res, runs };
}

/**
 * A remote's run record, or undefined when it has none or it cannot be used.
 * A record is only an optimization (without it a stage reruns), so one odd
 * record (malformed, a FIFO, a directory, over the size cap, unreadable) is
 * left out with a warning naming it, and the other records and the data are
 * still fetched. An error concerning the whole remote (unreachable, no access,
 * a full disk: `wide`) still fails the command.
 */
async function getRunEntry(repo: Repo, remote: Remote, key: string): Promise<RunEntry | undefined> {
  const skip = (problem: string) => {
    repo.reporter.warn?.(`${problem}; skipped it (a stage it would restore runs instead)`);
    return undefined;
  };
  let data: Buffer | undefined;
  try {
    data = await remote.getRun(key);
  } catch (err) {
    if (err instanceof RemoteError && !err.wide) return skip(err.message);
    throw err;
  }
  if (data === undefined) return undefined;
  return parseRunEntry(data.toString('utf8')) ?? skip(`remote "${remote.name}": run record ${key} is not a valid run record (JSON with outs and metrics)`);
}

/** Adds a run-cache transfer's counts into a data transfer's result. */
export function mergeTransfers(a: TransferResult, b: TransferResult & { runs: number }): TransferResult & { runs: number } {
  return { ...a, transferred: a.transferred + b.transferred, skipped: a.skipped + b.skipped, failed: [...a.failed, ...b.failed], bytes: a.bytes + b.bytes, runs: b.runs };
}

/** fetchSelected, then the run-cache when asked. */
export async function fetchWithRuns(repo: Repo, remote: Remote, selected: readonly Selected[], opts: TransferOptions): Promise<TransferResult> {
  const res = await fetchSelected(repo, remote, selected, opts);
  if (!opts.runCache) return res;
  return mergeTransfers(res, await fetchRuns(repo, remote, { ...opts, progress: undefined }));
}
