import { describe, expect, it } from 'vitest';
import { buildDag } from '../../src/stages/graph.js';
import type { Pipeline, Stage } from '../../src/stages/load.js';
import { schedule, type ScheduleGraph } from '../../src/stages/schedule.js';

/** A graph from `stage: [the stages it depends on]`. */
function graph(edges: Record<string, string[]>): ScheduleGraph {
  return { upstream: new Map(Object.entries(edges).map(([n, ups]) => [n, new Set(ups)])) };
}

/** Lets the scheduler react to what settled (its loop runs on promise callbacks only). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/**
 * A `run` callback whose stages end when the test says so: what started, in
 * which order, and how many ran at once at most.
 */
class Stages {
  readonly started: string[] = [];
  readonly running = new Set<string>();
  maxRunning = 0;
  private readonly ends = new Map<string, (r: boolean | Error) => void>();

  readonly run = (n: string): Promise<boolean> => {
    this.started.push(n);
    this.running.add(n);
    this.maxRunning = Math.max(this.maxRunning, this.running.size);
    return new Promise<boolean>((resolve, reject) => {
      this.ends.set(n, (r) => {
        this.running.delete(n);
        this.ends.delete(n);
        if (r instanceof Error) reject(r);
        else resolve(r);
      });
    });
  };

  /** Ends a running stage: true ok, false failed, an Error thrown. */
  async end(n: string, r: boolean | Error = true): Promise<void> {
    const end = this.ends.get(n);
    if (!end) throw new Error(`${n} is not running (running: ${[...this.running].join(', ')})`);
    end(r);
    await settle();
  }
}

/** Whether a promise has settled yet. */
function watch<T>(p: Promise<T>): { done: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { done: () => done };
}

describe('schedule: dependency order', () => {
  // a -> b, a -> c, {b, c} -> d
  const diamond = graph({ a: [], b: ['a'], c: ['a'], d: ['b', 'c'] });

  it('starts a stage only once every upstream stage is ok', async () => {
    const s = new Stages();
    const res = schedule(diamond, ['a', 'b', 'c', 'd'], s.run, { jobs: 4 });
    await settle();
    expect(s.started).toEqual(['a']);
    await s.end('a');
    expect(s.started).toEqual(['a', 'b', 'c']);
    await s.end('c');
    expect(s.started).toEqual(['a', 'b', 'c']); // d still waits for b
    await s.end('b');
    expect(s.started).toEqual(['a', 'b', 'c', 'd']);
    await s.end('d');
    const { outcomes, blocked } = await res;
    expect(Object.fromEntries(outcomes)).toEqual({ a: 'ok', b: 'ok', c: 'ok', d: 'ok' });
    expect(blocked).toEqual([]);
  });

  it('starts ready stages in the order given (ties), and orders a selection that is not in dependency order', async () => {
    const s = new Stages();
    const res = schedule(graph({ x: [], y: [], z: [] }), ['z', 'x', 'y'], s.run, { jobs: 1 });
    for (const n of ['z', 'x', 'y']) {
      await settle();
      await s.end(n);
    }
    await res;
    expect(s.started).toEqual(['z', 'x', 'y']);
    const t = new Stages();
    const res2 = schedule(graph({ a: [], b: ['a'] }), ['b', 'a'], t.run, { jobs: 2 });
    await settle();
    expect(t.started).toEqual(['a']);
    await t.end('a');
    await t.end('b');
    expect(Object.fromEntries((await res2).outcomes)).toEqual({ a: 'ok', b: 'ok' });
  });

  it('counts an upstream stage outside the selection as done', async () => {
    const s = new Stages();
    const res = schedule(graph({ a: [], b: ['a'], c: ['b'] }), ['b', 'c'], s.run, { jobs: 2 });
    await settle();
    expect(s.started).toEqual(['b']);
    await s.end('b');
    await s.end('c');
    expect([...(await res).outcomes.keys()]).toEqual(['b', 'c']);
  });

  it("takes graph.ts's Dag as it is", async () => {
    const stage = (name: string, deps: string[], outs: string[]) => ({ name, cmd: 'true', deps, params: [], outs, metrics: [], env: {}, wdir: '.', where: 'tdv.yaml', origins: new Map() }) as Stage;
    const p: Pipeline = { file: 'tdv.yaml', stages: new Map([stage('report', ['t.csv'], ['r.md']), stage('table', [], ['t.csv'])].map((st) => [st.name, st])) };
    const dag = buildDag(p);
    const order: string[] = [];
    await schedule(dag, dag.order, async (n) => (order.push(n), true), { jobs: 8 });
    expect(order).toEqual(['table', 'report']);
  });
});

