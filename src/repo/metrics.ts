import path from 'node:path';
import { FormatError } from '../errors.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { UnsafePathError } from '../workspace/guard.js';
import type { GitHistory } from '../git/history.js';
import { loadPipeline, PIPELINE_FILE } from '../stages/load.js';
import { LOCK_FILE, parseLock } from '../stages/lock.js';
import { ParamsReader } from '../stages/params.js';
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
}

/** Where to read from: a revision (anything Git resolves), or the workspace when undefined. */
type Side = string | undefined;

interface Reader {
  label: string;
  /**
   * A file's text, or undefined when it is absent. `source` names the file
   * that named `rel` (tdv.yaml), which is then untrusted: it must be a legal
   * path inside the repository, and in the workspace a regular file reached
   * without symlinks, or the read is refused with one line (so that
   * `metrics: [../../etc/passwd]` never prints that file).
   */
  read(rel: string, source?: string): string | undefined;
}

async function reader(repo: Repo, side: Side, history: () => Promise<GitHistory>): Promise<Reader> {
  if (side === undefined) return { label: 'workspace', read: (rel, source) => repo.guard.readText(rel, { source }) };
  const { resolveRevision, treePrefix } = await import('./lib/revision.js');
  const h = await history();
  const at = resolveRevision(h, side);
  const prefix = treePrefix(repo);
  return {
    label: side,
    read: (rel, source) => {
      const problem = relPathProblem(rel);
      if (problem !== undefined) throw new UnsafePathError(`${side}:${source ?? rel}: ${quotePath(rel)} ${problem}; tdv only reads paths inside the repository`, { path: rel });
      return h.readFileAt(at.commit, prefix + rel)?.toString('utf8');
    },
  };
}

/** Flattens nested JSON into dotted keys; arrays by index. */
export function flatten(v: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = v;
  return out;
}

/**
 * The stages of tdv.yaml with foreach, matrix and ${...} expanded (template.ts),
 * so templated metrics paths are found. A revision written before templating
 * may hold a shell's `${VAR}` that does not resolve: there, the stages as written.
 */
async function declaredStages(yaml: string, r: Reader): Promise<({ metrics?: unknown } | null)[]> {
  const shown = `${r.label}:${PIPELINE_FILE}`;
  const { expandText } = await import('../stages/template.js');
  try {
    return (await expandText(yaml, shown, (f) => r.read(f, PIPELINE_FILE))).map((s) => s.body as { metrics?: unknown } | null);
  } catch (e) {
    if (r.label === 'workspace' || !(e instanceof FormatError)) throw e;
    const { parseYaml } = await import('../util/yaml.js');
    const doc = (await parseYaml(yaml, shown)).value as { stages?: Record<string, { metrics?: unknown } | null> } | null;
    return Object.values(doc?.stages ?? {});
  }
}

/** The metrics files the pipeline declares, read from one side and flattened. */
async function metricsOf(r: Reader): Promise<Values> {
  const yaml = r.read(PIPELINE_FILE);
  if (yaml === undefined) return {};
  const files = new Set<string>();
  for (const s of await declaredStages(yaml, r)) if (Array.isArray(s?.metrics)) for (const m of s.metrics) if (typeof m === 'string') files.add(path.posix.normalize(m));
  const out: Values = {};
  for (const f of [...files].sort()) {
    const text = r.read(f, PIPELINE_FILE);
    if (text === undefined) continue;
    try {
      out[f] = flatten(JSON.parse(text));
    } catch (err) {
      throw new FormatError(`${r.label}:${f}`, `is not valid JSON (${(err as Error).message})`, 'Metrics files must hold JSON');
    }
  }
  return out;
}

/** Param values: in the workspace, params.yaml's current values of the keys tdv.yaml uses; at a revision, those tdv.lock recorded. */
async function paramsOf(repo: Repo, r: Reader, side: Side): Promise<Values> {
  const out: Values = {};
  if (side === undefined) {
    const p = await loadPipeline(repo.root);
    const reader = new ParamsReader(repo.guard);
    for (const s of p?.stages.values() ?? []) for (const { file, keys } of s.params) Object.assign((out[file] ??= {}), await reader.values(file, keys, s.name));
    return out;
  }
  const text = r.read(LOCK_FILE);
  if (text === undefined) return out;
  const lock = await parseLock(text, `${r.label}:${LOCK_FILE}`);
  for (const s of lock.values()) for (const [file, kv] of Object.entries(s.params)) Object.assign((out[file] ??= {}), flatten(kv));
  return out;
}

/** The metrics in the workspace. */
export async function metricsShow(repo: Repo, rev?: string): Promise<Values> {
  return metricsOf(await reader(repo, rev, lazyHistory(repo)));
}

/** How metrics differ between `a` (default HEAD) and `b` (default the workspace). */
export async function metricsDiff(repo: Repo, a = 'HEAD', b?: string): Promise<ValueChange[]> {
  const h = lazyHistory(repo);
  return diffValues(await metricsOf(await reader(repo, a, h)), await metricsOf(await reader(repo, b, h)));
}

/** How parameters differ between `a` (default HEAD) and `b` (default the workspace). */
export async function paramsDiff(repo: Repo, a = 'HEAD', b?: string): Promise<ValueChange[]> {
  const h = lazyHistory(repo);
  return diffValues(await paramsOf(repo, await reader(repo, a, h), a), await paramsOf(repo, await reader(repo, b, h), b));
}

function lazyHistory(repo: Repo): () => Promise<GitHistory> {
  let h: Promise<GitHistory> | undefined;
  return () => (h ??= import('./lib/revision.js').then((m) => m.openHistory(repo)));
}

export function diffValues(a: Values, b: Values): ValueChange[] {
  const out: ValueChange[] = [];
  for (const file of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    const x = a[file] ?? {};
    const y = b[file] ?? {};
    for (const key of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) {
      const o = x[key];
      const n = y[key];
      if (JSON.stringify(o) === JSON.stringify(n)) continue;
      out.push({ file, key, ...(o !== undefined ? { old: o } : {}), ...(n !== undefined ? { new: n } : {}), ...(typeof o === 'number' && typeof n === 'number' ? { change: +(n - o).toPrecision(12) } : {}) });
    }
  }
  return out;
}
