import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dot, dotString, mermaid, mermaidLabel } from '../../src/cli/commands/lineage.js';
import type { LineageResult } from '../../src/repo/lineage.js';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, sha } from '../helpers/expect.js';
import { pipelineRepo } from '../helpers/pipeline.js';

/**
 * CLI layer: how `tdv lineage` prints a provenance (tree, --json, --mermaid,
 * --dot) and its exit codes. What it finds is tested through the API, in
 * test/api/lineage.test.ts.
 */
const PIPELINE =
  'stages:\n  prep:\n    cmd: sh prep.sh\n    deps: [raw.csv, prep.sh]\n    outs: [clean.csv]\n  train:\n    cmd: cp clean.csv model.bin\n    deps: [clean.csv]\n    outs: [model.bin]\n';

async function built(): Promise<string> {
  const dir = await pipelineRepo(PIPELINE, { 'prep.sh': 'cp raw.csv clean.csv\n' });
  write(dir, 'raw.csv', 'a\n');
  expect((await tdv(dir, 'add', '-q', 'raw.csv')).code).toBe(0);
  expect((await tdv(dir, 'repro', '-q')).code).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'run');
  return dir;
}

describe('tdv lineage: output', () => {
  it('a tree from the output to its sources; stale deps say what differs', async () => {
    const dir = await built();
    const r = await tdv(dir, 'lineage', 'model.bin');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('model.bin  <- train');
    expect(lines[1]).toBe('└─ train  $ cp clean.csv model.bin');
    expect(lines[2]).toMatch(/^ {3}└─ clean\.csv {2}[0-9a-f]{8} {2}<- prep$/);
    expect(lines[3]).toBe('      └─ prep  $ sh prep.sh');
    // tdv.lock sorts deps by path.
    expect(lines[4]).toMatch(/^ {9}├─ prep\.sh {2}[0-9a-f]{8} {2}git blob [0-9a-f]{12}, commit [0-9a-f]{12} \d{4}-\d\d-\d\d pipeline$/);
    expect(lines[5]).toMatch(/^ {9}└─ raw\.csv {2}[0-9a-f]{8} {2}data \(raw\.csv\.tdv, commit [0-9a-f]{12} \d{4}-\d\d-\d\d run\)$/);

    write(dir, 'raw.csv', 'b\n');
    expect((await tdv(dir, 'add', '-q', 'raw.csv')).code).toBe(0);
    const stale = await tdv(dir, 'lineage', 'model.bin');
    expect(stale.code).toBe(0);
    expect(stale.stdout).toContain('└─ prep  [STALE]  $ sh prep.sh');
    expect(stale.stdout).toContain(`STALE: recorded ${sha('a\n').slice(0, 8)}, now ${sha('b\n').slice(0, 8)}`);
    expect(stale.stderr).toMatch(/^warning: some stages are stale/);

    const rev = await tdv(dir, 'lineage', '--rev', 'HEAD', 'model.bin', '--depth', '1');
    expect(rev.stdout.split('\n').slice(0, 3)).toEqual([
      `model.bin at HEAD (${(await git(dir, 'rev-parse', 'HEAD')).trim().slice(0, 12)})  <- train`,
      '└─ train  $ cp clean.csv model.bin',
      expect.stringMatching(/└─ clean\.csv .*<- prep/),
    ]);
    expect(rev.stdout).toContain('prep  (beyond --depth)');
    expect(rev.stdout).toContain('(stopped at --depth; more stages lie upstream)');

    const down = await tdv(dir, 'lineage', '--reverse', 'raw.csv');
    expect(down.stdout).toBe('raw.csv: 2 stages downstream\n  1  prep  [STALE]  -> clean.csv\n  2  train  -> model.bin\n');
  });

  it('an output edited since its run: a warning that this is not its provenance; data changed since `tdv add` is named', async () => {
    const dir = await built();
    fs.chmodSync(path.join(dir, 'model.bin'), 0o644);
    write(dir, 'model.bin', 'forged\n');
    const r = await tdv(dir, 'lineage', 'model.bin');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      'warning: model.bin in the workspace is not what train recorded: it changed since that run, so this is not its provenance (`tdv checkout` restores the output, `tdv repro` reruns the stage)\n',
    );
    expect(JSON.parse((await tdv(dir, 'lineage', 'model.bin', '--json')).stdout)).toMatchObject({ modified: true, status: 'stale' });
    fs.chmodSync(path.join(dir, 'raw.csv'), 0o644);
    write(dir, 'raw.csv', 'z\n');
    expect((await tdv(dir, 'lineage', 'raw.csv')).stdout).toMatch(/^raw\.csv: source data \(raw\.csv\.tdv, commit [0-9a-f]{12} \S+ run, changed since `tdv add`\); no stage writes it\n$/);
  });

  it('--json is the typed result; --mermaid and --dot draw the graph', async () => {
    const dir = await built();
    const j = JSON.parse((await tdv(dir, 'lineage', 'model.bin', '--json')).stdout) as LineageResult;
    expect(j).toMatchObject({ target: 'model.bin', direction: 'up', kind: 'output', producers: ['train'], rev: null, status: 'fresh' });
    expect(j.stages.map((s) => s.name)).toEqual(['train', 'prep']);
    expect(j.sources.map((s) => [s.path, s.kind])).toEqual([
      ['prep.sh', 'git'],
      ['raw.csv', 'data'],
    ]);
    const m = await tdv(dir, 'lineage', 'model.bin', '--mermaid');
    expect(m.stdout).toBe(
      'flowchart LR\n  n0[/"model.bin"/]\n  n1["train"]\n  n2["prep"]\n  n3[/"clean.csv"/]\n  n4[/"prep.sh"/]\n  n5[/"raw.csv"/]\n  n3 --> n1\n  n1 --> n0\n  n4 --> n2\n  n5 --> n2\n  n2 --> n3\n',
    );
    const d = await tdv(dir, 'lineage', 'model.bin', '--dot');
    expect(d.stdout).toContain('digraph lineage {\n  rankdir=LR;\n  n0 [shape=note, label="model.bin"];\n  n1 [shape=box, label="train"];');
    expect(d.stdout).toContain('  n2 -> n3;\n}\n');
    const both = await tdv(dir, 'lineage', 'model.bin', '--dot', '--json');
    expect(both.code).toBe(2);
    expectOneLineError(both.stderr, 'choose one of');
  });

  it('an unknown path: one line naming it and the fix, exit 2', async () => {
    const dir = await built();
    const r = await tdv(dir, 'lineage', 'nope.csv');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'nope.csv', 'is written by no stage', '`tdv dag`');
    const j = await tdv(dir, 'lineage', 'nope.csv', '--json');
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout)).toMatchObject({ error: { code: 'NOT_TRACKED' } });
  });

  it('stage names from a hand-edited tdv.lock cannot forge lines or send terminal controls', async () => {
    const dir = await pipelineRepo('stages: {}\n');
    const h = sha('x');
    const entry = (p: string) => `    - path: ${JSON.stringify(p)}\n      sha256: ${h}\n      size: 1\n`;
    const evil = 'evil\n\u001b[32mFAKE  <- fresh\u001b[0m';
    write(dir, 'tdv.lock', `schema: 1\nstages:\n  ${JSON.stringify(evil)}:\n    cmd: "true"\n    deps:\n${entry('in')}    outs:\n${entry('o')}`);
    for (const args of [['o'], ['--reverse', 'in']]) {
      const r = await tdv(dir, 'lineage', ...args);
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
      expect(r.stdout).toContain('evil\\n\\u001b[32mFAKE  <- fresh\\u001b[0m');
      expect(r.stdout.split('\n').filter((l) => l.includes('FAKE')).length).toBe(args[0] === 'o' ? 2 : 1);
    }
  });

  it('a chain of thousands of stages: drawn without overflowing the stack, nested at most 100 deep', async () => {
    const dir = await pipelineRepo('stages: {}\n');
    const h = sha('x');
    const entry = (p: string) => `    - path: ${p}\n      sha256: ${h}\n      size: 1\n`;
    let lock = 'schema: 1\nstages:\n';
    for (let i = 0; i < 3000; i++) lock += `  s${i}:\n    cmd: "true"\n    deps:\n${entry(i ? `o${i - 1}` : 'in')}    outs:\n${entry(`o${i}`)}`;
    write(dir, 'tdv.lock', lock);
    const r = await tdv(dir, 'lineage', 'o2999');
    expect(r.stderr).not.toContain('bug');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('o2999  <- s2999');
    expect(lines[1]).toBe('└─ s2999  $ true');
    expect(lines[2]).toMatch(/^ {3}└─ o2998 {2}[0-9a-f]{8} {2}<- s2998$/);
    expect(lines.at(-1)).toBe(`${' '.repeat(600)}└─ s2899  (and what made it: too deep to draw here; --json lists every stage)`);
    expect(lines.length).toBe(202);
    expect((JSON.parse((await tdv(dir, 'lineage', 'o2999', '--json')).stdout) as LineageResult).stages.length).toBe(3000);
  });

  it('paths with quotes, spaces, brackets and newlines: node ids stay n0, n1, ...; labels escaped', async () => {
    const dir = await pipelineRepo('stages: {}\n');
    const h = sha('x');
    const nasty = 'we"ird [x] {y} (z) |a| <b> #c; `d`\nnext "line"\\';
    const entry = (p: string) => `    - path: ${JSON.stringify(p)}\n      sha256: ${h}\n      size: 1\n`;
    write(dir, 'tdv.lock', `schema: 1\nstages:\n  "s]\\"1\\n":\n    cmd: "true"\n    deps:\n${entry(nasty)}    outs:\n${entry('out "1".txt')}`);
    const r = await tdv(dir, 'lineage', '--json', 'out "1".txt');
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as LineageResult;
    expect(res.stages[0]!.deps[0]!.path).toBe(nasty);
    const m = mermaid(res).split('\n').slice(1, -1);
    for (const line of m) expect(line).toMatch(/^ {2}(n\d+\["[^"\n`<>]*"\]|n\d+\[\/"[^"\n`<>]*"\/\]|n\d+ (-->|-\. stale \.->) n\d+)$/);
    expect(m.join('\n')).toContain('we#quot;ird [x] {y} (z) |a| #lt;b#gt; #35;c; #96;d#96;#10;next #quot;line#quot;\\');
    const g = dot(res).split('\n').slice(2, -2);
    for (const line of g) expect(line).toMatch(/^ {2}(n\d+ \[shape=(box|note), label="([^"\\\n]|\\.)*"(, color=red)?\];|n\d+ -> n\d+( \[style=dashed, color=red, label="stale"\])?;)$/);
    expect(g.join('\n')).toContain('label="we\\"ird [x] {y} (z) |a| <b> #c; `d`\\nnext \\"line\\"\\\\"');
    expect(mermaidLabel('a"b\rc')).toBe('a#quot;b#13;c');
    expect(dotString('a\\"\n')).toBe('"a\\\\\\"\\n"');
  });
});
