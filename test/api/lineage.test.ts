import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lineage } from '../../src/repo/lineage.js';
import { reproduce } from '../../src/repo/repro.js';
import { git, write } from '../helpers/repo.js';
import { sha } from '../helpers/expect.js';
import { rejectsWith, track, withRepo } from '../helpers/api.js';
import { pipelineRepo } from '../helpers/pipeline.js';

/**
 * Porcelain layer: `lineage` walks tdv.lock (workspace or a revision) from an
 * output back to the data and code that made it, or with `reverse` forward to
 * what depends on a path; statuses compare each recorded dep hash with what
 * its producer or source records. Rendering is in test/cli/lineage.test.ts.
 */
const PIPELINE = `stages:
  features:
    cmd: sh f.sh
    deps: [data/raw.csv, f.sh]
    outs: [feats]
  train:
    cmd: cp feats/a.csv model.bin
    deps: [feats/a.csv]
    params: [lr]
    outs: [model.bin]
  report:
    cmd: cp model.bin report.txt
    deps: [model.bin]
    outs: [report.txt]
`;
const F_SH = 'mkdir -p feats && cp data/raw.csv feats/a.csv && echo b > feats/b.csv\n';

/** data/raw.csv tracked, f.sh in Git, the three stages run and committed. */
async function built(): Promise<string> {
  const dir = await pipelineRepo(PIPELINE, { 'f.sh': F_SH, 'params.yaml': 'lr: 0.1\n' });
  write(dir, 'data/raw.csv', 'x,1\n');
  await track(dir, 'data/raw.csv');
  expect((await withRepo(dir, (r) => reproduce(r))).ran).toEqual(['features', 'train', 'report']);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'run');
  return dir;
}

const of = (dir: string, rel: string, more: Omit<Parameters<typeof lineage>[1], 'target'> = {}) => withRepo(dir, (r) => lineage(r, { target: path.join(dir, rel), ...more }));

