import type { Oid } from '../../formats/oid.js';
import { isDirOid } from '../../formats/oid.js';
import type { ObjectStore } from '../../cache/store.js';
import type { OnBytes, Remote } from '../remote.js';
import { PackedRemote } from '../packed.js';
import { downloadVerified, type Job, runJobs, type TransferFailure, type TransferProgress } from './executor.js';

/** What an adapter did with a list of objects. */
export interface Moved {
  done: Job[];
  failed: TransferFailure[];
  /** Bytes sent, where that is not the objects' size (packs: compressed, only the chunks the remote lacks, and indexes). */
  sent?: number;
  /** Bytes received, where that is not the objects' size (packs: compressed, only chunks the cache lacks). */
  received?: number;
}

export interface AdapterOptions {
  jobs: number;
  progress?: TransferProgress;
  /** Upload even what the remote holds (its copy may be damaged). */
  repair?: boolean;
}

/**
 * How objects move between the cache and one kind of remote, as git-lfs
 * registers its transfer adapters by name: the plan (what to move, in which
 * order: repo/lib/transfer.ts) is the same whatever the adapter; the adapter
 * decides how (one request per object, or packs and ranged reads). A new
 * way of moving objects is one new registered adapter.
 *
 * Uploads are done when the objects are readable on the remote (for packs:
 * the pack and an index naming it are written); downloads when each object
 * is in the cache, verified against its hash.
 */
export interface TransferAdapter {
  readonly name: string;
  /** Whether this adapter moves objects for `remote`. */
  handles(remote: Remote): boolean;
  upload(remote: Remote, store: ObjectStore, jobs: readonly Job[], opts: AdapterOptions): Promise<Moved>;
  download(remote: Remote, store: ObjectStore, jobs: readonly Job[], opts: AdapterOptions): Promise<Moved>;
}

const registry: TransferAdapter[] = [];

/** Registers an adapter; one registered later is asked first. */
export function registerAdapter(a: TransferAdapter): void {
  registry.unshift(a);
}

/** The adapter for a remote (the basic one handles every remote). */
export function adapterFor(remote: Remote): TransferAdapter {
  return registry.find((a) => a.handles(remote))!;
}

/** Names of the registered adapters, first asked first. */
export function adapterNames(): string[] {
  return registry.map((a) => a.name);
}

/**
 * Small objects per putMany batch. Each batch starts a worker thread (tens of
 * ms), so batches are large; the progress bar moves once per batch.
 */
const BATCH = 50_000;
const BATCH_MAX_SIZE = 1 << 20;

/** One object per request (the plain layout: `files/sha256/ab/cdef...`), small ones in batches where the remote has a fast path. */
export const basicAdapter: TransferAdapter = {
  name: 'basic',
  handles: () => true,
  async upload(remote, store, uploads, { jobs, progress }) {
    const put = (job: Job, onBytes: OnBytes) => remote.put(job.oid, store.pathOf(job.oid), job.size, onBytes);
    if (!remote.putMany) return runJobs(uploads, jobs, put, progress);
    const small = uploads.filter((j) => j.size < BATCH_MAX_SIZE);
    const done: Job[] = [];
    const failed: TransferFailure[] = [];
    for (let i = 0; i < small.length; i += BATCH) {
      const batch = small.slice(i, i + BATCH);
      const errors = await remote.putMany(batch.map((j) => ({ oid: j.oid, from: store.pathOf(j.oid) })));
      for (const j of batch) {
        const err = errors.get(j.oid);
        if (err) failed.push({ oid: j.oid, path: j.path, error: err.message });
        else {
          done.push(j);
          progress?.bytes(j.size);
        }
        progress?.files();
      }
    }
    const rest = await runJobs(
      uploads.filter((j) => j.size >= BATCH_MAX_SIZE),
      jobs,
      put,
      progress,
    );
    return { done: [...done, ...rest.done], failed: [...failed, ...rest.failed] };
  },
  async download(remote, store, downloads, { jobs, progress }) {
    return runJobs(
      downloads,
      jobs,
      async (job, onBytes) => {
        // Bounded by the size the pointer or manifest records (a manifest's by the manifest limit):
        // a damaged or hostile object of another size is refused, not downloaded whole.
        job.size = await downloadVerified(remote, store, job.oid, { onBytes, size: isDirOid(job.oid) ? undefined : job.size });
      },
      progress,
    );
  },
};

/**
 * The packed layout (remote/packed.ts): uploads go into packs, large files as
 * the chunks the remote lacks; downloads of small objects are merged ranged
 * reads of packs, large ones are assembled from chunks (those of versions in
 * the cache are reused). Objects a remote holds in the plain layout move as
 * the basic adapter moves them.
 */
export const packedAdapter: TransferAdapter = {
  name: 'packed',
  handles: (remote) => remote instanceof PackedRemote,
  async upload(remote, store, uploads, opts) {
    const packed = remote as PackedRemote;
    // Nothing to send writes nothing, not even the layout record.
    if (uploads.length === 0) return { done: [], failed: [] };
    if ((await (opts.repair ? packed.repairMode() : packed.writeMode())) === 'plain') return basicAdapter.upload(packed.raw, store, uploads, opts);
    const byOid = new Map<Oid, Job>();
    for (const j of uploads) byOid.set(j.oid, j);
    // The bar's total is the objects' size (the plan's), so it counts the objects' bytes as they are
    // dealt with, not the bytes sent: compressed, and only the chunks the remote lacks, those can be a
    // small part of it (a bar stuck at 6% with an ETA of minutes after a push that is done).
    let counted = 0;
    let sent = 0;
    const errors = await packed.putMany(
      uploads.map((j) => ({ oid: j.oid, from: store.pathOf(j.oid) })),
      {
        onBytes: (n) => (sent += n),
        onRaw: (n) => {
          counted += n;
          opts.progress?.bytes(n);
        },
        onItem: (oid) => {
          opts.progress?.bytes(Math.max(0, (byOid.get(oid)?.size ?? 0) - counted));
          counted = 0;
          opts.progress?.files();
        },
        repair: opts.repair,
      },
    );
    const done: Job[] = [];
    const failed: TransferFailure[] = [];
    for (const j of uploads) {
      const err = errors.get(j.oid);
      if (err) failed.push({ oid: j.oid, path: j.path, error: err.message });
      else done.push(j);
    }
    return { done, failed, sent };
  },
  async download(remote, store, downloads, opts) {
    // Nothing to fetch asks the remote nothing (not even for its indexes).
    if (downloads.length === 0) return { done: [], failed: [] };
    const packed = remote as PackedRemote;
    const before = packed.received;
    // As for uploads: the bar counts each object's size once it is in the cache, not the (compressed) bytes read.
    const got = await packed.fetchPacked(downloads, {
      jobs: opts.jobs,
      onItem: (job, ok) => {
        if (ok) opts.progress?.bytes(job.size);
        opts.progress?.files();
      },
    });
    const rest = await basicAdapter.download(remote, store, got.rest, opts);
    return {
      received: packed.received - before,
      done: [...got.done, ...rest.done],
      failed: [...got.failed.map(({ job, error }) => ({ oid: job.oid, path: job.path, error: error.message })), ...rest.failed],
    };
  },
};

registerAdapter(basicAdapter);
registerAdapter(packedAdapter);
