import fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import pLimit from 'p-limit';
import type { Oid } from '../../formats/oid.js';
import type { ObjectStore, PartialObject, TempObject } from '../../cache/store.js';
import { describeFsError, errnoCode, RemoteError, TdvError } from '../../errors.js';
import type { ObjectBody, OnBytes, Remote } from '../remote.js';
import { isDirOid } from '../../formats/oid.js';
import { MAX_MANIFEST_BYTES } from '../../formats/manifest.js';
import type { Progress } from '../../util/progress.js';

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
  if (remote.hasMany) return remote.hasMany(unique, jobs);
  const found = new Set<Oid>();
  const limit = pLimit(jobs);
  // An object whose check failed (after the client's retries) counts as absent:
  // pushing it again is harmless, and status then errs on the side of "missing".
  const ask = async (list: readonly Oid[]) => {
    await limit.map(list, async (oid) => {
      if (await orAbsent(() => remote.has(oid), false)) found.add(oid);
    });
  };
  const listed = (p: string, max?: number) => orAbsent(() => remote.listPrefix(p, max), [] as Oid[]);
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
  // One page is enough to tell a small remote from a large one.
  const sample = await listed(first, PAGE);
  const sampleComplete = sample.length < PAGE;
  // A full page means at least one more: count two pages (a lower bound; large remotes only get larger).
  const listedInFirst = sampleComplete ? sample.length : 2 * PAGE;
  const firstWanted = byPrefix.get(first)!;
  const rest = unique.filter((o) => !o.startsWith(first));
  if (sampleComplete) {
    for (const o of sample) if (firstWanted.has(o)) found.add(o);
  } else {
    rest.push(...firstWanted);
  }
  if (rest.length === 0) return found;
  const rounds = (n: number) => Math.ceil(n / jobs);
  const askRounds = rounds(rest.length);
  const prefixRounds = rounds(prefixes.length) * Math.max(1, Math.ceil(listedInFirst / PAGE));
  const fullRounds = Math.max(1, Math.ceil((listedInFirst * PREFIXES) / PAGE));
  if (fullRounds <= prefixRounds && fullRounds <= askRounds) {
    const want = new Set(rest);
    for await (const o of remote.list()) if (want.has(o)) found.add(o);
  } else if (prefixRounds <= askRounds) {
    await limit.map(sampleComplete ? prefixes : [first, ...prefixes], async (p) => {
      const want = byPrefix.get(p)!;
      for (const o of await listed(p)) if (want.has(o)) found.add(o);
    });
  } else {
    await ask(rest);
  }
  return found;
}

/** `fn()`, or `absent` when it fails for one object only; failures of the whole remote are thrown. */
async function orAbsent<T>(fn: () => Promise<T>, absent: T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RemoteError && !err.wide) return absent;
    throw err;
  }
}

/** How many attempts a download gets: a dropped or truncated body, or bytes altered in flight, is retried. */
const DOWNLOAD_ATTEMPTS = 3;
const SMALL = 1 << 20;
/** Objects of at least this size resume a cut-off download (ObjectStore.openPartial) instead of starting over. */
export const RESUME_MIN = 8 << 20;

/** What a download may be: the size recorded for it (a pointer's or manifest entry's `size`), or at most `max` bytes. */
export interface DownloadBound {
  /** Exactly this many bytes (a file object). */
  size?: number;
  /** At most this many bytes (a manifest: MAX_MANIFEST_BYTES, always applied to `.dir` objects). */
  max?: number;
}

export interface DownloadOptions extends DownloadBound {
  onBytes?: OnBytes;
  /** Admits the verified temp file (default: into the cache under its oid). */
  admit?: (tmp: string) => void;
}

/**
 * Downloads one object into the cache, admitting it only if its bytes hash to
 * its id. The bytes go to a temp file in the cache's tmp directory, then are
 * linked into place; bad bytes are deleted, never admitted. A dropped or
 * truncated body, or bytes altered in flight, are retried after a short pause.
 * Local failures (disk full, permissions) are not retried. Returns the size.
 *
 * Bounded: an object whose stated size differs from the recorded `size` (or
 * exceeds `max`; a manifest never exceeds MAX_MANIFEST_BYTES) is refused
 * before a byte is read, and without a retry: the remote says so itself. A
 * body that runs past the bound is cut off there; no more than the bound is
 * ever written to disk.
 */
