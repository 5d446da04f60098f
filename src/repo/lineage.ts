import crypto from 'node:crypto';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { isoDate, subject } from '../git/format.js';
import type { GitHistory } from '../git/history.js';
import type { ManifestEntry } from '../formats/manifest.js';
import { isDirOid } from '../formats/oid.js';
import { quotePath } from '../formats/paths.js';
import { outAbsPath, parsePointer, POINTER_EXT } from '../formats/pointer.js';
import type { LockedPath, LockFile } from '../stages/lock.js';
import { decodeUtf8, isInside, MAX_POINTER_BYTES, tooLargeError } from '../util/fs.js';
import { POINTER_FIX } from './lib/pointers.js';
import { openHistory, treePrefix } from './lib/revision.js';
import type { Repo } from './repo.js';

const LOCK_FILE = 'tdv.lock';
/** Git files larger than this are not hashed to compare with a recorded dep (code is small; a large blob costs its read). */
const MAX_HASHED = 64 * 2 ** 20;
/** At most this many producing stages are followed from one directory dep (see Walk.producersOf). */
const MAX_FANOUT = 1000;

export interface LineageOptions {
  /** An absolute path: a stage output, a file inside an output directory, or (with `reverse`) any path stages read. */
  target: string;
  /** A revision: read tdv.lock and pointers from Git's objects. Default: the workspace. */
  rev?: string;
  /** At most this many stage levels (1: only the stage that wrote the target, or only those that read it). */
  depth?: number;
  /** Downstream: the stages that read the target (or a directory holding it, or a file inside it), transitively, with their outputs. */
  reverse?: boolean;
}

/**
 * fresh: the recorded hash is what its producer (or source) records now;
 * stale: it is not, so the recorded run did not use what is there now;
 * unknown: tdv cannot tell (a directory manifest not in the cache, a directory dep holding outputs, untracked).
 */
export type Freshness = 'fresh' | 'stale' | 'unknown';

export interface LineageCommit {
  id: string;
  /** Author date, ISO 8601. */
  date: string;
  subject: string;
}

/** A path a stage read, as tdv.lock recorded it, and where it comes from now. */
export interface LineageDep {
  path: string;
  /** The hash the stage recorded when it ran. */
  sha256: string;
  size: number;
  nfiles?: number;
  /** output: a stage wrote it; data: a pointer tracks it; git: Git holds it (code); untracked: neither. */
  kind: 'output' | 'data' | 'git' | 'untracked';
  /** For an output: the stages that wrote it (more than one only for a directory dep holding several outputs). */
  producers?: string[];
  /** The hash its producer or source records now (the manifest entry's for a file inside a directory); null when unknown. */
  current: string | null;
  status: Freshness;
}

export interface LineageOut {
  path: string;
  sha256: string;
  size: number;
  nfiles?: number;
}

export interface LineageStage {
  name: string;
  /** 1: the stage that wrote the target (reverse: that read it); 2: the stages that wrote (read) those; ... */
  level: number;
  cmd: string | string[];
  /** The image ID the run used (Docker stages), or null. */
  image: string | null;
  /** Params file -> key -> value, as recorded. */
  params: Record<string, Record<string, unknown>>;
  deps: LineageDep[];
  /** Its outputs and metrics, as recorded. */
  outs: LineageOut[];
  /** The worst of its deps' statuses. */
  status: Freshness;
}

/** Source data or code: a dep no stage wrote. */
export interface LineageSource {
  path: string;
  kind: 'data' | 'git' | 'untracked';
  /** data: the pointer file tracking it (a directory's, for a file inside a tracked directory). */
  pointer?: string;
  /** data: the hash the pointer records (a manifest entry's for a file inside a directory); git: SHA-256 of the file; null when unknown. */
  sha256?: string | null;
  /** git: the blob id (a tree id for a directory); at the revision, else HEAD's. */
  blob?: string;
  /** The commit that last changed the pointer file (data) or the file (git), along first parents; null when there is none (not committed, no Git, shallow clone). */
  commit: LineageCommit | null;
  /** Workspace only: the pointer file or Git file differs from HEAD's. */
  uncommitted?: true;
  /** Workspace only: the data differs from what its pointer records (changed since `tdv add`); `sha256` is then the workspace's. */
  modified?: true;
}

