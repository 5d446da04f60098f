import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { TdvError } from '../../errors.js';
import { type GitHistory, UnknownRevisionError } from '../../git/history.js';
import type { ObjectStore } from '../../cache/store.js';
import { assertObjectFile } from '../../cache/store.js';
import { compareCodePoints, type ManifestEntry } from '../../formats/manifest.js';
import { isDirOid, type Oid } from '../../formats/oid.js';
import { relPathProblem, quotePath } from '../../formats/paths.js';
import type { Remote } from '../../remote/remote.js';
import type { ImportRecord } from '../../formats/pointer.js';
import { maskUrl } from '../../formats/config.js';
import type { GitWorkTree } from '../../git/git.js';
import { allOuts } from './pointers.js';
import { pointersAt, type RevisionRef, treePrefix } from './revision.js';

/**
 * Read access to the files of any revision, data and Git alike, without
 * touching the work tree, the index or HEAD: what `tdv ls`, `tdv cat`,
 * `tdv get` and `tdv serve` read. A revision's tree is the Git files under the
 * tdv repository plus every output its pointers and tdv.lock track (a tracked
 * directory's files come from its manifest). Data bytes come from the cache,
 * or from the remote on demand: verified by hash, then kept in the cache.
 */

/** Where a snapshot reads from: a repository's history, a cache, and (lazily) a remote. */
export interface SnapshotSource {
  /** The repository, for messages: a path or the URL it was cloned from. */
  readonly label: string;
  /** The tdv repository's root (a work tree, or a bare clone's directory): pointer paths are resolved against it. */
  readonly root: string;
  /** Its Git work tree (for a bare clone: root and gitdir are both the clone). */
  readonly git: GitWorkTree;
  readonly history: GitHistory;
  /** The cache objects are read from and fetched into. */
  readonly store: ObjectStore;
  /** The remote missing objects come from; called at most once, and only when an object is missing. */
  openRemote(): Promise<Remote>;
  /**
   * Puts the data of an imported output (`tdv import`) into the store from
   * its source repository, whose remote holds it (this repository's does
   * not); returns the object id it came out as. Without it, imported data
   * is fetched like any other.
   */
  fetchImported?(imp: ImportRecord, outPath: string): Promise<Oid>;
}

/** A file or directory of a revision. */
export interface SnapshotEntry {
  /** Repo-relative POSIX path ('' is the root directory). */
  path: string;
  kind: 'file' | 'dir';
  /** 'data' when tdv tracks it (a pointer's or tdv.lock's output, or a file inside one), 'git' when Git does. */
  source: 'data' | 'git';
  /** A file's size in bytes (a data directory's total, when known). */
  size?: number;
  /** A data file's (or directory's) object id: its SHA-256, `.dir` for a directory. */
  oid?: Oid;
  /** A Git file's blob id. */
  blob?: string;
  /** Set when the file's executable bit is recorded. */
  isexec?: boolean;
}

/** An inclusive byte range, as HTTP's `Range: bytes=start-end` gives it. */
export interface ByteRange {
  start: number;
  end: number;
}

export class SnapshotError extends TdvError {}

