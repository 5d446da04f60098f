/**
 * The guard: the one door into a workspace. Every write, delete, chmod and
 * link tdv makes in a repository (or a `--to` snapshot directory), and every
 * read of a path that a file names (pointers, manifests, run records,
 * tdv.yaml, tdv.lock, config, a remote, a revision), goes through a Guard.
 *
 * A repository-relative path is untrusted input. The guard
 *   1. checks it is a legal relative path (formats/paths.ts: no `..`, not
 *      absolute, no `.git` or `.tdv` component, ...);
 *   2. resolves it component by component with lstat: every existing parent
 *      must be a real directory, never a symlink, so nothing resolves outside
 *      the root (hard links cannot make a directory appear twice);
 *   3. refuses writes and deletes of paths the owner protects (Git-tracked
 *      files that are not a declared output, say);
 *   4. writes only by a temp file and a rename in the same directory, so a
 *      file appears whole or not at all, and a hard-linked file's other names
 *      (somebody else's data) are never written through.
 *
 *      root/ a/ b/ c.csv        lstat(root/a)   dir?  yes -> remember a
 *                               lstat(root/a/b) dir?  symlink -> refuse
 *
 * Verified directories are remembered, and forgotten when the guard itself
 * removes them, so a checkout of 20,000 files in 100 directories costs about
 * 100 extra lstat calls. A process racing tdv to swap a directory for a
 * symlink between the check and the write is out of scope (Node has no
 * openat); what the guard stops is hostile *content*: names in files.
 *
 * `.gitignore`, `.gitattributes`, hooks and tdv's own files are "control
 * files": written only where the file is regular or absent, never over or
 * through a symlink.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describeFsError, errnoCode, TdvError } from '../errors.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { siblingTmp, toPosix } from '../util/fs.js';
import { pruneEmptyDirs, rmQuiet, writeFileAtomicSync } from './raw.js';

/**
 * `inspect`: lstat what is there (a symlink included) without reading through it.
 * `control`: write or delete one of tdv's control files (see CONTROL_NAME), which
 * may be Git-tracked (pointers, tdv.lock, .gitignore): not subject to `protect`.
 */
export type Purpose = 'read' | 'inspect' | 'write' | 'delete' | 'control';

/**
 * The files tdv itself writes in a work tree, whatever Git tracks: pointers,
 * tdv.lock, .gitignore, .gitattributes, .tdvignore, and the pipeline file
 * tdv.yaml at the top (`tdv remove STAGE`, `tdv stage add`, `tdv freeze`
 * edit it). Their names come from tdv's code (or, for a pointer, from a path
 * the user named), never from a file's content.
 */
const CONTROL_NAME = /(?:^|\/)(?:\.gitignore|\.gitattributes|\.tdvignore|tdv\.lock|[^/]+\.tdv)$|^tdv\.yaml$/;

/** A path from a file that would lead outside the root, through a symlink, or over a protected file. */
export class UnsafePathError extends TdvError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('UNSAFE_PATH', message, { data });
    this.name = 'UnsafePathError';
  }
}

export interface GuardOptions {
  /** What the root is, in messages: "the repository" (default), "the snapshot directory". */
  label?: string;
  /**
   * Why a write or delete of `rel` must not happen (a Git-tracked file, say),
   * or undefined. `dir` is true for a recursive delete: also say why if
   * anything below `rel` is protected.
   */
  protect?: (rel: string, dir: boolean) => string | undefined;
  /**
   * Accept `.tdv` as a first component (a guard of tdv's own directory's
   * parent never needs it; the root guard of a repository refuses it).
   */
  allowOwnDir?: boolean;
  /**
   * Every file under this root is a control file (tdv's own directory, Git's
   * hooks directory): written only as regular files, never through symlinks.
   */
  allControl?: boolean;
}

/** Where a path came from, for the one error line: "data.tdv", "tdv.yaml:3:5", "run record 1a2b3c4d". */
export type Source = string | undefined;

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

export class Guard {
  readonly root: string;
  readonly label: string;
  private readonly protect?: GuardOptions['protect'];
  private readonly allowOwnDir: boolean;
  private readonly allowControl: boolean;
  /** Relative directories (POSIX, '' for the root) seen to be real directories. */
  private readonly realDirs = new Set<string>();
  private rootMade = false;

  constructor(root: string, opts: GuardOptions = {}) {
    this.root = path.resolve(root);
    this.label = opts.label ?? 'the repository';
    this.protect = opts.protect;
    this.allowOwnDir = opts.allowOwnDir === true;
    this.allowControl = opts.allControl === true;
  }

  /** The absolute path of a relative path, unchecked: for messages and for paths the guard already resolved. */
  abs(rel: string): string {
    return rel === '' || rel === '.' ? this.root : path.join(this.root, ...rel.split('/'));
  }

