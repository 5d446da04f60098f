import fs from 'node:fs';
import { describeFsError, errnoCode } from '../errors.js';
import type { LinkType } from '../formats/config.js';

export { LINK_TYPES, type LinkType, parseLinkTypes } from '../formats/config.js';
import { siblingTmp } from '../util/fs.js';
import { rmQuiet } from './raw.js';
import { objectLinkOid, walkDir } from '../cache/walk.js';
import type { Guard, Source } from './guard.js';

/** Errors meaning "this link type does not work here; try the next one". */
const UNSUPPORTED = new Set(['EXDEV', 'ENOTSUP', 'EOPNOTSUPP', 'EPERM', 'EINVAL', 'ENOSYS', 'EMLINK', 'ENOTTY']);

const umask = process.umask();

/** True when files linked this way share their bytes with the cache and must be kept read-only. */
export function isProtected(type: LinkType): boolean {
  return type === 'hardlink' || type === 'symlink';
}

/**
 * Materialises cache objects in the workspace with the first link type that
 * works, falling back along the configured list and remembering what worked.
 * Every write goes to a sibling temp file that is renamed over the destination,
 * so a workspace file is never half-written.
 */
export class Linker {
  private working = 0;

  constructor(readonly types: readonly LinkType[]) {}

  /** The link type that will be tried first. */
  get current(): LinkType {
    return this.types[Math.min(this.working, this.types.length - 1)]!;
  }

  /** Links `object` to `dest`; returns the type used. */
  link(object: string, dest: string, isexec = false): LinkType {
    for (;;) {
      const type = this.types[this.working];
      if (type === undefined) throw new Error('no link type left'); // unreachable: copy never reports unsupported
      // The mode of a hard link or symlink is the object's (read-only, not executable).
      const effective: LinkType = isexec && isProtected(type) ? 'copy' : type;
      const tmp = siblingTmp(dest);
      try {
        linkOne(effective, object, tmp, isexec);
        fs.renameSync(tmp, dest);
        // rename(2) does nothing when tmp and dest are already links to the same inode.
        if (effective === 'hardlink') rmQuiet(tmp);
        return effective;
      } catch (err) {
        rmQuiet(tmp);
        if (effective !== 'copy' && UNSUPPORTED.has(errnoCode(err) ?? '') && this.working < this.types.length - 1) {
          this.working++;
          continue;
        }
        if (effective !== 'copy' && UNSUPPORTED.has(errnoCode(err) ?? '')) {
          // The last configured type does not work here either: copying always does.
          linkOne('copy', object, tmp, isexec);
          fs.renameSync(tmp, dest);
          return 'copy';
        }
        throw describeFsError(err, dest);
      }
    }
  }
}

function linkOne(type: LinkType, object: string, tmp: string, isexec: boolean): void {
  switch (type) {
    case 'reflink':
    case 'copy':
      fs.copyFileSync(object, tmp, type === 'reflink' ? fs.constants.COPYFILE_FICLONE_FORCE | fs.constants.COPYFILE_EXCL : fs.constants.COPYFILE_EXCL);
      fs.chmodSync(tmp, (isexec ? 0o777 : 0o666) & ~umask);
      return;
    case 'hardlink':
      fs.linkSync(object, tmp);
      return;
    case 'symlink':
      fs.symlinkSync(object, tmp);
      return;
  }
}

/** Replaces a hard link or symlink to the cache by an editable copy of the same bytes. */
export function unprotectFile(file: string): boolean {
  const st = fs.lstatSync(file);
  if (!st.isSymbolicLink() && (st.nlink < 2 || (st.mode & 0o200) !== 0)) return false;
  const tmp = siblingTmp(file);
  try {
    fs.copyFileSync(file, tmp, fs.constants.COPYFILE_EXCL);
    const isexec = st.isSymbolicLink() ? (fs.statSync(file).mode & 0o100) !== 0 : (st.mode & 0o100) !== 0;
    fs.chmodSync(tmp, (isexec ? 0o777 : 0o666) & ~umask);
    fs.renameSync(tmp, file);
  } catch (err) {
    rmQuiet(tmp);
    throw describeFsError(err, file);
  }
  return true;
}

/**
 * Replaces hard links and symlinks to the cache at or under `rel` (relative
 * to the guard's root) by editable copies. Every path is resolved by the
 * guard (no symlink on the way, nothing it protects); a symlink that does not
 * point into the cache (`objectsDir`) is not tdv's and is left alone, never
 * copied through. Returns how many files changed.
 */
export function unprotectTree(guard: Guard, rel: string, objectsDir: string, source?: Source): number {
  const st = guard.lstat(rel, source);
  if (!st) return 0;
  if (!st.isDirectory()) {
    if (st.isSymbolicLink() && objectLinkOid(guard.abs(rel), objectsDir) === undefined) return 0;
    if (!st.isFile() && !st.isSymbolicLink()) return 0;
    return unprotectFile(guard.resolve(rel, 'write', source)) ? 1 : 0;
  }
  let n = 0;
  for (const e of walkDir(guard.abs(rel), { objectsDir })) if (unprotectFile(guard.resolve(`${rel}/${e.rel}`, 'write', source))) n++;
  return n;
}
