import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tripsCsv } from '../../fixtures/bikeshare/generate.mjs';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, isReadOnly, newRepo, objPath, sha } from '../helpers/expect.js';
import { bikeshareRepo } from '../helpers/pipeline.js';

const lockOf = (dir: string) => read(dir, 'tdv.lock');

describe('tdv repro (local stages)', () => {
  it('first run executes every stage in order, caches outputs and records tdv.lock', async () => {
    const dir = await bikeshareRepo();
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.match(/^running (\w+)/gm)).toEqual(['running sales', 'running join', 'running report']);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('Ran 3 stages, 0 unchanged.');
    const report = JSON.parse(read(dir, 'metrics/report.json'));
    expect(report.worst_days.map((d: { date: string }) => d.date)).toEqual(['2024-07-30', '2024-07-31']);
    const lock = lockOf(dir);
    expect(lock).toContain('cmd: sh scripts/sales.sh data/trips params.yaml out/sales.csv');
    expect(lock).toContain(`sha256: ${sha(read(dir, 'out/sales.csv'))}`);
    expect(lock).toContain('sales.price: 4.25');
    expect(fs.existsSync(objPath(dir, sha(read(dir, 'out/joined.csv'))))).toBe(true);
    expect(read(dir, 'out/.gitignore')).toContain('/sales.csv');
    expect(fs.existsSync(path.join(dir, '.tdv', 'logs', 'sales.log'))).toBe(true);
  });

  it('the first run leaves a committed .tdv/.gitignore as init wrote it (its /logs/ covers the logs)', async () => {
    const dir = await bikeshareRepo();
    const before = read(dir, '.tdv/.gitignore');
    expect(before).toContain('/logs/\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect(read(dir, '.tdv/.gitignore')).toBe(before);
    expect(await git(dir, 'status', '--porcelain', '--', '.tdv')).toBe('');
  });

  it('a second run does nothing', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const before = lockOf(dir);
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('Pipeline is up to date.');
    expect(lockOf(dir)).toBe(before);
  });

  it('changing one day of trips reruns the stages downstream of it only', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'data/trips/2024-07-31.csv', tripsCsv(31, 90));
    const dry = await tdv(dir, 'repro', '--dry');
    expect(dry.stdout).toContain('would run sales: deps changed: data/trips');
    expect(dry.stdout).toContain('would run join: upstream will run: sales');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.match(/^running (\w+)/gm)).toEqual(['running sales', 'running join', 'running report']);
  });

  it('a change that does not alter an output stops the rerun there', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    // Same script behaviour, different bytes: sales reruns, produces the same output, join is skipped.
    fs.appendFileSync(path.join(dir, 'scripts/sales.sh'), '# a comment\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.match(/^running (\w+)/gm)).toEqual(['running sales']);
    expect(r.stdout).toContain('Ran 1 stage, 2 unchanged.');
  });

  it('a changed param reruns its stage and says which', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'params.yaml', 'sales:\n  price: 5.00\n');
    const r = await tdv(dir, 'repro');
    expect(r.stdout).toContain('running sales: params changed: sales.price');
    expect(lockOf(dir)).toContain('sales.price: 5');
  });

  it('restores outputs from the run-cache after a revert instead of rerunning', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const v1 = read(dir, 'out/sales.csv');
    write(dir, 'params.yaml', 'sales:\n  price: 5.00\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'params.yaml', 'sales:\n  price: 4.25   # dollars per trip\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('restored sales from the run-cache');
    expect(r.stdout).not.toMatch(/^running/m);
    expect(read(dir, 'out/sales.csv')).toBe(v1);
    const noCache = await tdv(dir, 'repro', '--force', 'sales', '--no-run-cache');
    expect(noCache.stdout).toContain('running sales: forced');
  });

  it('a stage that fails stops the run with its log tail; --keep-going runs independent stages', async () => {
    const dir = await newRepo();
    write(
      dir,
      'tdv.yaml',
      'stages:\n  bad:\n    cmd: echo boom >&2; exit 3\n    outs: [a.txt]\n  after:\n    cmd: cp a.txt b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n  other:\n    cmd: echo ok > c.txt\n    outs: [c.txt]\n',
    );
    const r = await tdv(dir, 'repro', '-j', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "bad" failed: exit code 3 (log: .tdv/logs/bad.log)');
    expect(r.stdout).toContain('bad | boom');
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: 1 stage failed: bad; not run: after/);
    const k = await tdv(dir, 'repro', '--keep-going', '-j', '1');
    expect(k.code).toBe(1);
    expect(read(dir, 'c.txt')).toBe('ok\n');
    expect(read(dir, 'tdv.lock')).toContain('other:');
    expect(read(dir, 'tdv.lock')).not.toContain('bad:');
  });

  it("a failed stage's output is printed once: live as it ran, its log tail only when that was not shown (--json)", async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  bad:\n    cmd: echo first line; echo second line >&2; exit 3\n    outs: [a.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    const all = `${r.stdout}${r.stderr}`;
    expect(all.match(/bad \| first line/g)).toHaveLength(1);
    expect(all.match(/bad \| second line/g)).toHaveLength(1);
    expect(r.stderr).toContain('stage "bad" failed: exit code 3 (log: .tdv/logs/bad.log)');
    // With --json stdout holds the document only: the tail on stderr is then the one place the output shows.
    const j = await tdv(dir, 'repro', '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout).failed[0].stage).toBe('bad');
    expect(j.stderr.match(/bad \| first line/g)).toHaveLength(1);
    expect(j.stderr.match(/bad \| second line/g)).toHaveLength(1);
  });

  it('a stage that does not produce a declared output fails', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  lazy:\n    cmd: "true"\n    outs: [never.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "lazy" did not produce never.txt, which tdv.yaml declares');
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });

  it('outputs of stages are pushed, pulled and checked out like tracked data', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    fs.rmSync(path.join(dir, 'out'), { recursive: true });
    const st = await tdv(dir, 'status');
    expect(st.stdout).toContain('deleted:');
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'out/joined.csv'))).toBe(true);
    expect(isReadOnly(path.join(dir, 'out/joined.csv'))).toBe(false);
  });
});