export interface LineageResult {
  /** Repo-relative path asked about. */
  target: string;
  /** up: what produced the target; down (`--reverse`): what depends on it. */
  direction: 'up' | 'down';
  /** The revision as given, and its commit; both null for the workspace. */
  rev: string | null;
  commit: string | null;
  /** output: a stage wrote it; data or git: a source no stage writes; untracked (reverse only): read by stages, tracked by nobody. */
  kind: 'output' | 'data' | 'git' | 'untracked';
  /** The stages that wrote the target (empty for a source). */
  producers: string[];
  /** Stages walked, level by level. */
  stages: LineageStage[];
  /** Sources reached (up), or the target itself when it is a source (down). */
  sources: LineageSource[];
  /** --depth stopped the walk before every stage was reached. */
  truncated: boolean;
  /** The worst status of the stages walked (fresh when none); stale too when the target is `modified`. */
  status: Freshness;
  /**
   * Workspace only: the target in the workspace is not what its producer recorded (changed since
   * the run, or something else stands there): the provenance shown is the recorded output's, not its.
   */
  modified?: true;
}

const inside = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);
const worst = (a: Freshness, b: Freshness): Freshness => (a === 'stale' || b === 'stale' ? 'stale' : a === 'unknown' || b === 'unknown' ? 'unknown' : 'fresh');

/** An output a stage recorded. */
interface Written {
  stage: string;
  out: LockedPath;
}

/**
 * The provenance of an output (or with `reverse`, what depends on a path), read
 * from tdv.lock at a revision or in the workspace, never run or written:
 *
 *   target ─► stage that wrote it ─► its deps ─┬─► output of another stage ─► that stage ...
 *                                              ├─► pointer-tracked data (hash, commit)
 *                                              └─► Git file (blob, commit)
 *
 * Each dep's recorded hash is compared with what its producer or source
 * records now: a mismatch marks the stage stale. Stages are visited once each
 * (a cyclic or hostile tdv.lock cannot loop), at most `depth` levels.
 */
export async function lineage(repo: Repo, opts: LineageOptions): Promise<LineageResult> {
  if (!isInside(repo.root, opts.target)) throw new UsageError(`${opts.target} is outside the repository ${repo.root}`);
  const rel = repo.rel(opts.target);
  if (rel === '.') throw new UsageError('name an output (a file or directory a stage writes), not the whole repository');
  const depth = opts.depth ?? Infinity;
  let history: GitHistory | undefined;
  try {
    if (opts.rev !== undefined || repo.git) history = openHistory(repo);
    const commit = opts.rev !== undefined ? history!.resolve(opts.rev) : undefined;
    const head = commit ?? (history?.hasCommits() ? history.refs.resolve('HEAD') : undefined);
    const w = new Walk(repo, history, head, commit !== undefined, await readLockAt(repo, history, commit, opts.rev));
    const res = opts.reverse ? await w.down(rel, depth) : await w.up(rel, depth, opts.rev);
    return { ...res, rev: opts.rev ?? null, commit: commit ?? null };
  } finally {
    history?.close();
  }
}

async function readLockAt(repo: Repo, history: GitHistory | undefined, commit: string | undefined, rev: string | undefined): Promise<LockFile> {
  const { decodeLock, parseLock, readLock } = await import('../stages/lock.js');
  if (commit === undefined) return readLock(repo.root);
  const bytes = history!.readFileAt(commit, `${treePrefix(repo)}${LOCK_FILE}`);
  if (!bytes) return new Map();
  const shown = quotePath(`${rev}:${LOCK_FILE}`);
  return parseLock(decodeLock(bytes, shown), shown);
}

type Partial = Omit<LineageResult, 'rev' | 'commit'>;