describe('schedule: -j', () => {
  it('never runs more than jobs stages at once, and uses them all when enough are ready', async () => {
    // 12 stages: 0-8 independent, 9 after 0-2, 10 after 9, 11 after 3; they end after 1-3 timer turns.
    const edges: Record<string, string[]> = {};
    for (let i = 0; i < 12; i++) edges[`s${i}`] = i === 9 ? ['s0', 's1', 's2'] : i === 10 ? ['s9'] : i === 11 ? ['s3'] : [];
    for (const jobs of [1, 2, 3, 5]) {
      let now = 0;
      let max = 0;
      const ran: string[] = [];
      const run = async (n: string) => {
        max = Math.max(max, ++now);
        for (let t = 1 + (Number(n.slice(1)) % 3); t > 0; t--) await new Promise((r) => setTimeout(r, 0));
        now--;
        ran.push(n);
        return true;
      };
      const { outcomes } = await schedule(graph(edges), Object.keys(edges), run, { jobs });
      expect(max, `jobs ${jobs}`).toBe(jobs);
      expect(ran.sort()).toEqual(Object.keys(edges).sort());
      expect([...outcomes.values()].every((o) => o === 'ok')).toBe(true);
    }
  });

  it('starts the next stage as soon as a slot is free, not when the whole batch ended', async () => {
    const s = new Stages();
    const res = schedule(graph({ a: [], b: [], c: [], d: [] }), ['a', 'b', 'c', 'd'], s.run, { jobs: 2 });
    await settle();
    expect(s.started).toEqual(['a', 'b']);
    await s.end('b');
    expect(s.started).toEqual(['a', 'b', 'c']);
    expect(s.running).toEqual(new Set(['a', 'c']));
    await s.end('a');
    await s.end('c');
    await s.end('d');
    await res;
    expect(s.maxRunning).toBe(2);
  });

  it('refuses fewer than one job', async () => {
    await expect(schedule(graph({ a: [] }), ['a'], async () => true, { jobs: 0 })).rejects.toThrow(RangeError);
  });
});

describe('schedule: failures', () => {
  // a -> b -> c, d -> e, given so that the independent branch comes between.
  const twoBranches = graph({ a: [], b: ['a'], c: ['b'], d: [], e: ['d'] });
  const names = ['a', 'd', 'b', 'e', 'c'];

  it('without keepGoing, starts nothing after the first failure: dependents blocked first, then what was left', async () => {
    const s = new Stages();
    const res = schedule(twoBranches, names, s.run, { jobs: 1 });
    await settle();
    await s.end('a', false);
    const { outcomes, blocked } = await res;
    expect(s.started).toEqual(['a']);
    expect(blocked).toEqual(['b', 'c', 'd', 'e']);
    expect(Object.fromEntries(outcomes)).toEqual({ a: 'failed', b: 'blocked', c: 'blocked', d: 'blocked', e: 'blocked' });
  });

  it('without keepGoing, waits for the stages already running and keeps their outcome', async () => {
    const s = new Stages();
    const res = schedule(twoBranches, names, s.run, { jobs: 2 });
    const w = watch(res);
    await settle();
    expect(s.started).toEqual(['a', 'd']);
    await s.end('a', false);
    expect(w.done()).toBe(false);
    await s.end('d');
    const { outcomes, blocked } = await res;
    expect(s.started).toEqual(['a', 'd']); // e was ready once d ended, but the run had stopped
    expect(Object.fromEntries(outcomes)).toEqual({ a: 'failed', b: 'blocked', c: 'blocked', d: 'ok', e: 'blocked' });
    expect(blocked).toEqual(['b', 'c', 'e']);
  });

  it('with keepGoing, runs the independent branch and blocks everything downstream of the failure', async () => {
    const s = new Stages();
    const res = schedule(twoBranches, names, s.run, { jobs: 1, keepGoing: true });
    await settle();
    await s.end('a', false);
    expect(s.started).toEqual(['a', 'd']);
    await s.end('d');
    await s.end('e');
    const { outcomes, blocked } = await res;
    expect(s.started).toEqual(['a', 'd', 'e']);
    expect(Object.fromEntries(outcomes)).toEqual({ a: 'failed', b: 'blocked', c: 'blocked', d: 'ok', e: 'ok' });
    expect(blocked).toEqual(['b', 'c']);
  });

  it('with keepGoing, a stage with one failed and one ok upstream is blocked', async () => {
    const s = new Stages();
    const res = schedule(graph({ x: [], y: [], z: ['x', 'y'] }), ['x', 'y', 'z'], s.run, { jobs: 2, keepGoing: true });
    await settle();
    await s.end('y');
    await s.end('x', false);
    const { outcomes } = await res;
    expect(s.started).toEqual(['x', 'y']);
    expect(outcomes.get('z')).toBe('blocked');
  });

  it('an error thrown by run stops the run and is rethrown once the running stages settled', async () => {
    const s = new Stages();
    const res = schedule(twoBranches, names, s.run, { jobs: 2, keepGoing: true });
    const w = watch(res);
    await settle();
    const boom = new Error('boom');
    await s.end('a', boom);
    expect(w.done()).toBe(false); // d still runs
    expect(s.started).toEqual(['a', 'd']);
    await s.end('d');
    await expect(res).rejects.toBe(boom);
    expect(s.started).toEqual(['a', 'd']); // keepGoing does not go on after an error
  });
});

