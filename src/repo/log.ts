import fs from 'node:fs';
import path from 'node:path';
import type { ManifestEntry } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { diffManifests } from '../cache/workspace.js';
import { TdvError } from '../errors.js';
import { type Commit, isoDate, subject } from '../git/format.js';
import type { GitHistory } from '../git/history.js';
import { isInside } from '../util/fs.js';
import { parsePointer, type PointerOut, POINTER_EXT } from '../formats/pointer.js';
import { lockAsPointer } from './lib/pointers.js';
import type { Repo } from './repo.js';
import { openHistory, treePrefix } from './lib/revision.js';

const LOCK_FILE = 'tdv.lock';

export interface LogOptions {
  /** An absolute path: a tracked path, a file inside a tracked directory, its pointer file, or a directory holding pointers. None: every tracked path. */
  target?: string;
  /** At most this many commits. */
  max?: number;
  /** The commit to walk back from (a full id); default HEAD. `branch` in the result is then null. */
  from?: string;
}

export interface VersionInfo {
  hash: Oid;
  size: number;
  /** Directories only. */
  nfiles?: number;
}

/** How one tracked path changed in one commit. */
export interface LogChange {
  /** Repo-relative path of the data. */
  path: string;
  /** The pointer file that records it (or tdv.lock for a stage output). */
  pointer: string;
  change: 'added' | 'modified' | 'deleted';
  /** The version this commit records; null when the path was deleted. */
  version: VersionInfo | null;
  /** The version before (in the first parent); null when the path was added. */
  previous: VersionInfo | null;
  /**
   * For a directory: how many of its files were added, modified and deleted.
   * Null when a manifest that would tell is not in the cache.
   */
  files: { added: number; modified: number; deleted: number } | null;
}

export interface LogCommit {
  commit: string;
  /** Author date, ISO 8601 with the author's zone. */
  date: string;
  author: { name: string; email: string };
  subject: string;
  changes: LogChange[];
}

export interface LogResult {
  /** The branch walked (HEAD's), or null when HEAD is detached. */
  branch: string | null;
  head: string;
  /** Always true: merges are followed through their first parent only, as `git log --first-parent`. */
  firstParent: true;
  /** The walk stopped at the boundary of a shallow clone: older versions exist but are not here. */
  shallow: boolean;
  /** Newest first; only commits where the data changed. */
  commits: LogCommit[];
}

/**
 * What to follow: pointer files (one, or every one under a prefix) and
 * tdv.lock, filtered to data paths `keep` accepts.
 */
interface Spec {
  /** Exact repo-relative pointer path, or a prefix (`''` or `dir/`) under which every pointer counts. */
  pointer?: string;
  prefix?: string;
  lock: boolean;
  keep(rel: string): boolean;
  /** Following one file inside a tracked directory: the directory's data path and the file's relpath in it. */
  inner?: { dir: string; sub: string };
}

/** One tracked output at a commit. */
interface Out {
  out: PointerOut;
  pointer: string;
}

/**
 * The versions of tracked data along the current branch, newest first:
 * only commits whose pointers (or tdv.lock outputs) changed the data, each
 * compared with its first parent.
 *
 *   HEAD ─► C3 ─► C2 ─► C1        per commit: compare the tree entry (or
 *           │      │      │        subtree) at the followed path with the
 *         data.tdv oid same? ──►   parent's; equal ids mean equal content,
 *                                  so most commits cost one tree read.
 */
