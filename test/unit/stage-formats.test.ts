import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { loadPipeline } from '../../src/stages/load.js';
import { parseLock } from '../../src/stages/lock.js';
import { parseRunEntry } from '../../src/stages/run-cache.js';
import { makeTmpDir } from '../helpers/tmp.js';

/**
 * The schemas of tdv.yaml, tdv.lock and run records (src/stages/{load,lock,
 * run-cache}.ts): what they catch that the hand-written checks before them
 * missed. Positions and messages of the rest are covered by the integration
 * suites (typos, stage-options, stage-outputs, template, lock, run-records).
 */

const OID = 'a'.repeat(64);

async function loadError(text: string): Promise<string> {
  const e = await loadPipeline(makeTmpDir(), { text }).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FormatError);
  return (e as Error).message;
}

async function lockError(text: string): Promise<string> {
  const e = await parseLock(text, 'tdv.lock').then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FormatError);
  return (e as Error).message;
}

describe('tdv.yaml schema', () => {
  it('an empty "dockerfile" is an error at its line (it named the context directory itself)', async () => {
    const msg = await loadError('stages:\n  s:\n    cmd: make\n    build:\n      context: docker\n      dockerfile: ""\n');
    expect(msg).toBe('tdv.yaml:6:7: "dockerfile" must be a path');
  });

  it('an env variable named __proto__ is passed on, not dropped', async () => {
    const p = await loadPipeline(makeTmpDir(), { text: 'stages:\n  s:\n    cmd: make\n    env:\n      __proto__: "1"\n      B: 2\n' });
    const env = p!.stages.get('s')!.env;
    expect(Object.entries(env)).toEqual([
      ['__proto__', '1'],
      ['B', '2'],
    ]);
  });

  it('keeps the messages and positions of the fields it checks', async () => {
    expect(await loadError('stages:\n  s:\n    cdm: make\n')).toBe(
      'tdv.yaml:3:5: unknown key "cdm" in stage "s". Known keys: cmd, image, build, foreach-file, deps, params, outs, metrics, env, wdir, runner, resources, frozen, always_changed, desc, meta',
    );
    expect(await loadError('stages:\n  s:\n    cmd: make\n    outs:\n      - a: {cahce: false}\n')).toBe(
      'tdv.yaml:5:13: unknown option "cahce" of "a" in stage "s". Known options: cache, persist, desc',
    );
    expect(await loadError('stages:\n  s:\n    cmd: make\n    deps: [a, 3]\n')).toBe('tdv.yaml:4:15: entry 2 of "deps" in stage "s" must be a path');
    expect(await loadError('stages:\n  s:\n    cmd: make\n    env: {1X: a}\n')).toBe(
      'tdv.yaml:4:11: "1X" is not a valid environment variable name. Use letters, digits and "_", not starting with a digit',
    );
    expect(await loadError('stages:\n  s:\n    cmd: make\n    params:\n      - p.yaml: [a, ""]\n')).toBe('tdv.yaml:5:9: a params key of stage "s" must be a non-empty string such as sales.price');
  });
});

describe('what YAML made of a misread cmd', () => {
  it("names a number as written (Infinity, not JSON's null)", async () => {
    expect(await loadError('stages:\n  s:\n    cmd: 1e400\n')).toContain('YAML reads it as the number Infinity');
    expect(await loadError('stages:\n  s:\n    cmd: true\n')).toContain('YAML reads it as the boolean true');
  });
});

describe('tdv.lock schema', () => {
  const stage = (params: string) => `schema: 1\nstages:\n  s:\n    cmd: make\n    params:\n${params}`;

  it('params of a file that are not a mapping are an error naming the stage (they were taken as they were)', async () => {
    const msg = await lockError(stage('      params.yaml: 5\n'));
    expect(msg).toMatch(/^tdv\.lock:6:7: stage "s": "params" must be a mapping of files to values\. Delete it and run `tdv repro`/);
  });

  it('reads what tdv writes', async () => {
    const lock = await parseLock(
      `${stage('      params.yaml:\n        lr: 0.1\n')}    outs:\n      - path: out\n        sha256: ${OID}\n        size: 3\n        cache: false\n    unknown: kept out\n`,
      'tdv.lock',
    );
    expect(lock.get('s')).toEqual({ cmd: 'make', deps: [], params: { 'params.yaml': { lr: 0.1 } }, outs: [{ path: 'out', sha256: OID, size: 3, cache: false }], metrics: [] });
  });

  it('keeps the position and text of an unsafe path', async () => {
    const msg = await lockError(`schema: 1\nstages:\n  s:\n    cmd: make\n    deps:\n      - path: ../x\n        sha256: ${OID}\n        size: 1\n`);
    expect(msg).toMatch(/^tdv\.lock:6:9: stage "s": unsafe path \.\.\/x: it /);
  });
});

describe('run record schema', () => {
  it('drops keys tdv does not write, so a record is stored and pushed on as tdv wrote it', () => {
    const e = parseRunEntry(JSON.stringify({ outs: [{ path: 'out', sha256: OID, size: 1, junk: 'x'.repeat(100) }], metrics: [], extra: 1 }));
    expect(e).toEqual({ outs: [{ path: 'out', sha256: OID, size: 1 }], metrics: [] });
    expect(Object.keys(e!.outs[0]!)).toEqual(['path', 'sha256', 'size']);
  });

  it('is undefined for a malformed record (the stage then runs)', () => {
    expect(parseRunEntry('{')).toBeUndefined();
    expect(parseRunEntry(JSON.stringify({ outs: [{ path: '../x', sha256: OID, size: 1 }], metrics: [] }))).toBeUndefined();
    expect(parseRunEntry(JSON.stringify({ outs: [{ path: 'x', sha256: OID, size: -1 }], metrics: [] }))).toBeUndefined();
    expect(parseRunEntry(JSON.stringify({ outs: [] }))).toBeUndefined();
  });
});
