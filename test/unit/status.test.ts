import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import type { Stage } from '../../src/stages/load.js';
import type { LockedPath, LockedStage } from '../../src/stages/lock.js';
import { ParamsReader } from '../../src/stages/params.js';
import { type CheckContext, checkStage } from '../../src/stages/status.js';
import { newDir } from '../helpers/expect.js';

const H = (c: string) => c.repeat(64);
const at = (p: string, c: string, size = 1): LockedPath => ({ path: p, sha256: H(c), size });
const IMAGE = `sha256:${H('e')}`;

/** train: reads data.csv and params.yaml's lr, writes model.bin and scores.json. */
const stage = (over: Partial<Stage> = {}): Stage => ({
  name: 'train',
  cmd: 'python train.py',
  deps: ['data.csv'],
  params: [{ file: 'params.yaml', keys: ['lr'] }],
  outs: ['model.bin'],
  metrics: ['scores.json'],
  env: {},
  wdir: '.',
  where: 'tdv.yaml:2:3',
  origins: new Map(),
  ...over,
});
/** tdv.lock's record of `stage()` as it is in `workspace()`. */
const locked = (over: Partial<LockedStage> = {}): LockedStage => ({
  cmd: 'python train.py',
  deps: [at('data.csv', '1')],
  params: { 'params.yaml': { lr: 0.1 } },
  outs: [at('model.bin', '2')],
  metrics: [at('scores.json', '3')],
  ...over,
});

/**
 * A workspace: the hashes of its paths (absent: missing) and its params.yaml,
 * with a log of what the check looked at (hashes, image), to tell the cheap
 * checks from the costly ones.
 */
function workspace(files: Record<string, LockedPath | undefined> = {}, params = 'lr: 0.1\n', image?: string) {
  const root = newDir();
  fs.writeFileSync(path.join(root, 'params.yaml'), params);
  const now: Record<string, LockedPath | undefined> = { 'data.csv': at('data.csv', '1'), 'model.bin': at('model.bin', '2'), 'scores.json': at('scores.json', '3'), ...files };
  const looked: string[] = [];
  const ctx: CheckContext = {
    params: new ParamsReader(root),
    hashPath: async (rel) => (looked.push(rel), now[rel]),
    imageId: async (s) => (looked.push('image'), s.image || s.build ? image : undefined),
  };
  return { ctx, looked, root };
}

const reasons = async (s: Stage, l: LockedStage | undefined, ctx: CheckContext, all = true) => (await checkStage(s, l, ctx, all)).reasons;

describe('checkStage: an unchanged stage', () => {
  it('has no reason, and gathers its inputs as they are to record them', async () => {
    const { ctx } = workspace();
    const check = await checkStage(stage(), locked(), ctx, true);
    expect(check).toEqual({ reasons: [], inputs: { deps: [at('data.csv', '1')], params: { 'params.yaml': { lr: 0.1 } } }, missingDeps: [] });
  });

  it('in Docker, records the image ID it runs in', async () => {
    const { ctx } = workspace({}, undefined, IMAGE);
    const check = await checkStage(stage({ image: 'python:3.12' }), locked({ image: IMAGE }), ctx);
    expect(check.reasons).toEqual([]);
    expect(check.inputs?.image).toBe(IMAGE);
  });

  it('compares lists of paths, and params values, regardless of order and of how YAML wrote them', async () => {
    const { ctx } = workspace({ 'b.csv': at('b.csv', '4') }, 'lr: 1e-1\nother: {deep: [1, 2]}\n');
    const s = stage({ deps: ['data.csv', 'b.csv'], params: [{ file: 'params.yaml', keys: ['lr', 'other.deep'] }] });
    const l = locked({ deps: [at('b.csv', '4'), at('data.csv', '1')], params: { 'params.yaml': { 'other.deep': [1, 2], lr: 0.1 } } });
    expect(await reasons(s, l, ctx)).toEqual([]);
  });
});