class Walk {
  /** Output path -> who wrote it (the first stage in tdv.lock wins when a hostile one names a path twice). */
  private readonly written = new Map<string, Written>();
  /** Every output path, sorted: for the outputs below a directory. */
  private readonly writtenSorted: string[];
  /** Dep path -> stages that read it. */
  private readonly readers = new Map<string, Set<string>>();
  private readonly depsSorted: string[];
  private readonly manifests = new Map<string, ManifestEntry[] | undefined>();
  private readonly sourceMemo = new Map<string, LineageSource | undefined>();
  private readonly prodMemo = new Map<string, ReturnType<Walk['producersOf']>>();
  /** Outputs two stages of tdv.lock claim to have written (a hand edit or a bad merge: tdv.yaml allows one writer). */
  readonly contested = new Set<string>();
  /** Whether two stages claim to write `p` or a directory holding it. */
  isContested(p: string): boolean {
    if (this.contested.size === 0) return false;
    for (let c = p; c !== '.'; c = path.posix.dirname(c)) if (this.contested.has(c)) return true;
    return false;
  }

  /** A directory dep held outputs of more than MAX_FANOUT stages: only the first were followed. */
  private capped = false;
  private readonly prefix: string;
  private readonly tree: string | undefined;

  constructor(
    private readonly repo: Repo,
    private readonly history: GitHistory | undefined,
    /** The commit sources are looked up in (the revision, else HEAD). */
    private readonly head: string | undefined,
    /** True at a revision: everything from Git's objects; else the workspace (with HEAD for blobs and commits). */
    private readonly atRev: boolean,
    private readonly lock: LockFile,
  ) {
    for (const [name, s] of lock) {
      for (const o of [...s.outs, ...s.metrics]) {
        const w = this.written.get(o.path);
        if (!w) this.written.set(o.path, { stage: name, out: o });
        else if (w.stage !== name) this.contested.add(o.path);
      }
      for (const d of s.deps) {
        const l = this.readers.get(d.path);
        if (l) l.add(name);
        else this.readers.set(d.path, new Set([name]));
      }
    }
    this.writtenSorted = [...this.written.keys()].sort();
    this.depsSorted = [...this.readers.keys()].sort();
    this.prefix = repo.git ? treePrefix(repo) : '';
    this.tree = history && head ? history.commit(head).tree : undefined;
  }

  /**
   * The outputs related to `p`: the one at `p` or a directory holding it, else
   * the outputs below `p` (at most MAX_FANOUT stages of them: a hostile
   * tdv.lock could make every dep a directory holding every output, and the
   * answer quadratic; `capped` then marks the result truncated).
   */
  private producersOf(p: string): { kind: 'same' | 'inside'; w: Written } | { kind: 'contains'; ws: Written[] } | undefined {
    if (this.prodMemo.has(p)) return this.prodMemo.get(p);
    let r: ReturnType<Walk['producersOf']>;
    const same = this.written.get(p);
    if (same) r = { kind: 'same', w: same };
    for (let d = path.posix.dirname(p); r === undefined && d !== '.'; d = path.posix.dirname(d)) {
      const w = this.written.get(d);
      if (w) r = { kind: 'inside', w };
    }
    if (r === undefined) {
      const ws: Written[] = [];
      const stages = new Set<string>();
      for (const o of below(this.writtenSorted, p)) {
        const w = this.written.get(o)!;
        if (!stages.has(w.stage) && stages.size >= MAX_FANOUT) {
          this.capped = true;
          break;
        }
        stages.add(w.stage);
        ws.push(w);
      }
      if (ws.length) r = { kind: 'contains', ws };
    }
    this.prodMemo.set(p, r);
    return r;
  }

