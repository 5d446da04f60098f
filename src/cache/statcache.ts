import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { writeFileAtomicSync } from '../util/fs.js';
import type { Oid } from './oid.js';
import type { WalkEntry } from './walk.js';

/** What identifies an unchanged file: inode, mtime and ctime in ns, size. */
type FileRec = [ino: string, mtimeNs: string, ctimeNs: string, size: string, sha256: string];

/** What a tracked directory looked like when its id was last computed. */
export interface DirRec {
  /** Fingerprint of the walk: every file's path and stat key, in walk order. */
  fp: string;
  oid: Oid;
  size: number;
  nfiles: number;
  /** Newest file mtime in the walk, for the racy check. */
  maxMtimeNs: string;
  /** Cache epoch at which every object of `oid` was known to be present. */
  epoch?: string;
}

const FILES = 'statcache-files.json';
const DIRS = 'statcache-dirs.json';

/**
 * Remembers file hashes by (inode, mtime ns, ctime ns, size) so an unchanged
 * file is never hashed twice, and whole tracked directories by a fingerprint of
 * their walk so an unchanged directory costs one walk and no lookups.
 *
 * Racy entries: a file modified in the same clock tick as the stat cache was
 * written could keep its (mtime, size) while its content changed. As Git does
 * for its index, an entry is trusted only if the file's mtime is strictly older
 * than the stat cache file's own mtime; a racy entry is simply re-hashed.
 * ctime is part of the key because a replaced file cannot forge it (rename or
 * `cp -p` over a file keeps mtime but not ctime).
 *
 * The cache is advisory: a damaged file is discarded and rebuilt, and writes
 * are atomic (temp + rename), so concurrent readers never see a torn file.
 */
export class StatCache {
  private files?: Map<string, FileRec>;
  private filesRef = 0n;
  private dirs: Record<string, DirRec> = {};
  private dirsRef = 0n;
  private readonly freshFiles = new Set<string>();
  private readonly freshDirs = new Set<string>();
  private dirtyFiles = false;
  private dirtyDirs = false;

  constructor(
    private readonly dir: string,
    private readonly onWarn?: (msg: string) => void,
  ) {
    const loaded = this.read(DIRS);
    if (loaded) {
      const d = (loaded.json as { dirs?: unknown }).dirs;
      if (typeof d === 'object' && d !== null) this.dirs = d as Record<string, DirRec>;
      this.dirsRef = loaded.mtimeNs;
    }
  }

  /** The id of a directory whose walk fingerprint is unchanged and not racy. */
  getDir(rel: string, fp: string): DirRec | undefined {
    const rec = this.dirs[rel];
    if (!rec || rec.fp !== fp) return undefined;
    if (!this.freshDirs.has(rel) && BigInt(rec.maxMtimeNs) >= this.dirsRef) return undefined;
    return rec;
  }

  setDir(rel: string, rec: DirRec): void {
    this.dirs[rel] = rec;
    this.freshDirs.add(rel);
    this.dirtyDirs = true;
  }

  /** True when every object of directory `rel`'s version `oid` was known present at cache `epoch`. */
  isComplete(rel: string, oid: Oid, epoch: string): boolean {
    const rec = this.dirs[rel];
    return rec !== undefined && rec.oid === oid && rec.epoch === epoch;
  }

  markComplete(rel: string, oid: Oid, epoch: string): void {
    const rec = this.dirs[rel];
    if (rec && rec.oid === oid && rec.epoch !== epoch) {
      rec.epoch = epoch;
      this.dirtyDirs = true;
    }
  }

  getFile(rel: string, st: fs.BigIntStats): string | undefined {
    const rec = this.loadFiles().get(rel);
    if (!rec) return undefined;
    if (rec[0] !== String(st.ino) || rec[1] !== String(st.mtimeNs) || rec[2] !== String(st.ctimeNs) || rec[3] !== String(st.size)) return undefined;
    if (!this.freshFiles.has(rel) && st.mtimeNs >= this.filesRef) return undefined;
    return rec[4];
  }

  setFile(rel: string, st: fs.BigIntStats, sha: string): void {
    this.loadFiles().set(rel, [String(st.ino), String(st.mtimeNs), String(st.ctimeNs), String(st.size), sha]);
    this.freshFiles.add(rel);
    this.dirtyFiles = true;
  }

  /** Forgets every file entry below `relDir` (before re-recording a directory). */
  dropUnder(relDir: string): void {
    const files = this.loadFiles();
    const prefix = `${relDir}/`;
    for (const k of files.keys()) if (k.startsWith(prefix)) files.delete(k);
    this.dirtyFiles = true;
  }

  forget(rel: string): void {
    if (this.dirs[rel]) {
      delete this.dirs[rel];
      this.dirtyDirs = true;
    }
  }

  save(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    if (this.dirtyFiles && this.files) {
      writeFileAtomicSync(path.join(this.dir, FILES), JSON.stringify({ v: 1, files: Object.fromEntries(this.files) }));
      this.dirtyFiles = false;
    }
    if (this.dirtyDirs) {
      writeFileAtomicSync(path.join(this.dir, DIRS), JSON.stringify({ v: 1, dirs: this.dirs }));
      this.dirtyDirs = false;
    }
  }

  private loadFiles(): Map<string, FileRec> {
    if (this.files) return this.files;
    this.files = new Map();
    const loaded = this.read(FILES);
    const f = loaded && (loaded.json as { files?: unknown }).files;
    if (loaded && typeof f === 'object' && f !== null) {
      for (const [k, v] of Object.entries(f)) if (Array.isArray(v) && v.length === 5 && v.every((x) => typeof x === 'string')) this.files.set(k, v as FileRec);
      this.filesRef = loaded.mtimeNs;
    }
    return this.files;
  }

  private read(name: string): { json: unknown; mtimeNs: bigint } | undefined {
    const file = path.join(this.dir, name);
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return undefined;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const json: unknown = JSON.parse(fs.readFileSync(fd, 'utf8'));
      if (typeof json !== 'object' || json === null || (json as { v?: unknown }).v !== 1) throw new Error('unknown format');
      return { json, mtimeNs: st.mtimeNs };
    } catch (err) {
      this.onWarn?.(`ignoring damaged stat cache ${file} (${(err as Error).message}); files will be re-hashed`);
      return undefined;
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Fingerprint of a directory walk: paths and stat keys in walk order. */
export function walkFingerprint(entries: readonly WalkEntry[]): { fp: string; maxMtimeNs: bigint } {
  const h = createHash('sha1');
  let max = 0n;
  for (const e of entries) {
    const st = e.st;
    h.update(`${e.rel}\0${st.ino}\0${st.mtimeNs}\0${st.ctimeNs}\0${st.size}\0${st.mode}\n`);
    if (st.mtimeNs > max) max = st.mtimeNs;
  }
  return { fp: h.digest('hex'), maxMtimeNs: max };
}
