import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describeFsError, errnoCode, FormatError, TdvError, vanished } from '../errors.js';
import { decodeUtf8, fileKind, tmpSuffix } from '../util/fs.js';
import { rmQuiet } from '../workspace/raw.js';
import { CHUNK, hashFile, sha256 } from './hash.js';
import { checkManifestSize, type ManifestEntry, parseManifest, serializeManifest } from '../formats/manifest.js';
import { isDirOid, isOid, type Oid, oidRelPath } from '../formats/oid.js';
import { sameVersion, type StatKey } from './statcache.js';

const OBJECT_MODE = 0o444;

/** See ObjectStore.stamp(). */
export interface CacheStamp {
  fp: string;
  newestMs: number;
}

/**
 * The content-addressed object store shared by the cache (and, with the same
 * layout, by remotes): `<root>/files/sha256/ab/cdef...`. Objects are written to
 * a temp file, then linked into place; an existing object is never rewritten;
 * objects are read-only.
 */
export class ObjectStore {
  private readonly madeDirs = new Set<string>();
  readonly objectsDir: string;

  constructor(
    readonly root: string,
    readonly tmpDir: string,
  ) {
    this.objectsDir = path.join(root, 'files', 'sha256');
  }

  pathOf(oid: Oid): string {
    // Concatenation, not path.join: this runs once per file of a checkout.
    return path.sep === '/' ? `${this.objectsDir}/${oid.slice(0, 2)}/${oid.slice(2)}` : path.join(this.root, oidRelPath(oid));
  }

  has(oid: Oid): boolean {
    return fs.existsSync(this.pathOf(oid));
  }

  /**
   * Moves a temp file whose content hashes to `oid` into the store. Uses
   * link(2), which never replaces an existing object, then drops the temp name.
   */
  insertSync(tmp: string, oid: Oid, chmod = true): void {
    const dest = this.pathOf(oid);
    try {
      if (chmod) fs.chmodSync(tmp, OBJECT_MODE);
      this.ensureDir(path.dirname(dest));
      try {
        fs.linkSync(tmp, dest);
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EEXIST') return; // another writer stored the same content first
        if (code === 'EXDEV') {
          // The temp directory is on another file system than the cache (a cache
          // directory mounted or symlinked elsewhere): copy beside the object, then rename.
          const near = path.join(path.dirname(dest), `.tmp.${tmpSuffix()}`);
          try {
            fs.copyFileSync(tmp, near, fs.constants.COPYFILE_EXCL);
            if (!fs.existsSync(dest)) fs.renameSync(near, dest);
          } finally {
            rmQuiet(near);
          }
          return;
        }
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
        // No hard links on this file system: rename, which only ever replaces identical bytes.
        if (!fs.existsSync(dest)) fs.renameSync(tmp, dest);
      }
    } catch (err) {
      throw describeFsError(err, dest);
    } finally {
      try {
        fs.unlinkSync(tmp);
      } catch {
        /* renamed away, or already gone */
      }
    }
  }

  newTmpPath(): string {
    this.ensureDir(this.tmpDir);
    return path.join(this.tmpDir, `obj.${tmpSuffix()}`);
  }

  /** Stores `data` and returns its id (with `.dir` appended when `dirSuffix`). */
  addBufferSync(data: string | Uint8Array, dirSuffix = false, knownSha?: string): Oid {
    const oid = (knownSha ?? sha256(data)) + (dirSuffix ? '.dir' : '');
    if (this.has(oid)) return oid;
    const tmp = this.newTmpPath();
    try {
      fs.writeFileSync(tmp, data, { flag: 'wx', mode: OBJECT_MODE });
    } catch (err) {
      rmQuiet(tmp);
      throw describeFsError(err, tmp);
    }
    this.insertSync(tmp, oid, false);
    return oid;
  }

  /**
   * Hashes a small file (at most CHUNK bytes, so one read) and, with `store`,
   * stores it. Synchronous on purpose: for many small files the per-call cost
   * of async I/O exceeds the I/O itself.
   */
  hashSmallSync(src: string, store: boolean): { oid: Oid; size: number } {
    let data: Buffer;
    try {
      data = fs.readFileSync(src);
    } catch (err) {
      throw errnoCode(err) === 'ENOENT' ? vanished(src, err) : describeFsError(err, src);
    }
    if (data.length > CHUNK) throw new TdvError('CHANGED_WHILE_ADDING', `${src} grew while it was being added; run the command again when nothing writes to it`);
    const oid = sha256(data);
    if (store) this.addBufferSync(data, false, oid);
    return { oid, size: data.length };
  }

