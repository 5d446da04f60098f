import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo } from '../helpers/expect.js';
import { expectPipelineUpToDate, repro, started } from '../helpers/api.js';

/** Stage names in the order `repro` started them. */

const PIPELINE = `vars:
  - out: results
stages:
  prep:
    cmd: echo "\${prep.rows} rows" > \${out}/prep.txt
    outs:
      - \${out}/prep.txt
  fit:
    foreach: \${models}
    do:
      cmd: echo "\${key} lr=\${item.lr}" > \${out}/model-\${key}.txt
      deps:
        - \${out}/prep.txt
      outs:
        - \${out}/model-\${key}.txt
  score:
    matrix:
      split: [train, test]
      seed: [1, 2]
    cmd: echo \${item.split} \${item.seed} > \${out}/score-\${key}.txt && echo \\\${HOME} >> \${out}/score-\${key}.txt
    outs:
      - \${out}/score-\${key}.txt
`;

const PARAMS = 'prep:\n  rows: 10\nmodels:\n  small:\n    lr: 0.1\n  big:\n    lr: 0.01\n';

async function templated(): Promise<string> {
  const dir = await newRepo();
  fs.mkdirSync(path.join(dir, 'results'));
  write(dir, 'tdv.yaml', PIPELINE);
  write(dir, 'params.yaml', PARAMS);
  return dir;
}