describe('checkStage: why a stage runs', () => {
  const cases: [string, Partial<Stage>, Partial<LockedStage>, Parameters<typeof workspace>, string[]][] = [
    ['the command changed', { cmd: 'python train.py --fast' }, {}, [], ['cmd changed']],
    ['a single command became a list', { cmd: ['python train.py', 'echo done'] }, {}, [], ['cmd changed']],
    ['a dep was added to the list', { deps: ['data.csv', 'extra.csv'] }, {}, [{ 'extra.csv': at('extra.csv', '5') }], ['deps list changed', 'deps changed: extra.csv']],
    ['an output was added to the list', { outs: ['model.bin', 'vocab.txt'] }, {}, [{ 'vocab.txt': at('vocab.txt', '5') }], ['outs list changed', 'outs modified: vocab.txt']],
    ['a metric was renamed', { metrics: ['eval.json'] }, {}, [{ 'eval.json': at('eval.json', '3') }], ['outs list changed', 'outs modified: eval.json']],
    ['an output became kept in Git (cache: false)', { uncached: new Set(['model.bin']) }, {}, [], ['outs cache changed: model.bin']],
    ['an output went back to the cache', {}, { outs: [{ ...at('model.bin', '2'), cache: false }] }, [], ['outs cache changed: model.bin']],
    ['a params value changed', {}, {}, [{}, 'lr: 0.2\n'], ['params changed: lr']],
    ['a params file was dropped', { params: [] }, {}, [], ['params changed: files']],
    ['a params key was added', { params: [{ file: 'params.yaml', keys: ['lr', 'epochs'] }] }, {}, [{}, 'lr: 0.1\nepochs: 3\n'], ['params changed: epochs']],
    ['a dep changed', {}, {}, [{ 'data.csv': at('data.csv', '9') }], ['deps changed: data.csv']],
    ['a dep changed size only', {}, {}, [{ 'data.csv': at('data.csv', '1', 2) }], ['deps changed: data.csv']],
    ['a dep is missing', {}, {}, [{ 'data.csv': undefined }], ['deps missing: data.csv']],
    ['an output is missing', {}, {}, [{ 'model.bin': undefined }], ['outs missing: model.bin']],
    ['an output and a metric were edited', {}, {}, [{ 'model.bin': at('model.bin', '7'), 'scores.json': at('scores.json', '8') }], ['outs modified: model.bin, scores.json']],
    ['it gained an image', { image: 'python:3.12' }, {}, [{}, undefined, IMAGE], ['image added: python:3.12']],
    ['its image has another ID now', { image: 'python:3.12' }, { image: `sha256:${H('0')}` }, [{}, undefined, IMAGE], [`image changed: now ${IMAGE.slice(0, 19)}`]],
    ['it always changes', { alwaysChanged: true }, {}, [], ['always changed']],
  ];
  for (const [what, s, l, ws, want] of cases) {
    it(`${what}: ${want.join('; ')}`, async () => {
      const { ctx } = workspace(...ws);
      expect(await reasons(stage(s), locked(l), ctx)).toEqual(want);
    });
  }

  it('never run: that, and what is missing; its inputs are still gathered', async () => {
    const { ctx } = workspace({ 'model.bin': undefined });
    const check = await checkStage(stage(), undefined, ctx, true);
    expect(check.reasons).toEqual(['never run']);
    expect(check.inputs?.deps).toEqual([at('data.csv', '1')]);
    const gone = workspace({ 'data.csv': undefined });
    const missing = await checkStage(stage(), undefined, gone.ctx, true);
    expect(missing.reasons).toEqual(['never run', 'deps missing: data.csv']);
    expect(missing.missingDeps).toEqual(['data.csv']);
  });

  it('with all, lists every reason, cheapest first', async () => {
    const { ctx } = workspace({ 'data.csv': at('data.csv', '9'), 'model.bin': undefined }, 'lr: 0.3\n');
    expect(await reasons(stage({ cmd: 'other', alwaysChanged: true }), locked(), ctx)).toEqual([
      'always changed',
      'cmd changed',
      'params changed: lr',
      'deps changed: data.csv',
      'outs missing: model.bin',
    ]);
  });

  it('reads params that a stage names but the file lacks as an error naming both', async () => {
    const { ctx } = workspace({}, 'other: 1\n');
    const err = await checkStage(stage(), locked(), ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toContain('params.yaml: has no parameter "lr", which stage "train" reads');
  });
});

describe('checkStage: cheapest check first', () => {
  it('without all, stops at the first reason: outputs are not hashed, deps still are (to record them)', async () => {
    const { ctx, looked } = workspace({ 'model.bin': at('model.bin', '7') });
    const check = await checkStage(stage({ cmd: 'other' }), locked(), ctx, false);
    expect(check.reasons).toEqual(['cmd changed']);
    expect(looked).toEqual(['image', 'data.csv']);
    expect(check.inputs?.deps).toEqual([at('data.csv', '1')]);
  });

  it('with all, hashes the outputs too', async () => {
    const { ctx, looked } = workspace({ 'model.bin': at('model.bin', '7') });
    expect(await reasons(stage({ cmd: 'other' }), locked(), ctx, true)).toEqual(['cmd changed', 'outs modified: model.bin']);
    expect(looked).toEqual(['image', 'data.csv', 'model.bin', 'scores.json']);
  });

  it('a changed params value alone does not hide changed deps from the record', async () => {
    const { ctx } = workspace({ 'data.csv': at('data.csv', '9') }, 'lr: 0.2\n');
    const check = await checkStage(stage(), locked(), ctx, false);
    expect(check.reasons[0]).toBe('params changed: lr');
    expect(check.inputs).toEqual({ deps: [at('data.csv', '9')], params: { 'params.yaml': { lr: 0.2 } } });
  });
});

describe('checkStage: a frozen stage', () => {
  it('is "frozen" and never looks at its deps, params or image', async () => {
    const { ctx, looked } = workspace({ 'data.csv': at('data.csv', '9') }, 'lr: 0.5\n', IMAGE);
    const check = await checkStage(stage({ frozen: true, image: 'python:3.12', params: [{ file: 'absent.yaml', keys: ['x'] }] }), locked(), ctx, true);
    expect(check).toEqual({ reasons: ['frozen'], missingDeps: [] });
    expect(looked).toEqual(['model.bin', 'scores.json']);
  });

  it('still says when its command or outputs no longer match tdv.lock, or that it never ran', async () => {
    const { ctx } = workspace({ 'scores.json': at('scores.json', '8'), 'model.bin': undefined });
    expect(await reasons(stage({ frozen: true, cmd: 'new' }), locked(), ctx)).toEqual(['frozen', 'cmd changed', 'outs missing: model.bin', 'outs modified: scores.json']);
    expect(await reasons(stage({ frozen: true }), undefined, ctx)).toEqual(['frozen', 'never run']);
  });
});