  /**
   * The stages that read `p`, a directory holding it, or a file inside it.
   * With `expanded` (the downstream walk), a dep path already followed is not
   * followed again: each costs its readers once, however many outputs lie below it.
   */
  private readersOf(p: string, expanded?: Set<string>): string[] {
    const out = new Set<string>();
    const add = (d: string) => {
      if (expanded?.has(d)) return;
      expanded?.add(d);
      for (const s of this.readers.get(d) ?? []) out.add(s);
    };
    add(p);
    for (let d = path.posix.dirname(p); d !== '.'; d = path.posix.dirname(d)) add(d);
    for (const d of below(this.depsSorted, p)) add(d);
    return [...out];
  }

  async up(rel: string, depth: number, rev: string | undefined): Promise<Partial> {
    const target = this.producersOf(rel);
    if (!target) {
      const src = await this.source(rel);
      if (src && src.kind !== 'untracked') {
        await this.fillCommits([src]);
        return { target: rel, direction: 'up', kind: src.kind, producers: [], stages: [], sources: [src], truncated: false, status: 'fresh' };
      }
      const at = rev === undefined ? '' : ` at ${quotePath(rev)}`;
      throw new TdvError(
        'NOT_TRACKED',
        `${quotePath(rel)} is written by no stage in tdv.lock${at} and is not tracked by tdv or Git; name an output of a stage that has run (\`tdv dag\` lists them; \`tdv repro\` runs them) or data \`tdv add\` tracks`,
        { data: { path: rel } },
      );
    }
    let targetStatus: Freshness = 'fresh';
    if (target.kind === 'inside') {
      // A path inside an output directory is that stage's only if the directory's manifest lists it
      // (a file, or a directory holding files); uncached manifest: unknown, never claimed fresh.
      const listed = this.listedAt(target.w.out.sha256, target.w.out.path, rel);
      if (listed === false) {
        const at = rev === undefined ? '' : ` at ${quotePath(rev)}`;
        throw new TdvError(
          'NOT_TRACKED',
          `${quotePath(rel)} is not in ${quotePath(target.w.out.path)} as stage ${quotePath(target.w.stage)} recorded it in tdv.lock${at}; name a file that output holds (\`tdv ls ${quotePath(target.w.out.path)}\` lists them)`,
          { data: { path: rel } },
        );
      }
      if (listed === 'unknown') targetStatus = 'unknown';
    }
    if (this.isContested(rel)) targetStatus = 'unknown';
    const first = target.kind === 'contains' ? target.ws.map((w) => w.stage) : [target.w.stage];
    const res = await this.walk(rel, 'up', 'output', unique(first), depth, (s) => s.deps.flatMap((d) => d.producers ?? []));
    // In the workspace, the target itself may have been edited or replaced since the run: then no stage made it.
    const modified = target.kind !== 'contains' && (await this.differsInWorkspace(rel, this.recordedAt(target.w.out.sha256, target.w.out.path, rel)));
    return { ...res, status: modified ? 'stale' : worst(res.status, targetStatus), ...(modified ? { modified: true as const } : {}) };
  }

  async down(rel: string, depth: number): Promise<Partial> {
    const first = this.readersOf(rel);
    const prod = this.producersOf(rel);
    let kind: LineageResult['kind'] = 'output';
    const sources: LineageSource[] = [];
    if (!prod) {
      const src = await this.source(rel);
      kind = src?.kind ?? 'untracked';
      if (src) {
        sources.push(src);
        await this.fillCommits(sources);
      }
      if (first.length === 0 && (!src || src.kind === 'untracked')) {
        throw new TdvError(
          'NOT_TRACKED',
          `${quotePath(rel)} is read by no stage in tdv.lock, written by none and not tracked by tdv or Git; name a dep or output of a stage that has run (\`tdv dag\` lists the stages)`,
          { data: { path: rel } },
        );
      }
    }
    const producers = !prod ? [] : prod.kind === 'contains' ? unique(prod.ws.map((w) => w.stage)) : [prod.w.stage];
    const expanded = new Set<string>();
    const res = await this.walk(rel, 'down', kind, first, depth, (s) => unique(s.outs.flatMap((o) => this.readersOf(o.path, expanded))));
    return { ...res, producers, sources };
  }