export async function log(repo: Repo, opts: LogOptions = {}): Promise<LogResult> {
  const history = openHistory(repo);
  try {
    const head = opts.from ?? history.refs.resolve('HEAD');
    if (!head) throw new TdvError('NO_COMMITS', 'this branch has no commits yet, so there is no history to show');
    const prefix = treePrefix(repo);
    const spec = resolveSpec(repo, history, head, prefix, opts.target);
    const walker = new Walker(repo, history, prefix, spec);
    const commits: LogCommit[] = [];
    let shallow = false;
    let oid: string | undefined = head;
    let cur = walker.state(history.commit(oid));
    while (oid !== undefined && (opts.max === undefined || commits.length < opts.max)) {
      const c = history.commit(oid);
      const parents = history.parents(c);
      if (parents.length === 0 && c.parents.length > 0) {
        shallow = true; // its parent is not in this clone: nothing to compare with
        break;
      }
      const parentOid = parents[0];
      const prev = parentOid === undefined ? undefined : walker.state(history.commit(parentOid));
      if (prev === undefined || prev.key !== cur.key) {
        const changes = await walker.changes(cur, prev);
        if (changes.length > 0) commits.push(entry(c, changes));
      }
      oid = parentOid;
      if (prev) cur = prev;
    }
    const unknown = walker.unknownAt;
    if (spec.inner && unknown.length > 0) {
      const { dir, sub } = spec.inner;
      throw new TdvError(
        'MISSING_OBJECTS',
        `the contents of ${dir} at ${unknown.length} commit${unknown.length === 1 ? '' : 's'} (first: ${unknown[0]!.slice(0, 12)}) are not in the cache, so tdv cannot tell when ${dir}/${sub} changed; run \`tdv fetch --all-commits ${dir}\` to fetch them`,
      );
    }
    if (commits.length === 0 && spec.inner && !shallow) {
      const { dir, sub } = spec.inner;
      throw new TdvError('NOT_TRACKED', `${dir}/${sub} is in no version of ${dir} on this branch; \`tdv log ${dir}\` lists its versions`);
    }
    if (commits.length === 0 && spec.pointer !== undefined && opts.target !== undefined && !shallow) {
      throw new TdvError('NOT_TRACKED', `${repo.rel(opts.target)} was never tracked by tdv on this branch; \`tdv log\` without a path lists every tracked path`);
    }
    return { branch: opts.from === undefined ? (history.headBranch() ?? null) : null, head, firstParent: true, shallow, commits };
  } finally {
    history.close();
  }
}

function entry(c: Commit, changes: LogChange[]): LogCommit {
  return { commit: c.oid, date: isoDate(c.author), author: { name: c.author.name, email: c.author.email }, subject: subject(c), changes };
}

/** The followed files of one commit: the ids that identify their content (`key`), read lazily. */
interface State {
  commit: Commit;
  key: string;
  /** The followed pointer file's blob (exact-path specs). */
  pointerBlob?: string;
  lockBlob?: string;
  /** The tracked outputs, once read (a commit is compared twice: with its parent, and as a parent). */
  outs?: Promise<Map<string, Out>>;
}

class Walker {
  private readonly pointerMemo = new Map<string, Promise<PointerOut[]>>();
  private readonly lockMemo = new Map<string, Promise<PointerOut[]>>();
  private readonly manifests = new Map<Oid, ManifestEntry[] | undefined>();

  constructor(
    private readonly repo: Repo,
    private readonly history: GitHistory,
    private readonly prefix: string,
    private readonly spec: Spec,
  ) {}

  /** The cheapest key of what this commit says about the followed data: tree entry ids, no blobs read. */
  state(commit: Commit): State {
    const h = this.history;
    let key = '';
    const s: State = { commit, key };
    if (this.spec.pointer !== undefined) {
      const e = h.entryAt(commit.tree, this.prefix + this.spec.pointer);
      s.pointerBlob = e?.kind === 'blob' ? e.oid : undefined;
      key = s.pointerBlob ?? '-';
    } else {
      const dir = this.prefix + (this.spec.prefix ?? '');
      const e = dir === '' ? { kind: 'tree', oid: commit.tree } : h.entryAt(commit.tree, dir.slice(0, -1));
      key = e?.kind === 'tree' ? e.oid : '-';
    }
    if (this.spec.lock) {
      const l = h.entryAt(commit.tree, this.prefix + LOCK_FILE);
      s.lockBlob = l?.kind === 'blob' ? l.oid : undefined;
      key += `:${s.lockBlob ?? '-'}`;
    }
    s.key = key;
    return s;
  }

