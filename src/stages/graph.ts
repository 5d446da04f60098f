import { FormatError } from '../errors.js';
import { quotePath, shellWord } from '../formats/paths.js';
import type { Pipeline, Stage } from './load.js';

/**
 * The pipeline as a DAG. Stage B depends on stage A when one of B's deps is
 * an output of A, lies inside one (a file of an output directory), or
 * contains one (a directory that holds A's output):
 *
 *   sales --(data/sales.csv)--> join --(data/joined.csv)--> report
 *
 * Built once, validated when built: two stages writing the same path (or one
 * inside the other's) and cycles are errors naming the culprits.
 */
export interface Dag {
  stages: Map<string, Stage>;
  /** Stage -> the stages it depends on. */
  upstream: Map<string, Set<string>>;
  /** Stage -> the stages that depend on it. */
  downstream: Map<string, Set<string>>;
  /** Every stage, dependencies before dependents (ties in tdv.yaml order). */
  order: string[];
  /** Output path (outs and metrics) -> the stage writing it. */
  producers: Map<string, string>;
}

const inside = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);

/**
 * Builds and checks the DAG. `tracked` maps paths tracked by `.tdv` pointers
 * to their pointer file: a stage output may not be one of them.
 */
export function buildDag(p: Pipeline, tracked: ReadonlyMap<string, string> = new Map()): Dag {
  const producers = new Map<string, string>();
  const outsOf = (s: Stage) => [...s.outs, ...s.metrics];
  // Sorted with "/" appended, a path containing another sorts right before it: neighbours suffice.
  const all = [...p.stages.values()].flatMap((s) => outsOf(s).map((o) => ({ o, s: s.name })));
  all.sort((a, b) => (`${a.o}/` < `${b.o}/` ? -1 : `${a.o}/` > `${b.o}/` ? 1 : 0));
  for (let i = 0; i < all.length; i++) {
    const cur = all[i]!;
    const prev = all[i - 1];
    if (prev && inside(prev.o, cur.o)) {
      const what =
        prev.o === cur.o ? `${quotePath(cur.o)} is an output of both "${prev.s}" and "${cur.s}"` : `${quotePath(cur.o)} (output of "${cur.s}") is inside ${quotePath(prev.o)} (output of "${prev.s}")`;
      throw new FormatError(whereOf(p, cur.s, cur.o), what, 'Each path must be written by one stage only');
    }
    producers.set(cur.o, cur.s);
  }
  for (const { o, s } of all) {
    for (const [t, ptr] of tracked) {
      if (inside(t, o) || inside(o, t)) {
        throw new FormatError(
          whereOf(p, s, o),
          `${quotePath(o)} (output of "${s}") overlaps ${quotePath(t)}, which ${quotePath(ptr)} tracks`,
          `Let the stage own it: \`tdv remove ${shellWord(ptr)}\`, or change the stage's outs`,
        );
      }
    }
  }
  const upstream = new Map<string, Set<string>>();
  const downstream = new Map<string, Set<string>>();
  for (const name of p.stages.keys()) {
    upstream.set(name, new Set());
    downstream.set(name, new Set());
  }
  for (const s of p.stages.values()) {
    for (const d of s.deps) {
      for (const { o, s: producer } of all) {
        // A stage reading its own output is a cycle of one, reported as such below.
        if (!(inside(o, d) || inside(d, o))) continue;
        upstream.get(s.name)!.add(producer);
        downstream.get(producer)!.add(s.name);
      }
    }
  }
  return { stages: p.stages, upstream, downstream, order: topoOrder(p, upstream), producers };
}

/** `tdv.yaml:line:col` of a stage's output, or of the stage. */
function whereOf(p: Pipeline, stage: string, out: string): string {
  const s = p.stages.get(stage)!;
  return s.origins.get(out) ?? s.where;
}

/** Kahn's algorithm in tdv.yaml order; a leftover means a cycle, which is found and named. */
function topoOrder(p: Pipeline, upstream: Map<string, Set<string>>): string[] {
  const names = [...p.stages.keys()];
  const order: string[] = [];
  const done = new Set<string>();
  let progress = true;
  while (progress) {
    progress = false;
    for (const n of names) {
      if (done.has(n) || [...upstream.get(n)!].some((u) => !done.has(u))) continue;
      done.add(n);
      order.push(n);
      progress = true;
    }
  }
  if (order.length < names.length) {
    const cycle = findCycle(
      names.filter((n) => !done.has(n)),
      upstream,
    );
    const first = p.stages.get(cycle[0]!)!;
    throw new FormatError(first.where, `the stages form a cycle: ${cycle.join(' -> ')}`, 'A stage cannot depend, directly or not, on its own output');
  }
  return order;
}

function findCycle(candidates: string[], upstream: Map<string, Set<string>>): string[] {
  const set = new Set(candidates);
  const start = candidates[0]!;
  // Follow dependencies inside the unresolved set until a stage repeats.
  const path: string[] = [];
  const seen = new Map<string, number>();
  let cur = start;
  while (!seen.has(cur)) {
    seen.set(cur, path.length);
    path.push(cur);
    cur = [...upstream.get(cur)!].find((u) => set.has(u))!;
  }
  // path[i] depends on path[i+1]: print in data-flow order (producer first).
  const loop = path.slice(seen.get(cur)!).reverse();
  return [...loop, loop[0]!];
}

/** `names` and everything they depend on, in DAG order; not past a stage for which `stopAt` is true. */
export function withUpstream(dag: Dag, names: readonly string[], stopAt?: (name: string) => boolean): string[] {
  return closure(dag, names, dag.upstream, stopAt);
}

/** `names` and everything that depends on them, in DAG order. */
export function withDownstream(dag: Dag, names: readonly string[]): string[] {
  return closure(dag, names, dag.downstream);
}

function closure(dag: Dag, names: readonly string[], edges: Map<string, Set<string>>, stopAt?: (name: string) => boolean): string[] {
  const want = new Set<string>();
  const visit = (n: string) => {
    if (want.has(n)) return;
    want.add(n);
    if (stopAt?.(n)) return;
    for (const next of edges.get(n)!) visit(next);
  };
  names.forEach(visit);
  return dag.order.filter((n) => want.has(n));
}
