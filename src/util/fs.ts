import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { errnoCode } from '../errors.js';

let processTag: string | undefined;
let tmpCounter = 0;

// The thread id keeps names of the main thread and the pool's worker apart for certain.
// Drawn on first use: loading worker_threads is a cost every command would pay at start.
function tag(): string {
  const { threadId } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
  return threadId.toString(16).padStart(2, '0') + randomBytes(3).toString('hex');
}

/**
 * A unique suffix for temp names: pid, thread id, a random tag drawn once per thread, and
 * a counter (drawing random bytes per file costs more than the write itself).
 */
export function tmpSuffix(): string {
  return `${process.pid}.${(processTag ??= tag())}${(tmpCounter++).toString(16).padStart(2, '0')}`;
}

/**
 * A temp path beside `file` (same directory, hence same file system, so rename
 * is atomic). The name does not embed the file's own, so a name near the 255-byte
 * limit still has room.
 */
export function siblingTmp(file: string): string {
  return path.join(path.dirname(file), `.tdvtmp.${tmpSuffix()}`);
}

/** lstat that returns undefined instead of throwing for a missing path (or one whose parent is a file). */
export function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

export function readTextOrUndefined(p: string): string | undefined {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Converts a native path to the POSIX form used in pointers, manifests and output. */
export function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

/** True when `child` is `parent` or lies below it (both absolute, normalised). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
