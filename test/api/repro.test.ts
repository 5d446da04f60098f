import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tripsCsv } from '../../fixtures/bikeshare/generate.mjs';
import { checkout } from '../../src/repo/checkout.js';
import { pull } from '../../src/repo/pull.js';
import { push } from '../../src/repo/push.js';
import { type ReproEvent, type ReproOptions, type ReproResult, reproduce } from '../../src/repo/repro.js';
import { status } from '../../src/repo/status.js';
import { git, read, write } from '../helpers/repo.js';
import { isReadOnly, newDir, newRepo, objPath, sha } from '../helpers/expect.js';
import { expectClean, rejectsWith, withRepo } from '../helpers/api.js';
import { bikeshareRepo } from '../helpers/pipeline.js';

/**
 * Porcelain layer: `reproduce` called directly, its ReproResult (ran,
 * restored, skipped, failed, blocked, plan) and its events checked. How the
 * CLI words them ("running ...", the summary, failures) is tested once, in
 * test/cli/repro.test.ts.
 */
async function repro(dir: string, opts: ReproOptions = {}): Promise<ReproResult & { events: ReproEvent[] }> {
  const events: ReproEvent[] = [];
  const res = await withRepo(dir, (r) => reproduce(r, { ...opts, onEvent: (e) => events.push(e) }));
  return { ...res, events };
}
/** The reasons each started stage was run for, in start order. */
const started = (events: ReproEvent[]) => events.flatMap((e) => (e.type === 'start' ? [[e.stage, e.reasons] as const] : []));