describe('tdv.yaml validation', () => {
  const bad = async (yaml: string, ...needles: (string | RegExp)[]) => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', yaml);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, ...needles);
  };
  it('names an unknown key with file:line:column', () => bad('stages:\n  a:\n    cmd: x\n    dep: [y]\n', 'tdv.yaml:4:5', 'unknown key "dep"'));
  it('requires cmd', () => bad('stages:\n  a:\n    outs: [x]\n', 'tdv.yaml:2:3', 'stage "a" has no "cmd"'));
  it('rejects a wrong type', () => bad('stages:\n  a:\n    cmd: x\n    outs: y\n', 'tdv.yaml:4:5', '"outs" of stage "a" must be a list'));
  it('rejects a path outside the repository', () => bad('stages:\n  a:\n    cmd: x\n    outs: [../x]\n', 'outside the repository'));
  it('rejects two stages with the same output', () => bad('stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o]\n', 'o is an output of both "a" and "b"'));
  it('names a cycle', () => bad('stages:\n  a:\n    cmd: x\n    deps: [b.txt]\n    outs: [a.txt]\n  b:\n    cmd: y\n    deps: [a.txt]\n    outs: [b.txt]\n', /cycle: (a -> b -> a|b -> a -> b)/));
  it('rejects image and build together', () => bad('stages:\n  a:\n    cmd: x\n    image: busybox\n    build: docker\n', 'both "image" and "build"'));
  it('reports YAML syntax errors with a position', () => bad('stages:\n  a:\n    cmd: [x\n', /tdv\.yaml:\d+:\d+: invalid YAML/));
  it('rejects a stage name that could inject options', () => bad('stages:\n  "--rm":\n    cmd: x\n', 'stage name "--rm" is not allowed'));
  it('rejects an output that a .tdv pointer tracks', async () => {
    const dir = await newRepo();
    write(dir, 'd/x.csv', '1');
    expect((await tdv(dir, 'add', 'd')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: x\n    outs: [d/y.csv]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'd/y.csv (output of "a") overlaps d, which d.tdv tracks');
  });
  it('a corrupt tdv.lock names the file, line and column of the entry at fault', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo 1 > a.txt\n    outs: [a.txt]\n');
    write(dir, 'tdv.lock', `schema: 1\nstages:\n  a:\n    cmd: x\n    outs:\n    - path: ../../etc/passwd\n      sha256: ${'a'.repeat(64)}\n      size: 1\n`);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.lock:6:7', 'unsafe path');
  });
});

