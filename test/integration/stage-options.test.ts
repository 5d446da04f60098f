import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pipelineRepo } from '../helpers/pipeline.js';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, objPath, setConfig, sha } from '../helpers/expect.js';
import { status } from '../../src/repo/status.js';
import { expectClean, expectPipelineUpToDate, repro, started, withRepo } from '../helpers/api.js';

describe('list-form cmd', () => {
  it('runs each command in order, each by its own shell, and records the list in tdv.lock', async () => {
    // `cd` in the first command must not carry over: each command is a shell of its own, in wdir.
    const dir = await pipelineRepo('stages:\n  build:\n    cmd:\n      - mkdir -p sub && cd sub && echo one > ../out.txt\n      - echo two >> out.txt\n    outs: [out.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'out.txt')).toBe('one\ntwo\n');
    expect(read(dir, 'tdv.lock')).toContain('    cmd:\n      - mkdir -p sub && cd sub && echo one > ../out.txt\n      - echo two >> out.txt\n');
    await expectPipelineUpToDate(dir);
  });

  it('stops at the first command that fails, says which one, and records nothing', async () => {
    const dir = await pipelineRepo('stages:\n  build:\n    cmd:\n      - echo one > out.txt\n      - exit 3\n      - echo three > third.txt\n    outs: [out.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "build" failed: command 2 of 3 exit code 3');
    expect(fs.existsSync(path.join(dir, 'third.txt'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });

  it('changing one command of the list reruns the stage', async () => {
    const dir = await pipelineRepo('stages:\n  build:\n    cmd: [echo one > out.txt]\n    outs: [out.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  build:\n    cmd: [echo one > out.txt, echo two >> out.txt]\n    outs: [out.txt]\n');
    expect((await tdv(dir, 'status')).stdout).toContain('build: cmd changed');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'out.txt')).toBe('one\ntwo\n');
  });

  it('refuses an empty list and a command that is not a string, at its line', async () => {
    const empty = await pipelineRepo('stages:\n  build:\n    cmd: []\n');
    const r1 = await tdv(empty, 'repro');
    expect(r1.code).toBe(1);
    expectOneLineError(r1.stderr, 'tdv.yaml:3:5', '"cmd" of stage "build" must be a command or a list of commands');
    const misread = await pipelineRepo('stages:\n  build:\n    cmd:\n      python: train.py\n');
    const r0 = await tdv(misread, 'repro');
    expectOneLineError(r0.stderr, 'tdv.yaml:3:5', 'but YAML reads it as a mapping', 'Quote the command');
    const number = await pipelineRepo('stages:\n  build:\n    cmd: 42\n');
    expectOneLineError((await tdv(number, 'repro')).stderr, 'YAML reads it as the number 42');
    const mapping = await pipelineRepo('stages:\n  build:\n    cmd:\n      - echo a\n      - echo: b\n');
    const r2 = await tdv(mapping, 'repro');
    expect(r2.code).toBe(1);
    expectOneLineError(r2.stderr, 'tdv.yaml:5:9', 'entry 2 of "cmd" in stage "build" must be a non-empty command string', 'Quote');
  });
});

describe('frozen stages', () => {
  const yaml = (frozen: boolean) =>
    `stages:\n  prep:\n    cmd: cp in.txt mid.txt\n    deps: [in.txt]\n    outs: [mid.txt]\n${frozen ? '    frozen: true\n' : ''}  use:\n    cmd: cp mid.txt out.txt\n    deps: [mid.txt]\n    outs: [out.txt]\n`;

  it('are never run, not even with --force, and status says frozen', async () => {
    const dir = await pipelineRepo(yaml(false), { 'in.txt': 'v1\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.yaml', yaml(true));
    write(dir, 'in.txt', 'v2\n');
    // Listed as a reminder, without its changed deps, and clean.
    expect(await withRepo(dir, (r) => status(r))).toEqual({ clean: true, data: [], stages: [{ name: 'prep', reasons: ['frozen'], frozen: true }] });
    const dry = await repro(dir, { dry: true });
    expect(dry.plan?.find((p) => p.stage === 'prep')).toEqual({ stage: 'prep', reasons: [], frozen: true });
    for (const opts of [{}, { force: true }, { stages: ['prep'], force: true }]) {
      const r = await repro(dir, opts);
      expect(r.failed).toEqual([]);
      expect(r.ran).not.toContain('prep');
      expect(read(dir, 'mid.txt')).toBe('v1\n');
    }
  });

  it('repro of a stage downstream does not run what is upstream of the frozen stage', async () => {
    const dir = await pipelineRepo(yaml(true), { 'in.txt': 'v1\n' });
    write(dir, 'mid.txt', 'by hand\n');
    expect((await repro(dir, { stages: ['use'] })).ran).toEqual(['use']);
    expect(read(dir, 'out.txt')).toBe('by hand\n');
  });

  it('status still reports a frozen stage whose outputs were changed', async () => {
    const dir = await pipelineRepo(yaml(false), { 'in.txt': 'v1\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'tdv.yaml', yaml(true));
    fs.rmSync(path.join(dir, 'mid.txt'));
    const st = await tdv(dir, 'status', '--json');
    const json = JSON.parse(st.stdout);
    expect(json.clean).toBe(false);
    expect(json.stages[0]).toEqual({ name: 'prep', reasons: ['frozen', 'outs missing: mid.txt'], frozen: true });
  });

  it('refuses a frozen value that is not a boolean', async () => {
    const dir = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    frozen: yes please\n');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml:4:5', '"frozen" of stage "a" must be true or false');
  });
});

describe('always_changed', () => {
  it('runs the stage on every repro, never from the run-cache, and status says so', async () => {
    const dir = await pipelineRepo('stages:\n  stamp:\n    cmd: echo run >> runs.txt; cp runs.txt out.txt\n    outs: [out.txt]\n    always_changed: true\n');
    for (let i = 1; i <= 3; i++) {
      const r = await repro(dir);
      expect(r).toMatchObject({ ran: ['stamp'], restored: [], failed: [] });
      expect(started(r)).toEqual([['stamp', i === 1 ? ['always changed', 'never run'] : ['always changed']]]);
      expect(read(dir, 'runs.txt')).toBe('run\n'.repeat(i));
    }
    const st = await tdv(dir, 'status');
    expect(st.stdout).toContain('stamp: always changed');
    expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout).clean).toBe(false);
  });
});

describe('outputs with cache: false', () => {
  const yaml =
    'stages:\n  report:\n    cmd: cp in.txt report.md; mkdir -p plots; cp in.txt plots/p.txt\n    deps: [in.txt]\n    outs:\n      - report.md: {cache: false}\n      - plots:\n          cache: false\n';

  it('are recorded in tdv.lock with their hash but neither cached nor git-ignored', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    const lock = read(dir, 'tdv.lock');
    expect(lock).toContain(`  - path: report.md\n        sha256: ${sha('v1\n')}\n        size: 3\n        cache: false\n`);
    expect(lock).toMatch(/- path: plots\n\s+sha256: [0-9a-f]{64}\.dir\n\s+size: 3\n\s+nfiles: 1\n\s+cache: false\n/);
    expect(fs.existsSync(path.join(dir, '.gitignore'))).toBe(false);
    // Git sees them as new files to commit.
    expect(await git(dir, 'status', '--porcelain', '--untracked-files=all')).toContain('?? report.md');
    expect(await git(dir, 'status', '--porcelain', '--untracked-files=all')).toContain('?? plots/p.txt');
    // Not linked into the cache: a plain, writable file the stage wrote.
    expect(fs.statSync(path.join(dir, 'report.md')).nlink).toBe(1);
  });

  it('once committed to Git, rerun the stage (deleting the Git-tracked output first) and checkout leaves them alone', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'run');
    await expectClean(dir);
    write(dir, 'in.txt', 'v2\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'report.md')).toBe('v2\n');
    expect(read(dir, 'plots/p.txt')).toBe('v2\n');
    // checkout, push and the like never treat them as cached data.
    fs.rmSync(path.join(dir, 'report.md'));
    const co = await tdv(dir, 'checkout');
    expect(co.code, co.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'report.md'))).toBe(false);
    expect((await tdv(dir, 'status')).stdout).toContain('report: outs missing: report.md');
  });

  it('are restored from the run-cache as copies, not git-ignored', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', 'v2\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', 'v1\n');
    expect(await repro(dir)).toMatchObject({ ran: [], restored: ['report'], failed: [] });
    expect(read(dir, 'report.md')).toBe('v1\n');
    expect(fs.existsSync(path.join(dir, '.gitignore'))).toBe(false);
    expect(read(dir, 'tdv.lock')).toContain('cache: false');
  });

  it('an output that was cached and becomes cache: false loses its .gitignore line, so Git sees it', async () => {
    const dir = await pipelineRepo('stages:\n  a:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n', { 'in.txt': 'v1\n', '.gitignore': '*.log\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect(read(dir, '.gitignore')).toBe('*.log\n/out.txt\n');
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs:\n      - out.txt: {cache: false}\n');
    expect((await tdv(dir, 'status')).stdout).toContain('a: outs cache changed: out.txt');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, '.gitignore')).toBe('*.log\n');
    expect(await git(dir, 'status', '--porcelain')).toContain('?? out.txt');
    expect(read(dir, 'tdv.lock')).toContain('cache: false');
  });

  it('go through the same output checks: a Git-tracked file not recorded as such is refused', async () => {
    const dir = await pipelineRepo(yaml, { 'in.txt': 'v1\n', 'report.md': 'my notes\n' });
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml:6:9', 'report.md', 'is tracked by Git');
    expect(read(dir, 'report.md')).toBe('my notes\n');
  });

  it('refuses unknown or mistyped options of an output, and cache: true on metrics', async () => {
    const typo = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    outs:\n      - x: {cahce: false}\n');
    const r1 = await tdv(typo, 'repro');
    expect(r1.code).toBe(1);
    expectOneLineError(r1.stderr, 'tdv.yaml:5:13', 'unknown option "cahce" of "x" in stage "a"', 'Known options: cache, persist, desc');
    const notBool = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    outs:\n      - x: {cache: "no"}\n');
    expectOneLineError((await tdv(notBool, 'repro')).stderr, '"cache" of "x" in stage "a" must be true or false');
    const metric = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    metrics:\n      - m.json: {cache: true}\n');
    expectOneLineError((await tdv(metric, 'repro')).stderr, 'metrics "m.json" of stage "a" cannot be cached');
    const two = await pipelineRepo('stages:\n  a:\n    cmd: echo\n    outs:\n      - {x: {}, y: {}}\n');
    expectOneLineError((await tdv(two, 'repro')).stderr, 'entry 1 of "outs" in stage "a" must be a path, or one path with its options');
  });
});

