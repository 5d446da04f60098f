import fs from 'node:fs';
import path from 'node:path';
import { isInside } from '../util/fs.js';
import { isOid, type Oid } from '../formats/oid.js';
import { MAX_PATH_CHARS, nameProblem, relPathProblem } from '../formats/paths.js';
import { Fingerprint, type StatKey } from './statcache.js';

/**
 * A file found under a tracked directory: its POSIX path relative to the walk's
 * base and its stat key. Plain numbers rather than the Stats object, so a walk
 * of many files retains little and costs little garbage collection.
 */
export interface WalkEntry extends StatKey {
  rel: string;
  /** Set when the file is a symlink into the cache (cache.type symlink): its object id. */
  linkOid?: Oid;
}

/** The absolute path of a walk entry. */
export function entryPath(base: string, rel: string): string {
  return path.sep === '/' ? `${base}/${rel}` : path.join(base, ...rel.split('/'));
}

function entry(rel: string, st: Pick<fs.Stats, 'ino' | 'mtimeMs' | 'ctimeMs' | 'size' | 'mode'>, linkOid?: Oid): WalkEntry {
  const e: WalkEntry = { rel, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, size: st.size, mode: st.mode };
  if (linkOid) e.linkOid = linkOid;
  return e;
}

export interface WalkOptions {
  /** Path relative to the walk base, POSIX; true to leave it out. */
  ignored?: (rel: string, isDir: boolean) => boolean;
  /** `<cache>/files/sha256`: symlinks pointing there are tdv's own links. */
  objectsDir?: string;
  onSkip?: (abs: string, reason: string) => void;
  /** @deprecated `.git` entries are always reported through onSkip now (unless `ignored`). */
  reportGit?: boolean;
}

const TMP_NAME = /\.tdvtmp\.\d+\.[0-9a-f]{8,}$/;

/**
 * Lists the files under `base` with their lstat, synchronously: for many small
 * files a synchronous walk is several times faster in Node than an async one.
 * Skips tdv's own temp files and anything `ignored`; symlinks are not followed
 * unless they point at a cache object (tdv's symlink links). Names no manifest
 * may hold (see formats/paths.ts: `.git` in any case, directory or a
 * submodule's gitfile, `.tdv`, overlong paths) and names that are not UTF-8
 * are skipped and reported through `onSkip`: what the walk returns can always
 * be recorded and restored.
 */
export function walkDir(base: string, opts: WalkOptions = {}): WalkEntry[] {
  const out: WalkEntry[] = [];
  visitFiles(base, opts, (rel, st, linkOid) => out.push(entry(rel, st, linkOid)));
  return out;
}

/**
 * The fingerprint of the walk `walkDir` would return (see `Fingerprint`),
 * without building its entries: for an unchanged directory that is all
 * `status` needs, and 20,000 entry objects kept alive are most of a walk's
 * garbage. `entries()` builds them afterwards, only when asked (the directory
 * changed), from the names and the fingerprint's own numbers, so a changed
 * directory costs no second walk.
 */
export function fingerprintWalk(base: string, opts: WalkOptions = {}): { fp: string; newestMs: number; nfiles: number; entries: () => WalkEntry[] } {
  const f = new Fingerprint();
  const names: string[] = [];
  const links = new Map<number, Oid>();
  visitFiles(base, opts, (rel, st, linkOid) => {
    if (linkOid) links.set(f.count, linkOid);
    names.push(rel);
    f.add(rel, st);
  });
  return { ...f.digest(), nfiles: f.count, entries: () => f.entries(names, links) };
}

/**
 * The traversal behind `walkDir` and `fingerprintWalk`. `st` is only valid
 * during the call (the fast lstat reuses one object): copy what you keep.
 */
