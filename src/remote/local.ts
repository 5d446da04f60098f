import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isOid, type Oid } from '../formats/oid.js';
import { describeFsError, errnoCode, RemoteError, TdvError } from '../errors.js';
import { assertObjectFile } from '../cache/store.js';
import { fileKind, MAX_TEXT_BYTES, readFileOrUndefined, tmpSuffix } from '../util/fs.js';
import { rmQuiet, writeFileAtomicSync } from '../workspace/raw.js';
import { compareCodePoints } from '../formats/manifest.js';
import { throttledBody, throttledReadable, type TokenBucket } from './rate.js';
import { isLayoutKey, type ByteRange, type KeyInfo, type KeySource, type ObjectBody, type OnBytes, type Remote } from './remote.js';

/**
 * A remote in a local or mounted directory: the embedded default, nothing to
 * install. Objects are copied to a temp name in the same prefix directory, then
 * renamed into place, so a reader never sees a partial object. File operations are synchronous: for many small
 * objects the per-call cost of async I/O exceeds the I/O itself.
 */
export class LocalRemote implements Remote {
  readonly defaultJobs = Math.max(2, os.availableParallelism());
  private readonly objectsDir: string;
  private readonly madeDirs = new Set<string>();
  private checked = false;

  /** The rate limit (`--limit-rate`, `limit_rate`) every transfer of this remote paces through. */
  private readonly rate: TokenBucket | undefined;

  constructor(
    readonly name: string,
    readonly root: string,
    opts: { rate?: TokenBucket } = {},
  ) {
    this.objectsDir = path.join(root, 'files', 'sha256');
    this.rate = opts.rate;
  }

  get url(): string {
    return this.root;
  }

  pathOf(oid: Oid): string {
    return path.join(this.objectsDir, oid.slice(0, 2), oid.slice(2));
  }

  async has(oid: Oid): Promise<boolean> {
    return (await this.stat(oid)) !== undefined;
  }

  /** An object's size; a FIFO, socket, device or directory where it should be is an error naming it. */
  async stat(oid: Oid): Promise<{ size: number } | undefined> {
    this.checkRoot();
    const file = this.pathOf(oid);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch (err) {
      // ENOTDIR: a file where the prefix directory should be; the object is not there.
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
      throw this.describe(err, file);
    }
    if (!st.isFile()) throw this.notAFile(oid, file, st);
    return { size: st.size };
  }

  /**
   * The objects under a prefix. Only regular files (and symlinks, checked when
   * read) count: a FIFO or socket where an object should be is not one, so a
   * push uploads the object over it. The type comes with the listing (d_type),
   * without a stat per name.
   */
  async listPrefix(prefix: string): Promise<Oid[]> {
    this.checkRoot();
    let names: fs.Dirent[];
    try {
      names = fs.readdirSync(path.join(this.objectsDir, prefix), { withFileTypes: true });
    } catch (err) {
      // ENOTDIR: a file where the prefix directory should be holds no objects (as in `stat`).
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return [];
      throw this.describe(err, path.join(this.objectsDir, prefix));
    }
    const out: Oid[] = [];
    for (const d of names) if ((d.isFile() || d.isSymbolicLink()) && isOid(prefix + d.name)) out.push(prefix + d.name);
    return out;
  }

  async put(oid: Oid, from: string, size: number, onBytes?: OnBytes): Promise<void> {
    this.checkRoot();
    const dest = this.pathOf(oid);
    const dir = path.dirname(dest);
    const tmp = path.join(dir, `${TMP_PREFIX}${tmpSuffix()}`);
    assertObjectFile(from); // a FIFO in the cache would block the copy forever
    try {
      if (!this.madeDirs.has(dir)) {
        fs.mkdirSync(dir, { recursive: true });
        this.madeDirs.add(dir);
      }
      // A clone where the file system can (the remote is often on the same disk), else a copy.
      // The copy keeps the cache object's mode (read-only); the rename publishes it whole.
      // Renaming over an object another push stored meanwhile replaces it with the same bytes.
      const flags = fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE;
      if (this.rate) await this.pacedCopy(fs.createReadStream(from, { highWaterMark: 1 << 20 }), tmp, fs.statSync(from).mode & 0o777, this.rate);
      else if (size < 1 << 20) fs.copyFileSync(from, tmp, flags);
      else await fsp.copyFile(from, tmp, flags);
      fs.renameSync(tmp, dest);
      onBytes?.(size);
    } catch (err) {
      rmQuiet(tmp);
      throw this.describe(err, dest);
    }
  }

