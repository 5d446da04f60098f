import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { expandStages, interpolateString, mergeParams, parseRef, quoteHint, stagesNamed, withQuoteHint, type ExpandedStage } from '../../src/stages/template.js';
import { parseYaml } from '../../src/util/yaml.js';

/** Expands `text` as load.ts does, with params files given in memory. */
async function expand(text: string, files: Record<string, unknown> = {}): Promise<Map<string, ExpandedStage>> {
  const y = await parseYaml(text, 'tdv.yaml');
  const where = (keys: (string | number)[]) => {
    for (let n = keys.length; n > 0; n--) {
      const pos = y.posOf(keys.slice(0, n));
      if (pos) return `tdv.yaml:${pos.line}:${pos.col}`;
    }
    return 'tdv.yaml';
  };
  const out = await expandStages(y.value as Record<string, unknown>, where, { text, readFile: async (f) => files[f] });
  return new Map(out.map((s) => [s.name, s]));
}

async function failure(text: string, files: Record<string, unknown> = {}): Promise<string> {
  const e = await expand(text, files).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(FormatError);
  return (e as Error).message;
}

const body = (m: Map<string, ExpandedStage>, name: string) => m.get(name)?.body as Record<string, unknown>;

describe('${...} substitution', () => {
  it('fills cmd, deps, outs, wdir and env from vars and params.yaml, and records the params keys it used', async () => {
    const m = await expand(
      'vars:\n  - out: results\n    n: 3\nstages:\n  train:\n    cmd: python train.py --lr ${train.lr} --n ${n} --fast ${train.fast}\n    wdir: ${dir}\n    deps:\n      - ${dir}/data-${n}.csv\n    outs:\n      - ${out}/model.pkl\n    env:\n      EPOCHS: ${train.epochs}\n',
      { 'params.yaml': { dir: 'src', train: { lr: 0.01, epochs: 5, fast: true, unused: 1 } } },
    );
    expect(body(m, 'train')).toEqual({
      cmd: 'python train.py --lr 0.01 --n 3 --fast true',
      wdir: 'src',
      deps: ['src/data-3.csv'],
      outs: ['results/model.pkl'],
      env: { EPOCHS: 5 },
    });
    // Inline vars (n, out) are not params: they live in the cmd and paths, which are the stage's identity.
    expect(m.get('train')?.params).toEqual([
      { file: 'params.yaml', key: 'dir' },
      { file: 'params.yaml', key: 'train.epochs' },
      { file: 'params.yaml', key: 'train.fast' },
      { file: 'params.yaml', key: 'train.lr' },
    ]);
  });

  it('keeps the type of a value that is only ${x}: a list of deps stays a list', async () => {
    const m = await expand('vars:\n  - inputs: [a.csv, b.csv]\n    flag: false\nstages:\n  s:\n    cmd: x\n    deps: ${inputs}\n    env:\n      F: ${flag}\n');
    expect(body(m, 's').deps).toEqual(['a.csv', 'b.csv']);
    expect((body(m, 's').env as Record<string, unknown>).F).toBe(false);
  });

  it('writes \\${ as a literal ${, for the shell', async () => {
    const m = await expand('stages:\n  s:\n    cmd: echo \\${HOME} ${x}\n', { 'params.yaml': { x: 1 } });
    expect(body(m, 's').cmd).toBe('echo ${HOME} 1');
  });

  it('treats a __proto__ key as a name like any other, never as a prototype', async () => {
    const m = await expand('vars:\n  - {"__proto__": {polluted: yes}}\nstages:\n  s:\n    matrix:\n      __proto__: [a]\n    cmd: echo ${__proto__.polluted} ${item.__proto__}\n');
    expect(body(m, 's@a').cmd).toBe('echo yes a');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await failure('vars:\n  - {"__proto__": {a: 1}}\nstages:\n  s:\n    cmd: echo ${polluted} ${a}\n')).toMatch(/\$\{polluted\} in stage "s" is not defined \(defined: __proto__\)/);
  });

  it("takes a stage's own vars (under do: for a foreach), seen by that stage only", async () => {
    const files = { 'params.yaml': { lr: 1 }, 'fit.json': { depth: 4, unused: 0 } };
    const m = await expand(
      'stages:\n  a:\n    vars:\n      - fit.json:depth\n      - {name: A}\n    cmd: fit ${name} ${depth} ${lr}\n  b:\n    foreach: [x]\n    do:\n      vars: [{name: B}]\n      cmd: run ${name} ${item}\n  c:\n    cmd: echo ${lr}\n',
      files,
    );
    expect(body(m, 'a')).toEqual({ cmd: 'fit A 4 1' });
    expect(m.get('a')?.params).toEqual([
      { file: 'fit.json', key: 'depth' },
      { file: 'params.yaml', key: 'lr' },
    ]);
    expect(body(m, 'b@x')).toEqual({ cmd: 'run B x' });
    expect(await failure('stages:\n  a:\n    vars: [{n: 1}]\n    cmd: x\n  c:\n    cmd: echo ${n}\n')).toMatch(/^tdv\.yaml:6:15: \$\{n\} in stage "c" is not defined/);
    expect(await failure('stages:\n  a:\n    vars:\n      - lr: 2\n    cmd: x ${lr}\n', files)).toMatch(
      /^tdv\.yaml:4:9: variable "lr" from vars entry 1 \(tdv\.yaml:4:9\) is already defined by params\.yaml/,
    );
    expect(await failure('stages:\n  a:\n    foreach: [x]\n    vars: [{n: 1}]\n    do:\n      cmd: x\n')).toMatch(/^tdv\.yaml:4:5: stage "a" has "vars" beside "foreach"/);
  });

  it('does not record a params key holding a dot, which tdv.lock could not name', async () => {
    const m = await expand('stages:\n  s:\n    cmd: echo ${a.b}\n    env: ${a}\n    desc: ${c}\n', { 'params.yaml': { a: { b: 1 }, 'a.x': 2, c: { 'd.e': 3 } } });
    expect(m.get('s')?.params).toEqual([{ file: 'params.yaml', key: 'a.b' }]);
  });

  it('leaves meta (free data for other tools) as written', async () => {
    const m = await expand('stages:\n  s:\n    cmd: echo ${x}\n    meta:\n      template: ${not_ours}\n', { 'params.yaml': { x: 1 } });
    expect(body(m, 's')).toEqual({ cmd: 'echo 1', meta: { template: '${not_ours}' } });
  });

  it('reads no params.yaml when nothing uses ${', async () => {
    let reads = 0;
    const y = await parseYaml('stages:\n  s:\n    cmd: echo $HOME\n', 'tdv.yaml');
    await expandStages(y.value as Record<string, unknown>, () => 'tdv.yaml', {
      text: 'stages:\n  s:\n    cmd: echo $HOME\n',
      readFile: async () => {
        reads++;
        return { x: 1 };
      },
    });
    expect(reads).toBe(0);
  });

  it('takes a vars file whole or some of its keys (file:key1,key2), recorded under that file', async () => {
    const files = { 'config.json': { train: { lr: 2 }, other: 9 } };
    const m = await expand('vars:\n  - config.json:train\nstages:\n  s:\n    cmd: run ${train.lr}\n', files);
    expect(body(m, 's').cmd).toBe('run 2');
    expect(m.get('s')?.params).toEqual([{ file: 'config.json', key: 'train.lr' }]);
    expect(await failure('vars:\n  - config.json:train\nstages:\n  s:\n    cmd: run ${other}\n', files)).toMatch(/^tdv\.yaml:5:14: \$\{other\} in stage "s" is not defined/);
  });

  it('loads params.yaml once even when vars names it too', async () => {
    const m = await expand('vars:\n  - params.yaml\nstages:\n  s:\n    cmd: run ${a}\n', { 'params.yaml': { a: 1 } });
    expect(body(m, 's').cmd).toBe('run 1');
  });

  it('parses references with dots and indexes', () => {
    expect(parseRef(' a.b[0].c ')).toEqual(['a', 'b', '0', 'c']);
    expect(parseRef('a.0')).toEqual(['a', '0']);
    expect(parseRef('a + 1')).toBeUndefined();
    expect(interpolateString('x-${a}-${b}', (e) => ({ a: 1.5, b: 'z' })[e], 'f')).toBe('x-1.5-z');
  });
});

