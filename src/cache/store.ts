import fs from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { describeFsError, errnoCode, FormatError, TdvError, vanished } from '../errors.js';
import { decodeUtf8, fileKind, processGone, tmpSuffix } from '../util/fs.js';
import { pruneEmptyDirs, rmQuiet, writeFileAtomicSync } from '../workspace/raw.js';
import { CHUNK, hashFile, hashHandle, READ_FLAGS, sha256 } from './hash.js';
import { checkManifestSize, type ManifestEntry, parseManifest, serializeManifest } from '../formats/manifest.js';
import { isDirOid, isOid, type Oid, oidRelPath } from '../formats/oid.js';
import { sameVersion, type StatKey } from './statcache.js';

const OBJECT_MODE = 0o444;

function changedWhileAdding(src: string): TdvError {
  return new TdvError('CHANGED_WHILE_ADDING', `${src} changed while it was being added; run the command again when nothing writes to it`);
}

/** After reading `size` bytes of `fh` to its end: the file must still be exactly the version `st`. */
async function expectUnchanged(fh: fs.promises.FileHandle, src: string, st: Omit<StatKey, 'mode'>, size: number): Promise<void> {
  if (size !== st.size || !sameVersion(await fh.stat(), st)) throw changedWhileAdding(src);
}

/** Writes all of `chunk` at `position` (a write may be short). */
async function writeAll(fh: fs.promises.FileHandle, chunk: Buffer, position: number): Promise<void> {
  for (let off = 0; off < chunk.length;) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off, position + off);
    off += bytesWritten;
  }
}

