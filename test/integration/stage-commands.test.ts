import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pipelineRepo } from '../helpers/pipeline.js';
import { read, tdv, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, objPath, sha, state } from '../helpers/expect.js';
import { expectClean, expectPipelineUpToDate } from '../helpers/api.js';

const COMMENTED = `# The pipeline: keep these notes.
stages:
  # Turn raw input into the middle file.
  prep:
    cmd: cp in.txt mid.txt   # plain copy
    deps: [in.txt]
    outs: [mid.txt]
  use: {cmd: cp mid.txt out.txt, deps: [mid.txt], outs: [out.txt]}
`;

describe('tdv freeze / tdv unfreeze', () => {
  it('set and remove frozen in tdv.yaml, keeping comments, order and flow style', async () => {
    const dir = await pipelineRepo(COMMENTED);
    const r = await tdv(dir, 'freeze', 'prep', 'use');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('prep: frozen now\nuse: frozen now\n');
    const frozen = read(dir, 'tdv.yaml');
    expect(frozen).toContain('# The pipeline: keep these notes.\n');
    expect(frozen).toContain('  # Turn raw input into the middle file.\n  prep:\n');
    expect(frozen).toContain('# plain copy');
    expect(frozen).toContain('    outs: [mid.txt]\n    frozen: true\n');
    expect(frozen).toContain('use: {cmd: cp mid.txt out.txt, deps: [mid.txt], outs: [out.txt], frozen: true}');
    expect((await tdv(dir, 'status')).stdout).toContain('prep: frozen');
    const again = await tdv(dir, 'freeze', 'prep');
    expect(again.stdout).toBe('prep: already frozen\n');
    const u = await tdv(dir, 'unfreeze', 'prep', 'use');
    expect(u.code, u.stderr).toBe(0);
    const back = read(dir, 'tdv.yaml');
    expect(back).not.toContain('frozen');
    expect(back).toContain('# Turn raw input into the middle file.');
    expect(back).toContain('use: {cmd: cp mid.txt out.txt, deps: [mid.txt], outs: [out.txt]}');
  });

  it('refuses an unknown stage and writes nothing', async () => {
    const dir = await pipelineRepo(COMMENTED);
    const before = state(dir);
    const r = await tdv(dir, 'freeze', 'prep', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown stage "nope"', 'prep, use');
    expect(state(dir)).toEqual(before);
  });

  it('refuses to edit a pipeline that does not load, naming the error', async () => {
    const dir = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    outs: [../x]\n');
    const r = await tdv(dir, 'freeze', 'a');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml:4:12', 'outside the repository');
    expect(read(dir, 'tdv.yaml')).not.toContain('frozen');
  });

  it('--json prints what changed', async () => {
    const dir = await pipelineRepo(COMMENTED);
    const r = await tdv(dir, 'freeze', 'use', '--json');
    expect(JSON.parse(r.stdout)).toEqual({ changed: ['use'], unchanged: [] });
  });
});

describe('tdv stage add', () => {
  it('writes a stage that tdv repro then runs, creating tdv.yaml', async () => {
    const dir = await newRepo();
    write(dir, 'in.txt', 'hello\n');
    write(dir, 'params.yaml', 'train:\n  lr: 0.1\n  epochs: 3\n');
    write(dir, 'cfg/other.yaml', 'seed: 1\n');
    const r = await tdv(
      dir,
      'stage',
      'add',
      '-n',
      'train',
      '-d',
      'in.txt',
      '-p',
      'train.lr,train.epochs',
      '-p',
      'cfg/other.yaml:seed',
      '-o',
      'model.txt',
      '-O',
      'report.md',
      '--outs-persist',
      'hist.txt',
      '-m',
      'metrics.json',
      '--desc',
      'trains it',
      '--',
      'sh',
      '-c',
      'cp in.txt model.txt; cp in.txt report.md; echo run >> hist.txt; echo "{\\"acc\\": 1}" > metrics.json',
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('Added stage "train" in tdv.yaml (created); `tdv repro train` runs it.\n');
    expect(read(dir, 'tdv.yaml')).toBe(
      [
        'stages:',
        '  train:',
        '    desc: trains it',
        `    cmd: "sh -c 'cp in.txt model.txt; cp in.txt report.md; echo run >> hist.txt; echo \\"{\\\\\\"acc\\\\\\": 1}\\" > metrics.json'"`,
        '    deps:',
        '      - in.txt',
        '    params:',
        '      - train.lr',
        '      - train.epochs',
        '      - cfg/other.yaml:',
        '          - seed',
        '    outs:',
        '      - model.txt',
        '      - report.md:',
        '          cache: false',
        '      - hist.txt:',
        '          persist: true',
        '    metrics:',
        '      - metrics.json',
        '',
      ].join('\n'),
    );
    const run = await tdv(dir, 'repro');
    expect(run.code, run.stderr).toBe(0);
    expect(read(dir, 'model.txt')).toBe('hello\n');
    expect(JSON.parse(read(dir, 'metrics.json'))).toEqual({ acc: 1 });
    expect(read(dir, 'tdv.lock')).toContain('cfg/other.yaml:\n        seed: 1');
  });

  it('appends to an existing tdv.yaml keeping its comments', async () => {
    const dir = await pipelineRepo(COMMENTED);
    const r = await tdv(dir, 'stage', 'add', '-n', 'last', '-d', 'out.txt', '-o', 'last.txt', 'cp out.txt last.txt');
    expect(r.code, r.stderr).toBe(0);
    const text = read(dir, 'tdv.yaml');
    expect(text.startsWith('# The pipeline: keep these notes.\n')).toBe(true);
    expect(text).toContain('# Turn raw input into the middle file.');
    expect(text.endsWith('  last:\n    cmd: cp out.txt last.txt\n    deps:\n      - out.txt\n    outs:\n      - last.txt\n')).toBe(true);
  });

  it('refuses a duplicate name unless --force, which replaces the stage in place', async () => {
    const dir = await pipelineRepo(COMMENTED);
    const before = state(dir);
    const r = await tdv(dir, 'stage', 'add', '-n', 'prep', '-o', 'mid.txt', 'echo x > mid.txt');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'stage "prep" already exists in tdv.yaml', '--force');
    expect(state(dir)).toEqual(before);
    const f = await tdv(dir, 'stage', 'add', '-n', 'prep', '-f', '-o', 'mid.txt', 'echo x > mid.txt');
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout).toContain('Replaced stage "prep"');
    const text = read(dir, 'tdv.yaml');
    // Still first, where it was, and only once.
    expect(text.indexOf('  prep:')).toBeLessThan(text.indexOf('  use:'));
    expect(text.match(/prep:/g)).toHaveLength(1);
    expect(text).toContain('  prep:\n    cmd: echo x > mid.txt\n    outs:\n      - mid.txt\n');
  });

  it('validates the stage as repro would and writes nothing when it is wrong', async () => {
    const dir = await pipelineRepo(COMMENTED, { 'notes.txt': 'mine\n' });
    const before = state(dir);
    const cases: [string[], string[]][] = [
      [['-n', 'bad name', 'echo'], ['stage name "bad name" (from -n) is not allowed']],
      [['-n', 'x', '-o', '../up', 'echo'], ['outside the repository']],
      [
        ['-n', 'x', '-o', 'mid.txt', 'echo'],
        ['mid.txt', 'is an output of both'],
      ],
      [
        ['-n', 'x', '-o', 'notes.txt', 'echo'],
        ['notes.txt', 'is tracked by Git'],
      ],
      [['-n', 'x', '-o', '.git/hooks/pre-commit', 'echo'], ['inside .git/']],
      [['-n', 'x', '-p', 'file.yaml:', 'echo'], ['-p "file.yaml:"']],
    ];
    for (const [args, needles] of cases) {
      const r = await tdv(dir, 'stage', 'add', ...args);
      expect(r.code, args.join(' ')).not.toBe(0);
      expectOneLineError(r.stderr, ...needles);
      expect(state(dir)).toEqual(before);
    }
  });

  it('run from a subdirectory, the stage runs there and its paths are relative to it', async () => {
    const dir = await newRepo();
    write(dir, 'src/in.txt', 'x\n');
    const r = await tdv(path.join(dir, 'src'), 'stage', 'add', '-n', 's', '-d', 'in.txt', '-o', 'out.txt', 'cp in.txt out.txt');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'tdv.yaml')).toBe('stages:\n  s:\n    cmd: cp in.txt out.txt\n    wdir: src\n    deps:\n      - in.txt\n    outs:\n      - out.txt\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect(read(dir, 'src/out.txt')).toBe('x\n');
    const up = await tdv(path.join(dir, 'src'), 'stage', 'add', '-n', 't', '-w', '..', '-o', 'top.txt', 'echo > top.txt');
    expect(up.code, up.stderr).toBe(0);
    expect(read(dir, 'tdv.yaml')).toContain('  t:\n    cmd: echo > top.txt\n    outs:\n      - top.txt\n');
    const out = await tdv(path.join(dir, 'src'), 'stage', 'add', '-n', 'u', '-w', '../..', 'echo');
    expect(out.code).toBe(1);
    expectOneLineError(out.stderr, 'outside the repository');
  });

  it('requires a name and a command', async () => {
    const dir = await newRepo();
    expect((await tdv(dir, 'stage', 'add', 'echo')).code).toBe(2);
    expect((await tdv(dir, 'stage', 'add', '-n', 'x')).code).toBe(2);
    expect(fs.existsSync(path.join(dir, 'tdv.yaml'))).toBe(false);
  });
});

