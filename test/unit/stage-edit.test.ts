import { describe, expect, it } from 'vitest';
import { FormatError, UsageError } from '../../src/errors.js';
import { posixShellWord as shellWord } from '../../src/formats/paths.js';
import { parseParamsFlags } from '../../src/repo/stage-add.js';
import { addStage, setFrozen } from '../../src/stages/edit.js';
import { loadPipeline, stageCommands } from '../../src/stages/load.js';
import { lockedStage, parseLock } from '../../src/stages/lock.js';
import { checkStage, type CheckContext } from '../../src/stages/status.js';
import { ParamsReader } from '../../src/stages/params.js';
import { newDir } from '../helpers/expect.js';

describe('setFrozen', () => {
  const text = '# c\nstages:\n  a:\n    cmd: x   # why\n  b: {cmd: y}\n';

  it('adds and removes the key, leaving the rest as written', async () => {
    const f = await setFrozen(text, ['a', 'b'], true);
    expect(f.changed).toEqual(['a', 'b']);
    expect(f.text).toBe('# c\nstages:\n  a:\n    cmd: x # why\n    frozen: true\n  b: {cmd: y, frozen: true}\n');
    const u = await setFrozen(f.text, ['a', 'b'], false);
    expect(u.text).toBe('# c\nstages:\n  a:\n    cmd: x # why\n  b: {cmd: y}\n');
  });

  it('returns the text untouched when nothing changes', async () => {
    const r = await setFrozen(text, ['a'], false);
    expect(r).toEqual({ text, changed: [] });
  });

  it('refuses a stage that is not a mapping of its own', async () => {
    await expect(setFrozen('stages:\n  a: 3\n', ['a'], true)).rejects.toThrow(UsageError);
  });

  it('writes every number it did not touch as it was written, not as its double (meta, vars, foreach items)', async () => {
    const numbers = 'big: 12345678901234567890, long: 0.1000000000000000055511151231257827, z: 007, e: 1e3, i: 1e400, h: 0x1F, o: 0o17, f: 1.50, p: +12, q: !!float 1';
    const before = `vars:\n  - {n: 12345678901234567890}\nstages:\n  a:\n    cmd: x\n    meta: {${numbers}}\n  g:\n    foreach: [007, 1e3]\n    do: {cmd: y}\n`;
    const f = await setFrozen(before, ['a'], true);
    expect(f.text).toBe(before.replace(`{${numbers}}\n`, `{${numbers}}\n    frozen: true\n`));
    const { text } = await addStage(f.text, 'b', { cmd: 'z', deps: [], params: [], outs: [], metrics: [] }, false);
    expect(text).toContain(`meta: {${numbers}}`);
    expect(text).toContain('{n: 12345678901234567890}');
    expect(text).toContain('foreach: [007, 1e3]');
  });
});

describe('addStage', () => {
  const stage = {
    cmd: 'run it',
    deps: ['d'],
    params: ['p.q', { 'f.yaml': ['k'] }],
    outs: [{ path: 'o' }, { path: 'k', cache: false as const }, { path: 'h', persist: true as const }],
    metrics: ['m.json'],
  };

  it('creates the file, with keys in reading order', async () => {
    const r = await addStage(undefined, 's', { ...stage, desc: 'D', wdir: 'sub', alwaysChanged: true }, false);
    expect(r.replaced).toBe(false);
    expect(r.text).toBe(
      'stages:\n  s:\n    desc: D\n    cmd: run it\n    wdir: sub\n    deps:\n      - d\n    params:\n      - p.q\n      - f.yaml:\n          - k\n    outs:\n      - o\n      - k:\n          cache: false\n      - h:\n          persist: true\n    metrics:\n      - m.json\n    always_changed: true\n',
    );
  });

  it('quotes what YAML would read as something else', async () => {
    const r = await addStage('stages: {}\n', 's', { cmd: 'true', deps: ['no'], params: [], outs: [{ path: '1.5' }], metrics: [] }, false);
    expect(r.text).toBe('stages:\n  s:\n    cmd: "true"\n    deps:\n      - no\n    outs:\n      - "1.5"\n');
    // Read back (YAML 1.2, as tdv reads it), every value is the string it was.
    const p = await loadPipeline(newDir(), { text: r.text });
    expect(p!.stages.get('s')).toMatchObject({ cmd: 'true', deps: ['no'], outs: ['1.5'] });
  });

  it('refuses a duplicate unless forced, and a file that is not a pipeline', async () => {
    await expect(addStage('stages:\n  s: {cmd: x}\n', 's', stage, false)).rejects.toThrow(/already exists/);
    expect((await addStage('stages:\n  s: {cmd: x}\n', 's', stage, true)).replaced).toBe(true);
    await expect(addStage('- a\n', 's', stage, false)).rejects.toThrow(FormatError);
    await expect(addStage('stages: [a]\n', 's', stage, false)).rejects.toThrow(FormatError);
  });
});