  /** Breadth first from `first` (level 1), each stage once, at most `depth` levels; `next` names a stage's neighbours. */
  private async walk(rel: string, direction: 'up' | 'down', kind: LineageResult['kind'], first: string[], depth: number, next: (s: LineageStage) => string[]): Promise<Partial> {
    const seen = new Set<string>(first);
    const stages: LineageStage[] = [];
    const sources = new Map<string, LineageSource>();
    let truncated = false;
    let level = first;
    for (let n = 1; level.length > 0; n++) {
      if (n > depth) {
        truncated = true;
        break;
      }
      const following: string[] = [];
      for (const name of level) {
        const s = await this.stage(name, n);
        stages.push(s);
        if (direction === 'up') {
          for (const d of s.deps) {
            if (d.kind === 'output' || sources.has(d.path)) continue;
            const src = await this.source(d.path);
            sources.set(d.path, src ?? { path: d.path, kind: 'untracked', commit: null });
          }
        }
        for (const o of next(s)) {
          if (seen.has(o)) continue;
          seen.add(o);
          following.push(o);
        }
      }
      level = following;
    }
    markImpossible(stages, (p) => this.isContested(p));
    const srcList = [...sources.values()];
    await this.fillCommits(srcList);
    const status = stages.reduce<Freshness>((a, s) => worst(a, s.status), 'fresh');
    return { target: rel, direction, kind, producers: direction === 'up' ? first : [], stages, sources: srcList, truncated: truncated || this.capped, status };
  }

  private async stage(name: string, level: number): Promise<LineageStage> {
    const s = this.lock.get(name)!;
    const deps: LineageDep[] = [];
    for (const d of s.deps) deps.push(await this.dep(name, d));
    const outs = [...s.outs, ...s.metrics].map((o) => ({ path: o.path, sha256: o.sha256, size: o.size, ...(o.nfiles !== undefined ? { nfiles: o.nfiles } : {}) }));
    return {
      name,
      level,
      cmd: s.cmd,
      image: s.image ?? null,
      params: s.params,
      deps,
      outs,
      status: deps.reduce<Freshness>((a, d) => worst(a, d.status), 'fresh'),
    };
  }

  /** A dep as recorded, compared with what its producer or source records now. */
  private async dep(self: string, d: LockedPath): Promise<LineageDep> {
    const base = { path: d.path, sha256: d.sha256, size: d.size, ...(d.nfiles !== undefined ? { nfiles: d.nfiles } : {}) };
    const prod = this.producersOf(d.path);
    const others = prod === undefined ? [] : prod.kind === 'contains' ? prod.ws.filter((w) => w.stage !== self) : prod.w.stage === self ? [] : [prod.w];
    if (prod && others.length > 0) {
      const producers = unique(others.map((w) => w.stage));
      if (prod.kind === 'contains') return { ...base, kind: 'output', producers, current: null, status: 'unknown' };
      const current = this.recordedAt(prod.w.out.sha256, prod.w.out.path, d.path);
      return { ...base, kind: 'output', producers, ...compare(d.sha256, current) };
    }
    const src = await this.source(d.path);
    if (!src || src.kind === 'untracked') return { ...base, kind: 'untracked', current: null, status: 'unknown' };
    const current = src.sha256 ?? null;
    return { ...base, kind: src.kind, ...compare(d.sha256, current === null ? 'unknown' : current) };
  }

  /**
   * The hash recorded for `p` by an output recorded as `oid` at `outPath`: the
   * output's own, or its directory manifest's entry for a file inside
   * (undefined: not in that manifest; 'unknown': the manifest is not cached).
   */
  private recordedAt(oid: string, outPath: string, p: string): string | undefined | 'unknown' {
    if (p === outPath) return oid;
    if (!isDirOid(oid)) return undefined;
    const m = this.manifest(oid);
    if (!m) return 'unknown';
    const sub = p.slice(outPath.length + 1);
    return m.find((e) => e.relpath === sub)?.sha256;
  }