describe('tdv repro: parallel stages, status and dag', () => {
  const twoSleepers =
    'stages:\n  a:\n    cmd: date +%s%N > a.txt; sleep 1; date +%s%N >> a.txt\n    outs: [a.txt]\n  b:\n    cmd: date +%s%N > b.txt; sleep 1; date +%s%N >> b.txt\n    outs: [b.txt]\n  both:\n    cmd: cat a.txt b.txt > both.txt\n    deps: [a.txt, b.txt]\n    outs: [both.txt]\n';
  const span = (dir: string, f: string) => read(dir, f).trim().split('\n').map(BigInt) as [bigint, bigint];

  it('independent stages really overlap in time with -j 2, and not with -j 1', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', twoSleepers);
    const r = await tdv(dir, 'repro', '-j', '2');
    expect(r.code, r.stderr).toBe(0);
    const [a0, a1] = span(dir, 'a.txt');
    const [b0, b1] = span(dir, 'b.txt');
    expect(a0 < b1 && b0 < a1).toBe(true);
    expect(read(dir, 'both.txt')).toBe(read(dir, 'a.txt') + read(dir, 'b.txt'));
    const seq = await tdv(dir, 'repro', '-j', '1', '--force', '--no-run-cache');
    expect(seq.code, seq.stderr).toBe(0);
    const [c0, c1] = span(dir, 'a.txt');
    const [d0, d1] = span(dir, 'b.txt');
    expect(c1 <= d0 || d1 <= c0).toBe(true);
  });

  it('status lists changed stages and why; clean after repro', async () => {
    const dir = await bikeshareRepo();
    const before = await tdv(dir, 'status', '--json');
    expect(JSON.parse(before.stdout).stages).toEqual([
      { name: 'sales', reasons: ['never run'] },
      { name: 'join', reasons: ['never run'] },
      { name: 'report', reasons: ['never run'] },
    ]);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect((await tdv(dir, 'status')).stdout.trim()).toBe('Data and pipelines are up to date.');
    write(dir, 'params.yaml', 'sales:\n  price: 1\n');
    const after = await tdv(dir, 'status');
    expect(after.stdout).toContain('sales: params changed: sales.price');
    expect(after.stdout).toContain('join: upstream changed: sales');
  });

  it('dag prints the graph as text, DOT and Mermaid', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'dag')).stdout).toBe('sales\njoin  <- sales\nreport  <- join\n');
    const dot = (await tdv(dir, 'dag', '--dot')).stdout;
    expect(dot).toContain('"sales" -> "join";');
    expect(dot).toContain('"join" -> "report";');
    expect((await tdv(dir, 'dag', '--mermaid')).stdout).toBe('flowchart LR\n  s0["sales"]\n  s1["join"]\n  s2["report"]\n  s0 --> s1\n  s1 --> s2\n');
  });

  it('only the named stage and its upstream run; --downstream runs what follows', async () => {
    const dir = await bikeshareRepo();
    const r = await tdv(dir, 'repro', 'join');
    expect(r.stdout.match(/^running (\w+)/gm)).toEqual(['running sales', 'running join']);
    const d = await tdv(dir, 'repro', 'join', '--downstream', '--force');
    expect(d.stdout.match(/^running (\w+)/gm)).toEqual(['running join', 'running report']);
    const u = await tdv(dir, 'repro', 'nope');
    expect(u.code).toBe(2);
    expectOneLineError(u.stderr, 'unknown stage "nope"', 'sales, join, report');
  });
});

describe('run-cache travels with push/pull --run-cache', () => {
  it('a teammate restores a run made elsewhere instead of rerunning it', async () => {
    const { git } = await import('../helpers/repo.js');
    const { newDir } = await import('../helpers/expect.js');
    const dir = await bikeshareRepo();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', remote)).code).toBe(0);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'pipeline at 4.25');
    // An experiment that is never committed, but its run is published.
    write(dir, 'params.yaml', 'sales:\n  price: 6.00\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const experiment = read(dir, 'out/sales.csv');
    const p = await tdv(dir, 'push', '--run-cache', '--json');
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout).runs).toBe(6);

    const b = path.join(newDir(), 'clone');
    await git(path.dirname(b), 'clone', '-q', dir, b);
    const pull = await tdv(b, 'pull', '--run-cache', '--json');
    expect(pull.code, pull.stderr).toBe(0);
    expect(JSON.parse(pull.stdout).runs).toBe(6);
    write(b, 'params.yaml', 'sales:\n  price: 6.00\n');
    const r = await tdv(b, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('restored sales from the run-cache');
    expect(r.stdout).not.toMatch(/^running/m);
    expect(read(b, 'out/sales.csv')).toBe(experiment);
  });
});
