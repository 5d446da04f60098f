/**
 * Raw file-system mutations with no path checks. Only the guard
 * (`workspace/guard.ts`), the object stores (`cache/store.ts`, the directory
 * remote) and the other modules the `tdv/guarded-fs` lint rule allows may
 * import this file: everything else writes through a `Guard`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeFsError } from '../errors.js';
import { isInside, siblingTmp } from '../util/fs.js';

/**
 * Writes `data` to `file` atomically: readers see the old content or the new
 * one, never a prefix. A crash leaves at most a `.tdvtmp` file beside it.
 * The final rename replaces a symlink at `file` itself, never writes through it.
 */
export function writeFileAtomicSync(file: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = siblingTmp(file);
  try {
    fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
    fs.renameSync(tmp, file);
  } catch (err) {
    rmQuiet(tmp);
    throw describeFsError(err, file);
  }
}

export function rmQuiet(p: string): void {
  try {
    fs.rmSync(p, { force: true });
  } catch {
    /* best effort: a leftover temp file is harmless */
  }
}

/** Removes now-empty directories from `dir` up to (not including) `stop`. */
export function pruneEmptyDirs(dir: string, stop: string): void {
  let d = dir;
  while (isInside(stop, d) && d !== stop) {
    try {
      fs.rmdirSync(d);
    } catch {
      return;
    }
    d = path.dirname(d);
  }
}