describe('foreach', () => {
  it('names the stages of a list of plain values after the values (DVC: build@us)', async () => {
    const m = await expand('stages:\n  build:\n    foreach: [us, uk]\n    do:\n      cmd: ./build ${item}\n      outs: [out-us]\n');
    expect([...m.keys()]).toEqual(['build@us', 'build@uk']);
    expect(body(m, 'build@uk').cmd).toBe('./build uk');
    expect(m.get('build@uk')?.written).toBe('build');
  });

  it('names the stages of a list of mappings by index, with ${item.field}', async () => {
    const m = await expand('stages:\n  t:\n    foreach:\n      - {m: a, lr: 1}\n      - {m: b, lr: 2}\n    do:\n      cmd: train ${item.m} ${item.lr}\n');
    expect([...m.keys()]).toEqual(['t@0', 't@1']);
    expect(body(m, 't@1').cmd).toBe('train b 2');
  });

  it('iterates a mapping from params.yaml with ${key} and ${item.x}, recording only the entry each stage used', async () => {
    const files = { 'params.yaml': { models: { small: { lr: 1 }, big: { lr: 2 } } } };
    const m = await expand('stages:\n  fit:\n    foreach: ${models}\n    do:\n      cmd: fit --name ${key} --lr ${item.lr}\n      outs:\n        - model-${key}.pkl\n', files);
    expect([...m.keys()]).toEqual(['fit@small', 'fit@big']);
    expect(body(m, 'fit@big')).toEqual({ cmd: 'fit --name big --lr 2', outs: ['model-big.pkl'] });
    expect(m.get('fit@big')?.params).toEqual([{ file: 'params.yaml', key: 'models.big.lr' }]);
    expect(m.get('fit@small')?.params).toEqual([{ file: 'params.yaml', key: 'models.small.lr' }]);
  });

  it('errors with positions: not a list, no do, a name made twice, a key that cannot be a name', async () => {
    expect(await failure('stages:\n  b:\n    foreach: 3\n    do:\n      cmd: x\n')).toBe(
      'tdv.yaml:3:5: "foreach" of stage "b" is a number, not a list or mapping. Write a list, a mapping, or ${name} of one from vars or params.yaml',
    );
    expect(await failure('vars:\n  - s: text\nstages:\n  b:\n    foreach: ${s}\n    do:\n      cmd: x\n')).toMatch(/^tdv\.yaml:5:5: "foreach" of stage "b" is a string/);
    expect(await failure('stages:\n  b:\n    foreach: [a]\n    cmd: x\n')).toMatch(/^tdv\.yaml:4:5: stage "b" has "cmd" beside "foreach"/);
    expect(await failure('stages:\n  b:\n    foreach: [a]\n')).toMatch(/^tdv\.yaml:3:5: stage "b" has "foreach" but no "do"/);
    expect(await failure('stages:\n  b:\n    foreach: [a, 1, a]\n    do:\n      cmd: x\n')).toBe(
      'tdv.yaml:3:21: "foreach" of stage "b" gives the name "b@a" to entries 1 and 3. A list of plain values names the stages after the values: make them distinct, or iterate over a mapping whose keys name the stages',
    );
    expect(await failure('stages:\n  b:\n    matrix:\n      x: [1, "1"]\n    cmd: x\n')).toMatch(/^tdv\.yaml:3:5: the matrix of stage "b" gives the name "b@1" to two combinations/);
    expect(await failure('stages:\n  b:\n    foreach: [a b]\n    do:\n      cmd: x\n')).toMatch(/^tdv\.yaml:3:15: stage "b" would be named "b@a b", which is not allowed/);
    expect(await failure('stages:\n  b:\n    do:\n      cmd: x\n')).toMatch(/^tdv\.yaml:3:5: stage "b" has "do" but no "foreach"/);
  });

  it('says that a foreach over a list has no ${key}', async () => {
    expect(await failure('stages:\n  b:\n    foreach: [u]\n    do:\n      cmd: x ${key}\n')).toMatch(
      /^tdv\.yaml:5:14: \$\{key\} in stage "b@u" is not defined \(defined: item\)\. A foreach over a list sets only \$\{item\}; iterate over a mapping for \$\{key\}$/,
    );
  });

  it('refuses a global variable that item would hide', async () => {
    expect(await failure('stages:\n  b:\n    foreach: [a]\n    do:\n      cmd: x ${item}\n', { 'params.yaml': { item: 1 } })).toMatch(
      /^tdv\.yaml:3:5: variable "item" \(params\.yaml\) would be hidden/,
    );
  });
});