describe('schedule: abort', () => {
  it('starts no stage once aborted, and waits for the running ones', async () => {
    const s = new Stages();
    const ac = new AbortController();
    const res = schedule(graph({ a: [], b: [], c: [], d: ['a'] }), ['a', 'b', 'c', 'd'], s.run, { jobs: 2, signal: ac.signal });
    const w = watch(res);
    await settle();
    expect(s.started).toEqual(['a', 'b']);
    ac.abort();
    await s.end('a');
    expect(w.done()).toBe(false);
    expect(s.started).toEqual(['a', 'b']); // c had a free slot, d a finished upstream
    await s.end('b');
    const { outcomes, blocked } = await res;
    expect(Object.fromEntries(outcomes)).toEqual({ a: 'ok', b: 'ok', c: 'blocked', d: 'blocked' });
    expect(blocked).toEqual(['c', 'd']);
  });

  it('runs nothing when aborted before it starts', async () => {
    const ac = new AbortController();
    ac.abort();
    const ran: string[] = [];
    const { blocked } = await schedule(graph({ a: [], b: ['a'] }), ['a', 'b'], async (n) => (ran.push(n), true), { jobs: 1, signal: ac.signal });
    expect(ran).toEqual([]);
    expect(blocked).toEqual(['a', 'b']);
  });

  it('a stage that fails because it was interrupted blocks its dependents like any failure, even with keepGoing', async () => {
    const s = new Stages();
    const ac = new AbortController();
    const res = schedule(graph({ a: [], b: ['a'], c: [] }), ['a', 'b', 'c'], s.run, { jobs: 1, keepGoing: true, signal: ac.signal });
    await settle();
    ac.abort();
    await s.end('a', false);
    const { outcomes, blocked } = await res;
    expect(s.started).toEqual(['a']);
    expect(blocked).toEqual(['b', 'c']);
    expect(outcomes.get('a')).toBe('failed');
  });
});

describe('schedule: a selection it cannot order is a bug, refused before anything runs', () => {
  const never = async (n: string): Promise<boolean> => {
    throw new Error(`ran ${n}`);
  };

  it('a cycle, naming the stages in it and after it', async () => {
    const g = graph({ a: ['b'], b: ['a'], c: ['b'], free: [] });
    await expect(schedule(g, ['free', 'a', 'b', 'c'], never, { jobs: 1 })).rejects.toThrow(/"a", "b", "c" cannot be ordered: they form a cycle/);
    // A stage reading its own output.
    await expect(schedule(graph({ s: ['s'] }), ['s'], never, { jobs: 1 })).rejects.toThrow(/"s" cannot be ordered/);
  });

  it('an unknown stage, an unknown dependency, a stage named twice', async () => {
    const g = graph({ a: [], b: ['ghost'] });
    await expect(schedule(g, ['a', 'nope'], never, { jobs: 1 })).rejects.toThrow('stage "nope" is not in the graph');
    await expect(schedule(g, ['b'], never, { jobs: 1 })).rejects.toThrow('stage "b" depends on "ghost", which is not in the graph');
    await expect(schedule(g, ['a', 'a'], never, { jobs: 1 })).rejects.toThrow('stage "a" is named twice');
  });
});
