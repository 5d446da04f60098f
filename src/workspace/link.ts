import fs from 'node:fs';
import { describeFsError, errnoCode } from '../errors.js';
import type { LinkType } from '../formats/config.js';

export { LINK_TYPES, type LinkType, parseLinkTypes } from '../formats/config.js';
import { siblingTmp } from '../util/fs.js';
import { rmQuiet } from './raw.js';
import { entryPath, objectLinkOid, walkDir } from '../cache/walk.js';
import { LinkedObjectCheck } from '../cache/linked.js';
import type { Guard, Source } from './guard.js';

/** Errors meaning "this link type does not work here; try the next one". */
const UNSUPPORTED = new Set(['EXDEV', 'ENOTSUP', 'EOPNOTSUPP', 'EPERM', 'EINVAL', 'ENOSYS', 'EMLINK', 'ENOTTY']);

const umask = process.umask();

/** True when files linked this way share their bytes with the cache and must be kept read-only. */
export function isProtected(type: LinkType): boolean {
  return type === 'hardlink' || type === 'symlink';
}

/** True when this process runs as root, for whom mode 0444 does not stop writes. */
export function runningAsRoot(): boolean {
  return process.getuid?.() === 0;
}

export interface LinkerOptions {
  /**
   * Link (hardlink, symlink) even as root (`cache.allow_root_links`). By
   * default root gets the configured types without hardlink and symlink
   * (reflink, then copy, where none is left): read-only links protect the
   * cache's only copy from ordinary users, not from root.
   */
  allowRootLinks?: boolean;
  /** For tests: whether to behave as root (default: whether this process is). */
  asRoot?: boolean;
}

/** The link types actually used: `types` less hardlink and symlink for root, unless allowed. */
export function effectiveLinkTypes(types: readonly LinkType[], opts: LinkerOptions = {}): { types: LinkType[]; dropped: LinkType[] } {
  if (!(opts.asRoot ?? runningAsRoot()) || opts.allowRootLinks) return { types: [...types], dropped: [] };
  const dropped = types.filter(isProtected);
  if (dropped.length === 0) return { types: [...types], dropped };
  const kept = types.filter((t) => !isProtected(t));
  // Prefer a reflink (a private copy that costs no space) where only links were configured.
  return { types: kept.length > 0 ? kept : ['reflink', 'copy'], dropped };
}

/**
 * Materialises cache objects in the workspace with the first link type that
 * works, falling back along the configured list and remembering what worked.
 * Every write goes to a sibling temp file that is renamed over the destination,
 * so a workspace file is never half-written. Before an object is linked or
 * copied anywhere, it is checked not to have been altered through another hard
 * link (LinkedObjectCheck). As root, hardlink and symlink are left out unless
 * allowed (see LinkerOptions).
 */
export class Linker {
  private working = 0;
  private readonly check = new LinkedObjectCheck();
  readonly types: readonly LinkType[];
  /** The configured types left out because this process runs as root. */
  readonly droppedForRoot: readonly LinkType[];

  constructor(types: readonly LinkType[], opts: LinkerOptions = {}) {
    const eff = effectiveLinkTypes(types, opts);
    this.types = eff.types;
    this.droppedForRoot = eff.dropped;
  }

  /** The link type that will be tried first. */
  get current(): LinkType {
    return this.types[Math.min(this.working, this.types.length - 1)]!;
  }

  /** Links `object` to `dest`; returns the type used. */
  link(object: string, dest: string, isexec = false): LinkType {
    const obj = fs.lstatSync(object, { throwIfNoEntry: false });
    if (obj) {
      if (!isexec && this.current === 'hardlink') {
        // Already a hard link of this very object (add relinking what it just moved in): nothing to do.
        const d = fs.lstatSync(dest, { throwIfNoEntry: false });
        if (d && d.ino === obj.ino && d.dev === obj.dev) return 'hardlink';
      }
      this.check.expectIntact(object, obj, dest);
    }
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

/**
 * Which link types work from a file in `cacheSide` (a directory on the
 * cache's file system) to `workspaceSide` (one on the workspace's): `tdv
 * doctor`'s probe. Writes one small temp file and its links, removes them all.
 */
export function probeLinkTypes(cacheSide: string, workspaceSide: string): Record<LinkType, boolean> {
  const works: Record<LinkType, boolean> = { reflink: false, hardlink: false, symlink: false, copy: false };
  fs.mkdirSync(cacheSide, { recursive: true });
  fs.mkdirSync(workspaceSide, { recursive: true });
  const src = siblingTmp(`${cacheSide}/doctor-probe`);
  fs.writeFileSync(src, 'tdv doctor probe\n', { flag: 'wx', mode: 0o444 });
  try {
    for (const type of ['reflink', 'hardlink', 'symlink', 'copy'] as const) {
      const dest = siblingTmp(`${workspaceSide}/doctor-probe`);
      try {
        linkOne(type, src, dest, false);
        works[type] = true;
      } catch (err) {
        if (!UNSUPPORTED.has(errnoCode(err) ?? '')) throw describeFsError(err, dest);
      } finally {
        rmQuiet(dest);
      }
    }
  } finally {
    rmQuiet(src);
  }
  return works;
}