  /**
   * Uploads many small objects at once on two threads (see inTwoThreads): for
   * thousands of 4 KiB files the per-object cost of the async path exceeds the
   * copy. Returns the failures by oid; a full or read-only file system throws.
   */
  async putMany(items: readonly { oid: Oid; from: string }[]): Promise<Map<Oid, Error>> {
    this.checkRoot();
    if (this.rate) return this.putEach(items); // the threads would copy past the rate limit
    const { inTwoThreads } = await import('../cache/pool.js');
    const results = await inTwoThreads(
      'publish',
      { objectsDir: this.objectsDir },
      items.map((i) => [i.from, i.oid] as [string, string]),
    );
    const failed = new Map<Oid, Error>();
    results.forEach((r, k) => {
      if (r === '') return;
      const code = r.slice(0, r.indexOf(' '));
      const err = Object.assign(new Error(r.slice(code.length + 1)), { code });
      const described = this.describe(err, this.pathOf(items[k]!.oid));
      if (described instanceof RemoteError && described.wide) throw described;
      failed.set(items[k]!.oid, described instanceof Error ? described : err);
    });
    return failed;
  }

  async get(oid: Oid): Promise<ObjectBody> {
    this.checkRoot();
    const file = this.pathOf(oid);
    let fd: number;
    let size: number;
    try {
      // stat first, so a device is never opened; then an open that cannot block on a FIFO
      // swapped in meanwhile, and fstat. Opened here, so a failure is described as the remote's.
      const before = fs.statSync(file);
      if (!before.isFile()) throw this.notAFile(oid, file, before);
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        fs.closeSync(fd);
        throw this.notAFile(oid, file, st);
      }
      size = st.size;
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      if (errnoCode(err) === 'ENOENT') throw notOnRemote(this, oid);
      throw this.describe(err, file);
    }
    // Small objects in one read, when read at all: the size comes first, so a reader
    // can refuse an object of the wrong size before a byte is read (`read` is lazy).
    // Large ones are streamed so memory stays flat.
    if (size <= 1 << 20) {
      const read = (): Buffer => {
        try {
          return fs.readFileSync(fd);
        } catch (err) {
          throw this.describe(err, file);
        } finally {
          fs.closeSync(fd);
        }
      };
      let done = false;
      return throttledBody(
        {
          size,
          [Symbol.asyncIterator]: () => ({
            next: async () => {
              if (done) return { done: true, value: undefined };
              done = true;
              return { done: false, value: read() };
            },
            return: async () => {
              if (!done) fs.closeSync(fd);
              done = true;
              return { done: true, value: undefined };
            },
          }),
        },
        this.rate,
      );
    }
    return throttledBody(Object.assign(fs.createReadStream(file, { fd, highWaterMark: 1 << 20 }), { size }), this.rate);
  }

  async *list(): AsyncIterable<Oid> {
    this.checkRoot();
    let prefixes: string[];
    try {
      prefixes = fs.readdirSync(this.objectsDir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw this.describe(err, this.objectsDir);
    }
    for (const p of prefixes.sort()) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      yield* await this.listPrefix(p);
    }
  }

  private runPath(key: string): string {
    return path.join(this.root, 'runs', key.slice(0, 2), key.slice(2));
  }

  async putRun(key: string, data: Buffer): Promise<void> {
    this.checkRoot();
    const dest = this.runPath(key);
    try {
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      writeFileAtomicSync(dest, data, 0o444);
    } catch (err) {
      throw this.describe(err, dest);
    }
  }

  async getRun(key: string): Promise<Buffer | undefined> {
    this.checkRoot();
    const file = this.runPath(key);
    try {
      // Not a blocking read of a FIFO, nor a whole read of a huge file, nor a read through a symlink (it could name any file here): a run record is small JSON.
      return readFileOrUndefined(file, MAX_TEXT_BYTES, `remote "${this.name}": run record ${file}`, 'a run record', { follow: false });
    } catch (err) {
      if (err instanceof TdvError) throw new RemoteError(err.code, err.message, { data: err.data });
      throw this.describe(err, file);
    }
  }

  async listRuns(): Promise<string[]> {
    this.checkRoot();
    const base = path.join(this.root, 'runs');
    const out: string[] = [];
    let prefixes: string[] = [];
    try {
      prefixes = fs.readdirSync(base);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return out;
      throw this.describe(err, base);
    }
    for (const p of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      let names: string[];
      try {
        names = fs.readdirSync(path.join(base, p));
      } catch (err) {
        // A file where a prefix directory should be holds no records (as in `listPrefix`).
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') continue;
        throw this.describe(err, path.join(base, p));
      }
      for (const n of names) if (/^[0-9a-f]{62}$/.test(n)) out.push(p + n);
    }
    return out;
  }

  async putRepoMarker(id: string, data: Buffer): Promise<void> {
    this.checkRoot();
    const dest = path.join(this.root, 'repos', id);
    try {
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      writeFileAtomicSync(dest, data, 0o444);
    } catch (err) {
      throw this.describe(err, dest);
    }
  }

  async listRepoMarkers(): Promise<string[]> {
    this.checkRoot();
    const dir = path.join(this.root, 'repos');
    try {
      // Every name but temp files: an unknown marker counts as another repository's.
      return fs
        .readdirSync(dir)
        .filter((n) => !n.startsWith('.'))
        .sort();
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw this.describe(err, dir);
    }
  }

  async remove(oids: readonly Oid[]): Promise<Oid[]> {
    this.checkRoot();
    const failed: Oid[] = [];
    for (const oid of oids) {
      try {
        fs.unlinkSync(this.pathOf(oid));
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') failed.push(oid);
      }
    }
    return failed;
  }

  // Raw layout keys (remote.ts). A key is a path below the root; every directory on
  // the way is checked with lstat, so a symlink planted on the remote (where a key or
  // one of its directories should be) is never followed: reads refuse it, writes refuse
  // a symlinked directory and replace a symlink at the key itself (rename does not
  // follow), listings skip it, deletes count a key behind one as absent.

  /**
   * Writes `from` to a temp name in the key's directory, then renames it into
   * place: a reader sees the old bytes or the new ones, and a killed upload
   * leaves only a `.tmp.<pid>.` file beside it, never listed nor read as a
   * key (as a killed `put` leaves one; nothing sweeps them on the remote yet).
   */
  async putKey(key: string, from: KeySource, onBytes?: OnBytes): Promise<void> {
    this.checkRoot();
    const dest = this.keyPath(key);
    this.keyDirs(key, true);
    // A local source tdv made (a pack being built, a cache object): a FIFO would block the
    // copy, and a missing one is a local failure, thrown as it is rather than as the remote's.
    let size: number;
    if ('data' in from) size = from.data.length;
    else {
      assertObjectFile(from.file);
      size = fs.statSync(from.file).size;
    }
    const tmp = path.join(path.dirname(dest), `${TMP_PREFIX}${tmpSuffix()}`);
    try {
      if (this.rate) await this.pacedCopy('data' in from ? [from.data] : fs.createReadStream(from.file, { highWaterMark: 1 << 20 }), tmp, 0o444, this.rate);
      else if ('data' in from) fs.writeFileSync(tmp, from.data, { mode: 0o444, flag: 'wx' });
      else if (!(from.move && linked(from.file, tmp))) {
        await fsp.copyFile(from.file, tmp, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
        fs.chmodSync(tmp, 0o444);
      }
      fs.renameSync(tmp, dest);
      onBytes?.(size);
    } catch (err) {
      rmQuiet(tmp);
      throw this.describe(err, dest);
    }
  }

  async getKey(key: string, range?: ByteRange): Promise<ObjectBody> {
    this.checkRoot();
    const file = this.keyPath(key);
    if (range && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
      throw new RangeError(`bad byte range ${range.start}-${range.end} for key ${key}`);
    }
    let fd: number;
    let size: number;
    try {
      if (!this.keyDirs(key, false)) throw keyNotOnRemote(this, key);
      // lstat first, so a device or symlink is never opened; then an open that neither
      // follows a symlink swapped in meanwhile nor blocks on a FIFO, and fstat.
      const before = fs.lstatSync(file);
      if (!before.isFile()) throw this.keyNotAFile(key, file, before);
      fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
      const st = fs.fstatSync(fd);
      if (!st.isFile()) {
        fs.closeSync(fd);
        throw this.keyNotAFile(key, file, st);
      }
      size = st.size;
    } catch (err) {
      if (err instanceof RemoteError) throw err;
      if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') throw keyNotOnRemote(this, key);
      if (errnoCode(err) === 'ELOOP') throw this.keyNotAFile(key, file, undefined);
      throw this.describe(err, file);
    }
    const start = Math.min(range?.start ?? 0, size);
    const end = Math.min(range?.end ?? size, size);
    if (end <= start) {
      fs.closeSync(fd);
      return emptyBody();
    }
    // `end` of createReadStream is inclusive. It reads with pread at the offset, so no seek is shared.
    return throttledBody(Object.assign(fs.createReadStream(file, { fd, start, end: end - 1, highWaterMark: 1 << 20 }), { size: end - start }), this.rate);
  }

  /**
   * Regular files below `dir/`, walked without following symlinks, sorted by
   * key (code points, as S3 lists). Temp files and names that are not layout
   * keys are left out.
   */
  async listKeys(dir: string, max?: number): Promise<KeyInfo[]> {
    this.checkRoot();
    const top = dir === '' ? this.root : this.keyPath(dir);
    if (dir !== '' && !this.keyDirs(`${dir}/x`, false)) return [];
    const out: KeyInfo[] = [];
    const walk = (abs: string, rel: string): void => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(abs, { withFileTypes: true });
      } catch (err) {
        // ENOTDIR: a file where the directory should be holds no keys (as in `listPrefix`).
        if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return;
        throw this.describe(err, abs);
      }
      for (const d of entries) {
        if (isTmpName(d.name)) continue;
        const key = rel ? `${rel}/${d.name}` : d.name;
        if (!isLayoutKey(key)) continue;
        const p = path.join(abs, d.name);
        if (d.isDirectory()) walk(p, key);
        else if (d.isFile()) {
          const st = fs.lstatSync(p, { throwIfNoEntry: false });
          if (st?.isFile()) out.push({ key, size: st.size }); // gone or swapped meanwhile: not listed
        }
      }
    };
    walk(top, dir);
    out.sort((a, b) => compareCodePoints(a.key, b.key));
    return max === undefined ? out : out.slice(0, max);
  }

  async deleteKeys(keys: readonly string[]): Promise<string[]> {
    this.checkRoot();
    const files = keys.map((k) => this.keyPath(k)); // every key checked before any is deleted
    const failed: string[] = [];
    keys.forEach((key, i) => {
      // A key behind a symlinked directory is not on this remote: never unlink through one.
      if (!this.keyDirs(key, false)) return;
      try {
        fs.unlinkSync(files[i]!);
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') failed.push(key);
      }
    });
    return failed;
  }

  /** Writes `body` to the new file `tmp` as fast as the rate limit allows. */
  private async pacedCopy(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, tmp: string, mode: number, rate: TokenBucket): Promise<void> {
    await pipeline(throttledReadable(body, rate), fs.createWriteStream(tmp, { flags: 'wx', mode }));
  }

  /** putMany one object at a time (under a rate limit); failures by oid, wide ones thrown. */
  private async putEach(items: readonly { oid: Oid; from: string }[]): Promise<Map<Oid, Error>> {
    const failed = new Map<Oid, Error>();
    for (const { oid, from } of items) {
      try {
        await this.put(oid, from, fs.statSync(from).size);
      } catch (err) {
        if (err instanceof RemoteError && err.wide) throw err;
        failed.set(oid, err instanceof Error ? err : new Error(String(err)));
      }
    }
    return failed;
  }

  /** The path of a layout key below the root; a key that is not one is refused (BAD_KEY). */
  private keyPath(key: string): string {
    if (!isLayoutKey(key) || key.split('/').some(isTmpName)) {
      throw new RemoteError(
        'BAD_KEY',
        `remote "${this.name}": ${JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}...` : key)} is not a valid key on ${this.root}; the remote's index or listing names it, so it may have been tampered with: check the remote`,
        {
          data: { key },
        },
      );
    }
    return path.join(this.root, ...key.split('/'));
  }

  /**
   * Checks the directories of `key` below the root with lstat: each must be a
   * real directory. Returns false when one is missing (or a file); with `make`,
   * creates missing ones instead. A symlink or other non-directory in the way
   * is refused when writing and reads as absent otherwise.
   */
  private keyDirs(key: string, make: boolean): boolean {
    const parts = key.split('/').slice(0, -1);
    let dir = this.root;
    for (const part of parts) {
      dir = path.join(dir, part);
      if (make && this.madeDirs.has(dir)) continue;
      let st = fs.lstatSync(dir, { throwIfNoEntry: false });
      if (!st && make) {
        try {
          fs.mkdirSync(dir);
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw this.describe(err, dir);
        }
        st = fs.lstatSync(dir, { throwIfNoEntry: false });
      }
      if (st?.isDirectory()) {
        if (make) this.madeDirs.add(dir);
        continue;
      }
      if (!make || !st) return false;
      throw new RemoteError('NOT_A_DIRECTORY', `remote "${this.name}": ${dir} is ${fileKind(st)}, not a directory; tdv will not write through it. Delete it on the remote and run the command again`, {
        data: { key },
      });
    }
    return true;
  }

  private keyNotAFile(key: string, file: string, st: fs.Stats | undefined): RemoteError {
    return new RemoteError(
      'NOT_A_FILE',
      `remote "${this.name}": ${file} is ${st ? fileKind(st) : 'a symlink'}, not a regular file; tdv will not read it. Delete it on the remote, then \`tdv push\` from a clone that has the data`,
      { data: { key } },
    );
  }

  close(): void {}

  /** The remote directory itself must exist: a typo must not silently create a new remote elsewhere. */
  private checkRoot(): void {
    if (this.checked) return;
    const st = fs.statSync(this.root, { throwIfNoEntry: false });
    if (!st) {
      throw new RemoteError(
        'REMOTE_NOT_FOUND',
        `remote "${this.name}": directory ${this.root} does not exist; create it (mkdir -p ${this.root}) or fix the url with \`tdv remote modify ${this.name} url PATH\``,
        { wide: true },
      );
    }
    if (!st.isDirectory())
      throw new RemoteError('REMOTE_NOT_FOUND', `remote "${this.name}": ${this.root} is not a directory; fix the url with \`tdv remote modify ${this.name} url PATH\``, { wide: true });
    this.checked = true;
  }

  /** Something other than a regular file where an object should be: an error naming it, never an open that blocks. */
  private notAFile(oid: Oid, file: string, st: fs.Stats): RemoteError {
    return new RemoteError(
      'NOT_A_FILE',
      `remote "${this.name}": ${file} is ${fileKind(st)}, not a regular file; tdv will not read it. Delete it on the remote, then \`tdv push\` from a clone that has the data`,
      { data: { oid } },
    );
  }

  private describe(err: unknown, file: string): unknown {
    const d = describeFsError(err, file);
    if (d !== err) {
      const code = errnoCode(err);
      // A full or read-only file system concerns the whole remote; a permission may be one directory's.
      const wide = code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT';
      return new RemoteError((d as RemoteError).code, `remote "${this.name}": ${(d as Error).message}`, { wide, cause: err });
    }
    return err;
  }
}

