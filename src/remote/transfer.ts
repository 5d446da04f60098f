import fs from 'node:fs';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type { Oid } from '../cache/oid.js';
import type { ObjectStore } from '../cache/store.js';
import { describeFsError, errnoCode, RemoteError, TdvError } from '../errors.js';
import { rmQuiet } from '../util/fs.js';
import type { OnBytes, Remote } from './remote.js';

/**
 * Below this many objects, asking per object is cheaper than listing: one
 * request each, against at least one listing per prefix.
 */
const ASK_MAX = 32;
/** Keys per page of a remote listing (S3's maximum). */
const PAGE = 1000;
const PREFIXES = 256;

/**
 * Which of `oids` the remote holds. Chooses the way with the fewest request
 * rounds (`jobs` requests run at once; pages of one listing run in sequence):
 *
 *   ask each:       |oids| requests               -> |oids| / jobs rounds
 *   list prefixes:  one listing per prefix needed -> prefixes / jobs x pages each
 *   list all:       one listing of the remote     -> objects on the remote / PAGE
 *
 * The size of the remote is estimated by listing the first prefix needed
 * (whose result is kept): a remote holding millions of objects is not listed
 * to check a few hundred, 20,000 objects are not asked about one by one, and
 * a nearly empty remote is listed in one request.
 */
export async function remoteHas(remote: Remote, oids: readonly Oid[], jobs: number): Promise<Set<Oid>> {
  const unique = [...new Set(oids)];
  const found = new Set<Oid>();
  const limit = pLimit(jobs);
  const ask = async (list: readonly Oid[]) => {
    await limit.map(list, async (oid) => {
      if (await remote.has(oid)) found.add(oid);
    });
  };
  if (unique.length <= ASK_MAX) {
    await ask(unique);
    return found;
  }
  const byPrefix = new Map<string, Set<Oid>>();
  for (const oid of unique) {
    const p = oid.slice(0, 2);
    const l = byPrefix.get(p);
    if (l) l.add(oid);
    else byPrefix.set(p, new Set([oid]));
  }
  const [first, ...prefixes] = [...byPrefix.keys()] as [string, ...string[]];
  const sample = await remote.listPrefix(first);
  for (const o of sample) if (byPrefix.get(first)!.has(o)) found.add(o);
  const rest = unique.filter((o) => !o.startsWith(first));
  if (rest.length === 0) return found;
  const listedInFirst = sample.length;
  const rounds = (n: number) => Math.ceil(n / jobs);
  const askRounds = rounds(rest.length);
  const prefixRounds = rounds(prefixes.length) * Math.max(1, Math.ceil(listedInFirst / PAGE));
  const fullRounds = Math.max(1, Math.ceil((listedInFirst * PREFIXES) / PAGE));
  if (fullRounds <= prefixRounds && fullRounds <= askRounds) {
    const want = new Set(rest);
    for await (const o of remote.list()) if (want.has(o)) found.add(o);
  } else if (prefixRounds <= askRounds) {
    await limit.map(prefixes, async (p) => {
      const want = byPrefix.get(p)!;
      for (const o of await remote.listPrefix(p)) if (want.has(o)) found.add(o);
    });
  } else {
    await ask(rest);
  }
  return found;
}

/** How many attempts a download gets: a dropped or truncated body, or bytes altered in flight, is retried. */
const DOWNLOAD_ATTEMPTS = 3;
const SMALL = 1 << 20;

/**
 * Downloads one object into the cache, admitting it only if its bytes hash to
 * its id. The bytes go to a temp file in the cache's tmp directory, then are
 * linked into place; bad bytes are deleted, never admitted. Returns the size.
 */
