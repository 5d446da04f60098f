import path from 'node:path';
import { TdvError } from '../errors.js';
import { readObjectFileSync } from '../cache/store.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { UnsafePathError } from '../workspace/guard.js';
import { type Commit, subject } from '../git/format.js';
import type { GitHistory } from '../git/history.js';
import { loadPipeline, PIPELINE_FILE } from '../stages/load.js';
import { decodeLock, LOCK_FILE, type LockFile, parseLock } from '../stages/lock.js';
import { ParamsReader } from '../stages/params.js';
import { flattenLeaves, parseMetrics, setOwn } from '../stages/values.js';
import { MAX_TEXT_BYTES, tooLargeError } from '../util/fs.js';
import type { RevisionRef } from './lib/revision.js';
import type { Repo } from './repo.js';

/** file -> flattened key -> value (`{"a":{"b":1}}` is `a.b: 1`). */
export type Values = Record<string, Record<string, unknown>>;

export interface ValueChange {
  file: string;
  key: string;
  old?: unknown;
  new?: unknown;
  /** new - old, when both are numbers. */
  change?: number;
  /** Set on the entries `--all` adds: the value is the same on both sides. */
  unchanged?: true;
}

/** Where to read from: a revision (anything Git resolves), or the workspace when undefined. */
type Side = string | undefined;

interface Reader {
  label: string;
  /** The commit read (undefined: the workspace). */
  at?: RevisionRef;
  /**
   * A file's text, or undefined when it is absent. `source` names the file
   * that named `rel` (tdv.yaml), which is then untrusted: it must be a legal
   * path inside the repository, and in the workspace a regular file reached
   * without symlinks, or the read is refused with one line (so that
   * `metrics: [../../etc/passwd]` never prints that file).
   */
  read(rel: string, source?: string): string | undefined;
  /**
   * At a revision, a metrics file Git does not hold there (it was git-ignored),
   * read from the cache by the hash the tdv.lock of that commit records;
   * undefined when tdv.lock does not record it.
   */
  cached?(rel: string): Promise<string | undefined>;
}

async function reader(repo: Repo, side: Side, history: () => Promise<GitHistory>): Promise<Reader> {
  if (side === undefined) return { label: 'workspace', read: (rel, source) => repo.guard.readText(rel, { source }) };
  const { resolveRevision } = await import('./lib/revision.js');
  const h = await history();
  return readerAt(repo, h, resolveRevision(h, side));
}

/** A reader of the files of one commit; paths are checked as the workspace guard would (legal, inside the repository). */
async function readerAt(repo: Repo, h: GitHistory, at: RevisionRef): Promise<Reader> {
  const { treePrefix } = await import('./lib/revision.js');
  const prefix = treePrefix(repo);
  const side = at.label;
  const read = (rel: string, source?: string) => {
    const problem = relPathProblem(rel);
    if (problem !== undefined) throw new UnsafePathError(`${side}:${source ?? rel}: ${quotePath(rel)} ${problem}; tdv only reads paths inside the repository`, { path: rel });
    return h.readFileAt(at.commit, prefix + rel)?.toString('utf8');
  };
  let lock: Promise<LockFile | undefined> | undefined;
  const lockAt = () =>
    (lock ??= (async () => {
      const bytes = h.readFileAt(at.commit, prefix + LOCK_FILE);
      const shown = `${side}:${LOCK_FILE}`;
      return bytes ? parseLock(decodeLock(bytes, shown), shown) : undefined;
    })());
  // Metrics are plain files meant for Git, but a git-ignored one still went into the cache
  // when its stage ran (repro copies metrics there for the run-cache), under the hash tdv.lock records.
  const cached = async (rel: string): Promise<string | undefined> => {
    let oid: string | undefined;
    for (const s of (await lockAt())?.values() ?? []) for (const o of s.metrics) if (o.path === rel) oid = o.sha256;
    if (oid === undefined) return undefined;
    const shown = quotePath(`${side}:${rel}`);
    if (!repo.store.has(oid)) {
      throw new TdvError(
        'MISSING_OBJECT',
        `${shown} was not committed to Git, and the version tdv.lock records there (${oid.slice(0, 12)}) is not in the cache; \`tdv fetch --run-cache\` fetches it if the run that wrote it was pushed with \`tdv push --run-cache\``,
        { data: { path: rel, oid, commit: at.commit } },
      );
    }
    const bytes = readObjectFileSync(repo.store.pathOf(oid), (size) => {
      if (size > MAX_TEXT_BYTES) throw tooLargeError(shown, size, MAX_TEXT_BYTES, 'a metrics file');
    });
    return bytes.toString('utf8');
  };
  return { label: side, at, read, cached };
}

/** Flattens nested JSON into dotted keys; arrays by index. */
export function flatten(v: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = v;
  return out;
}

/** The metrics files the pipeline declares, read from one side, flattened to their leaves. */
async function metricsOf(repo: Repo, r: Reader): Promise<Values> {
  const out: Values = {};
  for (const f of await metricsFiles(repo, r)) {
    const text = r.read(f, PIPELINE_FILE) ?? (await r.cached?.(f));
    if (text === undefined) continue;
    setOwn(out, f, flattenLeaves(await parseMetrics(text, f, r.at ? `${r.label}:${f}` : f)));
  }
  return out;
}