  /** Whether the directory output recorded as `oid` at `outPath` holds `p` (a file, or a directory of files); 'unknown' when its manifest is not cached. */
  private listedAt(oid: string, outPath: string, p: string): boolean | 'unknown' {
    if (!isDirOid(oid)) return false;
    const m = this.manifest(oid);
    if (!m) return 'unknown';
    const sub = p.slice(outPath.length + 1);
    return m.some((e) => e.relpath === sub || e.relpath.startsWith(`${sub}/`));
  }

  /** A cached manifest; undefined when absent or damaged (then the status is unknown, not an error). */
  private manifest(oid: string): ManifestEntry[] | undefined {
    if (this.manifests.has(oid)) return this.manifests.get(oid);
    let m: ManifestEntry[] | undefined;
    try {
      if (this.repo.store.has(oid)) m = this.repo.store.readManifest(oid);
    } catch (err) {
      if (!(err instanceof TdvError) || (err.code !== 'MISSING_OBJECTS' && err.code !== 'BAD_FORMAT')) throw err;
    }
    this.manifests.set(oid, m);
    return m;
  }

  /** What tracks `p` if no stage writes it: a pointer (its own or a directory's), Git, or nothing. */
  private async source(p: string): Promise<LineageSource | undefined> {
    if (this.sourceMemo.has(p)) return this.sourceMemo.get(p);
    const s = (await this.pointerSource(p)) ?? this.gitSource(p);
    this.sourceMemo.set(p, s);
    return s;
  }

  private async pointerSource(p: string): Promise<LineageSource | undefined> {
    for (let c = p; c !== '.'; c = path.posix.dirname(c)) {
      const ptrRel = `${c}${POINTER_EXT}`;
      const found = this.pointerBytes(ptrRel);
      if (!found) continue;
      const shown = quotePath(this.atRev ? `${this.head!.slice(0, 12)}:${ptrRel}` : ptrRel);
      const ptr = await parsePointer(decodeUtf8(found.bytes, shown, POINTER_FIX), path.join(this.repo.root, ...ptrRel.split('/')), shown);
      for (const o of ptr.outs) {
        const outRel = this.repo.rel(outAbsPath(ptr, o));
        if (!inside(outRel, p)) continue;
        const rec = this.recordedAt(o.sha256, outRel, p);
        const sha256 = rec === 'unknown' || rec === undefined ? null : rec;
        // A file the directory's manifest does not list is not tracked by it.
        if (rec === undefined) continue;
        // In the workspace, data changed since `tdv add` is what a stage would read now (as `tdv status` says).
        const now = this.atRev || sha256 === null ? undefined : await this.workspaceHash(p);
        const modified = now !== undefined && now !== sha256;
        return {
          path: p,
          kind: 'data',
          pointer: ptrRel,
          sha256: modified ? now : sha256,
          commit: null,
          ...(found.uncommitted ? { uncommitted: true as const } : {}),
          ...(modified ? { modified: true as const } : {}),
        };
      }
    }
    return undefined;
  }

  /**
   * The hash of `rel` in the workspace (through the guard and the stat cache, as `tdv status`
   * hashes it); undefined when nothing is there; null when something else (a symlink, a
   * special file) stands there or the path is reached through a symlink.
   */
  private async workspaceHash(rel: string): Promise<string | null | undefined> {
    const { hashWorkspace } = await import('./lib/hashing.js');
    const st = await hashWorkspace(this.repo, { abs: this.repo.guard.abs(rel), rel });
    if (st.kind === 'missing') return undefined;
    if (st.kind === 'other') return null;
    return st.oid;
  }

  /** Workspace only: whether `rel` there is not what was recorded (absent: not checked out, not a claim either way). */
  private async differsInWorkspace(rel: string, recorded: string | undefined | 'unknown'): Promise<boolean> {
    if (this.atRev || recorded === undefined || recorded === 'unknown') return false;
    const now = await this.workspaceHash(rel);
    return now !== undefined && now !== recorded;
  }

