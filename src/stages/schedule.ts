/**
 * The pipeline scheduler: runs stages in dependency order, up to `jobs` at
 * once, and decides what happens to the rest when one fails or the run is
 * interrupted. It knows nothing of what running a stage means (checking,
 * restoring, running a command, recording): that is the `run` callback's.
 *
 *   pending --every selected upstream ok, not stopped, a free slot--> running
 *   running --run() resolves true--> ok
 *   running --run() resolves false--> failed  (without keepGoing: stop)
 *   pending --an upstream failed or blocked--> blocked
 *   pending --stopped (first failure, abort, an error thrown)--> blocked, when the running ones settled
 *
 * Stopping never cancels a running stage: `run` is given the same signal and
 * decides itself; the scheduler waits for every stage it started before it
 * returns (or throws), so nothing runs on after it.
 */

/** What the scheduler reads of the DAG (graph.ts's `Dag` is one). */
export interface ScheduleGraph {
  /** Stage -> the stages it depends on. Every stage scheduled must have an entry. */
  upstream: ReadonlyMap<string, ReadonlySet<string>>;
}

/** How a stage ended: up to date (`ok`), `failed`, or not run (`blocked`). */
export type StageOutcome = 'ok' | 'failed' | 'blocked';

export interface ScheduleOptions {
  /** Stages at once, at least 1. */
  jobs: number;
  /** After a failure, go on with the stages that do not depend on it. */
  keepGoing?: boolean;
  /** Once aborted, no stage starts; those running are waited for. */
  signal?: AbortSignal;
}

export interface ScheduleResult {
  /** Every scheduled stage and how it ended. */
  outcomes: Map<string, StageOutcome>;
  /**
   * The stages not run, in the order they were given up: those with a failed
   * or blocked upstream as they were found, then, in dependency order, those
   * left when the run stopped.
   */
  blocked: string[];
}

/**
 * Runs `names` (a selection of the graph's stages) with `run`, which resolves
 * true when the stage ended up to date and false when it failed. A stage
 * starts once each of its upstream stages that is also selected is ok; an
 * upstream stage outside the selection counts as done. Among stages ready at
 * the same time, the one earlier in `names` starts first.
 *
 * An error thrown by `run` stops the run like a failure; it is rethrown once
 * the running stages have settled. A selection that names a stage the graph
 * lacks, depends on one, or forms a cycle is a bug of the caller (`buildDag`
 * refuses cycles): an Error, thrown before any stage starts.
 */
export async function schedule(graph: ScheduleGraph, names: readonly string[], run: (stage: string) => Promise<boolean>, opts: ScheduleOptions): Promise<ScheduleResult> {
  if (!(opts.jobs >= 1)) throw new RangeError(`schedule: jobs must be at least 1, not ${opts.jobs}`);
  const order = dependencyOrder(graph, names);
  const selected = new Set(order);
  const ups = new Map(order.map((n) => [n, [...graph.upstream.get(n)!].filter((u) => selected.has(u))]));
  const state = new Map<string, StageOutcome | 'pending' | 'running'>(order.map((n) => [n, 'pending']));
  const blocked: string[] = [];
  const running = new Map<string, Promise<void>>();
  let stop = false;
  let thrown: { error: unknown } | undefined;
  const start = async (n: string): Promise<void> => {
    let ok = false;
    try {
      ok = await run(n);
    } catch (error) {
      thrown ??= { error };
      stop = true;
    }
    state.set(n, ok ? 'ok' : 'failed');
    if (!ok && !opts.keepGoing) stop = true;
    running.delete(n);
  };
  // One pass over the stages after each settles: a stage that became ready starts, a stage
  // whose upstream failed is blocked (in dependency order, so its dependents are in the same pass).
  for (;;) {
    if (opts.signal?.aborted) stop = true;
    for (const n of order) {
      if (state.get(n) !== 'pending') continue;
      const u = ups.get(n)!.map((x) => state.get(x));
      if (u.some((s) => s === 'failed' || s === 'blocked')) {
        state.set(n, 'blocked');
        blocked.push(n);
        continue;
      }
      if (stop || running.size >= opts.jobs || u.some((s) => s !== 'ok')) continue;
      state.set(n, 'running');
      running.set(n, start(n));
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  if (thrown) throw thrown.error;
  for (const n of order) {
    if (state.get(n) === 'pending') {
      state.set(n, 'blocked');
      blocked.push(n);
    }
  }
  return { outcomes: state as Map<string, StageOutcome>, blocked };
}

/**
 * `names` with dependencies first, ties in the order given (Kahn's algorithm,
 * as graph.ts orders tdv.yaml); for a selection in DAG order, that order.
 * Checks what the loop above relies on: known stages, no repeats, no cycle.
 */
function dependencyOrder(graph: ScheduleGraph, names: readonly string[]): string[] {
  const selected = new Set<string>();
  for (const n of names) {
    const up = graph.upstream.get(n);
    if (!up) throw new Error(`bug: schedule: stage "${n}" is not in the graph`);
    if (selected.has(n)) throw new Error(`bug: schedule: stage "${n}" is named twice`);
    for (const u of up) if (!graph.upstream.has(u)) throw new Error(`bug: schedule: stage "${n}" depends on "${u}", which is not in the graph`);
    selected.add(n);
  }
  const order: string[] = [];
  const done = new Set<string>();
  const ready = (n: string) => [...graph.upstream.get(n)!].every((u) => done.has(u) || !selected.has(u));
  for (let progress = true; progress;) {
    progress = false;
    for (const n of names) {
      if (done.has(n) || !ready(n)) continue;
      done.add(n);
      order.push(n);
      progress = true;
    }
  }
  if (order.length < names.length) {
    const left = names.filter((n) => !done.has(n));
    throw new Error(`bug: schedule: the stages ${left.map((n) => `"${n}"`).join(', ')} cannot be ordered: they form a cycle or depend on one`);
  }
  return order;
}