/** `@2016-07-31`, `@2016-07-31T12:00`, `@2016-07-31T12:00:00Z`, `@2016-07-31 12:00:00+02:00`. */
const DATE_REV = /^@(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Whether `rev` is a date revision (`@YYYY-MM-DD...`). */
export function isDateRevision(rev: string): boolean {
  return DATE_REV.test(rev);
}

/**
 * The instant a date revision names, in seconds since the epoch. A date alone
 * is the end of that day in the local time zone (git's `--before=DATE` would
 * take the current time of day, so its answer would depend on when you ask).
 * A time without a zone is local time.
 */
export function dateRevisionTime(rev: string): number {
  const m = DATE_REV.exec(rev);
  if (!m) throw new UnknownRevisionError(rev, 'a date revision is @YYYY-MM-DD, optionally with a time (@2016-07-31T12:00)');
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const hasTime = m[4] !== undefined;
  const [h, mi, s] = hasTime ? [Number(m[4]), Number(m[5]), Number(m[6] ?? 0)] : [23, 59, 59];
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 59) throw new UnknownRevisionError(rev, 'it is not a valid date and time');
  let ms: number;
  const zone = m[7];
  // setFullYear: the Date constructor and Date.UTC read a year below 100 as 19xx (@0099-12-31 would be 1999).
  if (zone === undefined) {
    const t = new Date(2000, 0, 1, h, mi, s);
    t.setFullYear(y, mo - 1, d);
    ms = t.getTime();
  } else {
    const [zh, zm] = zone === 'Z' ? [0, 0] : [Number(zone.slice(1, 3)), Number(zone.slice(-2))];
    if (zh > 23 || zm > 59) throw new UnknownRevisionError(rev, 'its time zone is not a valid offset (+HH:MM)');
    const t = new Date(Date.UTC(2000, 0, 1, h, mi, s));
    t.setUTCFullYear(y, mo - 1, d);
    ms = t.getTime() - (zone.startsWith('-') ? -1 : 1) * (zh * 60 + zm) * 60_000;
  }
  const check = new Date(2000, 0, 1);
  check.setFullYear(y, mo - 1, d);
  if (check.getMonth() !== mo - 1 || check.getDate() !== d) throw new UnknownRevisionError(rev, 'it is not a valid date');
  return Math.floor(ms / 1000);
}

/**
 * Resolves a revision: anything `GitHistory.resolve` takes, or a date
 * `@YYYY-MM-DD[THH:MM[:SS][zone]]`: the last commit on the current branch (HEAD)
 * committed at or before then, as `git rev-list -1 --before=... HEAD` picks
 * it (the newest by committer date among HEAD's ancestors).
 */