const TMP_PREFIX = '.tmp.';

/** Temp names of uploads in progress (put's, putKey's and writeFileAtomicSync's): never keys. */
function isTmpName(name: string): boolean {
  return name.startsWith(TMP_PREFIX) || name.startsWith('.tdvtmp.');
}

function emptyBody(): ObjectBody {
  return { size: 0, [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true, value: undefined }) }) };
}

/** A layout key that is not on the remote. */
export function keyNotOnRemote(remote: Remote, key: string): RemoteError {
  return new RemoteError('OBJECT_NOT_ON_REMOTE', `${key} is not on remote "${remote.name}" (${remote.url}); \`tdv push\` it from a clone that has the data`, { data: { key } });
}

export function notOnRemote(remote: Remote, oid: Oid): RemoteError {
  return new RemoteError('OBJECT_NOT_ON_REMOTE', `object ${oid} is not on remote "${remote.name}" (${remote.url}); \`tdv push\` it from a clone that has the data`, { data: { oid } });
}

/**
 * Takes tdv's own read-only temp file (a pack just built) by a hard link
 * instead of a copy; false when the file systems differ or links are not
 * supported (then the caller copies).
 */
function linked(from: string, to: string): boolean {
  try {
    if ((fs.statSync(from).mode & 0o222) !== 0) return false;
    fs.linkSync(from, to);
    return true;
  } catch {
    return false;
  }
}
