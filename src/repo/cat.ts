import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { describeFsError, TdvError } from '../errors.js';
import type { Oid } from '../formats/oid.js';
import { quotePath } from '../formats/paths.js';
import type { Repo } from './repo.js';
import type { Snapshot } from './lib/snapshot.js';

/**
 * `tdv cat`: one file's bytes at a revision, streamed. A data file comes from
 * the cache, or from the remote (verified by hash before it is admitted into
 * the cache, and kept there); a Git file from its blob.
 *
 * Cache objects are hashed while they stream: a cache object damaged since it
 * was stored (a disk error, a hand edit through a hard link) has already been
 * partly written when its hash is known, so the command then fails with a
 * one-line error and a non-zero exit, as `curl` does on a broken transfer;
 * reading it twice (hash first, then stream) would double the cost of every
 * large read to catch a fault `tdv fsck` finds.
 */

export interface CatOptions {
  /** The file: repo-relative POSIX (for `url`, relative to the source's root). */
  path: string;
  /** The revision (default HEAD; for `url`, the source's default branch). */
  rev?: string;
  /** Another repository (anything `git clone` takes). */
  url?: string;
  /** The remote a missing object comes from (default: the repository's default remote). */
  remote?: string;
  /** What a relative path `url` is relative to. */
  cwd?: string;
}

export interface CatResult {
  path: string;
  commit: string;
  source: 'data' | 'git';
  /** Bytes written (fewer than the file's when the reader went away). */
  bytes: number;
  size: number;
  oid?: Oid;
  /** The reader stopped reading (`tdv cat x | head`): not a failure. */
  closed: boolean;
}

/** Streams one file of a revision into `to` (which is not ended). */
export async function cat(here: Repo | undefined, opts: CatOptions, to: Writable): Promise<CatResult> {
  const { cleanPath } = await import('./lib/registry.js');
  const target = cleanPath(opts.path);
  if (opts.url === undefined) {
    if (!here) throw new TdvError('NOT_A_REPO', 'not a tdv repository (or any parent directory); pass --url URL to read from another one');
    const { openLocalSnapshot } = await import('./lib/local-source.js');
    const { snap, close } = await openLocalSnapshot(here, opts.rev, opts.remote, 'cat');
    try {
      return await catFrom(snap, target, to);
    } finally {
      await close();
    }
  }
  const { openExternal } = await import('./lib/external.js');
  const ext = await openExternal(opts.url, { rev: opts.rev, here, remote: opts.remote, cwd: opts.cwd });
  try {
    return await catFrom(await ext.snapshot(), target, to);
  } finally {
    await ext.close();
  }
}

async function catFrom(snap: Snapshot, target: string, to: Writable): Promise<CatResult> {
  const at = target === '' ? undefined : await snap.stat(target);
  const where = `${snap.label} (${snap.commit.slice(0, 12)})`;
  if (target === '' || at?.kind === 'dir') {
    const shown = target === '' ? '.' : quotePath(target);
    throw new TdvError('NOT_A_FILE', `${shown} is a directory at ${where}; list it with \`tdv ls ${shown}\``);
  }
  if (!at) throw new TdvError('NOT_FOUND', `${quotePath(target)} does not exist at ${where} of ${snap.source.label}`);
  const body = await snap.open(at);
  const hash = at.source === 'data' ? createHash('sha256') : undefined;
  const size = at.size ?? 0;
  let copied: { bytes: number; closed: boolean };
  try {
    copied = await copy(body, to, hash);
  } catch (err) {
    // The reader is there but the write failed: a full disk or quota behind `tdv cat > file`.
    throw describeFsError(err, `standard output (${quotePath(target)}, incomplete)`);
  }
  const { bytes, closed } = copied;
  if (hash && !closed) {
    const got = hash.digest('hex');
    if (got !== at.oid || bytes !== at.size) {
      throw new TdvError(
        'DAMAGED_OBJECT',
        `the cache object of ${quotePath(target)} is damaged (${bytes} bytes hashing to ${got.slice(0, 12)}, not ${at.oid!.slice(0, 12)}); what was written is wrong: run \`tdv fsck\` (it moves damaged objects aside), then \`tdv pull\` fetches it again`,
        { data: { path: target, oid: at.oid } },
      );
    }
  }
  return {
    path: target,
    commit: snap.commit,
    source: at.source,
    bytes,
    size: at.source === 'data' ? size : bytes,
    ...(at.oid ? { oid: at.oid } : {}),
    closed,
  };
}

/**
 * Copies `body` into `to`, honouring back-pressure, without ending `to`.
 * A reader that went away (EPIPE) stops the copy quietly: `closed`.
 */
async function copy(body: Readable, to: Writable, hash: ReturnType<typeof createHash> | undefined): Promise<{ bytes: number; closed: boolean }> {
  let bytes = 0;
  let failed: NodeJS.ErrnoException | undefined;
  let wake: (() => void) | undefined;
  const onError = (err: NodeJS.ErrnoException) => {
    failed ??= err;
    wake?.();
  };
  to.on('error', onError);
  const gone = () => failed !== undefined || to.destroyed || to.writableEnded;
  try {
    for await (const chunk of body) {
      if (gone()) break;
      const c = chunk as Buffer;
      hash?.update(c);
      bytes += c.length;
      if (!to.write(c)) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          to.once('drain', resolve);
          to.once('close', resolve);
        });
        wake = undefined;
      }
    }
  } finally {
    body.destroy();
    to.off('error', onError);
  }
  if (failed && !isClosedReader(failed)) throw failed;
  return { bytes, closed: gone() };
}

function isClosedReader(err: NodeJS.ErrnoException): boolean {
  return err.code === 'EPIPE' || err.code === 'ERR_STREAM_DESTROYED' || err.code === 'EIO';
}
