import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv repro` words its events and ReproResult ("running",
 * "restored", the summary, failures), its exit codes and --json, in one
 * place. What repro runs is tested through the API, in test/api/repro.test.ts.
 */
const TWO = 'stages:\n  a:\n    cmd: cat in.txt > a.txt\n    deps: [in.txt]\n    outs: [a.txt]\n  b:\n    cmd: cat a.txt > b.txt\n    deps: [a.txt]\n    outs: [b.txt]\n';
/** stdout without the durations of "done" lines, which vary. */
const lines = (stdout: string) => stdout.replace(/^(done \w+) in [\d.]+ s$/gm, '$1').split('\n');

async function twoStages(): Promise<string> {
  const dir = await newRepo();
  write(dir, 'in.txt', '1\n');
  write(dir, 'tdv.yaml', TWO);
  return dir;
}

describe('tdv repro: output', () => {
  it('"running <stage>: <reasons>", "done", then "Ran N stages, M unchanged."; then "Pipeline is up to date."', async () => {
    const dir = await twoStages();
    const r = await tdv(dir, 'repro');
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    expect(lines(r.stdout)).toEqual(['running a: never run', 'done a', 'running b: never run', 'done b', 'Ran 2 stages, 0 unchanged.', '']);
    expect(await tdv(dir, 'repro')).toEqual({ code: 0, stdout: 'Pipeline is up to date.\n', stderr: '' });
    write(dir, 'in.txt', '2\n');
    expect(lines((await tdv(dir, 'repro')).stdout)).toEqual(['running a: deps changed: in.txt', 'done a', 'running b: deps changed: a.txt', 'done b', 'Ran 2 stages, 0 unchanged.', '']);
    const forced = await tdv(dir, 'repro', '-f', 'a', '--no-run-cache');
    expect(lines(forced.stdout)).toEqual(['running a: forced', 'done a', 'Ran 1 stage, 0 unchanged.', '']);
  });

  it('--dry: "would run <stage>: <reasons>", then the count', async () => {
    const dir = await twoStages();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', '2\n');
    expect(await tdv(dir, 'repro', '--dry')).toEqual({ code: 0, stdout: 'would run a: deps changed: in.txt\nwould run b: upstream will run: a\n2 stages would run.\n', stderr: '' });
  });

  it('a run-cache hit: "restored <stage> from the run-cache", and the summary counts it', async () => {
    const dir = await twoStages();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', '2\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'in.txt', '1\n');
    expect(await tdv(dir, 'repro')).toEqual({
      code: 0,
      stdout:
        'restored a from the run-cache (same command, image, deps and params ran before)\nrestored b from the run-cache (same command, image, deps and params ran before)\nRan 0 stages, restored 2 from the run-cache, 0 unchanged.\n',
      stderr: '',
    });
  });

  it('a changed tracked input: "would update <pointer>: <path> changed", then "updated ...; commit the pointer with Git"', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'a,1\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  copy:\n    cmd: cp data.csv out.csv\n    deps: [data.csv]\n    outs: [out.csv]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data and pipeline');
    write(dir, 'data.csv', 'a,2\n');
    const dry = await tdv(dir, 'repro', '--dry');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('would update data.csv.tdv: data.csv changed\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('updated data.csv.tdv: data.csv changed; commit the pointer with Git\n');
    expect(r.stdout).toContain('running copy: deps changed: data.csv\n');
  });

  it('--json: the ReproResult as one document', async () => {
    const dir = await twoStages();
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const r = await tdv(dir, 'repro', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ ran: [], restored: [], skipped: ['a', 'b'], failed: [], blocked: [], updated: [] });
  });
});

describe('tdv repro: failures', () => {
  it('a failed stage: its output live, the failure with its log on stderr, one closing error line naming what did not run; exit 1', async () => {
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
  });

  it("a failed stage's output is printed once: live as it ran, its log tail only when that was not shown (--json)", async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  bad:\n    cmd: echo first line; echo second line >&2; exit 3\n    outs: [a.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    const all = `${r.stdout}${r.stderr}`;
    expect(all.match(/bad \| first line/g)).toHaveLength(1);
    expect(all.match(/bad \| second line/g)).toHaveLength(1);
    // With --json stdout holds the document only: the tail on stderr is then the one place the output shows.
    const j = await tdv(dir, 'repro', '--json');
    expect(j.code).toBe(1);
    expect(JSON.parse(j.stdout).failed[0].stage).toBe('bad');
    expect(j.stderr.match(/bad \| first line/g)).toHaveLength(1);
    expect(j.stderr.match(/bad \| second line/g)).toHaveLength(1);
  });

  it('a declared output not produced: the stage failure says which and where it is declared', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  lazy:\n    cmd: "true"\n    outs: [never.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "lazy" did not produce never.txt, which tdv.yaml declares');
  });

  it('an unknown stage: exit 2, listing the stages', async () => {
    const dir = await twoStages();
    const r = await tdv(dir, 'repro', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown stage "nope"', 'a, b');
  });
});