describe('lineage (API)', () => {
  it('an output: every stage back to the tracked data and the Git script, with commits, all fresh', async () => {
    const dir = await built();
    const head = (await git(dir, 'rev-parse', 'HEAD')).trim();
    const res = await of(dir, 'report.txt');
    expect(res).toMatchObject({ target: 'report.txt', direction: 'up', kind: 'output', producers: ['report'], rev: null, commit: null, truncated: false, status: 'fresh' });
    expect(res.stages.map((s) => [s.name, s.level, s.status])).toEqual([
      ['report', 1, 'fresh'],
      ['train', 2, 'fresh'],
      ['features', 3, 'fresh'],
    ]);
    const train = res.stages[1]!;
    expect(train.cmd).toBe('cp feats/a.csv model.bin');
    expect(train.params).toEqual({ 'params.yaml': { lr: 0.1 } });
    // A file inside an output directory: compared with the directory manifest's entry.
    expect(train.deps).toEqual([{ path: 'feats/a.csv', sha256: sha('x,1\n'), size: 4, kind: 'output', producers: ['features'], current: sha('x,1\n'), status: 'fresh' }]);
    expect(res.stages[2]!.deps.map((d) => [d.path, d.kind, d.status])).toEqual([
      ['data/raw.csv', 'data', 'fresh'],
      ['f.sh', 'git', 'fresh'],
    ]);
    const blob = (await git(dir, 'rev-parse', 'HEAD:f.sh')).trim();
    expect(res.sources).toEqual([
      { path: 'data/raw.csv', kind: 'data', pointer: 'data/raw.csv.tdv', sha256: sha('x,1\n'), commit: { id: head, date: expect.any(String), subject: 'run' } },
      // f.sh was committed with the pipeline, before the run.
      { path: 'f.sh', kind: 'git', blob, sha256: sha(F_SH), commit: { id: (await git(dir, 'rev-parse', 'HEAD~1')).trim(), date: expect.any(String), subject: 'pipeline' } },
    ]);
  });

  it('--depth cuts the walk; a file inside an output directory is an output too', async () => {
    const dir = await built();
    const one = await of(dir, 'report.txt', { depth: 1 });
    expect(one.stages.map((s) => s.name)).toEqual(['report']);
    expect(one).toMatchObject({ truncated: true, sources: [] });
    const inner = await of(dir, 'feats/b.csv');
    expect(inner).toMatchObject({ kind: 'output', producers: ['features'], truncated: false });
    expect(inner.stages.map((s) => s.name)).toEqual(['features']);
  });

  it('stale: a source changed since the run, or a stage rerun after its consumer; never fresh without the manifest', async () => {
    const dir = await built();
    write(dir, 'data/raw.csv', 'x,2\n');
    await track(dir, 'data/raw.csv');
    let res = await of(dir, 'report.txt');
    expect(res.stages.map((s) => [s.name, s.status])).toEqual([
      ['report', 'fresh'],
      ['train', 'fresh'],
      ['features', 'stale'],
    ]);
    expect(res.status).toBe('stale');
    expect(res.stages[2]!.deps[0]).toMatchObject({ path: 'data/raw.csv', sha256: sha('x,1\n'), current: sha('x,2\n'), status: 'stale' });
    expect(res.sources[0]).toMatchObject({ path: 'data/raw.csv', uncommitted: true });
    // features rerun alone: train recorded the old feats/a.csv.
    await withRepo(dir, (r) => reproduce(r, { stages: ['features'] }));
    res = await of(dir, 'report.txt');
    expect(res.stages.map((s) => [s.name, s.status])).toEqual([
      ['report', 'fresh'],
      ['train', 'stale'],
      ['features', 'fresh'],
    ]);
    expect(res.stages[1]!.deps[0]).toMatchObject({ sha256: sha('x,1\n'), current: sha('x,2\n'), status: 'stale' });
    // A changed script in the workspace marks its consumer stale too.
    write(dir, 'f.sh', `${F_SH}# changed\n`);
    res = await of(dir, 'model.bin');
    expect(res.stages.find((s) => s.name === 'features')!.deps.find((d) => d.path === 'f.sh')).toMatchObject({ status: 'stale', current: sha(`${F_SH}# changed\n`) });
    // The manifest gone from the cache: unknown, not fresh.
    const feats = res.stages.find((s) => s.name === 'features')!.outs[0]!;
    fs.rmSync(path.join(dir, '.tdv/cache/files/sha256', feats.sha256.slice(0, 2), feats.sha256.slice(2)), { force: true });
    res = await of(dir, 'model.bin');
    expect(res.stages[0]!.deps[0]).toMatchObject({ path: 'feats/a.csv', current: null, status: 'unknown' });
  });

  it("a path inside an output directory is that stage's only if the manifest lists it; unknown without the manifest", async () => {
    const dir = await built();
    expect(await of(dir, 'feats/b.csv')).toMatchObject({ kind: 'output', producers: ['features'], status: 'fresh' });
    // Not in the output the stage recorded: no provenance is claimed for it.
    const err = await rejectsWith(of(dir, 'feats/never-written.csv'), 'NOT_TRACKED');
    expect(err.message).toContain('is not in feats as stage features recorded it');
    await rejectsWith(of(dir, 'feats/never-written.csv', { rev: 'HEAD' }), 'NOT_TRACKED');
    // The manifest gone from the cache: whether feats holds it is unknown, never fresh.
    const feats = (await of(dir, 'feats/a.csv')).stages[0]!.outs[0]!;
    fs.rmSync(path.join(dir, '.tdv/cache/files/sha256', feats.sha256.slice(0, 2), feats.sha256.slice(2)), { force: true });
    expect(await of(dir, 'feats/never-written.csv')).toMatchObject({ producers: ['features'], status: 'unknown' });
  });

  it('the workspace: an output edited since its run is not claimed as made by it; data changed since `tdv add` marks its readers stale', async () => {
    const dir = await built();
    expect((await of(dir, 'report.txt')).modified).toBeUndefined();
    // The output edited by hand after the run: no stage made what is there.
    fs.chmodSync(path.join(dir, 'report.txt'), 0o644);
    write(dir, 'report.txt', 'made up\n');
    let res = await of(dir, 'report.txt');
    expect(res).toMatchObject({ modified: true, status: 'stale', producers: ['report'] });
    expect(res.stages.every((s) => s.status === 'fresh')).toBe(true);
    // At a revision the workspace is not looked at.
    expect((await of(dir, 'report.txt', { rev: 'HEAD' })).status).toBe('fresh');
    // A file inside an output directory, compared with the manifest's entry.
    fs.chmodSync(path.join(dir, 'feats/b.csv'), 0o644);
    write(dir, 'feats/b.csv', 'not b\n');
    expect(await of(dir, 'feats/b.csv')).toMatchObject({ modified: true, status: 'stale' });
    expect((await of(dir, 'feats/a.csv')).modified).toBeUndefined();
    // Tracked data changed in the workspace without `tdv add`: what `tdv status` and `tdv repro` see.
    fs.chmodSync(path.join(dir, 'data/raw.csv'), 0o644);
    write(dir, 'data/raw.csv', 'x,9\n');
    res = await of(dir, 'model.bin');
    expect(res.stages.find((s) => s.name === 'features')!.deps.find((d) => d.path === 'data/raw.csv')).toMatchObject({ sha256: sha('x,1\n'), current: sha('x,9\n'), status: 'stale' });
    expect(res.sources.find((s) => s.path === 'data/raw.csv')).toMatchObject({ kind: 'data', sha256: sha('x,9\n'), modified: true });
    expect(res.status).toBe('stale');
    // Not checked out (absent): the pointer's hash stands.
    fs.rmSync(path.join(dir, 'data/raw.csv'));
    res = await of(dir, 'model.bin');
    expect(res.status).toBe('fresh');
    expect(res.sources.find((s) => s.path === 'data/raw.csv')).toMatchObject({ sha256: sha('x,1\n') });
  });

  it('workspace files are never read through a symlink: unknown, not fresh', async () => {
    const dir = await built();
    // Same bytes behind a symlink: reading through it would say fresh.
    write(dir, 'elsewhere/f.sh', F_SH);
    fs.rmSync(path.join(dir, 'f.sh'));
    fs.symlinkSync('elsewhere/f.sh', path.join(dir, 'f.sh'));
    // A pointer under a symlinked directory is not read either.
    fs.renameSync(path.join(dir, 'data'), path.join(dir, 'real-data'));
    fs.symlinkSync('real-data', path.join(dir, 'data'));
    const res = await of(dir, 'feats/a.csv');
    expect(res.stages[0]!.deps.map((d) => [d.path, d.kind, d.status, d.current])).toEqual([
      ['data/raw.csv', 'untracked', 'unknown', null],
      ['f.sh', 'git', 'unknown', null],
    ]);
    expect(res.status).toBe('unknown');
  });

  it('--rev reads tdv.lock, pointers and blobs of an older commit', async () => {
    const dir = await built();
    const first = (await git(dir, 'rev-parse', 'HEAD')).trim();
    write(dir, 'params.yaml', 'lr: 0.2\n');
    write(dir, 'data/raw.csv', 'x,3\n');
    await track(dir, 'data/raw.csv');
    await withRepo(dir, (r) => reproduce(r));
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'lr 0.2');
    const old = await of(dir, 'model.bin', { rev: 'HEAD~1' });
    expect(old).toMatchObject({ rev: 'HEAD~1', commit: first, status: 'fresh' });
    expect(old.stages[0]!.params).toEqual({ 'params.yaml': { lr: 0.1 } });
    expect(old.sources.find((s) => s.path === 'data/raw.csv')).toMatchObject({ sha256: sha('x,1\n'), commit: { id: first } });
    const now = await of(dir, 'model.bin', { rev: 'HEAD' });
    expect(now.stages[0]!.params).toEqual({ 'params.yaml': { lr: 0.2 } });
    expect(now.sources.find((s) => s.path === 'data/raw.csv')).toMatchObject({ sha256: sha('x,3\n'), commit: { subject: 'lr 0.2' } });
    await rejectsWith(of(dir, 'model.bin', { rev: 'no-such' }), 'UNKNOWN_REVISION');
  });

  it('--reverse: the stages downstream of data, of a directory holding it, of a file inside an output', async () => {
    const dir = await built();
    const raw = await of(dir, 'data/raw.csv', { reverse: true });
    expect(raw).toMatchObject({ direction: 'down', kind: 'data', producers: [], sources: [{ path: 'data/raw.csv', kind: 'data' }] });
    expect(raw.stages.map((s) => [s.name, s.level, s.outs.map((o) => o.path)])).toEqual([
      ['features', 1, ['feats']],
      ['train', 2, ['model.bin']],
      ['report', 3, ['report.txt']],
    ]);
    expect((await of(dir, 'data', { reverse: true })).stages.map((s) => s.name)).toEqual(['features', 'train', 'report']);
    expect((await of(dir, 'feats', { reverse: true })).stages.map((s) => s.name)).toEqual(['train', 'report']);
    expect((await of(dir, 'feats/b.csv', { reverse: true })).stages.map((s) => s.name)).toEqual([]);
    const cut = await of(dir, 'data/raw.csv', { reverse: true, depth: 2 });
    expect(cut.stages.map((s) => s.name)).toEqual(['features', 'train']);
    expect(cut.truncated).toBe(true);
  });

  it('a tracked path no stage writes is source data at depth 0; an unknown path is NOT_TRACKED', async () => {
    const dir = await built();
    const res = await of(dir, 'data/raw.csv');
    expect(res).toMatchObject({ kind: 'data', stages: [], producers: [], sources: [{ path: 'data/raw.csv', pointer: 'data/raw.csv.tdv', commit: { subject: 'run' } }] });
    expect((await of(dir, 'f.sh')).kind).toBe('git');
    await rejectsWith(of(dir, 'nothing.txt'), 'NOT_TRACKED');
    await rejectsWith(of(dir, 'nothing.txt', { reverse: true }), 'NOT_TRACKED');
  });

  it('a cyclic, hand-written tdv.lock ends: each stage once', async () => {
    const dir = await pipelineRepo('stages: {}\n');
    const h = sha('x');
    const lock = (name: string, dep: string, out: string) =>
      `  ${name}:\n    cmd: "true"\n    deps:\n    - path: ${dep}\n      sha256: ${h}\n      size: 1\n    outs:\n    - path: ${out}\n      sha256: ${h}\n      size: 1\n`;
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'x', 'y')}${lock('b', 'y', 'x')}${lock('c', 'c', 'c')}`);
    const res = await of(dir, 'x');
    expect(res.stages.map((s) => [s.name, s.level])).toEqual([
      ['b', 1],
      ['a', 2],
    ]);
    // No run can have recorded a cycle (tdv.yaml has none): unknown, though every hash matches.
    expect(res.stages.map((s) => [s.name, s.status, s.deps[0]!.status])).toEqual([
      ['b', 'unknown', 'unknown'],
      ['a', 'unknown', 'unknown'],
    ]);
    expect(res.status).toBe('unknown');
    expect((await of(dir, 'x', { reverse: true })).status).toBe('unknown');
    // Two stages claiming one output: which one wrote it is unknown.
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'in', 'mid')}${lock('a2', 'in2', 'mid')}${lock('b', 'mid', 'out')}${lock('c', 'in', 'd')}${lock('c2', 'in', 'd')}${lock('e', 'd', 'g')}`);
    const two = await of(dir, 'out');
    expect(two.stages.map((s) => [s.name, s.status])).toEqual([
      ['b', 'unknown'],
      ['a', 'unknown'],
    ]);
    expect((await of(dir, 'mid')).status).toBe('unknown');
    expect((await of(dir, 'g')).stages[0]!.deps[0]!.status).toBe('unknown');
    // A plain chain stays fresh.
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'in', 'mid')}${lock('b', 'mid', 'out')}`);
    expect((await of(dir, 'out')).stages.map((s) => [s.name, s.deps[0]!.status])).toEqual([
      ['b', 'fresh'],
      ['a', 'unknown'],
    ]);
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'x', 'y')}${lock('b', 'y', 'x')}${lock('c', 'c', 'c')}`);
    expect((await of(dir, 'x', { reverse: true })).stages.map((s) => s.name)).toEqual(['a', 'b']);
    // Read by a stage, written and tracked by none.
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'in', 'out')}`);
    expect(await of(dir, 'in', { reverse: true })).toMatchObject({ kind: 'untracked', producers: [], sources: [], stages: [{ name: 'a' }] });
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'x', 'y')}${lock('b', 'y', 'x')}${lock('c', 'c', 'c')}`);
    // Every stage reads the directory holding every output: the walk follows at most 1,000 producers of one dep, and says so.
    const n = 1200;
    let big = 'schema: 1\nstages:\n';
    for (let i = 0; i < n; i++) big += lock(`s${i}`, 'd', `d/x${i}`);
    write(dir, 'tdv.lock', big);
    const wide = await of(dir, 'd/x0');
    expect(wide.truncated).toBe(true);
    expect(wide.stages.length).toBe(1000);
    expect(wide.stages[0]!.deps[0]!.producers!.length).toBe(999); // the first 1,000 by path, less s0 itself
    const down = await of(dir, 'd/x0', { reverse: true });
    expect(down.stages.length).toBe(n);
    write(dir, 'tdv.lock', `schema: 1\nstages:\n${lock('a', 'x', 'y')}${lock('b', 'y', 'x')}${lock('c', 'c', 'c')}`);
    // A stage reading its own output: the dep is not followed back to it.
    expect((await of(dir, 'c')).stages.map((s) => [s.name, s.deps[0]!.kind])).toEqual([['c', 'untracked']]);
  });
});