  /** What changed between a commit and its parent, for the followed paths. */
  async changes(cur: State, prev: State | undefined): Promise<LogChange[]> {
    const now = await this.outs(cur);
    const before = prev ? await this.outs(prev) : new Map<string, Out>();
    const changes: LogChange[] = [];
    const paths = [...new Set([...now.keys(), ...before.keys()])].sort();
    for (const p of paths) {
      const a = before.get(p);
      const b = now.get(p);
      if (a && b && a.out.sha256 === b.out.sha256 && !a.out.isexec === !b.out.isexec) continue;
      if (this.spec.inner) {
        const change = this.innerChange(cur.commit.oid, a, b, this.spec.inner);
        if (change) changes.push(change);
        continue;
      }
      changes.push({
        path: p,
        pointer: (b ?? a)!.pointer,
        change: !a ? 'added' : !b ? 'deleted' : 'modified',
        version: b ? info(b.out) : null,
        previous: a ? info(a.out) : null,
        files: this.fileCounts(a?.out, b?.out),
      });
    }
    return changes;
  }

  /** Commits where a directory's manifest was needed to follow a file in it but is not cached. */
  readonly unknownAt: string[] = [];

  /**
   * How the followed file inside a tracked directory changed between two
   * versions of that directory: looked up in both manifests. Undefined when
   * it did not change (or a manifest is missing: noted in `unknownAt`).
   */
  private innerChange(commit: string, a: Out | undefined, b: Out | undefined, inner: { dir: string; sub: string }): LogChange | undefined {
    const version = (o: Out | undefined): VersionInfo | null | 'unknown' => {
      if (!o || !isDirOid(o.out.sha256)) return null; // no directory there (absent, or a plain file then)
      const m = this.manifest(o.out.sha256);
      if (!m) return 'unknown';
      const e = m.find((x) => x.relpath === inner.sub);
      return e ? { hash: e.sha256, size: e.size } : null;
    };
    const before = version(a);
    const now = version(b);
    if (before === 'unknown' || now === 'unknown') {
      this.unknownAt.push(commit);
      return undefined;
    }
    if (before?.hash === now?.hash) return undefined;
    return {
      path: `${inner.dir}/${inner.sub}`,
      pointer: (b ?? a)!.pointer,
      change: !before ? 'added' : !now ? 'deleted' : 'modified',
      version: now,
      previous: before,
      files: null,
    };
  }

  /** Tracked outputs at a commit, by repo-relative data path, restricted to the spec. */
  private outs(s: State): Promise<Map<string, Out>> {
    s.outs ??= this.readOuts(s);
    return s.outs;
  }

  private async readOuts(s: State): Promise<Map<string, Out>> {
    const h = this.history;
    const out = new Map<string, Out>();
    const label = s.commit.oid.slice(0, 12);
    const files: { path: string; oid: string }[] = [];
    if (this.spec.pointer !== undefined) {
      if (s.pointerBlob) files.push({ path: this.spec.pointer, oid: s.pointerBlob });
    } else {
      const dir = this.spec.prefix ?? '';
      let tree: string | undefined = s.commit.tree;
      if (this.prefix + dir !== '') {
        const e = h.entryAt(tree, (this.prefix + dir).slice(0, -1));
        tree = e?.kind === 'tree' ? e.oid : undefined;
      }
      if (tree) for (const f of h.filesAt(tree, POINTER_EXT)) files.push({ path: dir + f.path, oid: f.oid });
    }
    for (const f of files) {
      let parsed = this.pointerMemo.get(`${f.oid}\0${f.path}`);
      if (!parsed) {
        const file = path.join(this.repo.root, ...f.path.split('/'));
        parsed = parsePointer(h.blob(f.oid).toString('utf8'), file, `${label}:${f.path}`).then((p) => p.outs);
        this.pointerMemo.set(`${f.oid}\0${f.path}`, parsed);
      }
      const base = path.posix.dirname(f.path);
      for (const o of await parsed) {
        const rel = base === '.' ? o.path : `${base}/${o.path}`;
        if (this.spec.keep(rel)) out.set(rel, { out: o, pointer: f.path });
      }
    }
    if (s.lockBlob) {
      let parsed = this.lockMemo.get(s.lockBlob);
      if (!parsed) {
        const { parseLock } = await import('../stages/lock.js');
        const blob = s.lockBlob;
        parsed = parseLock(h.blob(blob).toString('utf8'), `${label}:${LOCK_FILE}`).then((l) => lockAsPointer(LOCK_FILE, l)?.outs ?? []);
        this.lockMemo.set(blob, parsed);
      }
      for (const o of await parsed) if (this.spec.keep(o.path) && !out.has(o.path)) out.set(o.path, { out: o, pointer: LOCK_FILE });
    }
    return out;
  }

