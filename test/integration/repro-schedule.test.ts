import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TdvError } from '../../src/errors.js';
import { type ReproEvent, reproduce } from '../../src/repo/repro.js';
import { Repo } from '../../src/repo/repo.js';
import type { RunResult, RunSpec, StageRunner } from '../../src/stages/runner.js';
import { newRepo } from '../helpers/expect.js';
import { read, write } from '../helpers/repo.js';

/**
 * A local runner that does in-process what each stage's command says: the
 * command is the stage's name, and `outs` (written here) or an exit code come
 * from the table. Stages listed in `held` wait until the test releases them.
 */
class FakeRunner implements StageRunner {
  readonly kind = 'local' as const;
  readonly started: string[] = [];
  private readonly waiting = new Map<string, () => void>();
  private readonly arrived = new Map<string, () => void>();

  constructor(
    private readonly root: string,
    private readonly plan: Record<string, { outs?: string[]; exit?: number }>,
    private readonly held = new Set<string>(),
  ) {}

  async run(spec: RunSpec): Promise<RunResult> {
    this.started.push(spec.stage);
    this.arrived.get(spec.stage)?.();
    if (this.held.has(spec.stage)) await new Promise<void>((r) => this.waiting.set(spec.stage, r));
    const p = this.plan[spec.stage]!;
    for (const o of p.outs ?? []) fs.writeFileSync(path.join(this.root, o), `${spec.stage}\n`);
    return { exitCode: p.exit ?? 0 };
  }

  /** Resolves once `stage` started. */
  started$(stage: string): Promise<void> {
    return this.started.includes(stage) ? Promise.resolve() : new Promise((r) => this.arrived.set(stage, r));
  }

  release(stage: string): void {
    this.waiting.get(stage)!();
  }
}

const settled = (events: ReproEvent[]) => events.filter((e) => ['skip', 'restored', 'done', 'failed'].includes(e.type)).map((e) => `${e.type} ${'stage' in e ? e.stage : ''}`);

describe('reproduce() over the scheduler', () => {
  // a fails; b reads a's output; c and d (after c) do not depend on a.
  const PIPELINE =
    'stages:\n  a:\n    cmd: a\n    outs: [a.txt]\n  b:\n    cmd: b\n    deps: [a.txt]\n    outs: [b.txt]\n  c:\n    cmd: c\n    outs: [c.txt]\n  d:\n    cmd: d\n    deps: [c.txt]\n    outs: [d.txt]\n';
  const PLAN = { a: { exit: 2 }, b: { outs: ['b.txt'] }, c: { outs: ['c.txt'] }, d: { outs: ['d.txt'] } };

  it('stops at the first failure: what depends on it, and what was not started, are blocked', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE);
    const runner = new FakeRunner(dir, PLAN);
    const events: ReproEvent[] = [];
    const res = await reproduce(await Repo.open(dir), { jobs: 1, runCache: false, runners: { local: runner }, onEvent: (e) => events.push(e) });
    expect(runner.started).toEqual(['a']);
    expect(res.failed.map((f) => f.stage)).toEqual(['a']);
    expect(res.failed[0]!.error).toContain('stage "a" failed: exit code 2');
    expect(res.blocked).toEqual(['b', 'c', 'd']);
    expect(res.ran).toEqual([]);
    expect(settled(events)).toEqual(['failed a']);
  });

  it('with keepGoing, runs the independent branch and records it', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE);
    const runner = new FakeRunner(dir, PLAN);
    const events: ReproEvent[] = [];
    const res = await reproduce(await Repo.open(dir), { jobs: 1, keepGoing: true, runCache: false, runners: { local: runner }, onEvent: (e) => events.push(e) });
    expect(runner.started).toEqual(['a', 'c', 'd']);
    expect(res.ran).toEqual(['c', 'd']);
    expect(res.blocked).toEqual(['b']);
    expect(settled(events)).toEqual(['failed a', 'done c', 'done d']);
    const lock = read(dir, 'tdv.lock');
    expect(lock).toMatch(/^ {2}c:$/m);
    expect(lock).toMatch(/^ {2}d:$/m);
    expect(lock).not.toMatch(/^ {2}[ab]:$/m);
  });

  it('an error a stage throws (its metrics path is a directory) is reported once the stage running beside it finished and was recorded', async () => {
    const dir = await newRepo();
    fs.mkdirSync(path.join(dir, 'results'));
    write(dir, 'results/keep.txt', 'user data\n');
    write(dir, 'tdv.yaml', 'stages:\n  slow:\n    cmd: slow\n    outs: [s.txt]\n  bad:\n    cmd: bad\n    metrics: [results]\n');
    const runner = new FakeRunner(dir, { slow: { outs: ['s.txt'] }, bad: {} }, new Set(['slow']));
    let rejected = false;
    const run = reproduce(await Repo.open(dir), { jobs: 2, runCache: false, runners: { local: runner } });
    run.catch(() => (rejected = true));
    await runner.started$('slow');
    // bad throws NOT_A_FILE before its command; reproduce must not return while slow still runs.
    await new Promise((r) => setTimeout(r, 200));
    expect(rejected).toBe(false);
    runner.release('slow');
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TdvError);
    expect((err as TdvError).code).toBe('NOT_A_FILE');
    expect(read(dir, 'tdv.lock')).toMatch(/^ {2}slow:$/m);
    expect(read(dir, 'results/keep.txt')).toBe('user data\n');
    expect(runner.started).toEqual(['slow']);
  });
});