describe('matrix', () => {
  it('makes the cartesian product, first axis slowest, named by the values', async () => {
    const m = await expand(
      'vars:\n  - seeds: [1, 2]\nstages:\n  fit:\n    matrix:\n      model: [a, b]\n      seed: ${seeds}\n    cmd: fit ${item.model} ${item.seed}\n    outs:\n      - out/${key}.pkl\n',
    );
    expect([...m.keys()]).toEqual(['fit@a-1', 'fit@a-2', 'fit@b-1', 'fit@b-2']);
    expect(body(m, 'fit@b-1')).toEqual({ cmd: 'fit b 1', outs: ['out/b-1.pkl'] });
  });

  it('names a mapping value by its axis and index, and records params through an axis from params.yaml', async () => {
    const m = await expand('stages:\n  fit:\n    matrix:\n      cfg: ${cfgs}\n      n: [1]\n    cmd: fit ${item.cfg.lr} ${item.n}\n', { 'params.yaml': { cfgs: [{ lr: 1 }, { lr: 2 }] } });
    expect([...m.keys()]).toEqual(['fit@cfg0-1', 'fit@cfg1-1']);
    expect(body(m, 'fit@cfg1-1').cmd).toBe('fit 2 1');
  });

  it('refuses an axis that is not a list, at its line', async () => {
    expect(await failure('stages:\n  fit:\n    matrix:\n      a: [1]\n      b: 2\n    cmd: x\n')).toMatch(/^tdv\.yaml:5:7: "b" of the matrix of stage "fit" is a number, not a list/);
  });

  it('refuses a matrix of more combinations than memory holds before building any (12 axes of 10: 10^12)', async () => {
    const axes = Array.from({ length: 12 }, (_, i) => `      k${i}: [a, b, c, d, e, f, g, h, i, j]\n`).join('');
    expect(await failure(`stages:\n  s:\n    matrix:\n${axes}    cmd: x\n`)).toMatch(/^tdv\.yaml:3:5: the matrix of stage "s" makes 1000000000000 combinations, more than 10000/);
  });
});

