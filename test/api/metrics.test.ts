import { describe, expect, it } from 'vitest';
import { metricsDiff, metricsHistory, metricsShow, paramsDiff, paramsShow } from '../../src/repo/metrics.js';
import { reproduce } from '../../src/repo/repro.js';
import { git, write } from '../helpers/repo.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { bikeshareRepo, pipelineRepo } from '../helpers/pipeline.js';

/**
 * Porcelain layer: metrics and params read, compared and traced through
 * history by calling src/repo/metrics.ts directly; the values (flattened to
 * dotted keys) and the error codes are checked. The CLI's tables are tested
 * in test/cli/metrics.test.ts.
 */
const PIPELINE = 'stages:\n  train:\n    cmd: sh make.sh\n    deps: [make.sh]\n    params: [n]\n    metrics: [m.json]\n';
// acc follows the param n; loss.test stays.
const MAKE = 'n=$(sed -n "s/^n: //p" params.yaml)\nprintf \'{"acc": %s, "loss": {"test": 0.3}}\\n\' "$n" > m.json\n';

/** A committed pipeline run once with n = 0.5, tagged v1. */
async function trained(): Promise<string> {
  const dir = await pipelineRepo(PIPELINE, { 'make.sh': MAKE, 'params.yaml': 'n: 0.5\n' });
  expect((await withRepo(dir, (r) => reproduce(r))).ran).toEqual(['train']);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'n 0.5');
  await git(dir, 'tag', 'v1');
  return dir;
}

describe('metrics and params (API)', () => {
  it('show: the workspace values as leaves under dotted keys, by file', async () => {
    const dir = await trained();
    expect(await withRepo(dir, (r) => metricsShow(r))).toEqual({ 'm.json': { acc: 0.5, 'loss.test': 0.3 } });
    expect(await withRepo(dir, (r) => metricsShow(r, 'v1'))).toEqual({ 'm.json': { acc: 0.5, 'loss.test': 0.3 } });
    expect(await withRepo(dir, (r) => paramsShow(r))).toEqual({ 'params.yaml': { n: 0.5 } });
  });

  it('diff: a changed param, then the metrics it changed, between HEAD and the workspace and between two commits', async () => {
    const dir = await trained();
    write(dir, 'params.yaml', 'n: 0.75\n');
    expect(await withRepo(dir, (r) => paramsDiff(r))).toEqual([{ file: 'params.yaml', key: 'n', old: 0.5, new: 0.75, change: 0.25 }]);
    // Not rerun yet: the metrics are the same.
    expect(await withRepo(dir, (r) => metricsDiff(r))).toEqual([]);
    await withRepo(dir, (r) => reproduce(r));
    expect(await withRepo(dir, (r) => metricsDiff(r))).toEqual([{ file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 }]);
    expect(await withRepo(dir, (r) => metricsDiff(r, 'HEAD', undefined, { all: true }))).toEqual([
      { file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 },
      { file: 'm.json', key: 'loss.test', old: 0.3, new: 0.3, change: 0, unchanged: true },
    ]);
    await git(dir, 'commit', '-qam', 'n 0.75');
    expect(await withRepo(dir, (r) => metricsDiff(r, 'v1', 'HEAD'))).toEqual([{ file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 }]);
    expect(await withRepo(dir, (r) => paramsDiff(r, 'v1', 'HEAD'))).toEqual([{ file: 'params.yaml', key: 'n', old: 0.5, new: 0.75, change: 0.25 }]);
    expect(await withRepo(dir, (r) => metricsDiff(r, 'HEAD', 'HEAD'))).toEqual([]);
  });

  it('an unknown revision: UNKNOWN_REVISION', async () => {
    const dir = await trained();
    await rejectsWith(
      withRepo(dir, (r) => metricsDiff(r, 'no-such-rev')),
      'UNKNOWN_REVISION',
    );
    await rejectsWith(
      withRepo(dir, (r) => metricsShow(r, 'no-such-rev')),
      'UNKNOWN_REVISION',
    );
  });

  it('history: the named revisions in the order given; allCommits: each commit with metrics, newest first', async () => {
    const dir = await trained();
    const v1 = await git(dir, 'rev-parse', 'HEAD');
    write(dir, 'params.yaml', 'n: 0.75\n');
    await withRepo(dir, (r) => reproduce(r));
    await git(dir, 'commit', '-qam', 'n 0.75');
    const head = await git(dir, 'rev-parse', 'HEAD');
    const named = await withRepo(dir, (r) => metricsHistory(r, { revs: ['v1', 'HEAD'] }));
    expect(named.problems).toEqual([]);
    expect(named.commits.map((c) => [c.commit, c.label, c.subject, c.metrics])).toEqual([
      [v1, 'v1', 'n 0.5', { 'm.json': { acc: 0.5, 'loss.test': 0.3 } }],
      [head, 'HEAD', 'n 0.75', { 'm.json': { acc: 0.75, 'loss.test': 0.3 } }],
    ]);
    // The first commit (the pipeline without a run) has no metrics: left out.
    const all = await withRepo(dir, (r) => metricsHistory(r, { allCommits: true }));
    expect(all.commits.map((c) => [c.commit, c.metrics['m.json']?.acc])).toEqual([
      [head, 0.75],
      [v1, 0.5],
    ]);
  });

  it('params diff compares leaves, not dicts (a nested change is one key), against the params tdv.lock recorded at the revision', async () => {
    const dir = await pipelineRepo('stages:\n  s:\n    cmd: "true"\n    params: [foo]\n', { 'params.yaml': 'foo:\n  bar: 1\n  baz: 2\n' });
    // A revision's params are those its tdv.lock recorded.
    await withRepo(dir, (r) => reproduce(r));
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'run');
    write(dir, 'params.yaml', 'foo:\n  bar: 3\n  baz: 2\n');
    expect(await withRepo(dir, (r) => paramsDiff(r))).toEqual([{ file: 'params.yaml', key: 'foo.bar', old: 1, new: 3, change: 2 }]);
  });

  it('the bike-share pipeline: report metrics, and total sales following the price between two commits', async () => {
    const dir = await bikeshareRepo();
    await withRepo(dir, (r) => reproduce(r));
    const m = (await withRepo(dir, (r) => metricsShow(r)))['metrics/report.json']!;
    expect(m.days).toBe(31);
    expect(m['worst_days.0.date']).toBe('2024-07-30');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'price 4.25');
    await git(dir, 'tag', 'v1');
    write(dir, 'params.yaml', 'sales:\n  price: 5.25\n');
    expect(await withRepo(dir, (r) => paramsDiff(r))).toEqual([{ file: 'params.yaml', key: 'sales.price', old: 4.25, new: 5.25, change: 1 }]);
    await withRepo(dir, (r) => reproduce(r));
    await git(dir, 'commit', '-qam', 'price 5.25');
    const total = (await withRepo(dir, (r) => metricsDiff(r, 'v1', 'HEAD'))).find((c) => c.key === 'total_sales')!;
    expect(total.change).toBeCloseTo((total.old as number) * (5.25 / 4.25 - 1), 0);
  });
});