describe('parseParamsFlags and shellWord', () => {
  it('reads -p as dvc stage add does', () => {
    expect(parseParamsFlags(['a,b', 'c', 'f.yaml:x,y', 'f.yaml:z', 'a'])).toEqual(['a', 'b', 'c', { 'f.yaml': ['x', 'y', 'z'] }]);
    expect(() => parseParamsFlags(['f.yaml:'])).toThrow(UsageError);
    expect(() => parseParamsFlags([':a'])).toThrow(UsageError);
    expect(() => parseParamsFlags(['a,,b'])).toThrow(UsageError);
  });

  it('quotes only words the shell would read', () => {
    expect(shellWord('train.py')).toBe('train.py');
    expect(shellWord('--lr=0.1')).toBe('--lr=0.1');
    expect(shellWord('a b')).toBe("'a b'");
    expect(shellWord("it's")).toBe("'it'\\''s'");
    expect(shellWord('$HOME;rm')).toBe("'$HOME;rm'");
    expect(shellWord('')).toBe("''");
  });
});

describe('stage options in tdv.yaml', () => {
  it('are parsed into the stage', async () => {
    const root = newDir();
    const p = await loadPipeline(root, {
      text: 'stages:\n  s:\n    cmd: [a, b]\n    frozen: true\n    always_changed: false\n    desc: D\n    meta: {x: [1]}\n    outs:\n      - o\n      - k: {cache: false, persist: true, desc: K}\n    metrics:\n      - m.json: {persist: true}\n',
    });
    const s = p!.stages.get('s')!;
    expect(stageCommands(s)).toEqual(['a', 'b']);
    expect(s.frozen).toBe(true);
    expect(s.alwaysChanged).toBeUndefined();
    expect(s.desc).toBe('D');
    expect(s.meta).toEqual({ x: [1] });
    expect(s.outs).toEqual(['o', 'k']);
    expect([...s.uncached!]).toEqual(['k']);
    expect([...s.persist!].sort()).toEqual(['k', 'm.json']);
    expect(stageCommands({ cmd: 'one' })).toEqual(['one']);
  });

  it('tell the output check which outputs are cached', async () => {
    const root = newDir();
    const seen: [string, boolean | undefined][] = [];
    await loadPipeline(root, {
      text: 'stages:\n  s:\n    cmd: x\n    outs: [a, {b: {cache: false}}]\n    metrics: [m]\n',
      checkOutput: (rel, _key, _stage, flags) => {
        seen.push([rel, flags?.cache]);
        return undefined;
      },
    });
    expect(seen).toEqual([
      ['a', true],
      ['b', false],
      ['m', false],
    ]);
  });
});