/**
 * The metrics files of one side, sorted: those its tdv.yaml declares (in the
 * workspace, as the pipeline loader resolves them; at a revision, read
 * leniently, since an old tdv.yaml need not load today) and those its
 * tdv.lock records.
 */
async function metricsFiles(repo: Repo, r: Reader): Promise<string[]> {
  const files = new Set<string>();
  const lockText = r.read(LOCK_FILE);
  if (lockText !== undefined) {
    const shown = r.at ? `${r.label}:${LOCK_FILE}` : LOCK_FILE;
    for (const s of (await parseLock(lockText, shown)).values()) for (const m of s.metrics) files.add(m.path);
  }
  if (!r.at) {
    for (const s of (await loadPipeline(repo.root))?.stages.values() ?? []) for (const m of s.metrics) files.add(m);
    return [...files].sort();
  }
  const yaml = r.read(PIPELINE_FILE);
  if (yaml === undefined) return [...files].sort();
  const { parseYaml } = await import('../util/yaml.js');
  const doc = (await parseYaml(yaml, `${r.label}:${PIPELINE_FILE}`)).value as { stages?: Record<string, { metrics?: unknown; wdir?: unknown }> } | null;
  for (const s of Object.values(doc?.stages ?? {})) {
    if (!Array.isArray(s?.metrics)) continue;
    const wdir = typeof s.wdir === 'string' ? s.wdir : '';
    for (const m of s.metrics) {
      // `- file` or DVC's `- file: {cache: false}`.
      const name = typeof m === 'string' ? m : typeof m === 'object' && m !== null && Object.keys(m).length === 1 ? Object.keys(m)[0] : undefined;
      // A templated name (`${item}.json`) is not a path yet; tdv.lock names the files it became.
      if (name !== undefined && !name.includes('${')) files.add(path.posix.normalize(path.posix.join(wdir, name)));
    }
  }
  return [...files].sort();
}

/** Param values: in the workspace, params.yaml's current values of the keys tdv.yaml uses; at a revision, those tdv.lock recorded. */
async function paramsOf(repo: Repo, r: Reader, side: Side): Promise<Values> {
  const out: Values = {};
  if (side === undefined) {
    const p = await loadPipeline(repo.root);
    const reader = new ParamsReader(repo.guard);
    // Flattened as tdv.lock's side is: a key naming a mapping is compared leaf by leaf
    // (`foo.bar`), so an unchanged dict is no change, and a changed one names the leaf.
    for (const s of p?.stages.values() ?? []) for (const { file, keys } of s.params) Object.assign((out[file] ??= {}), flatten(await reader.values(file, keys, s.name)));
    return out;
  }
  const text = r.read(LOCK_FILE);
  if (text === undefined) return out;
  const lock = await parseLock(text, `${r.label}:${LOCK_FILE}`);
  for (const s of lock.values()) for (const [file, kv] of Object.entries(s.params)) Object.assign((out[file] ??= {}), flatten(kv));
  return out;
}

/** The metrics in the workspace (or at `rev`). */
export async function metricsShow(repo: Repo, rev?: string): Promise<Values> {
  return withHistory(repo, async (h) => metricsOf(repo, await reader(repo, rev, h)));
}

export interface MetricsHistoryOptions {
  /** Revisions as the user named them, shown in this order (unless allCommits). */
  revs?: string[];
  /** Every commit reachable from a branch, tag or HEAD that has metrics, newest first. */
  allCommits?: boolean;
}

/** The metrics of one commit. */
export interface MetricsAtCommit {
  commit: string;
  /** The revision as given (`v1`), or the commit's short id. */
  label: string;
  subject: string;
  /** Committer date, ISO 8601 (UTC). */
  date: string;
  metrics: Values;
}

export interface MetricsHistory {
  /** Newest first with allCommits; else in the order of `revs`. */
  commits: MetricsAtCommit[];
  /** Commits whose metrics could not be read (a file that does not parse, an object not in the cache), with why. */
  problems: { commit: string; label: string; message: string }[];
}

/**
 * The metrics of several commits, read from Git history (and from the cache
 * for metrics tdv tracked there), so that a metric's history is one table.
 * A named revision is always listed; with allCommits, only the commits that
 * have a metrics file. A commit whose metrics cannot be read is listed in
 * `problems` and the others are still shown.
 */