/** A workspace inode that `addFileMove` made the object, with its mode from before. */
export interface Moved {
  dev: number;
  ino: number;
  mode: number;
}

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
  /** Objects whose partial download (openPartial) this process is receiving now. */
  private readonly partials = new Set<string>();
  /** Whether reflinking works for this cache (see cloneHashing); undefined until tried. */
  private canClone: boolean | undefined;
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
   * stores exactly the bytes hashed. Synchronous on purpose: for many small
   * files the per-call cost of async I/O exceeds the I/O itself. With `st` (the
   * walk's stat key), a file that is not that version before or after the read
   * fails with CHANGED_WHILE_ADDING and nothing is stored.
   */
  hashSmallSync(src: string, store: boolean, st?: Omit<StatKey, 'mode'>): { oid: Oid; size: number } {
    let data: Buffer;
    let fd: number;
    try {
      fd = fs.openSync(src, READ_FLAGS);
    } catch (err) {
      if (errnoCode(err) === 'ELOOP') throw changedWhileAdding(src); // replaced by a symlink since the walk
      throw errnoCode(err) === 'ENOENT' ? vanished(src, err) : describeFsError(err, src);
    }
    try {
      const before = fs.fstatSync(fd);
      if (st && !sameVersion(before, st)) throw changedWhileAdding(src);
      if (!before.isFile()) throw changedWhileAdding(src);
      // One byte more than expected, so that a file that grew is seen to have grown.
      const want = Math.min((st?.size ?? before.size) + 1, CHUNK + 1);
      const buf = Buffer.allocUnsafe(want);
      let n = 0;
      for (let got = -1; got !== 0 && n < want; n += got) got = fs.readSync(fd, buf, n, want - n, n);
      data = buf.subarray(0, n);
      if (data.length > CHUNK) throw new TdvError('CHANGED_WHILE_ADDING', `${src} grew while it was being added; run the command again when nothing writes to it`);
      if (st && (data.length !== st.size || !sameVersion(fs.fstatSync(fd), st))) throw changedWhileAdding(src);
    } catch (err) {
      throw describeFsError(err, src);
    } finally {
      fs.closeSync(fd);
    }
    const oid = sha256(data);
    if (store) this.addBufferSync(data, false, oid);
    return { oid, size: data.length };
  }

  /**
   * Stores a copy of a large file and returns its id, which is always the hash
   * of exactly the bytes in the object: the bytes are hashed as they are copied
   * (one read of the source), or, where the file system can reflink, the
   * source is cloned and the clone (a private, frozen copy) is hashed. A source
   * that is not the version `st` before or after the copy (appended, rewritten,
   * replaced) fails with CHANGED_WHILE_ADDING and nothing is stored. When the
   * content is probably cached already (`likelyCached`: the same path was
   * recorded before with this size, as when an output is regenerated) it
   * hashes first and copies only if needed, since a wasted copy of a large
   * file costs time to write and to delete; that copy is hashed again, and
   * must give the same id.
   */
  async addFileCopy(src: string, st: StatKey, onBytes?: (n: number) => void, likelyCached = false): Promise<Oid> {
    const fh = await this.openSource(src, st);
    try {
      if (likelyCached) {
        const { sha256: oid, size } = await hashHandle(fh, { onBytes, limit: st.size });
        await expectUnchanged(fh, src, st, size);
        if (this.has(oid)) return oid;
        return await this.copyHashing(fh, src, st, undefined, oid);
      }
      return await this.copyHashing(fh, src, st, onBytes);
    } catch (err) {
      throw describeFsError(err, src);
    } finally {
      await fh.close();
    }
  }

  /** Opens a walked file for reading, never through a symlink, and checks that it is still the version `st`. */
  private async openSource(src: string, st: Omit<StatKey, 'mode'>): Promise<fs.promises.FileHandle> {
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(src, READ_FLAGS);
    } catch (err) {
      if (errnoCode(err) === 'ELOOP') throw changedWhileAdding(src); // replaced by a symlink since the walk
      throw describeFsError(err, src);
    }
    try {
      const now = await fh.stat();
      if (!now.isFile() || !sameVersion(now, st)) throw changedWhileAdding(src);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return fh;
  }

  /**
   * Copies the open file `fh` into the store, naming the object by the hash of
   * the bytes written, and checks afterwards that the source is still `st`
   * (and, with `expected`, that the bytes copied hash to it).
   */
  private async copyHashing(fh: fs.promises.FileHandle, src: string, st: StatKey, onBytes?: (n: number) => void, expected?: Oid): Promise<Oid> {
    const tmp = this.newTmpPath();
    try {
      let hashed = await this.cloneHashing(fh, tmp, onBytes);
      if (!hashed) {
        const out = await fs.promises.open(tmp, 'wx', OBJECT_MODE);
        try {
          hashed = await hashHandle(fh, { onBytes, limit: st.size, sink: (chunk, pos) => writeAll(out, chunk, pos) });
        } finally {
          await out.close();
        }
      }
      await expectUnchanged(fh, src, st, hashed.size);
      if (expected !== undefined && hashed.sha256 !== expected) throw changedWhileAdding(src);
      if (this.has(hashed.sha256)) rmQuiet(tmp);
      else this.insertSync(tmp, hashed.sha256);
      return hashed.sha256;
    } catch (err) {
      rmQuiet(tmp);
      throw err;
    }
  }

  /**
   * Where the file system can reflink (btrfs, XFS), clones the open file into
   * `tmp` and hashes the clone: the clone is a frozen, private copy, so its
   * hash names its bytes whatever happens to the source. Undefined when
   * cloning is not possible here (then never tried again by this store).
   * Linux only: the clone is made from /proc/self/fd, so it is the inode that
   * was opened and checked, not whatever the path names by now.
   */
  private async cloneHashing(fh: fs.promises.FileHandle, tmp: string, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number } | undefined> {
    if (this.canClone === false) return undefined;
    if (this.canClone === undefined) this.canClone = process.platform === 'linux' && fs.existsSync(`/proc/self/fd/${fh.fd}`);
    if (!this.canClone) return undefined;
    try {
      await fs.promises.copyFile(`/proc/self/fd/${fh.fd}`, tmp, fs.constants.COPYFILE_FICLONE_FORCE | fs.constants.COPYFILE_EXCL);
    } catch {
      // Not supported here (or failing for a reason the plain copy will report itself).
      this.canClone = false;
      rmQuiet(tmp);
      return undefined;
    }
    const clone = await fs.promises.open(tmp, 'r');
    try {
      return await hashHandle(clone, { onBytes });
    } finally {
      await clone.close();
    }
  }

  /**
   * Hashes `src` and moves it into the store (no copy): used when the workspace
   * will be a hard link or symlink to the object anyway, so the workspace
   * inode itself becomes the object (read-only). Returns the id; `onMoved`
   * hears when that happened, with the inode and its former mode (see
   * `unmove`). If the object already exists `src` is left in place.
   *
   * A file that is not only the workspace's is copied instead, never linked
   * or chmodded: one with other hard links (nlink > 1: it belongs to someone
   * else too, as a file hard-linked from outside the repository, and would
   * change with it). Whether another process still holds the file open for
   * writing is checked by the caller for a whole batch (`openForWriting`),
   * after this made the object read-only; it calls `unmove` for those.
   * After linking, the inode must still be the version hashed (same size and
   * mtime, exactly two links: the workspace's and the object's), or the object
   * is taken back and this fails with CHANGED_WHILE_ADDING.
   */
  async addFileMove(src: string, st: StatKey, onBytes?: (n: number) => void, onMoved?: (moved: Moved) => void): Promise<Oid> {
    const fh = await this.openSource(src, st);
    try {
      const before = await fh.stat();
      if (before.nlink > 1) {
        // Probably tdv's own link to the object already (a re-add): hash first, copy only if missing.
        const { sha256: oid, size } = await hashHandle(fh, { onBytes, limit: st.size });
        await expectUnchanged(fh, src, st, size);
        if (this.has(oid)) return oid;
        return await this.copyHashing(fh, src, st, undefined, oid);
      }
      const { sha256: oid, size } = await hashHandle(fh, { onBytes, limit: st.size });
      await expectUnchanged(fh, src, st, size);
      if (this.has(oid)) return oid;
      const dest = this.pathOf(oid);
      this.ensureDir(path.dirname(dest));
      try {
        // Link rather than rename: the workspace keeps its file until the caller relinks it.
        fs.linkSync(src, dest);
      } catch (err) {
        if (errnoCode(err) === 'EEXIST') return oid;
        if (['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'].includes(errnoCode(err) ?? '')) return await this.copyHashing(fh, src, st, undefined, oid);
        throw describeFsError(err, dest);
      }
      const moved: Moved = { dev: before.dev, ino: before.ino, mode: before.mode & 0o7777 };
      const linked = fs.lstatSync(dest, { throwIfNoEntry: false });
      if (!linked || linked.ino !== before.ino || linked.dev !== before.dev) {
        // The path named another inode by the time it was linked: not what was hashed.
        if (linked) rmQuiet(dest);
        throw changedWhileAdding(src);
      }
      await fh.chmod(OBJECT_MODE);
      const after = await fh.stat();
      if (after.size !== st.size || after.mtimeMs !== st.mtimeMs || after.nlink !== 2) {
        this.unmove(src, oid, moved);
        throw changedWhileAdding(src);
      }
      onMoved?.(moved);
      return oid;
    } catch (err) {
      throw describeFsError(err, src);
    } finally {
      await fh.close();
    }
  }

  /**
   * Takes back what `addFileMove` did to a workspace file: removes the object
   * if it is still that inode, and gives the file its former mode back.
   */
  unmove(src: string, oid: Oid, moved: Moved): void {
    const same = (st: fs.Stats | undefined) => st !== undefined && st.ino === moved.ino && st.dev === moved.dev;
    const dest = this.pathOf(oid);
    if (same(fs.lstatSync(dest, { throwIfNoEntry: false }))) rmQuiet(dest);
    if (same(fs.lstatSync(src, { throwIfNoEntry: false }))) fs.chmodSync(src, moved.mode);
  }

  /**
   * Moves an object that no longer matches its name out of the store, to
   * `<tmpDir>/quarantine/<oid>` (never deleting it: it may hold the only copy
   * of someone's edit). Returns where it went, or undefined when it was gone
   * or could only be removed (quarantine on another file system: the bytes
   * survive in the workspace link that showed the damage).
   */
  quarantine(oid: Oid, dir = path.join(this.tmpDir, 'quarantine')): string | undefined {
    const src = this.pathOf(oid);
    let dest = path.join(dir, oid);
    try {
      fs.mkdirSync(dir, { recursive: true });
      if (fs.existsSync(dest)) dest = path.join(dir, `${oid}.${tmpSuffix()}`);
      try {
        fs.renameSync(src, dest);
      } catch (err) {
        if (errnoCode(err) !== 'EXDEV') throw err;
        // A quarantine on another file system than the cache (cache.dir): copy, then remove the object.
        fs.cpSync(src, dest, { recursive: true, verbatimSymlinks: true });
        fs.rmSync(src, { recursive: true, force: true });
      }
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw describeFsError(err, src);
    }
    try {
      fs.rmdirSync(path.dirname(src));
      this.madeDirs.delete(path.dirname(src));
    } catch {
      /* the prefix directory still holds objects */
    }
    return dest;
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

  /** Deletes objects, and the chunk lists (`recipes/`) of those that had one; returns the ones that could not be deleted. */
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
      // A recipe without its object is no chunk index: nothing can be read from it.
      if (!isDirOid(oid)) rmQuiet(this.sidePath('recipes', oid));
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

  /**
   * A new temp file in the store's tmp directory, for bytes arriving from a
   * remote: written in order, hashed by the caller, then `insertSync`ed under
   * their hash or discarded. Created exclusively (O_EXCL), read-only.
   */
  openTemp(): TempObject {
    const file = this.newTmpPath();
    let fd: number | undefined;
    return {
      path: file,
      write(chunks: readonly Uint8Array[]): void {
        fd ??= fs.openSync(file, 'wx', 0o444);
        // write(2) may write less than asked (a disk filling up mid-write) without failing: the
        // rest is written until done, so a full disk fails the next write with ENOSPC rather
        // than leaving a short file whose bytes the caller hashed in full.
        for (const b of chunks) {
          for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off, b.length - off);
        }
      },
      close(): void {
        if (fd === undefined) fs.writeFileSync(file, new Uint8Array(0), { flag: 'wx', mode: 0o444 });
        else fs.closeSync(fd);
        fd = undefined;
      },
    };
  }

  /**
   * The partial download of a large object, kept in the tmp directory as
   * `part.<sha256>.<pid>` so that a download cut off (a dropped connection, a
   * killed process) resumes where it stopped instead of from zero: this
   * process's own, else a dead process's (claimed by renaming it to this
   * pid: of two claimants only one rename succeeds), else a new empty one.
   * Undefined when a live process (or another download in this one) is
   * receiving the object: its file is not touched.
   */
  openPartial(oid: Oid): PartialObject | undefined {
    const sha = oid.slice(0, 64);
    if (isDirOid(oid) || !isOid(sha) || this.partials.has(sha)) return undefined;
    this.ensureDir(this.tmpDir);
    const mine = path.join(this.tmpDir, `part.${sha}.${process.pid}`);
    const regular = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false })?.isFile() === true;
    if (!regular(mine)) {
      // Anything else at our name (a symlink, a FIFO) is not ours to write through.
      if (fs.lstatSync(mine, { throwIfNoEntry: false })) rmQuiet(mine);
      for (const name of fs.readdirSync(this.tmpDir)) {
        const m = PARTIAL_NAME.exec(name);
        if (!m || m[1] !== sha) continue;
        const from = path.join(this.tmpDir, name);
        if (!processGone(Number(m[2]))) return undefined; // a live process is receiving it
        if (!regular(from)) continue;
        try {
          fs.renameSync(from, mine);
          break;
        } catch (err) {
          if (errnoCode(err) !== 'ENOENT') throw describeFsError(err, from); // ENOENT: another process claimed it first
        }
      }
    }
    this.partials.add(sha);
    let fd: number | undefined;
    const closeFd = () => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    };
    return {
      path: mine,
      size: () => fs.lstatSync(mine, { throwIfNoEntry: false })?.size ?? 0,
      write(chunks: readonly Uint8Array[]): void {
        // Appended without following a symlink; created (0644: appended to again by a later run) when absent.
        fd ??= fs.openSync(mine, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o644);
        // write(2) may write less than asked (a disk filling up mid-write) without failing: the
        // rest is written until done, so a full disk fails the next write with ENOSPC rather
        // than leaving a short file whose bytes the caller hashed in full.
        for (const b of chunks) {
          for (let off = 0; off < b.length;) off += fs.writeSync(fd, b, off, b.length - off);
        }
      },
      close: closeFd,
      reset(): void {
        closeFd();
        rmQuiet(mine);
      },
      seal(): void {
        closeFd();
        if (!regular(mine)) fs.writeFileSync(mine, new Uint8Array(0), { flag: 'wx', mode: 0o444 });
        fs.chmodSync(mine, 0o444);
      },
      release: () => {
        closeFd();
        this.partials.delete(sha);
      },
    };
  }

  /** Removes a temp file of this store (received bytes that failed verification), quietly. */
  discardTemp(tmp: string): void {
    if (path.dirname(tmp) === this.tmpDir) rmQuiet(tmp);
  }

  /**
   * Removes the store's temp files whose names `mine` matches (those a dead
   * process left): in its tmp directory and beside objects. Returns how many.
   */
  removeTempFiles(mine: RegExp): number {
    let removed = 0;
    const sweep = (dir: string, depth: number): void => {
      let ents: fs.Dirent[];
      try {
        ents = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        if (e.isDirectory()) {
          if (depth > 0) sweep(path.join(dir, e.name), depth - 1);
        } else if (mine.test(e.name)) {
          rmQuiet(path.join(dir, e.name));
          removed++;
        }
      }
    };
    sweep(this.tmpDir, 0);
    sweep(this.objectsDir, 1);
    return removed;
  }

  private ensureDir(dir: string): void {
    if (this.madeDirs.has(dir)) return;
    fs.mkdirSync(dir, { recursive: true });
    this.madeDirs.add(dir);
  }

  /** The run-cache's records (stages/run-cache.ts) live beside the objects: `<root>/runs/ab/cdef...`. */
  get runsDir(): string {
    return path.join(this.root, 'runs');
  }

  private runPath(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`not a run key: ${key}`);
    return path.join(this.runsDir, key.slice(0, 2), key.slice(2));
  }

  /** Writes a run record atomically (temp file, then rename). */
  writeRun(key: string, text: string): void {
    const file = this.runPath(key);
    this.ensureDir(path.dirname(file));
    writeFileAtomicSync(file, text);
  }

  /**
   * A run record's text; undefined when there is none. Only a regular file is
   * read (opened non-blocking, not following a symlink), so a FIFO or a link
   * planted there cannot hang or redirect the read.
   */
  readRun(key: string): string | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.runPath(key), fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return undefined;
      throw describeFsError(err, this.runPath(key));
    }
    try {
      return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd, 'utf8') : undefined;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Side files of the packed remote layout (remote/packed.ts), beside the
   * objects: `recipes/ab/cdef...` (the chunk list of a large object, so a
   * later download reuses its chunks: the local chunk index), `remotes/<id>/`
   * (pack indexes downloaded from a remote, immutable and named by their
   * hash, so each is downloaded once) and `tmp/chunks/` (chunks of a download
   * in progress, so an interrupted one resumes). Names are checked here:
   * they come from remote listings.
   */
  private sidePath(area: 'recipes' | 'remotes' | 'spool', name: string): string {
    const ok = area === 'remotes' ? /^[0-9a-f]{64}\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(name) && !name.includes('..') : /^[0-9a-f]{64}$/.test(name);
    if (!ok) throw new Error(`not a side file name: ${name}`);
    if (area === 'recipes') return path.join(this.root, 'recipes', name.slice(0, 2), name.slice(2));
    if (area === 'spool') return path.join(this.tmpDir, 'chunks', name.slice(0, 2), name.slice(2));
    return path.join(this.root, 'remotes', name);
  }

  /** Writes a side file atomically. */
  writeSide(area: 'recipes' | 'remotes' | 'spool', name: string, data: Uint8Array): void {
    const file = this.sidePath(area, name);
    try {
      this.ensureDir(path.dirname(file));
      writeFileAtomicSync(file, data);
    } catch (err) {
      throw describeFsError(err, file);
    }
  }

  /** A side file's bytes (a regular file only, never through a symlink), or undefined when absent. */
  readSide(area: 'recipes' | 'remotes' | 'spool', name: string): Buffer | undefined {
    const file = this.sidePath(area, name);
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return undefined;
      throw describeFsError(err, file);
    }
    try {
      return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd) : undefined;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Removes side files quietly. */
  removeSide(area: 'recipes' | 'remotes' | 'spool', names: Iterable<string>): void {
    for (const n of names) rmQuiet(this.sidePath(area, n));
  }

  /**
   * Tidies the side files `gc` collects: recipes whose object is no longer
   * in the cache, and chunks in the download spool (`tmp/chunks/`) not
   * written for `staleMs` (an interrupted pull resumes from them; one left
   * that long is not coming back). Returns how many files went.
   */
  removeStaleSides(staleMs: number): { recipes: number; spool: number } {
    let recipes = 0;
    for (const oid of this.listSide('recipes')) {
      if (this.has(oid)) continue;
      rmQuiet(this.sidePath('recipes', oid));
      recipes++;
    }
    let spool = 0;
    const top = path.join(this.tmpDir, 'chunks');
    const now = Date.now();
    for (const p of readdirQuiet(top)) {
      if (!p.isDirectory() || !/^[0-9a-f]{2}$/.test(p.name)) continue;
      const dir = path.join(top, p.name);
      for (const d of readdirQuiet(dir)) {
        const file = path.join(dir, d.name);
        const st = fs.lstatSync(file, { throwIfNoEntry: false });
        if (!st || now - st.mtimeMs < staleMs) continue;
        rmQuiet(file);
        spool++;
      }
      pruneEmptyDirs(dir, top);
    }
    return { recipes, spool };
  }

  /** The names of the side files of one area (`remotes`: below `<id>/`). */
  listSide(area: 'recipes' | 'remotes', under?: string): string[] {
    const out: string[] = [];
    if (area === 'remotes') {
      if (!under || !/^[0-9a-f]{64}$/.test(under)) return out;
      for (const d of readdirQuiet(path.join(this.root, 'remotes', under))) if (d.isFile()) out.push(`${under}/${d.name}`);
      return out;
    }
    const top = path.join(this.root, 'recipes');
    for (const p of readdirQuiet(top)) {
      if (!p.isDirectory() || !/^[0-9a-f]{2}$/.test(p.name)) continue;
      for (const d of readdirQuiet(path.join(top, p.name))) if (d.isFile() && /^[0-9a-f]{62}$/.test(d.name)) out.push(p.name + d.name);
    }
    return out;
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
}

function readdirQuiet(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
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

/** `part.<sha256>.<pid>`: a partial download (see ObjectStore.openPartial). */
const PARTIAL_NAME = /^part\.([0-9a-f]{64})\.([0-9]+)$/;

/** A partial download being resumed into the store (see ObjectStore.openPartial). */
export interface PartialObject extends TempObject {
  /** The bytes it holds now. */
  size(): number;
  /** Deletes its bytes: the next write starts from zero. */
  reset(): void;
  /** Closes it and makes it read-only, ready to be admitted like a temp file. */
  seal(): void;
  /** Closes it and lets this process open it again; the bytes stay for a later attempt or run. */
  release(): void;
}

/** A temp file being received into the store (see ObjectStore.openTemp). */
export interface TempObject {
  readonly path: string;
  write(chunks: readonly Uint8Array[]): void;
  /** Flushes and closes; creates the file empty when nothing was written. */
  close(): void;
}