export async function downloadVerified(remote: Remote, store: ObjectStore, oid: Oid, onBytes?: OnBytes): Promise<number> {
  const want = oid.slice(0, 64);
  let lastErr: unknown;
  for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; attempt++) {
    const tmp = store.newTmpPath();
    let reported = 0;
    try {
      const body = await remote.get(oid);
      const h = createHash('sha256');
      let size = 0;
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let fd: number | undefined;
      try {
        for await (const chunk of body) {
          h.update(chunk);
          size += chunk.length;
          reported += chunk.length;
          onBytes?.(chunk.length);
          // Small objects are written in one call; a large one goes out in chunks as it arrives.
          pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          pendingBytes += chunk.length;
          if (pendingBytes >= SMALL) {
            fd ??= fs.openSync(tmp, 'wx', 0o444);
            for (const b of pending) fs.writeSync(fd, b);
            pending = [];
            pendingBytes = 0;
          }
        }
        if (fd === undefined) fs.writeFileSync(tmp, Buffer.concat(pending), { flag: 'wx', mode: 0o444 });
        else for (const b of pending) fs.writeSync(fd, b);
      } finally {
        if (fd !== undefined) fs.closeSync(fd);
      }
      const got = h.digest('hex');
      if (got !== want) {
        rmQuiet(tmp);
        lastErr = new RemoteError(
          'CORRUPT_ON_REMOTE',
          `object ${oid} on remote "${remote.name}" (${remote.url}) is corrupt: its content hashes to ${got}; the bad bytes were discarded. Push it again from a clone that has the data`,
          { data: { oid } },
        );
        onBytes?.(-reported);
        continue; // the bytes may have been altered in flight: ask again
      }
      store.insertSync(tmp, oid, false);
      return size;
    } catch (err) {
      rmQuiet(tmp);
      if (reported) onBytes?.(-reported);
      if (err instanceof RemoteError && (err.wide || err.code === 'OBJECT_NOT_ON_REMOTE')) throw err;
      if (err instanceof TdvError) throw err;
      const code = errnoCode(err);
      if (code === 'ENOSPC' || code === 'EACCES' || code === 'EROFS' || code === 'EPERM') throw describeFsError(err, store.tmpDir);
      lastErr = err; // a dropped or truncated body: try again
    }
  }
  throw lastErr instanceof TdvError
    ? lastErr
    : new RemoteError('DOWNLOAD_FAILED', `could not download ${oid} from remote "${remote.name}" after ${DOWNLOAD_ATTEMPTS} attempts: ${(lastErr as Error)?.message ?? String(lastErr)}`, { cause: lastErr, data: { oid } });
}

/** One object a transfer failed to move, with a path that uses it (for the message). */
export interface TransferFailure {
  oid: Oid;
  path: string;
  error: string;
}

/** Progress of a transfer, for a bar: objects and bytes done so far out of the planned totals. */
export interface TransferProgress {
  start?(totalObjects: number, totalBytes: number): void;
  bytes?(n: number): void;
  object?(): void;
}

export interface Job {
  oid: Oid;
  size: number;
  path: string;
}

/**
 * Runs `move` over the jobs with at most `jobs` at once. A per-object failure is
 * collected and the others go on; a failure that concerns the whole remote
 * (RemoteError.wide) stops everything at once and is thrown.
 */
export async function runJobs(
  list: readonly Job[],
  jobs: number,
  move: (job: Job, onBytes: OnBytes) => Promise<void>,
  progress?: TransferProgress,
): Promise<{ done: Job[]; failed: TransferFailure[] }> {
  const limit = pLimit(jobs);
  const done: Job[] = [];
  const failed: TransferFailure[] = [];
  let fatal: unknown;
  const onBytes: OnBytes = (n) => progress?.bytes?.(n);
  await limit.map(list, async (job) => {
    if (fatal) return;
    try {
      await move(job, onBytes);
      done.push(job);
    } catch (err) {
      // A failure of the whole remote, or a bug in tdv, stops the transfer; queued jobs then return at once.
      if ((err instanceof RemoteError && err.wide) || !(err instanceof Error) || isBug(err)) {
        fatal ??= err;
        return;
      }
      failed.push({ oid: job.oid, path: job.path, error: err.message });
    } finally {
      progress?.object?.();
    }
  });
  if (fatal) throw fatal;
  return { done, failed };
}

function isBug(err: Error): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError;
}
