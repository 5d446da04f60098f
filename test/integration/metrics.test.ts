import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { bikeshareRepo } from '../helpers/pipeline.js';

describe('tdv metrics and params across revisions', () => {
  it('metrics show, then metrics diff and params diff between a commit and the workspace, and between two commits', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const show = await tdv(dir, 'metrics', 'show', '--json');
    expect(show.code, show.stderr).toBe(0);
    const m = JSON.parse(show.stdout)['metrics/report.json'];
    expect(m.days).toBe(31);
    expect(m['worst_days.0.date']).toBe('2024-07-30');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'price 4.25');
    await git(dir, 'tag', 'v1');

    write(dir, 'params.yaml', 'sales:\n  price: 5.25\n');
    const p = await tdv(dir, 'params', 'diff', '--json');
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toEqual([{ file: 'params.yaml', key: 'sales.price', old: 4.25, new: 5.25, change: 1 }]);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const d = await tdv(dir, 'metrics', 'diff');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^path:key\s+HEAD\s+workspace\s+change$/m);
    expect(d.stdout).toMatch(/^metrics\/report\.json:total_sales\s+\d+(\.\d+)?\s+\d+(\.\d+)?\s+\+\d+/m);
    await git(dir, 'commit', '-qam', 'price 5.25');
    const between = JSON.parse((await tdv(dir, 'metrics', 'diff', 'v1', 'HEAD', '--json')).stdout);
    const total = between.find((c: { key: string }) => c.key === 'total_sales');
    expect(total.change).toBeCloseTo(total.old * (5.25 / 4.25 - 1), 0);
    expect((await tdv(dir, 'params', 'diff', 'v1', 'HEAD')).stdout).toMatch(/params\.yaml:sales\.price\s+4\.25\s+5\.25\s+\+1/);
    expect((await tdv(dir, 'metrics', 'diff', 'HEAD', 'HEAD')).stdout.trim()).toBe('No metrics changed between HEAD and HEAD.');
    const bad = await tdv(dir, 'metrics', 'diff', 'no-such-rev');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('no-such-rev');
  });
});
