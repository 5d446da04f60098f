import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError } from '../helpers/expect.js';
import { pipelineRepo } from '../helpers/pipeline.js';

/**
 * CLI layer: how `tdv metrics` and `tdv params` print values and diffs
 * (lists, tables, Markdown, --json), in one place. The values themselves are
 * tested through the API, in test/api/metrics.test.ts; the formats metrics
 * may be written in, in test/integration/metrics-formats.test.ts.
 */
const PIPELINE = 'stages:\n  train:\n    cmd: sh make.sh\n    deps: [make.sh]\n    params: [n]\n    metrics: [m.json]\n';
const MAKE = 'n=$(sed -n "s/^n: //p" params.yaml)\nprintf \'{"acc": %s, "loss": {"test": 0.3}}\\n\' "$n" > m.json\n';

/** Run with n = 0.5 and committed as v1; then n = 0.75 in the workspace, run again. */
async function twoRuns(): Promise<string> {
  const dir = await pipelineRepo(PIPELINE, { 'make.sh': MAKE, 'params.yaml': 'n: 0.5\n' });
  expect((await tdv(dir, 'repro')).code).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'n 0.5');
  await git(dir, 'tag', 'v1');
  write(dir, 'params.yaml', 'n: 0.75\n');
  expect((await tdv(dir, 'repro')).code).toBe(0);
  return dir;
}

describe('tdv metrics / params: output', () => {
  it('show: each file, its dotted keys and values indented below', async () => {
    const dir = await twoRuns();
    expect(await tdv(dir, 'metrics', 'show')).toEqual({ code: 0, stdout: 'm.json:\n    acc: 0.75\n    loss.test: 0.3\n', stderr: '' });
    expect(await tdv(dir, 'params', 'show')).toEqual({ code: 0, stdout: 'params.yaml:\n    n: 0.75\n', stderr: '' });
    const j = await tdv(dir, 'metrics', 'show', '--json');
    expect(JSON.parse(j.stdout)).toEqual({ 'm.json': { acc: 0.75, 'loss.test': 0.3 } });
  });

  it('diff: a table "path:key  A  B  change", named by the revisions; --md as Markdown', async () => {
    const dir = await twoRuns();
    expect(await tdv(dir, 'metrics', 'diff')).toEqual({ code: 0, stdout: 'path:key    HEAD  workspace  change\nm.json:acc  0.5   0.75       +0.25\n', stderr: '' });
    expect((await tdv(dir, 'params', 'diff')).stdout).toBe('path:key       HEAD  workspace  change\nparams.yaml:n  0.5   0.75       +0.25\n');
    expect((await tdv(dir, 'metrics', 'diff', '--md')).stdout).toBe('| path:key | HEAD | workspace | change |\n| --- | --- | --- | --- |\n| m.json:acc | 0.5 | 0.75 | +0.25 |\n');
    await git(dir, 'commit', '-qam', 'n 0.75');
    expect((await tdv(dir, 'params', 'diff', 'v1', 'HEAD')).stdout).toBe('path:key       v1   HEAD  change\nparams.yaml:n  0.5  0.75  +0.25\n');
    const j = await tdv(dir, 'metrics', 'diff', 'v1', 'HEAD', '--json');
    expect(JSON.parse(j.stdout)).toEqual([{ file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 }]);
  });

  it('no change: "No metrics changed between A and B." (and params)', async () => {
    const dir = await twoRuns();
    expect((await tdv(dir, 'metrics', 'diff', 'HEAD', 'HEAD')).stdout).toBe('No metrics changed between HEAD and HEAD.\n');
    expect((await tdv(dir, 'params', 'diff', 'HEAD', 'HEAD')).stdout).toBe('No params changed between HEAD and HEAD.\n');
  });

  it('an unknown revision: exit 2, one error line naming it', async () => {
    const dir = await twoRuns();
    const r = await tdv(dir, 'metrics', 'diff', 'no-such-rev');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown revision "no-such-rev"');
  });
});