describe('tdv commit', () => {
  const yaml =
    'stages:\n  prep:\n    cmd: cp in.txt mid.txt\n    deps: [in.txt]\n    outs: [mid.txt]\n  use:\n    cmd: cp mid.txt out.txt; cp mid.txt kept.txt\n    deps: [mid.txt]\n    outs:\n      - out.txt\n      - kept.txt: {cache: false}\n';

  it('records outputs made by hand in tdv.lock and the cache, so repro has nothing to run', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    write(dir, 'mid.txt', 'v1\n');
    write(dir, 'out.txt', 'made by hand\n');
    write(dir, 'kept.txt', 'kept\n');
    const r = await tdv(dir, 'commit');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('committed prep\ncommitted use\nRecorded 2 stages in tdv.lock.\n');
    const lock = read(dir, 'tdv.lock');
    expect(lock).toContain(`sha256: ${sha('made by hand\n')}`);
    expect(lock).toContain(`  - path: kept.txt\n        sha256: ${sha('kept\n')}\n        size: 5\n        cache: false\n`);
    expect(fs.existsSync(objPath(dir, sha('made by hand\n')))).toBe(true);
    expect(read(dir, '.gitignore')).toBe('/mid.txt\n/out.txt\n');
    await expectClean(dir);
    await expectPipelineUpToDate(dir);
    expect(read(dir, 'out.txt')).toBe('made by hand\n');
    // Nothing changed since: a second commit has nothing to record.
    const again = await tdv(dir, 'commit');
    expect(again.stdout).toBe('tdv.lock already records every stage as it is.\n');
  });

  it('after a change by hand, records only the named stage', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', 'v2\n');
    write(dir, 'mid.txt', 'v2 by hand\n');
    const r = await tdv(dir, 'commit', 'prep', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ committed: ['prep'], unchanged: [] });
    const st = await tdv(dir, 'status');
    expect(st.stdout).not.toContain('prep:');
    expect(st.stdout).toContain('use: deps changed: mid.txt');
  });

  it('refuses when a dep is missing, before writing anything', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    write(dir, 'mid.txt', 'v1\n');
    write(dir, 'out.txt', 'x\n');
    write(dir, 'kept.txt', 'x\n');
    fs.rmSync(path.join(dir, 'in.txt'));
    const before = state(dir);
    const r = await tdv(dir, 'commit');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'stage "prep": in.txt does not exist', 'tdv pull');
    expect(state(dir)).toEqual(before);
  });

  it('refuses when an output is missing, and an unknown stage', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    const r = await tdv(dir, 'commit', 'prep');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'stage "prep": mid.txt does not exist', '`tdv repro prep`');
    const u = await tdv(dir, 'commit', 'nope');
    expect(u.code).toBe(2);
    expectOneLineError(u.stderr, 'unknown stage "nope"');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });
});