export async function downloadVerified(remote: Remote, store: ObjectStore, oid: Oid, opts: DownloadOptions | OnBytes = {}): Promise<number> {
  const { onBytes, admit = (tmp: string) => store.insertSync(tmp, oid, false), size: expected, max } = typeof opts === 'function' ? { onBytes: opts } : opts;
  const limit = Math.min(expected ?? Infinity, max ?? Infinity, isDirOid(oid) ? MAX_MANIFEST_BYTES : Infinity);
  let lastErr: unknown;
  // The wrong hashes seen: the same one every time means the stored object is bad;
  // different ones mean its bytes were altered on the way.
  const wrong = new Set<string>();
  if (expected !== undefined && expected >= RESUME_MIN && expected <= limit) {
    const part = store.openPartial(oid);
    if (part) {
      try {
        return await downloadResuming(remote, oid, expected, part, onBytes, admit);
      } finally {
        part.release();
      }
    }
  }
  for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; attempt++) {
    if (attempt > 1) await sleep(100 * 2 ** (attempt - 2));
    let body: ObjectBody;
    try {
      body = await remote.get(oid);
    } catch (err) {
      if (err instanceof TdvError) throw err; // the remote said no: not-found, denied, ...
      lastErr = err;
      continue;
    }
    // The remote states the object's size: refuse a wrong one unread. The remote will say
    // the same next time, so this is not retried.
    if (body.size !== undefined && (expected !== undefined ? body.size !== expected : body.size > limit)) {
      await release(body);
      throw wrongSize(remote, oid, body.size, expected, limit);
    }
    const tmp = store.openTemp();
    let reported = 0;
    const count: OnBytes = (n) => {
      reported += n;
      onBytes?.(n);
    };
    let got: { sha: string; size: number };
    try {
      got = await receive(body, tmp, count, limit);
    } catch (err) {
      store.discardTemp(tmp.path);
      if (reported) onBytes?.(-reported);
      if (err instanceof TdvError) throw err; // the remote said no: not-found, denied, ...
      if (err instanceof LocalWriteError) throw describeFsError(err.cause, store.tmpDir);
      if (err instanceof TooLongError) {
        // More bytes than the bound: cut off, never written. The same every time means the stored object.
        if (wrong.has(TOO_LONG)) throw wrongSize(remote, oid, undefined, expected, limit);
        wrong.add(TOO_LONG);
        lastErr = wrongSize(remote, oid, undefined, expected, limit);
        continue;
      }
      lastErr = err; // a dropped or truncated body: try again
      continue;
    }
    if (got.sha !== oid.slice(0, 64)) {
      store.discardTemp(tmp.path);
      onBytes?.(-reported);
      wrong.add(got.sha);
      lastErr = wrongBytes(remote, oid, got.sha, wrong);
      continue;
    }
    admit(tmp.path);
    return got.size;
  }
  throw lastErr instanceof TdvError
    ? lastErr
    : new RemoteError('DOWNLOAD_FAILED', `could not download ${oid} from remote "${remote.name}" after ${DOWNLOAD_ATTEMPTS} attempts: ${(lastErr as Error)?.message ?? String(lastErr)}`, {
        cause: lastErr,
        data: { oid },
      });
}

/**
 * downloadVerified for a large object of known `size`, into a partial file
 * that survives a failed attempt and the process: what it holds is kept, and
 * the rest fetched with a ranged read of the object's key
 * (`files/sha256/ab/cdef...`). The whole file is hashed (its prefix read back
 * from disk) before it is admitted; a prefix that turns out wrong is deleted
 * and the object fetched again from zero.
 */