export async function metricsHistory(repo: Repo, opts: MetricsHistoryOptions): Promise<MetricsHistory> {
  const { openHistory, resolveRevision } = await import('./lib/revision.js');
  const h = openHistory(repo);
  try {
    const named = (opts.revs ?? []).map((r) => resolveRevision(h, r));
    const walked: RevisionRef[] = [];
    if (opts.allCommits) for (const c of newestFirst(h)) walked.push(named.find((r) => r.commit === c.oid) ?? { commit: c.oid, label: c.oid.slice(0, 7) });
    // Each commit once; a named revision the walk did not reach (a dangling commit) comes last.
    const seen = new Set<string>();
    const order = [...walked, ...named].filter((r) => !seen.has(r.commit) && !!seen.add(r.commit));
    const wanted = new Set(named.map((r) => r.commit));
    const res: MetricsHistory = { commits: [], problems: [] };
    for (const at of order) {
      const c = h.commit(at.commit);
      let metrics: Values;
      try {
        metrics = await metricsOf(repo, await readerAt(repo, h, at));
      } catch (err) {
        if (!(err instanceof TdvError) || err.code === 'UNKNOWN_REVISION') throw err;
        res.problems.push({ commit: at.commit, label: at.label, message: err.message });
        continue;
      }
      if (!Object.keys(metrics).length && !wanted.has(at.commit)) continue;
      res.commits.push({ commit: at.commit, label: at.label, subject: subject(c), date: new Date(c.committer.time * 1000).toISOString(), metrics });
    }
    return res;
  } finally {
    h.close();
  }
}

/**
 * Every commit reachable from a branch, tag, remote-tracking ref or HEAD,
 * newest first and never a parent before its child, as `git log --all
 * --date-order`: the newest commit among those whose children have all been
 * listed comes next (commits made in the same second stay in history order).
 */
function* newestFirst(h: GitHistory): Generator<Commit> {
  const starts = h.tips('refs/').map((t) => t.oid);
  const head = h.refs.resolve('HEAD');
  if (head) starts.push(head);
  const all = [...h.reachable(starts)];
  const children = new Map<string, number>();
  for (const c of all) for (const p of h.parents(c)) children.set(p, (children.get(p) ?? 0) + 1);
  const ready = all.filter((c) => !children.get(c.oid));
  while (ready.length) {
    // Ready commits are as many as the branches being walked, so a scan is cheaper than a heap.
    let best = 0;
    for (let i = 1; i < ready.length; i++) if (ready[i]!.committer.time > ready[best]!.committer.time) best = i;
    const c = ready.splice(best, 1)[0]!;
    yield c;
    for (const p of h.parents(c)) {
      const left = children.get(p)! - 1;
      children.set(p, left);
      if (left === 0) ready.push(h.commit(p));
    }
  }
}

/** The current values of every parameter a stage of tdv.yaml uses, read from the params files in the workspace. */
export async function paramsShow(repo: Repo): Promise<Values> {
  const values = await withHistory(repo, async (h) => paramsOf(repo, await reader(repo, undefined, h), undefined));
  // Sorted by file and key, as the diffs are, whatever order the stages name them in.
  const out: Values = {};
  for (const f of Object.keys(values).sort()) {
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(values[f]!).sort()) setOwn(sorted, k, values[f]![k]);
    setOwn(out, f, sorted);
  }
  return out;
}

export interface DiffOptions {
  /** Also list the values that did not change (marked `unchanged`). */
  all?: boolean;
}

/** How metrics differ between `a` (default HEAD) and `b` (default the workspace). */
export async function metricsDiff(repo: Repo, a = 'HEAD', b?: string, opts: DiffOptions = {}): Promise<ValueChange[]> {
  return withHistory(repo, async (h) => diffValues(await metricsOf(repo, await reader(repo, a, h)), await metricsOf(repo, await reader(repo, b, h)), opts));
}

/** How parameters differ between `a` (default HEAD) and `b` (default the workspace). */
export async function paramsDiff(repo: Repo, a = 'HEAD', b?: string, opts: DiffOptions = {}): Promise<ValueChange[]> {
  return withHistory(repo, async (h) => diffValues(await paramsOf(repo, await reader(repo, a, h), a), await paramsOf(repo, await reader(repo, b, h), b), opts));
}

/** Runs `fn` with a Git history opened on first use and closed after. */
async function withHistory<T>(repo: Repo, fn: (h: () => Promise<GitHistory>) => Promise<T>): Promise<T> {
  let h: Promise<GitHistory> | undefined;
  try {
    return await fn(() => (h ??= import('./lib/revision.js').then((m) => m.openHistory(repo))));
  } finally {
    if (h) (await h.catch(() => undefined))?.close();
  }
}

const own = (o: Record<string, unknown> | undefined, k: string) => (o !== undefined && Object.hasOwn(o, k) ? o[k] : undefined);

export function diffValues(a: Values, b: Values, opts: DiffOptions = {}): ValueChange[] {
  const out: ValueChange[] = [];
  for (const file of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = own(a, file) as Record<string, unknown> | undefined;
    const y = own(b, file) as Record<string, unknown> | undefined;
    for (const key of [...new Set([...Object.keys(x ?? {}), ...Object.keys(y ?? {})])].sort()) {
      const o = own(x, key);
      const n = own(y, key);
      const same = JSON.stringify(o) === JSON.stringify(n);
      if (same && !opts.all) continue;
      out.push({
        file,
        key,
        ...(o !== undefined ? { old: o } : {}),
        ...(n !== undefined ? { new: n } : {}),
        ...(typeof o === 'number' && typeof n === 'number' ? { change: +(n - o).toPrecision(12) } : {}),
        ...(same ? { unchanged: true as const } : {}),
      });
    }
  }
  return out;
}