describe('tdv.yaml templating (vars, ${...}, foreach, matrix)', () => {
  it('repro runs every generated stage and records it under its name@key, with the params it used', async () => {
    const dir = await templated();
    const r = await repro(dir);
    expect(r.failed).toEqual([]);
    expect([...r.ran].sort()).toEqual(['fit@big', 'fit@small', 'prep', 'score@test-1', 'score@test-2', 'score@train-1', 'score@train-2']);
    expect(read(dir, 'results/prep.txt')).toBe('10 rows\n');
    expect(read(dir, 'results/model-big.txt')).toBe('big lr=0.01\n');
    // \${HOME} is a literal ${HOME}, left to the shell.
    expect(read(dir, 'results/score-test-2.txt')).toBe(`test 2\n${process.env.HOME}\n`);
    const lock = read(dir, 'tdv.lock');
    expect(lock).toContain('  fit@big:\n    cmd: echo "big lr=0.01" > results/model-big.txt\n    deps:');
    expect(lock).toMatch(/ {2}fit@big:\n[\s\S]*?params:\n {6}params\.yaml:\n {8}models\.big\.lr: 0\.01\n/);
    expect(lock).toMatch(/ {2}prep:\n[\s\S]*?params:\n {6}params\.yaml:\n {8}prep\.rows: 10\n/);
    expect(lock).toContain('cmd: echo test 2 > results/score-test-2.txt && echo ${HOME} >> results/score-test-2.txt');
    await expectPipelineUpToDate(dir);
  });

  it('changing one params value reruns exactly the stages that used it', async () => {
    const dir = await templated();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'params.yaml', PARAMS.replace('lr: 0.01', 'lr: 0.02'));
    const st = await tdv(dir, 'status');
    expect(st.stdout).toContain('fit@big: cmd changed; params changed: models.big.lr');
    expect(st.stdout).not.toContain('fit@small');
    expect((await repro(dir)).ran).toEqual(['fit@big']);
    expect(read(dir, 'results/model-big.txt')).toBe('big lr=0.02\n');
    expect(read(dir, 'tdv.lock')).toContain('models.big.lr: 0.02');
  });

  it('a params value used only where it is not the stage identity (env) still reruns the stage', async () => {
    const dir = await newRepo();
    write(dir, 'params.yaml', 'n: 1\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo $N > n.txt\n    env:\n      N: ${n}\n    outs:\n      - n.txt\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect(read(dir, 'n.txt')).toBe('1\n');
    write(dir, 'params.yaml', 'n: 2\n');
    expect(started(await repro(dir))).toEqual([['s', ['params changed: n']]]);
    expect(read(dir, 'n.txt')).toBe('2\n');
  });

  it('changing an inline var reruns the stages it is substituted into, and only those', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'vars:\n  - greeting: hello\n    other: x\nstages:\n  a:\n    cmd: echo ${greeting} > a.txt\n    outs: [a.txt]\n  b:\n    cmd: echo ${other} > b.txt\n    outs: [b.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.yaml', read(dir, 'tdv.yaml').replace('greeting: hello', 'greeting: bye'));
    const r = await repro(dir);
    expect(r.ran).toEqual(['a']);
    expect(started(r)).toEqual([['a', ['cmd changed']]]);
    expect(read(dir, 'a.txt')).toBe('bye\n');
  });

  it('a generated stage is a target by its name', async () => {
    const dir = await templated();
    expect([...(await repro(dir, { stages: ['fit@small'] })).ran].sort()).toEqual(['fit@small', 'prep']);
  });

  it('the name of a foreach or matrix names all the stages it made (with their upstream)', async () => {
    const dir = await templated();
    expect([...(await repro(dir, { stages: ['fit'] })).ran].sort()).toEqual(['fit@big', 'fit@small', 'prep']);
    const bad = await tdv(dir, 'repro', 'fi');
    expect(bad.code).toBe(2);
    expectOneLineError(bad.stderr, 'unknown stage "fi"');
  });

  it('adding an entry to a foreach mapping runs only the new stage', async () => {
    const dir = await templated();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'params.yaml', `${PARAMS}  huge:\n    lr: 0.001\n`);
    expect((await repro(dir)).ran).toEqual(['fit@huge']);
  });

  it('takes vars from another params file (file:key) and records them under that file', async () => {
    const dir = await newRepo();
    write(dir, 'config.json', '{"train": {"epochs": 3}, "unused": 1}\n');
    write(dir, 'tdv.yaml', 'vars:\n  - config.json:train\nstages:\n  t:\n    cmd: echo ${train.epochs} > e.txt\n    outs: [e.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'e.txt')).toBe('3\n');
    expect(read(dir, 'tdv.lock')).toMatch(/params:\n {6}config\.json:\n {8}train\.epochs: 3\n/);
    write(dir, 'config.json', '{"train": {"epochs": 4}, "unused": 1}\n');
    expect((await tdv(dir, 'status')).stdout).toContain('t: cmd changed; params changed: train.epochs');
  });

  it('metrics show and diff find the metrics of generated stages, at a revision too; params diff shows templated params', async () => {
    const dir = await newRepo();
    write(dir, 'params.yaml', 'runs:\n  a: {n: 1}\n  b: {n: 2}\n');
    write(dir, 'tdv.yaml', 'stages:\n  m:\n    foreach: ${runs}\n    do:\n      cmd: echo \'{"n":${item.n}}\' > m-${key}.json\n      metrics:\n        - m-${key}.json\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const show = await tdv(dir, 'metrics', 'show', '--json');
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({ 'm-a.json': { n: 1 }, 'm-b.json': { n: 2 } });
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'runs');
    write(dir, 'params.yaml', 'runs:\n  a: {n: 1}\n  b: {n: 5}\n');
    const p = await tdv(dir, 'params', 'diff', '--json');
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toEqual([{ file: 'params.yaml', key: 'runs.b.n', old: 2, new: 5, change: 3 }]);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const d = await tdv(dir, 'metrics', 'diff', 'HEAD', '--json');
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toEqual([{ file: 'm-b.json', key: 'n', old: 2, new: 5, change: 3 }]);
  });

  it('metrics diff reads a revision whose tdv.yaml predates templating (a shell ${VAR} in cmd) as written', async () => {
    const dir = await newRepo();
    write(dir, 'm.json', '{"a": 1}\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo ${HOME} > /dev/null\n    metrics: [m.json]\n');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'before templating');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo \\${HOME} > /dev/null\n    metrics: [m.json]\n');
    write(dir, 'm.json', '{"a": 2}\n');
    const d = await tdv(dir, 'metrics', 'diff', 'HEAD', '--json');
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout)).toEqual([{ file: 'm.json', key: 'a', old: 1, new: 2, change: 1 }]);
  });

  it('refuses a vars file that is a symlink, and reads nothing through it', async () => {
    const dir = await newRepo();
    write(dir, 'secret.yaml', 'token: s3cr3t\n');
    fs.symlinkSync('secret.yaml', path.join(dir, 'link.yaml'));
    write(dir, 'tdv.yaml', 'vars:\n  - link.yaml\nstages:\n  t:\n    cmd: echo ${token}\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'link.yaml', 'symlink');
    expect(r.stderr).not.toContain('s3cr3t');
  });
});

