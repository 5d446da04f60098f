import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { loadPipeline, type Stage } from '../../src/stages/load.js';
import { newDir } from '../helpers/expect.js';

/** The pipeline `text` loads to, in a fresh empty directory (or `root`). */
async function load(text: string, root = newDir()) {
  return (await loadPipeline(root, { text }))!;
}

async function stageOf(text: string, name = 's', root?: string): Promise<Stage> {
  const s = (await load(text, root)).stages.get(name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
}

/** The FormatError loading `text` throws: at `position` (`tdv.yaml:line:col`), its message holding each of `parts`. */
async function refused(text: string, position: string, ...parts: string[]): Promise<void> {
  const err = await loadPipeline(newDir(), { text }).catch((e: unknown) => e);
  expect(err, `${JSON.stringify(text)} was accepted`).toBeInstanceOf(FormatError);
  const msg = (err as FormatError).message;
  expect(msg.startsWith(`${position}: `), msg).toBe(true);
  for (const p of parts) expect(msg).toContain(p);
}

describe('loadPipeline: what there is to load', () => {
  it('is undefined without tdv.yaml or text, and no stages for an empty file or an empty "stages"', async () => {
    expect(await loadPipeline(newDir())).toBeUndefined();
    for (const text of ['', '# nothing yet\n', 'stages:\n', 'stages: {}\n', 'vars: []\n']) expect((await load(text)).stages.size, JSON.stringify(text)).toBe(0);
  });

  it('checks opts.text, not the tdv.yaml on disk (an edit before it is written)', async () => {
    const root = newDir();
    fs.writeFileSync(path.join(root, 'tdv.yaml'), 'stages:\n  on-disk:\n    cmd: x\n');
    expect([...(await loadPipeline(root))!.stages.keys()]).toEqual(['on-disk']);
    const p = await load('stages:\n  edited:\n    cmd: y\n', root);
    expect([...p.stages.keys()]).toEqual(['edited']);
    expect(p.file).toBe(path.join(root, 'tdv.yaml'));
    await expect(loadPipeline(root, { text: 'stages:\n  bad: 3\n' })).rejects.toThrow(FormatError);
  });

  it('keeps the stages in tdv.yaml order', async () => {
    const p = await load('stages:\n  zeta: {cmd: z}\n  alpha: {cmd: a}\n  mid: {cmd: m}\n');
    expect([...p.stages.keys()]).toEqual(['zeta', 'alpha', 'mid']);
  });
});

describe('loadPipeline: a stage as tdv reads it', () => {
  it('has defaults for everything but cmd, and where it was written', async () => {
    const s = await stageOf('stages:\n  s:\n    cmd: make\n');
    expect(s).toEqual({ name: 's', cmd: 'make', deps: [], params: [], outs: [], metrics: [], env: {}, wdir: '.', where: 'tdv.yaml:2:3', origins: new Map() });
  });

  it('makes paths repo-relative through wdir, and records the position of each output', async () => {
    const root = newDir();
    const s = await stageOf('stages:\n  s:\n    cmd: x\n    wdir: sub/dir\n    deps: [../in.csv, ./raw]\n    outs:\n      - out/model.bin\n    metrics: [../../m.json]\n', 's', root);
    expect(s.wdir).toBe('sub/dir');
    expect(s.deps).toEqual(['sub/in.csv', 'sub/dir/raw']);
    expect(s.outs).toEqual(['sub/dir/out/model.bin']);
    expect(s.metrics).toEqual(['m.json']);
    expect(Object.fromEntries(s.origins)).toEqual({ 'sub/dir/out/model.bin': 'tdv.yaml:7:9', 'm.json': 'tdv.yaml:8:15' });
  });

  it('reads params as keys of params.yaml (in wdir) or of named files, merged, sorted and once each', async () => {
    const s = await stageOf('stages:\n  s:\n    cmd: x\n    wdir: w\n    params:\n      - train.lr\n      - {../conf.toml: [b, a]}\n      - epochs\n      - train.lr\n      - ../conf.toml: [a]\n');
    expect(s.params).toEqual([
      { file: 'conf.toml', keys: ['a', 'b'] },
      { file: 'w/params.yaml', keys: ['epochs', 'train.lr'] },
    ]);
  });

  it('takes env values that YAML reads as numbers or booleans as their text', async () => {
    const s = await stageOf('stages:\n  s:\n    cmd: x\n    env: {N: 3, DEBUG: true, NAME: a b, _X1: "007"}\n');
    expect(s.env).toEqual({ N: '3', DEBUG: 'true', NAME: 'a b', _X1: '007' });
  });

  it('reads build as a context directory, or a context and a Dockerfile relative to it', async () => {
    expect((await stageOf('stages:\n  s:\n    cmd: x\n    wdir: w\n    build: docker\n')).build).toEqual({ context: 'w/docker' });
    const b = (await stageOf('stages:\n  s:\n    cmd: x\n    build: {context: docker, dockerfile: gpu/Dockerfile}\n')).build;
    expect(b).toEqual({ context: 'docker', dockerfile: 'gpu/Dockerfile' });
    expect((await stageOf('stages:\n  s:\n    cmd: x\n    image: python:3.12\n')).image).toBe('python:3.12');
  });

  it('leaves the optional keys out when they say nothing (false flags, short-form outputs)', async () => {
    const s = await stageOf('stages:\n  s:\n    cmd: x\n    frozen: false\n    always_changed: null\n    outs: [a, {b: null}, {c: {persist: false}}]\n');
    expect(s.outs).toEqual(['a', 'b', 'c']);
    for (const k of ['frozen', 'alwaysChanged', 'uncached', 'persist', 'desc', 'meta', 'image', 'build'] as const) expect(s, k).not.toHaveProperty(k);
  });
});

describe('loadPipeline: refusals name tdv.yaml:line:col', () => {
  it('the top level', async () => {
    await refused('- a\n- b\n', 'tdv.yaml', 'mapping');
    await refused('stages: {}\nstage: {}\n', 'tdv.yaml:2:1', '"stage"');
    await refused('stages: [a]\n', 'tdv.yaml:1:1', '"stages"');
  });

  it('a stage name or body', async () => {
    await refused('stages:\n  -bad:\n    cmd: x\n', 'tdv.yaml:2:3', '"-bad"');
    await refused(`stages:\n  ${'n'.repeat(65)}:\n    cmd: x\n`, 'tdv.yaml:2:3', 'n'.repeat(65));
    await refused('stages:\n  s: [cmd]\n', 'tdv.yaml:2:3', '"s"', 'mapping');
    await refused('stages:\n  s:\n    cmd: ""\n', 'tdv.yaml:3:5', '"cmd"');
    await refused('stages:\n  s:\n    cmd: []\n', 'tdv.yaml:3:5', '"cmd"');
  });

  it('keys of the wrong type', async () => {
    await refused('stages:\n  s:\n    cmd: x\n    always_changed: yes please\n', 'tdv.yaml:4:5', '"always_changed"');
    await refused('stages:\n  s:\n    cmd: x\n    image: ""\n', 'tdv.yaml:4:5', '"image"');
    await refused('stages:\n  s:\n    cmd: x\n    deps: [a, 3]\n', 'tdv.yaml:4:15', 'entry 2', '"deps"');
    await refused('stages:\n  s:\n    cmd: x\n    params: train.lr\n', 'tdv.yaml:4:5', '"params"');
    await refused('stages:\n  s:\n    cmd: x\n    params: [""]\n', 'tdv.yaml:4:14', 'params key');
    await refused('stages:\n  s:\n    cmd: x\n    params: [{p.yaml: lr}]\n', 'tdv.yaml:4:15', 'p.yaml');
    await refused('stages:\n  s:\n    cmd: x\n    env: [A]\n', 'tdv.yaml:4:5', '"env"');
    await refused('stages:\n  s:\n    cmd: x\n    env: {1A: x}\n', 'tdv.yaml:4:11', '"1A"');
    await refused('stages:\n  s:\n    cmd: x\n    env: {A: {b: c}}\n', 'tdv.yaml:4:11', 'A');
  });

  it('build, and image with build', async () => {
    await refused('stages:\n  s:\n    cmd: x\n    image: a\n    build: b\n', 'tdv.yaml:5:5', '"image" and "build"');
    await refused('stages:\n  s:\n    cmd: x\n    build: {context: d, file: F}\n', 'tdv.yaml:4:25', '"file"');
    await refused('stages:\n  s:\n    cmd: x\n    build: {dockerfile: F}\n', 'tdv.yaml:4:5', '"context"');
    await refused('stages:\n  s:\n    cmd: x\n    build: 3\n', 'tdv.yaml:4:5', '"build"');
  });

  it('outputs in their long form', async () => {
    await refused('stages:\n  s:\n    cmd: x\n    outs: [{a: {}, b: {}}]\n', 'tdv.yaml:4:12', 'entry 1', '"outs"');
    await refused('stages:\n  s:\n    cmd: x\n    outs: [{a: true}]\n', 'tdv.yaml:4:13', '"a"');
    await refused('stages:\n  s:\n    cmd: x\n    outs: [{a: {cache: no}}]\n', 'tdv.yaml:4:17', '"cache"');
    await refused('stages:\n  s:\n    cmd: x\n    outs: [{a: {desc: 1}}]\n', 'tdv.yaml:4:17', '"desc"');
    await refused('stages:\n  s:\n    cmd: x\n    metrics: [{m.json: {cache: true}}]\n', 'tdv.yaml:4:25', 'm.json', 'cache');
  });

  it('paths that are not the stage’s to name', async () => {
    await refused('stages:\n  s:\n    cmd: x\n    deps: [/etc/passwd]\n', 'tdv.yaml:4:12', '/etc/passwd', 'absolute');
    await refused('stages:\n  s:\n    cmd: x\n    wdir: sub\n    outs: [../../up]\n', 'tdv.yaml:5:12', '../../up', 'outside the repository');
    await refused('stages:\n  s:\n    cmd: x\n    outs: [.git/hooks/pre-commit]\n', 'tdv.yaml:4:12', '.git/');
    await refused('stages:\n  s:\n    cmd: x\n    deps: [.tdv/config]\n', 'tdv.yaml:4:12', '.tdv/');
    await refused('stages:\n  s:\n    cmd: x\n    wdir: sub\n    deps: [..]\n', 'tdv.yaml:5:12', 'whole repository');
    // Not as a build context either: Docker would be sent the whole workspace, .tdv/cache included.
    await refused('stages:\n  s:\n    cmd: x\n    build: {context: ., dockerfile: Dockerfile}\n', 'tdv.yaml:4:13', 'whole repository');
    await refused('stages:\n  s:\n    cmd: x\n    outs: [a, ./a]\n', 'tdv.yaml:4:15', 'twice');
    // A dep and an output may be the same path for the loader (graph.ts calls that a cycle).
    expect((await stageOf('stages:\n  s:\n    cmd: x\n    deps: [a]\n    outs: [a]\n')).deps).toEqual(['a']);
  });

  it('a dep, build context or Dockerfile that is a symlink, which tdv would read through', async () => {
    const root = newDir();
    fs.mkdirSync(path.join(root, 'real'));
    fs.symlinkSync('real', path.join(root, 'link'));
    const at = async (text: string, position: string) => {
      const err = await loadPipeline(root, { text }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(new RegExp(`^${position}: .*symlink link`));
    };
    await at('stages:\n  s:\n    cmd: x\n    deps: [link]\n', 'tdv.yaml:4:12');
    await at('stages:\n  s:\n    cmd: x\n    deps: [link/f.csv]\n', 'tdv.yaml:4:12');
    await at('stages:\n  s:\n    cmd: x\n    build: link\n', 'tdv.yaml:4:5');
    await at('stages:\n  s:\n    cmd: x\n    build: {context: link}\n', 'tdv.yaml:4:13');
    await at('stages:\n  s:\n    cmd: x\n    build: {context: real, dockerfile: ../link/Dockerfile}\n', 'tdv.yaml:4:28');
    // The real directory is fine.
    expect((await stageOf('stages:\n  s:\n    cmd: x\n    deps: [real/f.csv]\n', 's', root)).deps).toEqual(['real/f.csv']);
  });

  it("an output the caller's check refuses, at the output's line with its fix", async () => {
    const err = await loadPipeline(newDir(), {
      text: 'stages:\n  s:\n    cmd: x\n    outs:\n      - ok.bin\n      - src/main.py\n',
      checkOutput: (rel, key, stage) => (rel === 'src/main.py' ? { problem: `is special to ${stage}/${key}`, fix: 'Pick another' } : undefined),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toBe('tdv.yaml:6:9: outs path src/main.py of stage "s" is special to s/outs. Pick another');
  });
});