function visitFiles(base: string, opts: WalkOptions, onFile: (rel: string, st: StatFields, linkOid?: Oid) => void): void {
  const lstat = fastLstat(base);
  const visit = (dir: string, relDir: string): void => {
    // Names only, then one lstat each: the lstat is needed anyway, and skipping
    // Dirent objects leaves less garbage on walks of many files.
    for (const name of fs.readdirSync(dir)) {
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      const abs = `${dir}${path.sep}${name}`;
      const st = lstat(abs);
      if (!st) {
        // Node decodes a name that is not UTF-8 with U+FFFD, a name no file has: it cannot be
        // opened, so it would drop out of the data without a word. Otherwise: deleted since the listing.
        if (name.includes('\uFFFD')) opts.onSkip?.(abs, 'its name is not valid UTF-8, so tdv cannot read or record it; rename it');
        continue;
      }
      const type = st.mode & S_IFMT;
      // Cheapest check first: only a dot-name or a long name or path can be illegal here
      // (readdir never yields "", ".", "..", a "/" or a NUL).
      if (name.charCodeAt(0) === DOT || name.length > 85 || rel.length > MAX_PATH_CHARS) {
        const problem = nameProblem(name) ?? relPathProblem(rel);
        if (problem !== undefined) {
          if (!opts.ignored?.(rel, type === S_IFDIR)) opts.onSkip?.(abs, unrecordable(name, type === S_IFDIR, problem));
          continue;
        }
      }
      if (type === S_IFDIR) {
        if (opts.ignored?.(rel, true)) continue;
        visit(abs, rel);
      } else if (type === S_IFREG) {
        if (TMP_NAME.test(name) || opts.ignored?.(rel, false)) continue;
        onFile(rel, st);
      } else if (type === S_IFLNK) {
        if (opts.ignored?.(rel, false)) continue;
        const oid = objectLinkOid(abs, opts.objectsDir);
        if (oid) onFile(rel, st, oid);
        else opts.onSkip?.(abs, 'symlink not followed (tdv tracks regular files; a link could point outside the repository)');
      } else {
        opts.onSkip?.(abs, 'not a regular file');
      }
    }
  };
  visit(base, '');
}

/** Why a file or directory the walk found cannot be recorded, for onSkip. */
function unrecordable(name: string, isDir: boolean, problem: string): string {
  const silence = 'list it in .tdvignore to silence this';
  if (name.toLowerCase() === '.git') {
    return `${isDir ? "Git's own directory (a nested repository)" : "Git's own file (a submodule's link to its repository)"}, which tdv never records; ${silence}`;
  }
  if (name === '.tdv') return `tdv's own name (.tdv), which tdv never records; ${silence}`;
  return `its path ${problem}, so tdv could not restore it; rename it`;
}

const DOT = 0x2e;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

type StatFields = Pick<fs.Stats, 'ino' | 'mtimeMs' | 'ctimeMs' | 'size' | 'mode'>;
type RawLstat = (p: string, bigint: false, req: undefined, throwIfNoEntry: boolean) => Float64Array | undefined;

let raw: RawLstat | null | undefined;

/**
 * lstat for walks of many files. Node's public lstatSync builds a Stats object
 * with four Date fields per call; on a 20,000-file walk that is half the time
 * and most of the garbage. Node's fs binding returns the raw numbers instead.
 * It is internal, so it is used only after it agrees with lstatSync on a real
 * path, exactly; on any other Node (or any doubt) the public call is used.
 * The result is valid until the next call.
 */
function fastLstat(probe: string): (p: string) => StatFields | undefined {
  const slow = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false });
  if (raw === undefined) raw = loadRaw(probe);
  const r = raw;
  if (!r) return slow;
  const st: StatFields = { mode: 0, ino: 0, size: 0, mtimeMs: 0, ctimeMs: 0 };
  return (p) => {
    const a = r(p, false, undefined, false);
    if (a === undefined) return undefined;
    // Same fields and arithmetic as Node's getStatsFromBinding, into one reused object.
    st.mode = a[1]!;
    st.ino = a[7]!;
    st.size = a[8]!;
    st.mtimeMs = a[12]! * 1e3 + a[13]! / 1e6;
    st.ctimeMs = a[14]! * 1e3 + a[15]! / 1e6;
    return st;
  };
}

function loadRaw(probe: string): RawLstat | null {
  try {
    const binding = (process as unknown as { binding(name: string): { lstat?: unknown } }).binding('fs');
    if (typeof binding.lstat !== 'function') return null;
    const fn = binding.lstat.bind(binding) as RawLstat;
    const want = fs.lstatSync(probe);
    const a = fn(probe, false, undefined, true);
    const ok =
      a instanceof Float64Array &&
      a[1] === want.mode &&
      a[7] === want.ino &&
      a[8] === want.size &&
      a[12]! * 1e3 + a[13]! / 1e6 === want.mtimeMs &&
      a[14]! * 1e3 + a[15]! / 1e6 === want.ctimeMs &&
      fn(path.join(probe, '.tdv-no-such-entry'), false, undefined, false) === undefined;
    return ok ? fn : null;
  } catch {
    return null;
  }
}

/** The object id a symlink points at, if it points into the cache's object directory. */
export function objectLinkOid(link: string, objectsDir: string | undefined): Oid | undefined {
  if (!objectsDir) return undefined;
  let target: string;
  try {
    target = path.resolve(path.dirname(link), fs.readlinkSync(link));
  } catch {
    return undefined;
  }
  if (!isInside(objectsDir, target) || !fs.existsSync(target)) return undefined;
  const rel = path.relative(objectsDir, target).split(path.sep);
  if (rel.length !== 2) return undefined;
  const oid = rel[0]! + rel[1]!;
  return isOid(oid) ? oid : undefined;
}