describe('errors keep tdv.yaml:line:col', () => {
  it('an undefined variable, at the ${...} itself on a one-line value (inside a foreach do too)', async () => {
    expect(await failure('stages:\n  s:\n    cmd: x\n    deps:\n      - a\n      - ${nope}/b\n')).toBe(
      'tdv.yaml:6:9: ${nope} in stage "s" is not defined. Define it under vars: or in params.yaml; for a literal ${ write \\${ (a shell variable can be written $NAME)',
    );
    expect(await failure('stages:\n  b:\n    foreach: [u]\n    do:\n      cmd: x ${item.name}\n')).toMatch(/^tdv\.yaml:5:14: \$\{item\.name\} in stage "b@u" is not defined: "item" is a string/);
    expect(await failure('stages:\n  s:\n    cmd: x ${a.c}\n', { 'params.yaml': { a: { b: 1 } } })).toMatch(
      /^tdv\.yaml:3:12: \$\{a\.c\} in stage "s" is not defined: "a" is a mapping without "c". Name an existing entry \(b\)/,
    );
  });

  it('a multi-line value: at its key', async () => {
    expect(await failure('stages:\n  s:\n    cmd: >\n      echo\n      ${nope}\n')).toMatch(/^tdv\.yaml:3:5: \$\{nope\} in stage "s" is not defined/);
  });

  it('a list or mapping inside a string', async () => {
    expect(await failure('vars:\n  - l: [1, 2]\nstages:\n  s:\n    cmd: echo ${l}\n')).toBe(
      'tdv.yaml:5:15: ${l} is a list, which cannot be put inside a string. Use it as the whole value, or name one of its entries such as ${l.<key>}',
    );
  });

  it('what is not a reference', async () => {
    expect(await failure('stages:\n  s:\n    cmd: echo ${a + 1}\n')).toMatch(/^tdv\.yaml:3:15: \$\{a \+ 1\} in stage "s" is not a variable reference/);
  });

  it('vars: a missing file, a key defined twice, a bad entry', async () => {
    expect(await failure('vars:\n  - a.yaml\nstages: {}\n')).toMatch(/^tdv\.yaml:2:5: vars file "a\.yaml" does not exist/);
    expect(await failure('vars:\n  - x: 1\nstages:\n  s:\n    cmd: ${x}\n', { 'params.yaml': { x: 2 } })).toMatch(
      /^tdv\.yaml:2:5: variable "x" from vars entry 1 \(tdv\.yaml:2:5\) is already defined by params\.yaml/,
    );
    expect(await failure('vars:\n  - ../up.yaml\nstages: {}\n')).toMatch(/^tdv\.yaml:2:5: vars file "\.\.\/up\.yaml"/);
    expect(await failure('vars:\n  - 3\nstages: {}\n')).toMatch(/^tdv\.yaml:2:5: entry 1 of "vars" must be a params file/);
    expect(await failure('vars: {a: 1}\nstages: {}\n')).toMatch(/^tdv\.yaml:1:1: "vars" must be a list/);
    expect(await failure('vars:\n  - c.json:b\nstages: {}\n', { 'c.json': { a: 1 } })).toMatch(/^tdv\.yaml:2:5: vars file "c\.json" has no key "b"/);
  });
});