describe('tdv.lock with list commands and cache: false', () => {
  it('round-trips, and takes the cache mark from tdv.yaml, not from the hashes', async () => {
    const o = { path: 'k', sha256: 'a'.repeat(64), size: 1 };
    const s = lockedStage({ cmd: ['a', 'b'], uncached: new Set(['k']) }, { deps: [], params: {} }, [o, { path: 'c', sha256: 'b'.repeat(64), size: 2, cache: false }], []);
    expect(s.outs).toEqual([
      { ...o, cache: false },
      { path: 'c', sha256: 'b'.repeat(64), size: 2 },
    ]);
    const lock = await parseLock(`schema: 1\nstages:\n  s:\n    cmd: [a, b]\n    outs:\n      - {path: k, sha256: ${'a'.repeat(64)}, size: 1, cache: false}\n`, 'tdv.lock');
    expect(lock.get('s')).toEqual({ cmd: ['a', 'b'], deps: [], params: {}, outs: [{ ...o, cache: false }], metrics: [] });
    await expect(parseLock(`stages:\n  s:\n    cmd: x\n    outs:\n      - {path: k, sha256: ${'a'.repeat(64)}, size: 1, cache: true}\n`, 'tdv.lock')).rejects.toThrow(/"cache" may only be false/);
    await expect(parseLock('stages:\n  s:\n    cmd: [a, 1]\n', 'tdv.lock')).rejects.toThrow(/"cmd" string or list of strings/);
  });
});

describe('checkStage with frozen and always_changed', () => {
  const ctx = (hashes: Record<string, string>): CheckContext => ({
    params: new ParamsReader(newDir()),
    hashPath: async (rel) => (hashes[rel] ? { path: rel, sha256: hashes[rel]!, size: 1 } : undefined),
    imageId: async () => undefined,
  });
  const base = { name: 's', cmd: 'x', deps: ['d'], params: [], outs: ['o'], metrics: [], env: {}, wdir: '.', where: 'tdv.yaml:2:3', origins: new Map() };
  const locked = { cmd: 'x', deps: [{ path: 'd', sha256: '1'.repeat(64), size: 1 }], params: {}, outs: [{ path: 'o', sha256: '2'.repeat(64), size: 1 }], metrics: [] };

  it('a frozen stage ignores its deps, but not its outputs or command', async () => {
    const now = { d: '9'.repeat(64), o: '2'.repeat(64) };
    expect((await checkStage({ ...base, frozen: true }, locked, ctx(now), true)).reasons).toEqual(['frozen']);
    expect((await checkStage({ ...base, frozen: true, cmd: 'y' }, locked, ctx({ d: now.d }), true)).reasons).toEqual(['frozen', 'cmd changed', 'outs missing: o']);
    expect((await checkStage(base, locked, ctx(now), true)).reasons).toEqual(['deps changed: d']);
  });

  it('an always_changed stage always has a reason, first', async () => {
    const same = { d: '1'.repeat(64), o: '2'.repeat(64) };
    expect((await checkStage({ ...base, alwaysChanged: true }, locked, ctx(same), false)).reasons).toEqual(['always changed']);
    expect((await checkStage(base, locked, ctx(same), false)).reasons).toEqual([]);
  });
});

describe('withUpstream with a stop', () => {
  it('does not go past a stage the caller stops at (a frozen one)', async () => {
    const { buildDag, withUpstream } = await import('../../src/stages/graph.js');
    const p = await loadPipeline(newDir(), {
      text: 'stages:\n  a: {cmd: x, outs: [a]}\n  b: {cmd: x, deps: [a], outs: [b]}\n  c: {cmd: x, deps: [b], outs: [c]}\n',
    });
    const dag = buildDag(p!);
    expect(withUpstream(dag, ['c'])).toEqual(['a', 'b', 'c']);
    expect(withUpstream(dag, ['c'], (n) => n === 'b')).toEqual(['b', 'c']);
    expect(withUpstream(dag, ['c'], (n) => n === 'c')).toEqual(['c']);
  });
});