async function downloadResuming(remote: Remote, oid: Oid, size: number, part: PartialObject, onBytes: OnBytes | undefined, admit: (tmp: string) => void): Promise<number> {
  let lastErr: unknown;
  const wrong = new Set<string>();
  for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; attempt++) {
    if (attempt > 1) await sleep(100 * 2 ** (attempt - 2));
    let start = part.size();
    if (start > size) {
      part.reset(); // more than the object: not a prefix of it
      start = 0;
    }
    let body: ObjectBody | undefined;
    if (start < size) {
      try {
        body = start === 0 ? await remote.get(oid) : await remote.getKey(`files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`, { start, end: size });
      } catch (err) {
        // A remote that cannot serve the range (another layout) still serves the object: from zero.
        if (start > 0 && err instanceof TdvError && (err.code === 'OBJECT_NOT_ON_REMOTE' || err.code === 'BAD_KEY')) {
          part.reset();
          attempt--;
          continue;
        }
        if (err instanceof TdvError) throw err; // the remote said no: not-found, denied, ...
        lastErr = err;
        continue;
      }
      if (body.size !== undefined && body.size !== size - start) {
        await release(body);
        if (start === 0) throw wrongSize(remote, oid, body.size, size, size);
        part.reset(); // the remote's object is not the one the prefix came from: start over
        lastErr = wrongSize(remote, oid, body.size + start, size, size);
        continue;
      }
    }
    let reported = 0;
    const count: OnBytes = (n) => {
      reported += n;
      onBytes?.(n);
    };
    let sha: string;
    let receiving = false;
    try {
      const h = createHash('sha256');
      if (start > 0) count(await hashPrefix(part.path, start, h));
      receiving = true; // from here on, receive releases the body whatever happens
      if (body) sha = (await receive(body, part, count, size - start, h)).sha;
      else {
        part.close();
        sha = h.digest('hex');
      }
    } catch (err) {
      if (body && !receiving) await release(body);
      part.close(); // the bytes received stay: the next attempt, or run, goes on from there
      if (reported) onBytes?.(-reported);
      if (err instanceof TdvError) throw err;
      if (err instanceof LocalWriteError) throw describeFsError(err.cause, part.path);
      if (err instanceof TooLongError) {
        part.reset();
        if (wrong.has(TOO_LONG)) throw wrongSize(remote, oid, undefined, size, size);
        wrong.add(TOO_LONG);
        lastErr = wrongSize(remote, oid, undefined, size, size);
        continue;
      }
      lastErr = err;
      continue;
    }
    if (sha !== oid.slice(0, 64)) {
      part.reset();
      onBytes?.(-reported);
      // A prefix kept from before is suspect first: fetching all of it again tells whether the remote's copy is bad.
      if (start === 0) wrong.add(sha);
      lastErr = wrongBytes(remote, oid, sha, wrong);
      if (start > 0) attempt--; // a stale prefix costs no attempt of its own
      continue;
    }
    part.seal();
    admit(part.path);
    return size;
  }
  throw lastErr instanceof TdvError
    ? lastErr
    : new RemoteError('DOWNLOAD_FAILED', `could not download ${oid} from remote "${remote.name}" after ${DOWNLOAD_ATTEMPTS} attempts: ${(lastErr as Error)?.message ?? String(lastErr)}`, {
        cause: lastErr,
        data: { oid },
      });
}