  /** The relative POSIX path of an absolute path inside the root ('' for the root), or undefined outside it. */
  relOf(abs: string): string | undefined {
    const r = path.relative(this.root, path.resolve(abs));
    if (r === '') return '';
    if (r === '..' || r.startsWith(`..${path.sep}`) || path.isAbsolute(r)) return undefined;
    return toPosix(r);
  }

  /**
   * Checks `rel` and resolves it to an absolute path: every existing parent is
   * a real directory (never a symlink); for `read`, the path itself is not a
   * symlink either; for `write` and `delete`, it is not protected. A parent
   * that is a file is left to the caller (the write fails, or a checkout plans
   * to clear it).
   */
  resolve(rel: string, purpose: Purpose, source?: Source): string {
    const problem = relPathProblem(rel);
    if (problem !== undefined && !(this.allowOwnDir && ownDirOk(rel))) {
      throw new UnsafePathError(`${from(source)}${shown(rel)} ${problem}; tdv only reads and writes paths inside ${this.label}`, { path: rel });
    }
    // `realDirs` holds every ancestor of each directory it holds (they are added top down and
    // forgotten with their descendants), so a known parent vouches for the whole way.
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && !this.realDirs.has(rel.slice(0, slash))) {
      const parts = rel.split('/');
      let dir = '';
      for (let i = 0; i < parts.length - 1; i++) {
        dir = dir === '' ? parts[i]! : `${dir}/${parts[i]}`;
        if (this.realDirs.has(dir)) continue;
        const st = lstat(this.abs(dir));
        if (st === undefined || !st.isDirectory()) {
          if (st?.isSymbolicLink()) throw this.symlinkError(rel, dir, source);
          break; // missing (made as a real directory when written) or a file (the write fails)
        }
        this.realDirs.add(dir);
      }
    }
    // A legal path has no empty, "." or ".." component: concatenation is path.join's result,
    // at a fraction of its cost (this runs once or twice per file of a checkout).
    const abs = path.sep === '/' ? (this.root === '/' ? `/${rel}` : `${this.root}/${rel}`) : this.abs(rel);
    if (purpose === 'inspect') return abs;
    if (purpose === 'control') {
      // Not `protect`ed: a .gitignore or pointer file is normally tracked by Git, and tdv edits it.
      if (!CONTROL_NAME.test(rel) && !this.allowControl) throw new UnsafePathError(`${from(source)}${shown(rel)} is not one of tdv's control files`, { path: rel });
      return abs;
    }
    if (purpose === 'read') {
      if (lstat(abs)?.isSymbolicLink()) {
        throw new UnsafePathError(`${from(source)}${shown(rel)} is a symlink; tdv does not follow symlinks named by its files. Name the real file instead`, { path: rel });
      }
    } else {
      const why = this.protect?.(rel, purpose === 'delete');
      if (why !== undefined) throw new UnsafePathError(`${from(source)}tdv will not ${purpose === 'write' ? 'overwrite' : 'delete'} ${shown(rel)}: ${why}`, { path: rel });
    }
    return abs;
  }

  private symlinkError(rel: string, link: string, source: Source): UnsafePathError {
    let target = '';
    try {
      target = ` -> ${fs.readlinkSync(this.abs(link))}`;
    } catch {
      /* gone meanwhile: the message still names it */
    }
    return new UnsafePathError(
      `${from(source)}${shown(rel)} goes through the symlink ${shown(link)}${quotePath(target)}; tdv never reads or writes through a symlink. Replace ${shown(link)} with a real directory`,
      { path: rel, symlink: link },
    );
  }

  /** lstat of a checked path (parents verified), or undefined when absent. */
  lstat(rel: string, source?: Source): fs.Stats | undefined {
    return lstat(this.resolve(rel, 'inspect', source));
  }

  /**
   * Makes `rel` and its missing parents real directories. A symlink on the way
   * is refused; a file on the way is an error naming it.
   */
  mkdirp(rel: string, source?: Source): string {
    this.makeRoot();
    if (rel === '' || rel === '.') return this.root;
    this.resolve(rel, 'write', source);
    const parts = rel.split('/');
    let dir = '';
    for (const p of parts) {
      dir = dir === '' ? p : `${dir}/${p}`;
      if (this.realDirs.has(dir)) continue;
      const abs = this.abs(dir);
      try {
        fs.mkdirSync(abs);
      } catch (err) {
        if (errnoCode(err) !== 'EEXIST') throw describeFsError(err, abs);
        const st = lstat(abs);
        if (st?.isSymbolicLink()) throw this.symlinkError(rel, dir, source);
        if (!st?.isDirectory()) throw new TdvError('NOT_A_DIRECTORY', `${from(source)}${shown(dir)} is a file where ${shown(rel)} needs a directory; move it away first`, { data: { path: dir } });
      }
      this.realDirs.add(dir);
    }
    return this.abs(rel);
  }

  /** Makes the parent directory of `rel` (see `mkdirp`) and returns `rel`'s absolute path, checked for writing. */
  prepareWrite(rel: string, source?: Source): string {
    const i = rel.lastIndexOf('/');
    this.mkdirp(i > 0 ? rel.slice(0, i) : '', source);
    return this.resolve(rel, 'write', source);
  }

  /** Writes a data file atomically (temp file, then rename: a symlink at `rel` is replaced, never followed). */
  writeFile(rel: string, data: string | Uint8Array, opts: { mode?: number; source?: Source } = {}): void {
    writeFileAtomicSync(this.prepareWrite(rel, opts.source), data, opts.mode);
  }

  /**
   * Writes a control file (`.gitignore`, `.gitattributes`, a hook, tdv's own
   * files): like `writeFile`, but what is there must be a regular file or
   * nothing, so a committed symlink is refused, not replaced or followed.
   */
  writeControlFile(rel: string, data: string | Uint8Array, opts: { mode?: number; source?: Source } = {}): void {
    const i = rel.lastIndexOf('/');
    this.mkdirp(i > 0 ? rel.slice(0, i) : '', opts.source);
    const abs = this.resolve(rel, 'control', opts.source);
    this.checkControlFile(rel, abs);
    writeFileAtomicSync(abs, data, opts.mode);
  }

  /** Reads a control file: undefined when absent; refused when it is a symlink or not a regular file. */
  readControlFile(rel: string): string | undefined {
    const abs = this.resolve(rel, 'control');
    if (!this.checkControlFile(rel, abs)) return undefined;
    return fs.readFileSync(abs, 'utf8');
  }

  /** Deletes a control file (a .gitignore, a pointer file) that is a regular file; a symlink there is refused. */
  removeControlFile(rel: string): void {
    const abs = this.resolve(rel, 'control');
    if (this.checkControlFile(rel, abs)) fs.rmSync(abs, { force: true });
  }

  private checkControlFile(rel: string, abs: string): boolean {
    const st = lstat(abs);
    if (st === undefined) return false;
    if (st.isFile()) return true;
    const what = st.isSymbolicLink() ? 'a symlink' : st.isDirectory() ? 'a directory' : 'not a regular file';
    throw new UnsafePathError(`${shown(rel)} in ${this.label} is ${what}; tdv writes it only as a regular file. Replace it with a regular file (or delete it)`, { path: rel });
  }

  /**
   * Reads a file a tdv file names (a metrics or params file, a dep): it must be
   * a regular file reached without symlinks. Opened with O_NONBLOCK and
   * O_NOFOLLOW, so a FIFO swapped in cannot hang the read. Undefined when absent.
   */
  readFile(rel: string, opts: { source?: Source; maxBytes?: number } = {}): Buffer | undefined {
    const abs = this.resolve(rel, 'read', opts.source);
    const st = lstat(abs);
    if (st === undefined) return undefined;
    if (!st.isFile()) throw new TdvError('NOT_A_FILE', `${from(opts.source)}${shown(rel)} is not a regular file; tdv reads only regular files there`, { data: { path: rel } });
    if (opts.maxBytes !== undefined && st.size > opts.maxBytes) {
      throw new TdvError('TOO_LARGE', `${from(opts.source)}${shown(rel)} is ${st.size} bytes, more than the ${opts.maxBytes} tdv reads there`, { data: { path: rel } });
    }
    let fd: number;
    try {
      fd = fs.openSync(abs, fs.constants.O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw describeFsError(err, abs);
    }
    try {
      if (!fs.fstatSync(fd).isFile()) throw new TdvError('NOT_A_FILE', `${from(opts.source)}${shown(rel)} is not a regular file`, { data: { path: rel } });
      return fs.readFileSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** `readFile` as UTF-8 text. */
  readText(rel: string, opts: { source?: Source; maxBytes?: number } = {}): string | undefined {
    return this.readFile(rel, opts)?.toString('utf8');
  }

  /**
   * Removes a file, symlink or directory tree at `rel` (a symlink itself, never
   * what it points to; rm -r does not follow links inside). Absent is fine.
   * Returns true when something was removed.
   */
  remove(rel: string, source?: Source): boolean {
    const abs = this.resolve(rel, 'delete', source);
    const st = lstat(abs);
    if (st === undefined) return false;
    if (st.isDirectory()) {
      const why = this.protect?.(rel, true);
      if (why !== undefined) throw new UnsafePathError(`${from(source)}tdv will not delete ${shown(rel)}: ${why}`, { path: rel });
      this.forgetDirs(rel);
    }
    try {
      fs.rmSync(abs, { recursive: true, force: true });
    } catch (err) {
      throw describeFsError(err, abs);
    }
    return true;
  }

  /** Removes a file (not a directory) quietly: temp files, best effort. */
  removeQuiet(rel: string): void {
    try {
      rmQuiet(this.resolve(rel, 'delete'));
    } catch {
      /* best effort */
    }
  }

  /** Removes the now-empty directories from `relDir` up to the root. */
  pruneEmpty(relDir: string): void {
    if (relDir === '' || relDir === '.') return;
    const abs = this.resolve(relDir, 'delete');
    pruneEmptyDirs(abs, this.root);
    for (let d = relDir; d !== ''; d = d.includes('/') ? d.slice(0, d.lastIndexOf('/')) : '') if (!fs.existsSync(this.abs(d))) this.forgetDirs(d);
  }

  /**
   * Sets a workspace file's mode. Never on a symlink, and never on a file with
   * other hard links: those names belong to someone else (the cache, or data
   * outside the repository), and a chmod would change them too.
   */
  chmod(rel: string, mode: number, source?: Source): void {
    const abs = this.resolve(rel, 'write', source);
    const st = lstat(abs);
    if (st === undefined) return;
    if (!st.isFile() || st.nlink > 1) {
      throw new UnsafePathError(`${from(source)}tdv will not change the mode of ${shown(rel)}: it is ${st.isFile() ? `a file with ${st.nlink} hard links` : 'not a regular file'}`, { path: rel });
    }
    try {
      fs.chmodSync(abs, mode);
    } catch (err) {
      throw describeFsError(err, abs);
    }
  }

  /**
   * Moves a finished file (a temp file tdv wrote on the same file system, an
   * object copied out of the cache) to `rel`, replacing what is there.
   */
  renameInto(tmpAbs: string, rel: string, source?: Source): void {
    const abs = this.prepareWrite(rel, source);
    try {
      fs.renameSync(tmpAbs, abs);
    } catch (err) {
      rmQuiet(tmpAbs);
      throw describeFsError(err, abs);
    }
  }

  /**
   * Moves a file, symlink or directory tree from `fromRel` to `toRel` by one
   * rename (`tdv mv`): no symlink on either way, neither protected, the
   * destination's parents made. Something at the destination is refused, never
   * replaced (a rename would replace a file or an empty directory).
   */
  move(fromRel: string, toRel: string, source?: Source): void {
    // As for a delete: the source leaves its place (a protected tree refused whole).
    const src = this.resolve(fromRel, 'delete', source);
    const to = this.prepareWrite(toRel, source);
    if (lstat(to) !== undefined) throw new TdvError('EXISTS', `${from(source)}${shown(toRel)} exists; tdv will not replace it. Move it away or name another destination`, { data: { path: toRel } });
    try {
      fs.renameSync(src, to);
    } catch (err) {
      throw describeFsError(err, to);
    }
    this.forgetDirs(fromRel);
  }

  /** A temp path beside `rel` (same directory, so the final rename is atomic), its parent made. */
  tmpBeside(rel: string, source?: Source): string {
    return siblingTmp(this.prepareWrite(rel, source));
  }

  /**
   * Opens `rel` for writing from the start (a log file): a new file replacing
   * what is there by rename would lose a reader's handle, so this truncates a
   * regular file in place, refusing a symlink (O_NOFOLLOW) or a file with
   * other hard links.
   */
  openForWrite(rel: string, source?: Source): number {
    const abs = this.prepareWrite(rel, source);
    const st = lstat(abs);
    if (st !== undefined && (!st.isFile() || st.nlink > 1)) this.remove(rel, source);
    try {
      return fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | O_NOFOLLOW, 0o644);
    } catch (err) {
      throw describeFsError(err, abs);
    }
  }

  /** The root itself is the caller's choice, not a file's: made (with its parents) when missing. */
  private makeRoot(): void {
    if (this.rootMade) return;
    try {
      fs.mkdirSync(this.root, { recursive: true });
    } catch (err) {
      throw describeFsError(err, this.root);
    }
    this.rootMade = true;
  }

  private forgetDirs(rel: string): void {
    const prefix = `${rel}/`;
    for (const d of this.realDirs) if (d === rel || d.startsWith(prefix)) this.realDirs.delete(d);
  }
}

function lstat(abs: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(abs, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return undefined;
    throw describeFsError(err, abs);
  }
}

function ownDirOk(rel: string): boolean {
  // `.tdv` and `.tdv/...` through the root guard, for tdv's own files (init makes the directory): every other rule still holds.
  return rel === '.tdv' || (rel.startsWith('.tdv/') && relPathProblem(rel.slice(5)) === undefined);
}

function from(source: Source): string {
  return source ? `${source}: ` : '';
}

function shown(rel: string): string {
  const s = quotePath(rel);
  return s.length > 300 ? `${s.slice(0, 150)}...${s.slice(-100)} (${s.length} characters)` : s;
}