export function resolveRev(history: GitHistory, rev: string): string {
  if (!rev.startsWith('@') || rev === '@' || /^@[~^{]/.test(rev)) return history.resolve(rev);
  const before = dateRevisionTime(rev);
  const head = history.resolve('HEAD');
  let best: { oid: string; time: number } | undefined;
  for (const c of history.reachable([head])) {
    const t = c.committer.time;
    if (t <= before && (best === undefined || t > best.time)) best = { oid: c.oid, time: t };
  }
  if (!best) throw new UnknownRevisionError(rev, `no commit on ${history.headBranch() ?? 'HEAD'} was made at or before ${rev.slice(1)}`);
  return best.oid;
}

/**
 * Splits `<rev>/<path>` (an S3 key or URL path) where `<rev>` may itself hold
 * slashes (`feature/x/data.csv`): the shortest leading run of segments that is
 * a branch, tag, commit id, date revision or other revision Git resolves.
 * Undefined when no prefix is a revision.
 */
export function splitRevPath(history: GitHistory, key: string): { rev: string; commit: string; path: string } | undefined {
  const segs = key.split('/');
  for (let i = 1; i <= segs.length; i++) {
    const rev = segs.slice(0, i).join('/');
    if (rev === '' || rev.length > 1024) return undefined;
    // One segment: any revision syntax (main~2, @2016-07-31, an id). Longer: a ref name only
    // (so a path is never handed to `git rev-parse`, which would read `HEAD:path` as a blob).
    if (i > 1 && history.refs.dwim(rev) === undefined) continue;
    try {
      return { rev, commit: resolveRev(history, rev), path: segs.slice(i).join('/') };
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
    }
  }
  return undefined;
}

interface DataOut {
  path: string;
  oid: Oid;
  size: number;
  nfiles?: number;
  isexec?: boolean;
  /** Where it was imported from (`tdv import`). */
  import?: ImportRecord;
}

/** The downloads in flight, per source (see Snapshot.ensureObject). */
const FETCHING = new WeakMap<SnapshotSource, Map<Oid, Promise<void>>>();

/** A revision's files. Build one with `Snapshot.open`; it keeps what it has read (manifests, listings). */
export class Snapshot {
  /** Git files and data file outputs, sorted by code point. */
  private files: SnapshotEntry[] = [];
  /** Tracked directories, sorted by code point; their files are read from the manifest on demand. */
  private dirOuts: DataOut[] = [];
  /** A tracked directory's files, by its path and object id: two directories with the same content share an object, not paths. */
  private readonly manifests = new Map<string, Promise<SnapshotEntry[]>>();
  private readonly listings = new Map<string, Promise<SnapshotEntry[] | undefined>>();
  /** Tracked files by path (the outputs whose objects may need their pointer's import record). */
  private readonly fileOuts = new Map<string, DataOut>();

  private constructor(
    readonly source: SnapshotSource,
    readonly commit: string,
    readonly label: string,
  ) {}

  /** The commit's committer time (seconds since the epoch). */
  get time(): number {
    return this.source.history.commit(this.commit).committer.time;
  }

  /** The snapshot of `rev` (see resolveRev), or of an already resolved commit with `commit`. */
  static async open(source: SnapshotSource, rev: string, commit?: string): Promise<Snapshot> {
    const snap = new Snapshot(source, commit ?? resolveRev(source.history, rev), rev);
    await snap.load();
    return snap;
  }

  private async load(): Promise<void> {
    const { history } = this.source;
    const repoLike = { root: this.source.root, git: this.source.git, rel: (abs: string) => toRel(this.source.root, abs) };
    const at: RevisionRef = { commit: this.commit, label: this.label };
    const pointers = await pointersAt(repoLike, history, at);
    const data = new Map<string, DataOut>();
    for (const s of allOuts(repoLike, pointers)) {
      const d: DataOut = { path: s.rel, oid: s.out.sha256, size: s.out.size, nfiles: s.out.nfiles, isexec: s.out.isexec, ...(s.ptr.import ? { import: s.ptr.import } : {}) };
      data.set(s.rel, d);
      if (!isDirOid(d.oid)) this.fileOuts.set(d.path, d);
    }
    // The Git files under the tdv repository (its .tdv/ left out), regular files only.
    const prefix = treePrefix(repoLike);
    let tree: string | undefined = history.commit(this.commit).tree;
    if (prefix) {
      const e = history.entryAt(tree, prefix.slice(0, -1));
      tree = e?.kind === 'tree' ? e.oid : undefined;
    }
    const files: SnapshotEntry[] = [];
    if (tree !== undefined) {
      for (const f of history.filesAt(tree, '')) {
        if (f.badName || relPathProblem(f.path) !== undefined || data.has(f.path)) continue;
        files.push({ path: f.path, kind: 'file', source: 'git', blob: f.oid });
      }
    }
    for (const d of data.values()) {
      if (isDirOid(d.oid)) this.dirOuts.push(d);
      else files.push({ path: d.path, kind: 'file', source: 'data', oid: d.oid, size: d.size, ...(d.isexec ? { isexec: true } : {}) });
    }
    // A Git file below tracked data (a directory, or a file: a hostile source can commit both), or where
    // tracked data needs a directory, is hidden by it: a checkout puts the data there, and a listing or
    // `tdv get` of both would hold one name as a file and as a directory.
    const ancestors = (p: string): string[] => {
      const out: string[] = [];
      for (let i = p.indexOf('/'); i !== -1; i = p.indexOf('/', i + 1)) out.push(p.slice(0, i));
      return out;
    };
    const dataDirs = new Set<string>();
    for (const p of data.keys()) for (const a of ancestors(p)) dataDirs.add(a);
    this.files = files.filter((f) => f.source === 'data' || !(dataDirs.has(f.path) || ancestors(f.path).some((a) => data.has(a))));
    this.files.sort((a, b) => compareCodePoints(a.path, b.path));
    this.dirOuts.sort((a, b) => compareCodePoints(a.path, b.path));
  }

  /** The files of a tracked directory, from its manifest (the cache's, else the remote's, verified and kept). */
  private expand(d: DataOut): Promise<SnapshotEntry[]> {
    const key = `${d.oid}\0${d.path}`;
    let p = this.manifests.get(key);
    if (!p) {
      p = (async () => {
        await this.ensureObject(d.oid, undefined, d.path);
        let entries: ManifestEntry[];
        try {
          entries = this.source.store.readManifest(d.oid);
        } catch (err) {
          // The message names the cache file; say which directory of which repository it is.
          if (err instanceof TdvError && err.code === 'BAD_FORMAT')
            err.message = `${quotePath(d.path)} at ${this.label} of ${this.source.label} cannot be read: ${err.message}; list or get the files beside it, or another revision`;
          throw err;
        }
        return entries
          .map((e: ManifestEntry): SnapshotEntry => ({ path: `${d.path}/${e.relpath}`, kind: 'file', source: 'data', oid: e.sha256, size: e.size, ...(e.isexec ? { isexec: true } : {}) }))
          .sort((a, b) => compareCodePoints(a.path, b.path));
      })();
      p.catch(() => this.manifests.delete(key));
      this.manifests.set(key, p);
    }
    return p;
  }

  private dirOutOf(p: string): DataOut | undefined {
    return this.dirOuts.find((d) => p === d.path || p.startsWith(`${d.path}/`));
  }

  /** The file or directory at `p` ('' for the root), or undefined when the revision has nothing there. */
  async stat(p: string): Promise<SnapshotEntry | undefined> {
    if (p === '') return { path: '', kind: 'dir', source: 'git' };
    if (!isCleanPath(p)) return undefined;
    const d = this.dirOutOf(p);
    if (d) {
      if (p === d.path) return { path: p, kind: 'dir', source: 'data', oid: d.oid, size: d.size };
      const files = await this.expand(d);
      const i = lowerBound(files, p);
      if (files[i]?.path === p) return files[i];
      return files[i]?.path.startsWith(`${p}/`) ? { path: p, kind: 'dir', source: 'data' } : undefined;
    }
    const i = lowerBound(this.files, p);
    if (this.files[i]?.path === p) return this.files[i];
    // A directory: some file or tracked directory lies below it.
    const below = `${p}/`;
    if (this.files[lowerBound(this.files, below)]?.path.startsWith(below)) return { path: p, kind: 'dir', source: 'git' };
    const dir = this.dirOuts.find((o) => o.path.startsWith(below));
    return dir ? { path: p, kind: 'dir', source: 'data' } : undefined;
  }

  /**
   * The entries below directory `dir` ('' for the root), sorted by code point.
   * Without `recursive`, its children (files, and directories once each);
   * with it, every file below (tracked directories expanded). Undefined when
   * `dir` is not a directory of this revision.
   */
  async list(dir: string, opts: { recursive?: boolean } = {}): Promise<SnapshotEntry[] | undefined> {
    // Kept: a served listing is read once per page (20 pages of 1,000 keys for 20,000 files).
    const key = `${opts.recursive ? 'R' : 'D'}${dir}`;
    let p = this.listings.get(key);
    if (!p) {
      p = this.listUncached(dir, opts);
      p.catch(() => this.listings.delete(key));
      if (this.listings.size >= 256) this.listings.clear();
      this.listings.set(key, p);
    }
    return (await p)?.slice();
  }

  private async listUncached(dir: string, opts: { recursive?: boolean }): Promise<SnapshotEntry[] | undefined> {
    const at = await this.stat(dir);
    if (!at || at.kind !== 'dir') return undefined;
    const prefix = dir === '' ? '' : `${dir}/`;
    const inside = this.dirOutOf(dir);
    const pool: SnapshotEntry[] = [];
    if (inside) {
      const files = await this.expand(inside);
      for (let i = lowerBound(files, prefix); i < files.length && files[i]!.path.startsWith(prefix); i++) pool.push(files[i]!);
    } else {
      for (let i = lowerBound(this.files, prefix); i < this.files.length && this.files[i]!.path.startsWith(prefix); i++) pool.push(this.files[i]!);
      for (const d of this.dirOuts) {
        if (!d.path.startsWith(prefix)) continue;
        if (opts.recursive) pool.push(...(await this.expand(d)));
        else pool.push({ path: d.path, kind: 'dir', source: 'data', oid: d.oid, size: d.size });
      }
      pool.sort((a, b) => compareCodePoints(a.path, b.path));
    }
    if (opts.recursive) return pool.filter((e) => e.kind === 'file');
    const out: SnapshotEntry[] = [];
    const seen = new Set<string>();
    for (const e of pool) {
      const rest = e.path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash === -1) {
        out.push(e);
        continue;
      }
      const child = `${prefix}${rest.slice(0, slash)}`;
      if (seen.has(child)) continue;
      seen.add(child);
      out.push({ path: child, kind: 'dir', source: e.source });
    }
    return out.sort((a, b) => compareCodePoints(a.path, b.path));
  }

  /** Every file of the revision (tracked directories expanded), sorted by code point. */
  async allFiles(): Promise<SnapshotEntry[]> {
    return (await this.list('', { recursive: true }))!;
  }

  /**
   * Puts a data object in the cache if it is not there: from the remote,
   * verified by hash. Fetches are shared per source, so the snapshots of many
   * revisions (a server's) that want one object download it once.
   */
  async ensureObject(oid: Oid, size?: number, at?: string): Promise<void> {
    const { store } = this.source;
    if (store.has(oid)) return;
    let fetching = FETCHING.get(this.source);
    if (!fetching) FETCHING.set(this.source, (fetching = new Map()));
    // Imported data comes from its source (the whole output at once), the rest from the remote.
    const owner = at === undefined ? undefined : (this.fileOuts.get(at) ?? this.dirOutOf(at));
    const imp = owner?.import;
    const fetchImported = this.source.fetchImported;
    const key = imp && fetchImported ? `import\0${owner.path}\0${owner.oid}` : oid;
    let p = fetching.get(key);
    if (!p) {
      const inFlight = fetching;
      p = (async () => {
        if (imp && fetchImported) {
          const got = await fetchImported.call(this.source, imp, owner.path);
          if (got !== owner.oid) {
            throw new SnapshotError(
              'NOT_FOUND',
              `${quotePath(owner.path)} is imported from ${maskUrl(imp.url)}, which has other data at ${quotePath(imp.path)} (commit ${imp.commit.slice(0, 12)}) than its pointer records; \`tdv update ${owner.path}\` takes what the source has`,
            );
          }
          return;
        }
        const remote = await this.source.openRemote();
        const { downloadVerified } = await import('../../remote/transfer/executor.js');
        await downloadVerified(remote, store, oid, size === undefined ? {} : { size });
      })();
      p.finally(() => inFlight.delete(key)).catch(() => {});
      inFlight.set(key, p);
    }
    await p;
    if (!store.has(oid)) throw new SnapshotError('NOT_FOUND', `object ${oid} of ${quotePath(at ?? '?')} is not in ${maskUrl(imp?.url ?? this.source.label)}`);
  }

  /**
   * A file's bytes (or a range of them) as a stream. A data file comes from
   * the cache, fetched first if it is missing; a Git file from its blob.
   */
  async open(entry: SnapshotEntry, range?: ByteRange): Promise<Readable> {
    if (entry.kind !== 'file') throw new SnapshotError('NOT_A_FILE', `${quotePath(entry.path)} is a directory at ${this.label}`);
    if (entry.source === 'git') {
      const bytes = this.source.history.blob(entry.blob!);
      return Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]);
    }
    const oid = entry.oid!;
    await this.ensureObject(oid, entry.size, entry.path);
    const file = this.source.store.pathOf(oid);
    assertObjectFile(file);
    const fh = await fs.promises.open(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile() || st.size !== entry.size) {
      await fh.close();
      throw new SnapshotError('DAMAGED_OBJECT', `cache object ${file} is ${st.isFile() ? `${st.size} bytes, not the ${entry.size} recorded` : 'not a regular file'}; run \`tdv fsck\``);
    }
    // 1 MiB reads: a served 1 GiB file went through HTTP at half the speed with the default 64 KiB.
    return fh.createReadStream({ highWaterMark: 1 << 20, ...(range ? { start: range.start, end: range.end } : {}) });
  }

  /** A file's whole bytes (for small files: params, metrics, tdv.lock). */
  async read(entry: SnapshotEntry): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await this.open(entry)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
}

function toRel(root: string, abs: string): string {
  return path.relative(root, abs).split(path.sep).join('/') || '.';
}

/** A path as listings name them: no empty, `.` or `..` segment, no leading or trailing slash. */
function isCleanPath(p: string): boolean {
  return relPathProblem(p) === undefined && !p.split('/').some((s) => s === '' || s === '.' || s === '..');
}

/** The first index whose path is >= `p` (entries sorted by code point). */
function lowerBound(entries: readonly SnapshotEntry[], p: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareCodePoints(entries[mid]!.path, p) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