describe('reproduce (API): local stages', () => {
  it('first run executes every stage in order, caches outputs and records tdv.lock', async () => {
    const dir = await bikeshareRepo();
    const res = await repro(dir);
    expect(res).toMatchObject({ ran: ['sales', 'join', 'report'], restored: [], skipped: [], failed: [], blocked: [], updated: [] });
    expect(started(res.events).map(([s]) => s)).toEqual(['sales', 'join', 'report']);
    const report = JSON.parse(read(dir, 'metrics/report.json'));
    expect(report.worst_days.map((d: { date: string }) => d.date)).toEqual(['2024-07-30', '2024-07-31']);
    const lock = read(dir, 'tdv.lock');
    expect(lock).toContain('cmd: sh scripts/sales.sh data/trips params.yaml out/sales.csv');
    expect(lock).toContain(`sha256: ${sha(read(dir, 'out/sales.csv'))}`);
    expect(lock).toContain('sales.price: 4.25');
    expect(fs.existsSync(objPath(dir, sha(read(dir, 'out/joined.csv'))))).toBe(true);
    expect(read(dir, 'out/.gitignore')).toContain('/sales.csv');
    expect(fs.existsSync(path.join(dir, '.tdv', 'logs', 'sales.log'))).toBe(true);
  });

  it('the first run leaves a committed .tdv/.gitignore as init wrote it', async () => {
    const dir = await bikeshareRepo();
    const before = read(dir, '.tdv/.gitignore');
    await repro(dir);
    expect(read(dir, '.tdv/.gitignore')).toBe(before);
    expect(await git(dir, 'status', '--porcelain', '--', '.tdv')).toBe('');
  });

  it('a second run skips every stage and rewrites nothing', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    const before = read(dir, 'tdv.lock');
    expect(await repro(dir)).toMatchObject({ ran: [], restored: [], skipped: ['sales', 'join', 'report'], failed: [] });
    expect(read(dir, 'tdv.lock')).toBe(before);
  });

  it('changing one day of trips: dry plans the stages downstream of it, with reasons; the run runs them', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    write(dir, 'data/trips/2024-07-31.csv', tripsCsv(31, 90));
    const dry = await repro(dir, { dry: true });
    expect(dry.plan).toEqual([
      { stage: 'sales', reasons: ['deps changed: data/trips'] },
      { stage: 'join', reasons: ['upstream will run: sales'] },
      { stage: 'report', reasons: ['upstream will run: join'] },
    ]);
    expect(dry.ran).toEqual([]);
    expect((await repro(dir)).ran).toEqual(['sales', 'join', 'report']);
  });

  it('a change that does not alter an output stops the rerun there', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    // Same script behaviour, different bytes: sales reruns, produces the same output, join is skipped.
    fs.appendFileSync(path.join(dir, 'scripts/sales.sh'), '# a comment\n');
    expect(await repro(dir)).toMatchObject({ ran: ['sales'], skipped: ['join', 'report'] });
  });

  it('a changed param reruns its stage, giving the param as the reason', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    write(dir, 'params.yaml', 'sales:\n  price: 5.00\n');
    expect(started((await repro(dir)).events)[0]).toEqual(['sales', ['params changed: sales.price']]);
    expect(read(dir, 'tdv.lock')).toContain('sales.price: 5');
  });

  it('restores outputs from the run-cache after a revert instead of rerunning; runCache: false runs', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    const v1 = read(dir, 'out/sales.csv');
    write(dir, 'params.yaml', 'sales:\n  price: 5.00\n');
    await repro(dir);
    write(dir, 'params.yaml', 'sales:\n  price: 4.25   # dollars per trip\n');
    const res = await repro(dir);
    expect(res).toMatchObject({ ran: [], restored: ['sales', 'join', 'report'] });
    expect(read(dir, 'out/sales.csv')).toBe(v1);
    const noCache = await repro(dir, { force: true, stages: ['sales'], runCache: false });
    expect(noCache.ran).toEqual(['sales']);
    expect(started(noCache.events)).toEqual([['sales', ['forced']]]);
  });

  it('a stage that fails stops what depends on it (blocked); keepGoing runs independent stages', async () => {
    const dir = await newRepo();
    write(
      dir,
      'tdv.yaml',
      'stages:\n  bad:\n    cmd: echo boom >&2; exit 3\n    outs: [a.txt]\n  after:\n    cmd: cp a.txt b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n  other:\n    cmd: echo ok > c.txt\n    outs: [c.txt]\n',
    );
    const res = await repro(dir, { jobs: 1 });
    expect(res.failed).toEqual([{ stage: 'bad', error: expect.stringContaining('exit code 3'), log: expect.any(String) }]);
    expect(res.blocked).toContain('after');
    expect(res.events.find((e) => e.type === 'failed')).toMatchObject({ stage: 'bad', logTail: ['boom'] });
    const k = await repro(dir, { keepGoing: true, jobs: 1 });
    expect(k.failed.map((f) => f.stage)).toEqual(['bad']);
    expect(k.ran).toEqual(['other']);
    expect(k.blocked).toEqual(['after']);
    expect(read(dir, 'c.txt')).toBe('ok\n');
    expect(read(dir, 'tdv.lock')).toContain('other:');
    expect(read(dir, 'tdv.lock')).not.toContain('bad:');
  });

  it('a stage that does not produce a declared output fails, and nothing is recorded', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  lazy:\n    cmd: "true"\n    outs: [never.txt]\n');
    const res = await repro(dir);
    expect(res.failed).toEqual([{ stage: 'lazy', error: expect.stringContaining('never.txt'), log: expect.any(String) }]);
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });

  it('outputs of stages are reported by status and checked out like tracked data', async () => {
    const dir = await bikeshareRepo();
    await repro(dir);
    fs.rmSync(path.join(dir, 'out'), { recursive: true });
    const st = await withRepo(dir, (r) => status(r));
    expect(st.data.filter((d) => d.workspace === 'deleted').map((d) => [d.path, d.pointer])).toEqual([
      ['out/joined.csv', 'tdv.lock'],
      ['out/sales.csv', 'tdv.lock'],
    ]);
    expect((await withRepo(dir, (r) => checkout(r))).missing).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'out/joined.csv'))).toBe(true);
    expect(isReadOnly(path.join(dir, 'out/joined.csv'))).toBe(false);
  });

  it('status lists the stages that would run and why; clean after repro', async () => {
    const dir = await bikeshareRepo();
    expect((await withRepo(dir, (r) => status(r))).stages).toEqual([
      { name: 'sales', reasons: ['never run'] },
      { name: 'join', reasons: ['never run'] },
      { name: 'report', reasons: ['never run'] },
    ]);
    await repro(dir);
    await expectClean(dir);
    write(dir, 'params.yaml', 'sales:\n  price: 1\n');
    expect((await withRepo(dir, (r) => status(r))).stages).toEqual([
      { name: 'sales', reasons: ['params changed: sales.price'] },
      { name: 'join', reasons: ['upstream changed: sales'] },
      { name: 'report', reasons: ['upstream changed: join'] },
    ]);
  });

  it('only the named stage and its upstream run; downstream runs what follows; an unknown stage is USAGE', async () => {
    const dir = await bikeshareRepo();
    expect((await repro(dir, { stages: ['join'] })).ran).toEqual(['sales', 'join']);
    expect((await repro(dir, { stages: ['join'], downstream: true, force: true })).ran).toEqual(['join', 'report']);
    await rejectsWith(repro(dir, { stages: ['nope'] }), 'USAGE');
  });

  it('without tdv.yaml: NO_PIPELINE', async () => {
    await rejectsWith(repro(await newRepo()), 'NO_PIPELINE');
  });
});

describe('reproduce (API): the run-cache travels with push/pull runCache', () => {
  it('a teammate restores a run made elsewhere instead of rerunning it', async () => {
    const dir = await bikeshareRepo();
    const remote = newDir();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
    await repro(dir);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'pipeline at 4.25');
    // An experiment that is never committed, but its run is published.
    write(dir, 'params.yaml', 'sales:\n  price: 6.00\n');
    await repro(dir);
    const experiment = read(dir, 'out/sales.csv');
    const p = await withRepo(dir, (r) => push(r, { runCache: true }));
    expect(p.failed).toEqual([]);
    expect(p.runs).toBe(6);

    const b = path.join(newDir(), 'clone');
    await git(path.dirname(b), 'clone', '-q', dir, b);
    const pulled = await withRepo(b, (r) => pull(r, { runCache: true }));
    expect(pulled.fetch.runs).toBe(6);
    write(b, 'params.yaml', 'sales:\n  price: 6.00\n');
    expect(await repro(b)).toMatchObject({ ran: [], restored: ['sales', 'join', 'report'], failed: [] });
    expect(read(b, 'out/sales.csv')).toBe(experiment);
  });
});