describe('outputs with persist: true', () => {
  it('are not deleted before the stage runs, and the stage never uses the run-cache', async () => {
    const dir = await pipelineRepo('stages:\n  log:\n    cmd: cat in.txt >> history.txt\n    deps: [in.txt]\n    outs:\n      - history.txt: {persist: true}\n', { 'in.txt': 'a\n' });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', 'b\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect(read(dir, 'history.txt')).toBe('a\nb\n');
    write(dir, 'in.txt', 'a\n');
    const r = await tdv(dir, 'repro');
    expect(r.stdout).not.toContain('restored');
    expect(read(dir, 'history.txt')).toBe('a\nb\na\n');
    expect(read(dir, '.gitignore')).toContain('/history.txt');
  });

  it('a persisting output linked into the cache is made a copy before the stage appends to it', async () => {
    const dir = await pipelineRepo('stages:\n  log:\n    cmd: cat in.txt >> history.txt\n    deps: [in.txt]\n    outs:\n      - history.txt: {persist: true}\n', { 'in.txt': 'a\n' });
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n'); // the tests run as root
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const first = objPath(dir, sha('a\n'));
    expect(fs.statSync(path.join(dir, 'history.txt')).ino).toBe(fs.statSync(first).ino);
    write(dir, 'in.txt', 'b\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'history.txt')).toBe('a\nb\n');
    // The cached object of the first run is intact.
    expect(fs.readFileSync(first, 'utf8')).toBe('a\n');
    expect((await tdv(dir, 'fsck')).code).toBe(0);
  });
});

describe('persisting metrics', () => {
  it('are not deleted before the stage runs, and metrics show reads the long form', async () => {
    // The script sees the metrics file of the previous run only if it was kept.
    const script = 'if [ -f m.json ]; then echo \'{"runs": 2}\' > m.json; else echo \'{"runs": 1}\' > m.json; fi\n';
    const dir = await pipelineRepo('stages:\n  eval:\n    cmd: sh eval.sh\n    deps: [in.txt]\n    metrics:\n      - m.json: {persist: true}\n', { 'in.txt': 'a\n', 'eval.sh': script });
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', 'b\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    const show = await tdv(dir, 'metrics', 'show', '--json');
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({ 'm.json': { runs: 2 } });
  });
});

describe('desc and meta', () => {
  it('are accepted on stages and outputs and change nothing about the run', async () => {
    const dir = await pipelineRepo('stages:\n  a:\n    desc: makes x\n    meta: {owner: data-team, tags: [nightly]}\n    cmd: echo x > x\n    outs:\n      - x: {desc: the x file}\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'tdv.lock')).not.toContain('desc');
    const bad = await pipelineRepo('stages:\n  a:\n    desc: [not, text]\n    cmd: echo\n');
    expectOneLineError((await tdv(bad, 'repro')).stderr, 'tdv.yaml:3:5', '"desc" of stage "a" must be a string');
  });
});
