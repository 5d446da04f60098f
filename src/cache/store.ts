import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describeFsError, errnoCode, FormatError, TdvError } from '../errors.js';
import { rmQuiet, tmpSuffix } from '../util/fs.js';
import { CHUNK, hashFile, sha256 } from './hash.js';
import { type ManifestEntry, parseManifest, serializeManifest } from './manifest.js';
import { isDirOid, isOid, type Oid, oidRelPath } from './oid.js';

const OBJECT_MODE = 0o444;

/**
 * The content-addressed object store shared by the cache (and, with the same
 * layout, by remotes): `<root>/files/sha256/ab/cdef...`. Objects are written to
 * a temp file, then renamed into place; an existing object is never rewritten;
 * objects are read-only.
 *
 * Objects only ever disappear through gc or fsck, which bump `epoch`: callers
 * may remember "every object of X was present at epoch N" instead of stat-ing
 * thousands of objects again.
 */
export class ObjectStore {
  private readonly madeDirs = new Set<string>();

  constructor(
    readonly root: string,
    readonly tmpDir: string,
  ) {}

  pathOf(oid: Oid): string {
    return path.join(this.root, oidRelPath(oid));
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
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw err;
        // No hard links on this file system: rename, which only ever replaces identical bytes.
        if (!fs.existsSync(dest)) fs.renameSync(tmp, dest);
      }
    } catch (err) {
      throw describeFsError(err, dest);
    } finally {
      rmQuiet(tmp);
    }
  }

  newTmpPath(): string {
    this.ensureDir(this.tmpDir);
    return path.join(this.tmpDir, `obj.${tmpSuffix()}`);
  }

  /** Stores `data` and returns its id (with `.dir` appended when `dirSuffix`). */
  addBufferSync(data: string | Uint8Array, dirSuffix = false): Oid {
    const oid = sha256(data) + (dirSuffix ? '.dir' : '');
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
   * Hashes `src` and stores a copy of it. Small files are read once; large
   * files are copied by the kernel (a reflink where the file system can) while
   * this thread hashes them, so adding costs little more than hashing.
   * Fails, storing nothing, if the file changes meanwhile.
   */
  async addFileCopy(src: string, st: { size: number; mtimeMs?: number }, onBytes?: (n: number) => void): Promise<Oid> {
    if (Number(st.size) <= CHUNK) {
      let data: Buffer;
      try {
        data = await fsp.readFile(src);
      } catch (err) {
        throw describeFsError(err, src);
      }
      onBytes?.(data.length);
      const oid = sha256(data);
      if (!this.has(oid)) {
        const tmp = this.newTmpPath();
        try {
          await fsp.writeFile(tmp, data, { flag: 'wx', mode: OBJECT_MODE });
        } catch (err) {
          rmQuiet(tmp);
          throw describeFsError(err, tmp);
        }
        this.insertSync(tmp, oid, false);
      }
      return oid;
    }
    const tmp = this.newTmpPath();
    try {
      const copying = fsp.copyFile(src, tmp, fs.constants.COPYFILE_FICLONE);
      const [{ sha256: oid }] = await Promise.all([hashFile(src, onBytes), copying]);
      const after = await fsp.stat(src);
      if (after.size !== st.size || (st.mtimeMs !== undefined && after.mtimeMs !== st.mtimeMs)) {
        throw new TdvError('CHANGED_WHILE_ADDING', `${src} changed while it was being added; run the command again when nothing writes to it`);
      }
      this.insertSync(tmp, oid);
      return oid;
    } catch (err) {
      rmQuiet(tmp);
      throw describeFsError(err, src);
    }
  }

  /**
   * Hashes `src` and moves it into the store (no copy): used when the workspace
   * will be a hard link or symlink to the object anyway. If the object already
   * exists `src` is left in place. Returns the id.
   */
  async addFileMove(src: string, onBytes?: (n: number) => void): Promise<Oid> {
    const { sha256: oid } = await hashFile(src, onBytes);
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
          await fsp.copyFile(src, tmp, fs.constants.COPYFILE_FICLONE);
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
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') throw new TdvError('MISSING_OBJECTS', `directory manifest ${oid} is not in the cache; run \`tdv pull\` to fetch it`);
      throw err;
    }
    if (`${sha256(text)}.dir` !== oid) {
      throw new FormatError(file, 'directory manifest is corrupt (its content does not match its hash)', 'Run `tdv fsck` and then `tdv pull`');
    }
    return parseManifest(text, file);
  }

  /** Every object id in the store. */
  *list(): Generator<Oid> {
    const base = path.join(this.root, 'files', 'sha256');
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

  /** Deletes objects. Bumps the epoch first so nobody trusts an out-of-date "all present". */
  remove(oids: Iterable<Oid>): void {
    this.bumpEpoch();
    for (const oid of oids) {
      const p = this.pathOf(oid);
      rmQuiet(p);
      try {
        fs.rmdirSync(path.dirname(p));
      } catch {
        /* prefix directory still holds objects */
      }
    }
  }

  epoch(): string {
    try {
      return fs.readFileSync(path.join(this.root, 'epoch'), 'utf8').trim();
    } catch {
      return '0';
    }
  }

  bumpEpoch(): void {
    this.ensureDir(this.root);
    const tmp = path.join(this.root, `epoch.${tmpSuffix()}`);
    fs.writeFileSync(tmp, `${Date.now()}-${tmpSuffix()}\n`);
    fs.renameSync(tmp, path.join(this.root, 'epoch'));
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
}
