import path from 'node:path';
import { TdvError } from '../../errors.js';
import { relPathProblem } from '../../formats/paths.js';
import { treePrefix } from '../../repo/lib/revision.js';
import { PIPELINE_FILE } from '../../stages/load.js';
import { decodeLock, LOCK_FILE, type LockedPath, type LockedStage, parseLock } from '../../stages/lock.js';
import type { ServeContext } from '../context.js';

/** A path a stage read or wrote, as the web view shows it. */
export interface WebPath {
  path: string;
  /** Recorded in tdv.lock; null for a stage that never ran (only tdv.yaml names it). */
  sha256: string | null;
  size: number | null;
  nfiles?: number;
  /** data: tdv tracks it (a pointer's or a stage's output); git: Git holds it (code); missing: neither, at this revision. */
  kind: 'data' | 'git' | 'missing';
  /** The stage that writes it, for a dep that is another stage's output. */
  producer?: string;
}

export interface WebStage {
  name: string;
  /** The commands as tdv.lock (else tdv.yaml) records them. */
  cmd: string[];
  /** The image reference tdv.yaml names, and the image ID the run used (tdv.lock). */
  image: { ref: string | null; digest: string | null } | null;
  desc: string | null;
  /** True when tdv.lock records a run of the stage at this revision. */
  locked: boolean;
  /** The stages it depends on (an output of theirs is a dep of it). */
  upstream: string[];
  /** Longest path from a stage without upstream: the layer it is drawn in. */
  depth: number;
  params: { file: string; key: string; value: unknown }[];
  deps: WebPath[];
  outs: WebPath[];
  metrics: (WebPath & { values: Record<string, unknown> | null })[];
}

export interface WebPipeline {
  /** Stages in run order: dependencies before dependents (ties in tdv.yaml order). */
  stages: WebStage[];
  edges: { from: string; to: string }[];
  /** Why part of the pipeline could not be read (a malformed tdv.lock or metrics file), or null. */
  problem: string | null;
}

const inside = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);

/** What tdv.yaml declares for a stage, read leniently (an old tdv.yaml need not load today). */
interface Declared {
  cmd: string[];
  image?: string;
  desc?: string;
  deps: string[];
  outs: string[];
  metrics: string[];
}

/**
 * The pipeline of a commit, from the tdv.yaml and tdv.lock committed there
 * (never the workspace): what each stage ran, with which image, params and
 * inputs (each marked data or Git code), and what it wrote.
 */
