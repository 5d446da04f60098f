import { describe, expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo } from '../helpers/expect.js';
import { bikeshareRepo } from '../helpers/pipeline.js';

// What repro runs, skips, restores and records: test/api/repro.test.ts; how the CLI words it: test/cli/repro.test.ts.

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

  it('dag prints the graph as text, DOT and Mermaid', async () => {
    const dir = await bikeshareRepo();
    expect((await tdv(dir, 'dag')).stdout).toBe('sales\njoin  <- sales\nreport  <- join\n');
    const dot = (await tdv(dir, 'dag', '--dot')).stdout;
    expect(dot).toContain('"sales" -> "join";');
    expect(dot).toContain('"join" -> "report";');
    expect((await tdv(dir, 'dag', '--mermaid')).stdout).toBe('flowchart LR\n  s0["sales"]\n  s1["join"]\n  s2["report"]\n  s0 --> s1\n  s1 --> s2\n');
  });
});
