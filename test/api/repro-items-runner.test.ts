import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { reproduce } from '../../src/repo/repro.js';
import type { JobSpec } from '../../src/stages/job.js';
import { read, tdv, write } from '../helpers/repo.js';
import { newRepo } from '../helpers/expect.js';
import { openRepo } from '../helpers/api.js';
import { sandboxRunner } from '../helpers/sandbox-runner.js';

/**
 * Porcelain layer: a per-item stage (`foreach-file`) on a runner elsewhere.
 * Each batch is a job that reads the stage's other inputs and its own items
 * only, through the test runner that shares nothing with the workspace.
 */
const YAML = `stages:
  each:
    foreach-file: {dir: data/in, pattern: "*.txt"}
    cmd: ./tool.sh \${item} > \${out}/\${item.stem}.out
    deps: [tool.sh]
    outs: [out]
`;

async function run(dir: string, specs: JobSpec[], jobs = 2) {
  const { repo } = await openRepo(dir);
  return reproduce(repo, { runner: 'sandbox', jobRunners: { sandbox: sandboxRunner({ specs }) }, jobs });
}

describe('reproduce (API): foreach-file stages on a runner elsewhere', () => {
  it('one job per batch, each sent the other deps and its own items only; a new item sends one job with that item', async () => {
    const dir = await newRepo();
    write(dir, 'tool.sh', '#!/bin/sh\ntr a-z A-Z < "$1"\n');
    fs.chmodSync(path.join(dir, 'tool.sh'), 0o755);
    for (let i = 1; i <= 6; i++) write(dir, `data/in/f${i}.txt`, `item ${i}\n`);
    expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
    write(dir, 'tdv.yaml', YAML);
    const specs: JobSpec[] = [];
    const res = await run(dir, specs);
    expect(res.failed).toEqual([]);
    expect(res.items).toEqual([{ stage: 'each', items: 6, ran: 6, restored: 0, unchanged: 0, dropped: 0 }]);
    expect(res.runs?.map((r) => r.runner)).toEqual(['sandbox']);
    expect(specs.length).toBe(2);
    const sent = specs.map((s) => s.inputs.map((f) => f.path).sort());
    expect(sent).toEqual([
      ['data/in/f1.txt', 'data/in/f2.txt', 'data/in/f3.txt', 'tool.sh'],
      ['data/in/f4.txt', 'data/in/f5.txt', 'data/in/f6.txt', 'tool.sh'],
    ]);
    expect(specs[0]!.outputs).toEqual(['out']);
    expect(read(dir, 'out/f4.out')).toBe('ITEM 4\n');
    expect(fs.readdirSync(path.join(dir, 'out')).sort()).toEqual(['f1.out', 'f2.out', 'f3.out', 'f4.out', 'f5.out', 'f6.out']);

    write(dir, 'data/in/f7.txt', 'item 7\n');
    specs.length = 0;
    const again = await run(dir, specs);
    expect(again.items).toEqual([{ stage: 'each', items: 7, ran: 1, restored: 0, unchanged: 6, dropped: 0 }]);
    expect(specs.map((s) => s.inputs.map((f) => f.path).sort())).toEqual([['data/in/f7.txt', 'tool.sh']]);
    expect(read(dir, 'out/f7.out')).toBe('ITEM 7\n');
    expect((await tdv(dir, 'status')).stdout).toBe('Data and pipelines are up to date.\n');
  });

  it('an item failing on the runner fails the stage naming it; the others are kept', async () => {
    const dir = await newRepo();
    write(dir, 'tool.sh', '#!/bin/sh\ngrep -q bad "$1" && exit 4\ncat "$1"\n');
    fs.chmodSync(path.join(dir, 'tool.sh'), 0o755);
    for (let i = 1; i <= 3; i++) write(dir, `data/in/f${i}.txt`, i === 2 ? 'bad\n' : `ok ${i}\n`);
    expect((await tdv(dir, 'add', 'data/in')).code).toBe(0);
    write(dir, 'tdv.yaml', YAML);
    const res = await run(dir, [], 1);
    expect(res.failed.map((f) => f.error)).toEqual([expect.stringContaining('item data/in/f2.txt (exit code 4) failed; the 1 item result that succeeded is kept')]);
    write(dir, 'data/in/f2.txt', 'fine\n');
    const again = await run(dir, [], 1);
    expect(again.items).toEqual([{ stage: 'each', items: 3, ran: 2, restored: 1, unchanged: 0, dropped: 0 }]);
  });
});