/** Hashes the first `n` bytes of `file` (a partial download) into `h`; returns n. */
async function hashPrefix(file: string, n: number, h: Hash): Promise<number> {
  let read = 0;
  for await (const chunk of fs.createReadStream(file, { start: 0, end: n - 1, highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    read += chunk.length;
  }
  if (read !== n) throw new Error(`partial download ${file} shrank while being read`);
  return read;
}

/**
 * Like downloadVerified, but the verified bytes are returned instead of
 * entering the cache. Read whole into memory, so bounded: a manifest (`.dir`)
 * by MAX_MANIFEST_BYTES, anything else by `bound`.
 */
export async function readVerified(remote: Remote, store: ObjectStore, oid: Oid, bound: DownloadBound = {}): Promise<Buffer> {
  let bytes = Buffer.alloc(0);
  await downloadVerified(remote, store, oid, {
    ...bound,
    admit: (tmp) => {
      try {
        bytes = fs.readFileSync(tmp);
      } finally {
        store.discardTemp(tmp);
      }
    },
  });
  return bytes;
}

/**
 * Downloaded bytes that hash to `sha`, not to `oid`: the same wrong hash
 * every time means the stored object is bad; different ones mean its bytes
 * were altered on the way (`wrong` holds the wrong hashes seen so far).
 */
function wrongBytes(remote: Remote, oid: Oid, sha: string, wrong: ReadonlySet<string>): RemoteError {
  return wrong.size > 1
    ? new RemoteError(
        'DOWNLOAD_FAILED',
        `could not download ${oid} from remote "${remote.name}" (${remote.url}): its bytes arrived altered, and differently on different attempts, so something on the way (the network, a proxy) changes them; the bad bytes were discarded. Run the command again`,
        { data: { oid } },
      )
    : new RemoteError(
        'CORRUPT_ON_REMOTE',
        `object ${oid} on remote "${remote.name}" (${remote.url}) is corrupt: its content hashes to ${sha}; the bad bytes were discarded. Delete files/sha256/${oid.slice(0, 2)}/${oid.slice(2)} on the remote, then \`tdv push\` from a clone that has the data`,
        { data: { oid } },
      );
}

/** The object on the remote is not the size recorded for it (or is larger than any manifest may be). */
function wrongSize(remote: Remote, oid: Oid, stated: number | undefined, expected: number | undefined, limit: number): RemoteError {
  const is = stated === undefined ? `is more than ${limit} bytes long` : `is ${stated} bytes`;
  const why = expected !== undefined ? `where ${expected} ${expected === 1 ? 'byte is' : 'bytes are'} recorded for it` : `more than the ${limit} bytes a directory manifest may have`;
  return new RemoteError(
    'CORRUPT_ON_REMOTE',
    `object ${oid} on remote "${remote.name}" (${remote.url}) is corrupt: it ${is}, ${why}, so it is damaged or not what was pushed; not downloaded. Delete files/sha256/${oid.slice(0, 2)}/${oid.slice(2)} on the remote, then \`tdv push\` from a clone that has the data`,
    { data: { oid, size: stated, expected } },
  );
}

/** Ends a body that will not be read, so its file or connection is released. */
async function release(body: ObjectBody): Promise<void> {
  try {
    await body[Symbol.asyncIterator]().return?.();
  } catch {
    /* nothing more to release */
  }
}

/** A failure writing the temp file (not reading the remote): never worth a retry. */
class LocalWriteError extends Error {}
/** The body ran past its bound: cut off, and its extra bytes never written. */
class TooLongError extends Error {}
const TOO_LONG = 'too long';

/**
 * Writes a body to the temp file `tmp` while hashing it: small objects in one
 * write, large ones chunk by chunk. A chunk that would take it past `limit`
 * bytes stops the reading (the iteration's return() ends the stream) before
 * it is written.
 */
async function receive(body: AsyncIterable<Uint8Array>, tmp: TempObject, onBytes: OnBytes, limit: number, h: Hash = createHash('sha256')): Promise<{ sha: string; size: number }> {
  let size = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const local = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new LocalWriteError((err as Error).message, { cause: err });
    }
  };
  const flush = () => {
    local(() => tmp.write(pending));
    pending = [];
    pendingBytes = 0;
  };
  let closed = false;
  try {
    for await (const chunk of body) {
      if (size + chunk.length > limit) throw new TooLongError(`more than ${limit} bytes`);
      h.update(chunk);
      size += chunk.length;
      onBytes(chunk.length);
      pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      pendingBytes += chunk.length;
      if (pendingBytes >= SMALL) flush();
    }
    if (pendingBytes > 0) flush();
    closed = true;
    local(() => tmp.close());
  } finally {
    if (!closed) {
      try {
        tmp.close();
      } catch {
        /* the body failed: the temp file is discarded anyway */
      }
    }
  }
  return { sha: h.digest('hex'), size };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One object a transfer failed to move, with a path that uses it (for the message). */
export interface TransferFailure {
  oid: Oid;
  path: string;
  error: string;
}

/** Progress of a transfer, for a bar: objects and bytes done so far out of the planned totals. */
/** Transfers report to the one progress interface: files are objects here. */
export type TransferProgress = Progress;

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
  const onBytes: OnBytes = (n) => progress?.bytes(n);
  await limit.map(list, async (job) => {
    if (fatal) return;
    try {
      await move(job, onBytes);
      done.push(job);
    } catch (err) {
      // A failure of the whole remote or of the local disk, or a bug in tdv, stops the
      // transfer; queued jobs then return at once.
      if ((err instanceof RemoteError && err.wide) || (err instanceof TdvError && STOP_ALL.has(err.code)) || !(err instanceof Error) || isBug(err)) {
        fatal ??= err;
        return;
      }
      failed.push({ oid: job.oid, path: job.path, error: err.message });
    } finally {
      progress?.files();
    }
  });
  if (fatal) throw fatal;
  return { done, failed };
}

/** Local conditions that every further object would hit too. */
const STOP_ALL = new Set(['NO_SPACE', 'READ_ONLY_FS']);

function isBug(err: Error): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError || err instanceof SyntaxError;
}