describe('templating errors name tdv.yaml:line:col', () => {
  const bad = async (yaml: string, files: Record<string, string>, ...needles: (string | RegExp)[]) => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', yaml);
    for (const [f, c] of Object.entries(files)) write(dir, f, c);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, ...needles);
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    // status reads the same pipeline and says the same.
    expect((await tdv(dir, 'status')).stderr).toBe(r.stderr);
  };

  it('an undefined variable', () =>
    bad(
      'stages:\n  s:\n    cmd: echo hi\n    outs:\n      - ${dir}/o.txt\n',
      { 'params.yaml': 'other: 1\n' },
      'tdv.yaml:5:9: ${dir} in stage "s" is not defined (defined: other)',
      'Define it under vars: or in params.yaml',
    ));
  it('a shell ${VAR} not escaped', () => bad('stages:\n  s:\n    cmd: echo ${HOME}\n', {}, 'tdv.yaml:3:15: ${HOME} in stage "s" is not defined', 'write \\${'));
  it('a foreach over a number', () => bad('vars:\n  - n: 3\nstages:\n  s:\n    foreach: ${n}\n    do:\n      cmd: x\n', {}, 'tdv.yaml:5:5: "foreach" of stage "s" is a number, not a list or mapping'));
  it('two entries naming one stage', () => bad('stages:\n  s:\n    foreach: [a, b, a]\n    do:\n      cmd: x\n', {}, 'tdv.yaml:3:21: "foreach" of stage "s" gives the name "s@a" to entries 1 and 3'));
  it('a mapping inside a string', () =>
    bad('stages:\n  s:\n    foreach:\n      - {a: 1}\n    do:\n      cmd: echo ${item}\n', {}, 'tdv.yaml:6:17: ${item} is a mapping, which cannot be put inside a string'));
  it('an error of a generated stage names it and the line of its template', () =>
    bad('stages:\n  s:\n    foreach: [a]\n    do:\n      cmd: x\n      outs:\n        - ../${item}\n', {}, 'tdv.yaml:7:11: outs path "../a" of stage "s@a" is outside the repository'));
  it('a stage name with @ written by hand', () => bad('stages:\n  s@a:\n    cmd: x\n', {}, 'tdv.yaml:2:3: stage name "s@a" is not allowed'));
  it('a cmd YAML reads as a mapping', () => bad('stages:\n  s:\n    cmd: echo a: b\n', {}, /^error: tdv\.yaml:3:\d+: invalid YAML: .*quote it: cmd: 'echo a: b'/));
  it('a cmd starting with {', () => bad('stages:\n  s:\n    cmd: {x} y\n', {}, /^error: tdv\.yaml:3:\d+: invalid YAML: .*quote it: cmd: '\{x\} y'/));
  it('a ${...} in a flow list', () => bad('stages:\n  s:\n    cmd: x\n    outs: [${o}.txt]\n', {}, "must be quoted: outs: ['${o}.txt']"));
});