  /** A pointer file's bytes: at the revision from Git, else from the workspace (never through a symlink). */
  private pointerBytes(ptrRel: string): { bytes: Buffer; uncommitted: boolean } | undefined {
    const e = this.tree && this.history ? this.history.entryAt(this.tree, this.prefix + ptrRel) : undefined;
    if (this.atRev) {
      if (e?.kind !== 'blob') return undefined;
      const bytes = this.history!.blob(e.oid);
      // As strict as a pointer of the workspace (and pointersAt): a pointer is small.
      if (bytes.length > MAX_POINTER_BYTES) throw tooLargeError(quotePath(`${this.head!.slice(0, 12)}:${ptrRel}`), bytes.length, MAX_POINTER_BYTES, 'a pointer file');
      return { bytes, uncommitted: false };
    }
    const bytes = this.readWorkspace(ptrRel, MAX_POINTER_BYTES, 'error');
    if (!bytes) return undefined;
    return { bytes, uncommitted: e?.kind !== 'blob' || gitBlobId(bytes) !== e.oid };
  }

  /**
   * A workspace file through the guard, never through a symlink; undefined when
   * absent, not a regular file, too large, or reached through a symlink (what
   * is there is then unknown: never read, never counted as fresh).
   */
  private readWorkspace(rel: string, max: number, tooLarge: 'unknown' | 'error'): Buffer | undefined {
    try {
      return this.repo.guard.readFile(rel, { maxBytes: max });
    } catch (err) {
      if (err instanceof TdvError && (err.code === 'NOT_A_FILE' || err.code === 'UNSAFE_PATH' || (err.code === 'TOO_LARGE' && tooLarge === 'unknown'))) return undefined;
      if ((err as NodeJS.ErrnoException)?.code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  private gitSource(p: string): LineageSource | undefined {
    const e = this.tree && this.history ? this.history.entryAt(this.tree, this.prefix + p) : undefined;
    if (!e || (e.kind !== 'blob' && e.kind !== 'tree')) return undefined;
    if (e.kind === 'tree') return { path: p, kind: 'git', blob: e.oid, sha256: null, commit: null };
    let bytes: Buffer | undefined;
    let uncommitted = false;
    if (this.atRev) {
      bytes = this.history!.blob(e.oid);
      if (bytes.length > MAX_HASHED) bytes = undefined;
    } else {
      bytes = this.readWorkspace(p, MAX_HASHED, 'unknown');
      uncommitted = bytes === undefined || gitBlobId(bytes) !== e.oid;
    }
    const sha256 = bytes === undefined ? null : crypto.createHash('sha256').update(bytes).digest('hex');
    return { path: p, kind: 'git', blob: e.oid, sha256, commit: null, ...(uncommitted ? { uncommitted: true as const } : {}) };
  }

  /**
   * The commit that last changed each source's pointer file or Git file: one
   * walk along first parents from the revision (or HEAD) for all of them,
   * stopping as soon as each is found. A commit whose tree equals its
   * parent's costs nothing more.
   */
  private async fillCommits(sources: LineageSource[]): Promise<void> {
    const h = this.history;
    if (!h || !this.head) return;
    const pending = new Map<string, { src: LineageSource; oid: string }>();
    for (const s of sources) {
      const file = s.kind === 'data' ? s.pointer! : s.kind === 'git' ? s.path : undefined;
      if (file === undefined) continue;
      const e = h.entryAt(h.commit(this.head).tree, this.prefix + file);
      if (e) pending.set(`${s.path}\0${file}`, { src: s, oid: e.oid });
    }
    const info = (oid: string): LineageCommit => {
      const c = h.commit(oid);
      return { id: oid, date: isoDate(c.author), subject: subject(c) };
    };
    for (let oid = this.head; pending.size > 0;) {
      const c = h.commit(oid);
      const parent = h.parents(c)[0];
      if (parent === undefined) {
        // The root commit added them; at a shallow clone's boundary the change may be older: unknown.
        if (c.parents.length === 0) for (const { src } of pending.values()) src.commit = info(oid);
        break;
      }
      const pt = h.commit(parent).tree;
      if (pt !== c.tree) {
        for (const [key, { src, oid: want }] of pending) {
          const file = key.slice(key.indexOf('\0') + 1);
          if (h.entryAt(pt, this.prefix + file)?.oid !== want) {
            src.commit = info(oid);
            pending.delete(key);
          }
        }
      }
      oid = parent;
    }
  }
}

/**
 * What no run of a pipeline can have recorded is never fresh: a dep whose path
 * two stages claim to write, and a dep written by a stage that itself depends,
 * through the stages walked, on the reader (a cycle: tdv.yaml has none, so
 * tdv.lock got it from a hand edit or a merge). Those deps become unknown, and
 * their stages' statuses are recomputed. Cycles are found as the strongly
 * connected components of the walked stages (Tarjan's algorithm, iterative:
 * a chain of thousands of stages must not overflow the stack).
 */
function markImpossible(stages: LineageStage[], contested: (p: string) => boolean): void {
  const index = new Map(stages.map((s, i) => [s.name, i]));
  const edges = stages.map((s) => unique(s.deps.flatMap((d) => d.producers ?? [])).flatMap((p) => (index.has(p) ? [index.get(p)!] : [])));
  const comp = new Array<number>(stages.length).fill(-1);
  const low = new Array<number>(stages.length).fill(0);
  const num = new Array<number>(stages.length).fill(-1);
  const onStack = new Array<boolean>(stages.length).fill(false);
  const stack: number[] = [];
  let counter = 0;
  let comps = 0;
  for (let root = 0; root < stages.length; root++) {
    if (num[root] !== -1) continue;
    const work: [number, number][] = [[root, 0]];
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [v, i] = top;
      if (i === 0) {
        num[v] = low[v] = counter++;
        stack.push(v);
        onStack[v] = true;
      }
      if (i < edges[v]!.length) {
        top[1]++;
        const w = edges[v]![i]!;
        if (num[w] === -1) work.push([w, 0]);
        else if (onStack[w]) low[v] = Math.min(low[v]!, num[w]!);
        continue;
      }
      if (low[v] === num[v]) {
        for (let w = -1; w !== v;) {
          w = stack.pop()!;
          onStack[w] = false;
          comp[w] = comps;
        }
        comps++;
      }
      work.pop();
      if (work.length > 0) {
        const u = work[work.length - 1]![0];
        low[u] = Math.min(low[u]!, low[v]!);
      }
    }
  }
  for (const [i, s] of stages.entries()) {
    let changed = false;
    for (const d of s.deps) {
      const cyclic = (d.producers ?? []).some((p) => index.has(p) && comp[index.get(p)!] === comp[i]);
      // (A stale dep stays stale: its recorded hash is not what is there, whoever wrote it.)
      if ((cyclic || (d.kind === 'output' && contested(d.path))) && d.status === 'fresh') {
        d.status = 'unknown';
        d.current = null;
        changed = true;
      }
    }
    if (changed) s.status = s.deps.reduce<Freshness>((a, d) => worst(a, d.status), 'fresh');
  }
}

/** fresh when equal; stale when the producer or source records another hash (or none); unknown when it cannot be read. */
function compare(recorded: string, current: string | undefined | 'unknown'): { current: string | null; status: Freshness } {
  if (current === 'unknown') return { current: null, status: 'unknown' };
  if (current === undefined) return { current: null, status: 'stale' };
  return { current, status: current === recorded ? 'fresh' : 'stale' };
}

/** The entries of a sorted list that lie below directory `p`. */
function below(sorted: readonly string[], p: string): string[] {
  const pre = `${p}/`;
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < pre) lo = mid + 1;
    else hi = mid;
  }
  const out: string[] = [];
  for (let i = lo; i < sorted.length && sorted[i]!.startsWith(pre); i++) out.push(sorted[i]!);
  return out;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** Git's id of a blob with these bytes (SHA-1 of "blob <size>\0" and them): equal to a tree entry's id when the file is as committed. */
function gitBlobId(bytes: Buffer): string {
  return crypto.createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}
