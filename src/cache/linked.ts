import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { TdvError } from '../errors.js';
import { isDirOid, isOid, type Oid } from '../formats/oid.js';
import { quotePath, shellWord } from '../formats/paths.js';
import { CHUNK } from './hash.js';

/*
 * Hard links make a workspace file and its cache object one inode: mode 0444
 * keeps an ordinary user from writing through it, but not root, nor a process
 * that opened the file before tdv linked it. These checks find an object
 * modified that way, so that its altered bytes are never trusted, linked or
 * copied to another path.
 */

/** True when `file` and `object` are the same regular file (one inode: hard links of each other). */
export function isLinkOf(file: string, object: string): boolean {
  const a = fs.lstatSync(file, { throwIfNoEntry: false });
  if (!a?.isFile()) return false;
  const b = fs.lstatSync(object, { throwIfNoEntry: false });
  return b !== undefined && b.ino === a.ino && b.dev === a.dev;
}

/** The id an object path names (`.../files/sha256/ab/cdef...`), or undefined for any other path. */
export function oidOfObjectPath(object: string): Oid | undefined {
  const oid = path.basename(path.dirname(object)) + path.basename(object);
  return isOid(oid) ? oid : undefined;
}

/** SHA-256 of a file, read synchronously in chunks (memory stays flat). */
function hashFileSync(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r'); // an object just seen (lstat) to be a regular file
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let n; (n = fs.readSync(fd, buf, 0, CHUNK, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * Guards linking or copying cache objects into a workspace: an object that has
 * other hard links (nlink > 1) may have been written through one of them, so
 * its bytes are hashed once (per object, per instance) before it is used, and
 * an object whose bytes no longer hash to its name is refused with
 * DAMAGED_OBJECT. An object with a single link was never reachable from a
 * workspace (tdv writes objects read-only) and costs one lstat.
 */
export class LinkedObjectCheck {
  private readonly checked = new Map<string, boolean>();

  /** Throws DAMAGED_OBJECT when `object` (a path in the store, whose lstat is `st`) no longer hashes to its name. */
  expectIntact(object: string, st: fs.Stats, dest: string): void {
    if (!this.intact(object, st)) throw damagedObjectError(object, dest);
  }

  /**
   * Whether `object` (a path in the store, whose lstat is `st`) still hashes to
   * its name. Hashed only when it has other hard links; each object once.
   */
  intact(object: string, st: fs.Stats): boolean {
    // Never linked anywhere (the common case: one lstat), or not a regular file (the link reports it).
    if (st.nlink < 2 || !st.isFile()) return true;
    const known = this.checked.get(object);
    if (known !== undefined) return known;
    const oid = oidOfObjectPath(object);
    if (!oid || isDirOid(oid)) return true; // not an object path (tests, callers linking other files)
    const ok = hashFileSync(object) === oid;
    this.checked.set(object, ok);
    return ok;
  }
}

function damagedObjectError(object: string, dest: string): TdvError {
  const oid = oidOfObjectPath(object) ?? object;
  return new TdvError(
    'DAMAGED_OBJECT',
    `cache object ${oid.slice(0, 12)} for ${dest} no longer matches its name (a hard-linked copy of it was modified in place); not linking it. Run \`tdv fsck\` to quarantine it, then \`tdv pull\` to fetch it again`,
    { data: { oid, path: dest } },
  );
}

/**
 * Why `push` refuses an object modified in place through a hard link (for the
 * workspace file `rel`): its bytes are not those its name promises, and a
 * remote must never publish them under that name.
 */
export function damagedPushMessage(rel: string, oid: Oid): string {
  return `cache object ${oid.slice(0, 12)} no longer matches its name (${quotePath(rel)}, a hard link of it, was modified in place); not pushing it. Run \`tdv fsck\` to quarantine it, then \`tdv add ${shellWord(rel)}\` to keep the edited content, or \`tdv pull\` to fetch the recorded version`;
}

/** The warning `status` and `checkout` print for `HashOptions.onDamaged`. */
export function damagedMessage(rel: string, oid: Oid, quarantined: string | undefined): string {
  const where = quarantined ? `moved it to ${quarantined}` : 'could not move it aside';
  return `${quotePath(rel)} was modified in place and its cache object ${oid.slice(0, 12)} is damaged (a hard link shared its bytes); tdv ${where}. Run \`tdv add ${shellWord(rel)}\` to keep the new content, or \`tdv pull\` then \`tdv checkout --force ${shellWord(rel)}\` to restore the recorded version`;
}