describe('desc and meta in pointer files', () => {
  it('are kept when tdv add records a new version, and other commands read the pointer as usual', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'v1\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    const ptr = read(dir, 'data.csv.tdv');
    write(dir, 'data.csv.tdv', `# where it came from\ndesc: the weather, hourly\nmeta: {source: noaa}\n${ptr.replace(/size: 3\n/, 'size: 3\n  desc: one row per hour\n')}`);
    await expectClean(dir);
    fs.rmSync(path.join(dir, 'data.csv'));
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(read(dir, 'data.csv')).toBe('v1\n');
    fs.chmodSync(path.join(dir, 'data.csv'), 0o644);
    fs.rmSync(path.join(dir, 'data.csv'));
    write(dir, 'data.csv', 'v2\n');
    const r = await tdv(dir, 'add', 'data.csv');
    expect(r.code, r.stderr).toBe(0);
    const now = read(dir, 'data.csv.tdv');
    expect(now).toBe(`desc: "the weather, hourly"\nmeta: {"source":"noaa"}\nouts:\n- path: data.csv\n  sha256: ${sha('v2\n')}\n  size: 3\n  desc: "one row per hour"\n`);
  });
});

describe('the stage commands through bin/tdv', () => {
  it('stage add, repro, freeze, status, unfreeze and commit, as a user types them', async () => {
    const dir = await newRepo();
    write(dir, 'in.txt', 'v1\n');
    const run = async (...args: string[]) => {
      const r = await tdvBin(dir, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      return r.stdout;
    };
    await run('stage', 'add', '-n', 'prep', '-d', 'in.txt', '-o', 'mid.txt', '-O', 'notes.md', '--', 'sh', '-c', 'cp in.txt mid.txt && cp in.txt notes.md');
    await run('stage', 'add', '-n', 'count', '-d', 'mid.txt', '--outs-persist', 'log.txt', '--always-changed', 'wc -l mid.txt >> log.txt');
    expect(await run('repro')).toContain('Ran 2 stages');
    expect(await run('status')).toBe('count: always changed');
    expect(await run('freeze', 'prep', 'count')).toBe('prep: frozen now\ncount: frozen now');
    write(dir, 'in.txt', 'v2\n');
    expect(await run('repro')).toContain('frozen prep: not run');
    expect(read(dir, 'mid.txt')).toBe('v1\n');
    expect(await run('unfreeze', 'prep')).toBe('prep: not frozen now');
    expect(await run('status')).toContain('prep: deps changed: in.txt');
    fs.chmodSync(path.join(dir, 'mid.txt'), 0o644);
    write(dir, 'mid.txt', 'v2 by hand\n');
    write(dir, 'notes.md', 'notes\n');
    expect(await run('commit', 'prep')).toBe('committed prep\nRecorded 1 stage in tdv.lock.');
    expect(await run('status')).toBe('count: frozen\nData and pipelines are up to date.');
    expect(read(dir, 'log.txt')).toBe('1 mid.txt\n');
  });
});