  /**
   * Hashes a large file and stores a copy of it (a reflink where the file
   * system can). A new file is copied by the kernel on the thread pool while
   * this thread hashes it: the two overlap, so adding new data costs little
   * more than hashing it. When the content is probably cached already
   * (`likelyCached`: the same path was recorded before with this size, as when
   * an output is regenerated) it hashes first and copies only if needed, since
   * a wasted copy of a large file costs time to write and to delete. The stat
   * key is checked afterwards, so content that changed meanwhile is never
   * stored under the old hash.
   */
  async addFileCopy(src: string, st: StatKey, onBytes?: (n: number) => void, likelyCached = false): Promise<Oid> {
    const tmp = this.newTmpPath();
    const copy = () => fs.promises.copyFile(src, tmp, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
    const copying = likelyCached ? undefined : copy();
    const copyDone = copying?.catch(() => undefined); // settles either way; an early hash failure must not leave it unhandled
    try {
      const { sha256: oid } = await hashFile(src, onBytes);
      if (copying) await copying;
      else if (!this.has(oid)) await copy();
      const now = await fs.promises.stat(src);
      if (!sameVersion(now, st)) {
        throw new TdvError('CHANGED_WHILE_ADDING', `${src} changed while it was being added; run the command again when nothing writes to it`);
      }
      if (this.has(oid)) rmQuiet(tmp);
      else this.insertSync(tmp, oid);
      return oid;
    } catch (err) {
      await copyDone; // the copy may still be creating tmp: remove it only after
      rmQuiet(tmp);
      throw describeFsError(err, src);
    }
  }

  /**
   * Hashes `src` and moves it into the store (no copy): used when the workspace
   * will be a hard link or symlink to the object anyway. If the object already
   * exists `src` is left in place. Returns the id.
   */
  async addFileMove(src: string, st: StatKey, onBytes?: (n: number) => void): Promise<Oid> {
    const { sha256: oid } = await hashFile(src, onBytes);
    // The workspace inode itself becomes the object: it must still be what was hashed.
    const now = await fs.promises.lstat(src);
    if (!sameVersion(now, st)) {
      throw new TdvError('CHANGED_WHILE_ADDING', `${src} changed while it was being added; run the command again when nothing writes to it`);
    }
    if (this.has(oid)) return oid;
    const dest = this.pathOf(oid);
    this.ensureDir(path.dirname(dest));
    try {
      // Link rather than rename: the workspace keeps its file until the caller relinks it.
      fs.linkSync(src, dest);
      fs.chmodSync(dest, OBJECT_MODE);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return oid;
      if (['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'].includes(errnoCode(err) ?? '')) {
        const tmp = this.newTmpPath();
        try {
          await fs.promises.copyFile(src, tmp, fs.constants.COPYFILE_FICLONE);
        } catch (e) {
          rmQuiet(tmp);
          throw describeFsError(e, tmp);
        }
        this.insertSync(tmp, oid);
        return oid;
      }
      throw describeFsError(err, dest);
    }
    return oid;
  }

  writeManifest(entries: ManifestEntry[]): Oid {
    return this.addBufferSync(serializeManifest(entries), true);
  }

  /** Reads a manifest, checking that its bytes still hash to its id. */
  readManifest(oid: Oid): ManifestEntry[] {
    const file = this.pathOf(oid);
    let bytes: Buffer;
    try {
      bytes = this.readManifestBytes(oid);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new TdvError('MISSING_OBJECTS', `directory manifest ${oid} is not in the cache; run \`tdv pull\` to fetch it`);
      throw err;
    }
    if (`${sha256(bytes)}.dir` !== oid) {
      throw new FormatError(file, 'directory manifest is corrupt (its content does not match its hash)', 'Delete that object from the cache and run `tdv pull`, or `tdv add` the original data again');
    }
    return parseManifest(decodeUtf8(bytes, file), file);
  }

  /** Every object id in the store. */
  *list(): Generator<Oid> {
    const base = this.objectsDir;
    let prefixes: string[];
    try {
      prefixes = fs.readdirSync(base);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw err;
    }
    for (const p of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      for (const rest of fs.readdirSync(path.join(base, p))) {
        const oid = p + rest;
        if (isOid(oid)) yield oid;
      }
    }
  }

  sizeOf(oid: Oid): number {
    return fs.statSync(this.pathOf(oid)).size;
  }

  /** Deletes objects; returns the ones that could not be deleted. */
  remove(oids: Iterable<Oid>): Oid[] {
    const failed: Oid[] = [];
    for (const oid of oids) {
      const p = this.pathOf(oid);
      try {
        fs.unlinkSync(p);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') failed.push(oid);
        continue;
      }
      try {
        fs.rmdirSync(path.dirname(p));
        this.madeDirs.delete(path.dirname(p));
      } catch {
        /* prefix directory still holds objects */
      }
    }
    return failed;
  }

  /**
   * A stamp of the object directories: removing any object changes the mtime
   * of its prefix directory, so "every object of X was present at stamp S" stays
   * true while the stamp is unchanged. Costs one stat per prefix (at most 257),
   * instead of one per object.
   */
  stamp(): CacheStamp {
    const base = this.objectsDir;
    const h = createHash('sha1');
    let max = 0;
    const add = (p: string, name: string) => {
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) return;
      h.update(`${name}\0${st.ino}\0${st.mtimeMs}\0${st.ctimeMs}\n`);
      max = Math.max(max, st.mtimeMs, st.ctimeMs);
    };
    add(this.root, '');
    add(base, '.');
    let names: string[] = [];
    try {
      names = fs.readdirSync(base).sort();
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
    for (const n of names) add(path.join(base, n), n);
    return { fp: h.digest('hex'), newestMs: max };
  }

  /** True when every object of a directory (manifest and files) is present. */
  hasAll(oid: Oid, entries?: ManifestEntry[]): boolean {
    if (!this.has(oid)) return false;
    if (!isDirOid(oid)) return true;
    for (const e of entries ?? this.readManifest(oid)) if (!this.has(e.sha256)) return false;
    return true;
  }

  private ensureDir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    fs.mkdirSync(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /**
   * The bytes of a manifest object, unchecked (readManifest and fsck check
   * them): refused before reading when the object is not a regular file (a
   * FIFO planted in the cache would block the read forever) or is larger than
   * MAX_MANIFEST_BYTES. Throws ENOENT when it is absent.
   */
  readManifestBytes(oid: Oid): Buffer {
    const file = this.pathOf(oid);
    return readObjectFileSync(file, (size) => checkManifestSize(size, file));
  }

  /**
   * Moves object `oid` to `dir` (tdv fsck's quarantine), never deleting it: it
   * may be someone's only copy of something. Returns the path it was moved to.
   */
  quarantine(oid: Oid, dir: string): string {
    fs.mkdirSync(dir, { recursive: true });
    let dest = path.join(dir, oid);
    if (fs.existsSync(dest)) dest = path.join(dir, `${oid}.${tmpSuffix()}`);
    const src = this.pathOf(oid);
    try {
      fs.renameSync(src, dest);
    } catch (err) {
      if (errnoCode(err) !== 'EXDEV') throw err;
      // A cache on another file system (cache.dir): copy, then remove the object.
      fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
      fs.rmSync(src, { recursive: true, force: true });
    }
    try {
      fs.rmdirSync(path.dirname(src));
      this.madeDirs.delete(path.dirname(src));
    } catch {
      /* the prefix directory still holds objects */
    }
    return dest;
  }
}

/** A cache object that is not a regular file, named in one line. */
function notAnObjectFile(file: string, st: fs.Stats): TdvError {
  return new TdvError('NOT_A_FILE', `cache object ${file} is ${fileKind(st)}, not a regular file; \`tdv fsck\` moves it aside, then \`tdv pull\` fetches it again`, { data: { file } });
}

/**
 * Refuses a cache object that is not a regular file before anything opens or
 * copies it: a FIFO would block the open forever, a device or socket is not
 * data, a symlink could point anywhere. An absent object passes (callers
 * report that themselves).
 */
export function assertObjectFile(file: string): void {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  if (st && !st.isFile()) throw notAnObjectFile(file, st);
}

/**
 * Reads a whole cache (or directory remote) object, refusing one that is not
 * a regular file: lstat first, so a device is never opened, then an open that
 * does not block and an fstat, so a FIFO swapped in meanwhile cannot hang the
 * read. `checkSize` may refuse the object by its size before it is read.
 * Throws ENOENT when it is absent.
 */
export function readObjectFileSync(file: string, checkSize?: (size: number) => void): Buffer {
  assertObjectFile(file);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw notAnObjectFile(file, st);
    checkSize?.(st.size);
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