  private fileCounts(a: PointerOut | undefined, b: PointerOut | undefined): LogChange['files'] {
    const dirA = a !== undefined && isDirOid(a.sha256);
    const dirB = b !== undefined && isDirOid(b.sha256);
    if (!dirA && !dirB) return null;
    if (!dirA) return { added: b!.nfiles ?? 0, modified: 0, deleted: 0 };
    if (!dirB) return { added: 0, modified: 0, deleted: a!.nfiles ?? 0 };
    const ma = this.manifest(a!.sha256);
    const mb = this.manifest(b!.sha256);
    if (!ma || !mb) return null;
    const d = diffManifests(ma, mb);
    return { added: d.added.length, modified: d.modified.length, deleted: d.deleted.length };
  }

  /** A cached manifest; undefined when absent or damaged (the counts are then unknown, not an error). */
  private manifest(oid: Oid): ManifestEntry[] | undefined {
    if (this.manifests.has(oid)) return this.manifests.get(oid);
    let m: ManifestEntry[] | undefined;
    try {
      m = this.repo.store.readManifest(oid);
    } catch (err) {
      // Not cached (MISSING_OBJECTS) or damaged (BAD_FORMAT): the counts are unknown.
      if (!(err instanceof TdvError) || (err.code !== 'MISSING_OBJECTS' && err.code !== 'BAD_FORMAT')) throw err;
    }
    // Versions are compared with their neighbours only: keep the last few.
    if (this.manifests.size > 8) this.manifests.delete(this.manifests.keys().next().value!);
    this.manifests.set(oid, m);
    return m;
  }
}

function info(o: PointerOut): VersionInfo {
  return o.nfiles === undefined ? { hash: o.sha256, size: o.size } : { hash: o.sha256, size: o.size, nfiles: o.nfiles };
}

/**
 * What `tdv log PATH` follows. PATH may be a pointer file, the data it tracks
 * (now or in the past), a file inside a tracked directory, a stage output in
 * tdv.lock, or a directory holding pointers.
 */
function resolveSpec(repo: Repo, history: GitHistory, head: string, prefix: string, target: string | undefined): Spec {
  if (target === undefined) return { prefix: '', lock: true, keep: () => true };
  if (!isInside(repo.root, target)) throw new TdvError('USAGE', `${target} is outside the repository ${repo.root}`);
  const rel = repo.rel(target);
  if (rel === '.') return { prefix: '', lock: true, keep: () => true };
  const tree = history.commit(head).tree;
  const inHead = (p: string) => history.entryAt(tree, prefix + p);
  if (rel.endsWith(POINTER_EXT)) {
    return { pointer: rel, lock: false, keep: () => true };
  }
  const ptr = `${rel}${POINTER_EXT}`;
  if (inHead(ptr)?.kind === 'blob' || fs.existsSync(path.join(repo.root, ptr))) return { pointer: ptr, lock: false, keep: (p) => p === rel };
  // Inside a tracked directory: follow the directory, and look the file up in its manifests.
  for (let d = path.posix.dirname(rel); d !== '.'; d = path.posix.dirname(d)) {
    if (inHead(`${d}${POINTER_EXT}`)?.kind === 'blob' || fs.existsSync(path.join(repo.root, `${d}${POINTER_EXT}`))) {
      return { pointer: `${d}${POINTER_EXT}`, lock: false, keep: (p) => p === d, inner: { dir: d, sub: rel.slice(d.length + 1) } };
    }
  }
  const dir = inHead(rel);
  if (dir?.kind === 'tree' || fs.statSync(target, { throwIfNoEntry: false })?.isDirectory()) {
    return { prefix: `${rel}/`, lock: true, keep: (p) => p.startsWith(`${rel}/`) };
  }
  // A stage output recorded in tdv.lock, or data whose pointer exists only in history.
  if (inHead(LOCK_FILE)?.kind === 'blob') return { pointer: ptr, lock: true, keep: (p) => p === rel };
  return { pointer: ptr, lock: false, keep: (p) => p === rel };
}