describe('quote hints for YAML errors', () => {
  it('suggests quoting the value of the line the error is on', async () => {
    const text = 'stages:\n  s:\n    cmd: echo a: b\n';
    const e = await parseYaml(text, 'tdv.yaml').then(
      () => undefined,
      (err: unknown) => withQuoteHint(err, text),
    );
    expect((e as Error).message).toMatch(/^tdv\.yaml:3:\d+: invalid YAML: .*If cmd is meant to be this text, quote it: cmd: 'echo a: b'$/);
  });

  it('suggests quoting the entries of a flow list with ${...}', () => {
    expect(quoteHint('stages:\n  s:\n    outs: [${out}.txt, b]\n', 3)).toBe("Inside [ ] or { }, a ${...} must be quoted: outs: ['${out}.txt', b], or write one entry per line (- ...)");
    expect(quoteHint("    cmd: {x} 'y'\n", 1)).toBe('If cmd is meant to be this text, quote it: cmd: "{x} \'y\'"');
    // Not a hint that repeats kilobytes of a deeply nested value (review 2, finding 9).
    expect(quoteHint(`    meta: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n`, 1)).toBeUndefined();
    expect(quoteHint('stages:\n', 1)).toBeUndefined();
  });
});

describe('mergeParams', () => {
  it('adds used keys to the listed ones, once, keeping a listed parent key', () => {
    expect(
      mergeParams(
        [{ file: 'params.yaml', keys: ['train'] }],
        [
          { file: 'params.yaml', key: 'train.lr' },
          { file: 'a.yaml', key: 'x' },
          { file: 'params.yaml', key: 'seed' },
        ],
      ),
    ).toEqual([
      { file: 'a.yaml', keys: ['x'] },
      { file: 'params.yaml', keys: ['seed', 'train'] },
    ]);
  });
});

describe('stagesNamed', () => {
  it('names a stage, or every stage of a foreach or matrix by its name; an unknown name is returned as given', () => {
    const names = ['prep', 'fit@a', 'fit@b', 'fitx@a'];
    expect(stagesNamed(names, 'prep')).toEqual(['prep']);
    expect(stagesNamed(names, 'fit')).toEqual(['fit@a', 'fit@b']);
    expect(stagesNamed(names, 'fit@b')).toEqual(['fit@b']);
    expect(stagesNamed(names, 'fit@c')).toEqual(['fit@c']);
    expect(stagesNamed(names, 'nope')).toEqual(['nope']);
  });
});