export async function pipelineAt(ctx: ServeContext, commit: string): Promise<WebPipeline> {
  const h = ctx.source.history;
  const prefix = treePrefix(ctx.repo);
  const label = commit.slice(0, 12);
  const yamlBytes = h.readFileAt(commit, prefix + PIPELINE_FILE);
  const lockBytes = h.readFileAt(commit, prefix + LOCK_FILE);
  let problem: string | null = null;
  const declared = new Map<string, Declared>();
  if (yamlBytes) {
    try {
      for (const [name, d] of await readDeclared(yamlBytes.toString('utf8'), `${label}:${PIPELINE_FILE}`)) declared.set(name, d);
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
      problem = err.message;
    }
  }
  let lock = new Map<string, LockedStage>();
  if (lockBytes) {
    try {
      const shown = `${label}:${LOCK_FILE}`;
      lock = await parseLock(decodeLock(lockBytes, shown), shown);
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
      problem = err.message;
    }
  }
  const names = [...new Set([...declared.keys(), ...lock.keys()])];
  if (names.length === 0) return { stages: [], edges: [], problem };

  const outsOf = (n: string): string[] => {
    const l = lock.get(n);
    if (l) return [...l.outs, ...l.metrics].map((o) => o.path);
    const d = declared.get(n)!;
    return [...d.outs, ...d.metrics];
  };
  const depsOf = (n: string): string[] => lock.get(n)?.deps.map((d) => d.path) ?? declared.get(n)!.deps;
  const producerOf = (p: string): string | undefined => names.find((n) => outsOf(n).some((o) => inside(o, p) || inside(p, o)));

  const upstream = new Map<string, string[]>();
  for (const n of names) {
    const ups = new Set<string>();
    for (const d of depsOf(n)) {
      const p = producerOf(d);
      if (p !== undefined && p !== n) ups.add(p);
    }
    upstream.set(n, [...ups]);
  }
  const order = runOrder(names, upstream);
  const depth = new Map<string, number>();
  for (const n of order) depth.set(n, Math.max(-1, ...upstream.get(n)!.map((u) => depth.get(u) ?? 0)) + 1);

  let metricValues: Record<string, Record<string, unknown>> = {};
  try {
    const { metricsShow } = await import('../../repo/metrics.js');
    metricValues = await metricsShow(ctx.repo, commit);
  } catch (err) {
    if (!(err instanceof TdvError)) throw err;
    problem ??= err.message;
  }

  const snap = await ctx.snapshot(commit);
  const kindOf = async (p: string): Promise<WebPath['kind']> => {
    if (relPathProblem(p) !== undefined) return 'missing';
    const e = await snap.stat(p).catch(() => undefined);
    return e ? e.source : 'missing';
  };
  const fromLock = async (l: LockedPath, withProducer: boolean, self: string): Promise<WebPath> => {
    const producer = withProducer ? producerOf(l.path) : undefined;
    return {
      path: l.path,
      sha256: l.sha256,
      size: l.size,
      ...(l.nfiles !== undefined ? { nfiles: l.nfiles } : {}),
      kind: producer !== undefined && producer !== self ? 'data' : await kindOf(l.path),
      ...(producer !== undefined && producer !== self ? { producer } : {}),
    };
  };
  const fromYaml = async (p: string, withProducer: boolean, self: string): Promise<WebPath> => {
    const producer = withProducer ? producerOf(p) : undefined;
    const other = producer !== undefined && producer !== self;
    return { path: p, sha256: null, size: null, kind: other ? 'data' : await kindOf(p), ...(other ? { producer } : {}) };
  };

  const stages: WebStage[] = [];
  for (const n of order) {
    const l = lock.get(n);
    const d = declared.get(n);
    const cmd = l ? (typeof l.cmd === 'string' ? [l.cmd] : l.cmd) : (d?.cmd ?? []);
    const params: WebStage['params'] = [];
    for (const [file, kv] of Object.entries(l?.params ?? {})) for (const [key, value] of Object.entries(kv)) params.push({ file, key, value });
    const metricPaths = l ? l.metrics : (d?.metrics ?? []).map((p) => ({ path: p }) as LockedPath);
    stages.push({
      name: n,
      cmd,
      image: d?.image || l?.image ? { ref: d?.image ?? null, digest: l?.image ?? null } : null,
      desc: d?.desc ?? null,
      locked: l !== undefined,
      upstream: upstream.get(n)!,
      depth: depth.get(n)!,
      params,
      deps: await Promise.all(l ? l.deps.map((x) => fromLock(x, true, n)) : (d?.deps ?? []).map((x) => fromYaml(x, true, n))),
      outs: await Promise.all(l ? l.outs.map((x) => fromLock(x, false, n)) : (d?.outs ?? []).map((x) => fromYaml(x, false, n))),
      metrics: await Promise.all(
        metricPaths.map(async (m) => ({
          ...(m.sha256 ? await fromLock(m, false, n) : await fromYaml(m.path, false, n)),
          values: Object.hasOwn(metricValues, m.path) ? metricValues[m.path]! : null,
        })),
      ),
    });
  }
  const edges = order.flatMap((n) => upstream.get(n)!.map((u) => ({ from: u, to: n })));
  return { stages, edges, problem };
}

/** Dependencies before dependents; among ready stages, the first in `names` (tdv.yaml order). A cycle's stages come last. */
function runOrder(names: string[], upstream: Map<string, string[]>): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  while (order.length < names.length) {
    const next = names.find((n) => !done.has(n) && upstream.get(n)!.every((u) => done.has(u))) ?? names.find((n) => !done.has(n))!;
    done.add(next);
    order.push(next);
  }
  return order;
}

/** The stages tdv.yaml declares, each field read if it has the expected shape and skipped if not. */
async function readDeclared(text: string, shown: string): Promise<Map<string, Declared>> {
  const { parseYaml } = await import('../../util/yaml.js');
  const doc = (await parseYaml(text, shown)).value as { stages?: unknown } | null;
  const out = new Map<string, Declared>();
  const stages = doc?.stages;
  if (typeof stages !== 'object' || stages === null || Array.isArray(stages)) return out;
  const str = (x: unknown): string | undefined => (typeof x === 'string' ? x : undefined);
  for (const [name, raw] of Object.entries(stages as Record<string, unknown>)) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) continue;
    const s = raw as Record<string, unknown>;
    // foreach / matrix stages expand to names tdv.lock records (`train@a`); those come from the lock.
    if (s.foreach !== undefined || s.matrix !== undefined) continue;
    const wdir = str(s.wdir) ?? '.';
    // `- file` or the long form `- file: {cache: false}`; a templated name (`${item}`) is not a path yet.
    const paths = (x: unknown): string[] =>
      (Array.isArray(x) ? x : [])
        .map((e) => (typeof e === 'string' ? e : typeof e === 'object' && e !== null && Object.keys(e).length === 1 ? Object.keys(e)[0] : undefined))
        .filter((p): p is string => p !== undefined && !p.includes('${'))
        .map((p) => path.posix.normalize(path.posix.join(wdir, p)));
    const cmd = typeof s.cmd === 'string' ? [s.cmd] : Array.isArray(s.cmd) ? s.cmd.filter((c): c is string => typeof c === 'string') : [];
    out.set(name, { cmd, image: str(s.image), desc: str(s.desc), deps: paths(s.deps), outs: paths(s.outs), metrics: paths(s.metrics) });
  }
  return out;
}
