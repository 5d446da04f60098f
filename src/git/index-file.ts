import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * The paths in a Git index file (`.git/index`), read synchronously: the guard
 * asks "is this path Git-tracked?" before every write and delete, and a sync
 * answer keeps that check inside the one guarded module. Versions 2, 3 and 4
 * (prefix-compressed names) and SHA-1 or SHA-256 object ids are read here; a
 * split index (the `link` extension) is left to `git ls-files`.
 *
 *   "DIRC" version count | entry* | extensions | checksum
 *   entry = 40 bytes of stat | oid | flags(2) [ext flags(2)] | name
 */
export function readIndexPaths(gitdir: string): string[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path.join(gitdir, 'index'));
  } catch {
    return [];
  }
  const parsed = parseIndex(buf, objectIdLength(gitdir));
  return parsed ?? lsFiles(gitdir);
}

/** Paths of a Git index, or undefined for a form this reader leaves to Git (split index, unknown version). */
export function parseIndex(buf: Buffer, oidLen: number): string[] | undefined {
  const entries = parseIndexEntries(buf, oidLen);
  return entries && [...new Set(entries.map((e) => e.path))];
}

/** One entry of a Git index: a path and the blob staged for it (several per path during a merge conflict). */
export interface IndexEntry {
  path: string;
  oid: string;
  /** Git's mode: 0o100644 or 0o100755 for a regular file (0o120000 a symlink, 0o160000 a submodule). */
  mode: number;
}

/**
 * The entries of the Git index (`.git/index`) with their blob ids: what is
 * staged, which may differ from both HEAD and the work tree (gc keeps the data
 * a staged pointer references). A split index is read by `git ls-files -s`.
 */
export function readIndexEntries(gitdir: string): IndexEntry[] {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(path.join(gitdir, 'index'));
  } catch {
    return [];
  }
  return parseIndexEntries(buf, objectIdLength(gitdir)) ?? lsFilesStaged(gitdir);
}

/** Entries of a Git index, or undefined for a form this reader leaves to Git (split index, unknown version). */
export function parseIndexEntries(buf: Buffer, oidLen: number): IndexEntry[] | undefined {
  if (buf.length < 12 + oidLen || buf.toString('latin1', 0, 4) !== 'DIRC') return undefined;
  // The file ends with the hash of everything before it (all zeros with index.skipHash): a
  // wrong object-id length or a damaged index is noticed here, never parsed into garbage names.
  const sum = buf.subarray(buf.length - oidLen);
  if (sum.some((b) => b !== 0)) {
    const h = createHash(oidLen === 32 ? 'sha256' : 'sha1')
      .update(buf.subarray(0, buf.length - oidLen))
      .digest();
    if (!h.equals(sum)) return undefined;
  }
  const version = buf.readUInt32BE(4);
  if (version < 2 || version > 4) return undefined;
  const count = buf.readUInt32BE(8);
  const out: IndexEntry[] = [];
  let pos = 12;
  let prev: Buffer = Buffer.alloc(0);
  for (let i = 0; i < count; i++) {
    const start = pos;
    pos += 40 + oidLen;
    if (pos + 2 > buf.length) return undefined;
    const oid = buf.toString('hex', start + 40, start + 40 + oidLen);
    const mode = buf.readUInt32BE(start + 24); // after ctime, mtime, dev, ino
    const flags = buf.readUInt16BE(pos);
    pos += 2;
    if (version >= 3 && flags & 0x4000) pos += 2;
    let name: Buffer;
    if (version === 4) {
      // A varint: how many bytes of the previous name to drop, then the rest of this one.
      let strip = 0;
      let b: number;
      let first = true;
      do {
        if (pos >= buf.length) return undefined;
        b = buf[pos++]!;
        strip = first ? b & 0x7f : ((strip + 1) << 7) | (b & 0x7f);
        first = false;
      } while (b & 0x80);
      const end = buf.indexOf(0, pos);
      if (end < 0 || strip > prev.length) return undefined;
      name = Buffer.concat([prev.subarray(0, prev.length - strip), buf.subarray(pos, end)]);
      pos = end + 1;
    } else {
      const end = buf.indexOf(0, pos);
      if (end < 0) return undefined;
      name = buf.subarray(pos, end);
      // Entries are padded with 1 to 8 NULs to a multiple of 8 bytes.
      pos = start + Math.ceil((end - start + 1) / 8) * 8;
    }
    prev = name;
    out.push({ path: name.toString('utf8'), oid, mode });
  }
  // A split index keeps most entries in a shared file: let Git answer.
  if (pos + 8 <= buf.length && buf.toString('latin1', pos, pos + 4) === 'link') return undefined;
  return out;
}

function objectIdLength(gitdir: string): number {
  try {
    // A linked worktree's git dir has no config of its own: it is in the common dir.
    let common = gitdir;
    try {
      common = path.resolve(gitdir, fs.readFileSync(path.join(gitdir, 'commondir'), 'utf8').trim());
    } catch {
      /* not a linked worktree */
    }
    const config = fs.readFileSync(path.join(common, 'config'), 'utf8');
    return /^\s*objectformat\s*=\s*sha256\s*$/im.test(config) ? 32 : 20;
  } catch {
    return 20;
  }
}

function lsFiles(gitdir: string): string[] {
  try {
    const out = execFileSync('git', ['--git-dir', gitdir, 'ls-files', '-z', '--full-name'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
    return out.split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

function lsFilesStaged(gitdir: string): IndexEntry[] {
  let out: string;
  try {
    out = execFileSync('git', ['--git-dir', gitdir, 'ls-files', '-s', '-z', '--full-name'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
  } catch {
    return [];
  }
  const entries: IndexEntry[] = [];
  for (const line of out.split('\0')) {
    // "<mode> <oid> <stage>\t<path>"
    const m = /^([0-7]+) ([0-9a-f]{40,64}) \d\t(.*)$/s.exec(line);
    if (m) entries.push({ path: m[3]!, oid: m[2]!, mode: parseInt(m[1]!, 8) });
  }
  return entries;
}

/**
 * Membership questions about a set of Git-tracked paths: is `rel` tracked, or
 * (for a directory) is anything below it tracked. Paths are sorted once, so a
 * prefix question is a binary search.
 */
export class TrackedPaths {
  private readonly set: Set<string>;
  private readonly sorted: string[];

  constructor(paths: readonly string[]) {
    this.set = new Set(paths);
    this.sorted = [...this.set].sort();
  }

  get size(): number {
    return this.set.size;
  }

  has(rel: string): boolean {
    return this.set.has(rel);
  }

  /** The first tracked path at or below `rel` (a directory), if any. */
  firstUnder(rel: string): string | undefined {
    if (this.set.has(rel)) return rel;
    const prefix = `${rel}/`;
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! < prefix) lo = mid + 1;
      else hi = mid;
    }
    const hit = this.sorted[lo];
    return hit !== undefined && hit.startsWith(prefix) ? hit : undefined;
  }
}
