/**
 * Issue 12 §1, what a first week with the pipeline ran into: tracked inputs
 * that changed or were never pulled, .tdvignore inside stage outputs, status
 * agreeing with `repro --dry`, `params diff` of nested dicts and `diff` of
 * every revision Git resolves.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, objPath, sha } from '../helpers/expect.js';
import { expectClean, expectPipelineUpToDate, repro, started } from '../helpers/api.js';

const STAGE = 'stages:\n  copy:\n    cmd: cp data.csv out.csv\n    deps: [data.csv]\n    outs: [out.csv]\n';

/** A committed repo whose one stage reads data.csv, tracked by data.csv.tdv; with `remote`, a default remote "store". */
async function trackedInputRepo(opts: { remote?: string } = {}): Promise<string> {
  const dir = await newRepo();
  if (opts.remote) fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${opts.remote}\n`);
  write(dir, 'data.csv', 'a,1\n');
  expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
  write(dir, 'tdv.yaml', STAGE);
  const r = await tdv(dir, 'repro');
  expect(r.code, r.stderr).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'data and pipeline');
  return dir;
}

describe('a tracked input that changed', () => {
  it('repro commits it as DVC does: the new content is cached and its pointer names it', async () => {
    const dir = await trackedInputRepo();
    write(dir, 'data.csv', 'a,2\n');
    const dry = await repro(dir, { dry: true });
    expect(dry.updated).toEqual([{ path: 'data.csv', pointer: 'data.csv.tdv' }]);
    expect(read(dir, 'data.csv.tdv')).toContain(sha('a,1\n')); // --dry writes nothing

    const r = await repro(dir);
    expect(r.updated).toEqual([{ path: 'data.csv', pointer: 'data.csv.tdv' }]);
    expect(started(r)).toEqual([['copy', ['deps changed: data.csv']]]);
    expect(read(dir, 'data.csv.tdv')).toContain(`sha256: ${sha('a,2\n')}`);
    expect(fs.existsSync(objPath(dir, sha('a,2\n')))).toBe(true);
    expect(read(dir, 'tdv.lock')).toContain(`sha256: ${sha('a,2\n')}`);
    // Pointer, lock and workspace agree: nothing left to report, and the commit is the pointer and lock.
    await expectClean(dir);
    expect((await git(dir, 'status', '--porcelain')).split('\n').sort()).toEqual([' M data.csv.tdv', ' M tdv.lock']);
    const json = JSON.parse((await tdv(dir, 'repro', '--json')).stdout);
    expect(json.updated).toEqual([]);
  });

  it('a tracked directory a stage reads part of is committed too, and --json lists it', async () => {
    const dir = await newRepo();
    write(dir, 'raw/a.csv', 'a\n');
    write(dir, 'raw/b.csv', 'b\n');
    expect((await tdv(dir, 'add', 'raw')).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages:\n  one:\n    cmd: cp raw/a.csv a.out\n    deps: [raw/a.csv]\n    outs: [a.out]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    write(dir, 'raw/a.csv', 'A\n');
    const r = await tdv(dir, 'repro', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).updated).toEqual([{ path: 'raw', pointer: 'raw.tdv' }]);
    await expectClean(dir);
  });

  it('a tracked file no selected stage reads is left alone', async () => {
    const dir = await trackedInputRepo();
    write(dir, 'other.csv', 'x\n');
    expect((await tdv(dir, 'add', 'other.csv')).code).toBe(0);
    write(dir, 'other.csv', 'y\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'other.csv.tdv')).toContain(sha('x\n'));
  });
});

describe('repro in a fresh clone (a tracked input not pulled)', () => {
  async function pushedAndCloned(): Promise<string> {
    const remote = newDir();
    const dir = await trackedInputRepo({ remote });
    const p = await tdv(dir, 'push', '--run-cache');
    expect(p.code, p.stderr).toBe(0);
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    return clone;
  }

  it('says that tdv pull fetches it, naming the path and its pointer', async () => {
    const clone = await pushedAndCloned();
    const r = await tdv(clone, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stage "copy": data.csv is tracked by data.csv.tdv but not in the workspace; `tdv pull data.csv` fetches it (or run `tdv repro --pull`)');
    expect(r.stderr).not.toContain('no stage produces');
  });

  it('repro --pull fetches the input, the recorded output and the run-cache first: nothing runs', async () => {
    const clone = await pushedAndCloned();
    const r = await tdv(clone, 'repro', '--pull');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Pulled 2 files (tracked inputs and recorded outputs) and 1 run record.');
    expect(r.stdout).toContain('Pipeline is up to date.');
    expect(r.stdout).not.toContain('running');
    expect(read(clone, 'data.csv')).toBe('a,1\n');
    expect(read(clone, 'out.csv')).toBe('a,1\n');
    await expectClean(clone);
    expect(await git(clone, 'status', '--porcelain')).toBe('');
  });

  it('repro --pull restores from the run-cache a stage whose new input ran before elsewhere', async () => {
    const remote = newDir();
    const dir = await trackedInputRepo({ remote });
    // A second version of the input ran (and was pushed with its run record), then was reverted.
    write(dir, 'data.csv', 'b,2\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect((await tdv(dir, 'push', '--run-cache')).code).toBe(0);
    await git(dir, 'checkout', '--', 'data.csv.tdv', 'tdv.lock');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    expect((await tdv(clone, 'pull')).code).toBe(0);
    write(clone, 'data.csv', 'b,2\n');
    const r = await repro(clone, { pull: true });
    expect(r.updated).toEqual([{ path: 'data.csv', pointer: 'data.csv.tdv' }]);
    expect(r).toMatchObject({ ran: [], restored: ['copy'], failed: [] });
    expect(read(clone, 'out.csv')).toBe('b,2\n');
  });
});

describe('.tdvignore inside stage outputs', () => {
  for (const type of ['copy', 'hardlink']) {
    it(`files it matches are neither cached nor recorded, and status, checkout and the run-cache agree (cache.type ${type})`, async () => {
      const dir = await newRepo();
      // (Root links only when allowed: otherwise tdv copies as root, and hardlink would test copy.)
      fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      write(dir, '.tdvignore', '*.tmp\nscratch/\n');
      write(dir, 'in.txt', 'one\n');
      write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: mkdir -p out/scratch && cp in.txt out/kept && date +%N > out/t.tmp && date +%N > out/scratch/x\n    deps: [in.txt]\n    outs: [out]\n');
      const r = await tdv(dir, 'repro');
      expect(r.code, r.stderr).toBe(0);
      const lock = read(dir, 'tdv.lock');
      expect(lock).toContain('nfiles: 1');
      const oid = /sha256: ([0-9a-f]{64}\.dir)/.exec(lock)![1]!;
      expect(fs.readFileSync(objPath(dir, oid), 'utf8')).not.toMatch(/t\.tmp|scratch/);
      expect(fs.existsSync(objPath(dir, sha(read(dir, 'out/t.tmp'))))).toBe(false);
      expect(fs.statSync(path.join(dir, 'out/t.tmp')).nlink).toBe(1); // left as written, not linked
      if (type === 'hardlink') expect(fs.statSync(path.join(dir, 'out/kept')).nlink).toBe(2);
      // Ignored files changing is no change.
      write(dir, 'out/t.tmp', 'other\n');
      write(dir, 'out/scratch/y', 'more\n');
      await expectClean(dir);
      await expectPipelineUpToDate(dir);
      // Checkout restores the recorded file and leaves the ignored ones alone.
      fs.rmSync(path.join(dir, 'out/kept'));
      const co = await tdv(dir, 'checkout');
      expect(co.code, co.stderr).toBe(0);
      expect(read(dir, 'out/kept')).toBe('one\n');
      expect(read(dir, 'out/t.tmp')).toBe('other\n');
      // A run-cache restore (back to an input that ran before) records the same manifest.
      write(dir, 'in.txt', 'two\n');
      expect((await tdv(dir, 'repro')).code).toBe(0);
      write(dir, 'in.txt', 'one\n');
      expect(await repro(dir)).toMatchObject({ ran: [], restored: ['s'], failed: [] });
      expect(read(dir, 'tdv.lock')).toBe(lock);
      await expectClean(dir);
    });
  }

  it('an output the pattern covers whole is still refused at its tdv.yaml line', async () => {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo > o.tmp\n    outs: [o.tmp]\n');
    const r = await tdv(dir, 'repro');
    expectOneLineError(r.stderr, 'tdv.yaml:4:12', 'is ignored by .tdvignore');
  });
});

describe('status and repro --dry agree on a stage that gained a container', () => {
  for (const [what, yaml] of [
    ['image:', '    image: python:3.12-slim\n'],
    ['build:', '    build: docker\n'],
  ] as const) {
    it(`a stage that gained ${what} is reported by status (which does not ask Docker)`, async () => {
      const dir = await trackedInputRepo();
      write(dir, 'docker/Dockerfile', 'FROM busybox\n');
      write(dir, 'tdv.yaml', STAGE + yaml);
      const st = await tdv(dir, 'status');
      expect(st.code, st.stderr).toBe(0);
      expect(st.stdout).toContain(`copy: image added: ${what === 'image:' ? 'python:3.12-slim' : 'build docker'}`);
      const json = JSON.parse((await tdv(dir, 'status', '--json')).stdout);
      expect(json.stages).toEqual([{ name: 'copy', reasons: [expect.stringMatching(/^image added/)] }]);
    });
  }
});

describe('diff takes every revision Git resolves', () => {
  /** Two commits of data.csv (a,1 then a,2), an annotated tag v1 on the second, and a,3 in the workspace. */
  async function twoCommits(): Promise<string> {
    const dir = await newRepo();
    write(dir, 'data.csv', 'a,1\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'first data');
    write(dir, 'data.csv', 'a,2\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    await git(dir, 'commit', '-qam', 'second data');
    await git(dir, 'tag', '-a', 'v1', '-m', 'release');
    write(dir, 'data.csv', 'a,3\n');
    return dir;
  }
  const hashes = async (dir: string, ...revs: string[]) => {
    const r = await tdv(dir, 'diff', '--json', ...revs);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout).changes.map((c: { path: string; old?: { hash: string }; new?: { hash: string } }) => [c.path, c.old?.hash, c.new?.hash]);
  };

  it.each([
    [[':/first'], 'a,1\n', 'a,3\n'],
    [['HEAD^{/first}', 'HEAD'], 'a,1\n', 'a,2\n'],
    [['@{1}', 'v1^{commit}'], 'a,1\n', 'a,2\n'],
    [['HEAD~1', 'v1^{tag}'], 'a,1\n', 'a,2\n'],
    [['main@{0}'], 'a,2\n', 'a,3\n'],
  ])('tdv diff %j', async (revs, from, to) => {
    const dir = await twoCommits();
    expect(await hashes(dir, ...revs)).toEqual([['data.csv', sha(from), sha(to)]]);
  });

  it('a revision nothing resolves is still a usage error', async () => {
    const dir = await twoCommits();
    const r = await tdv(dir, 'diff', ':/no such message', '--');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown revision ":/no such message"');
  });

  it('in a repository without commits, the diff is empty (exit 0)', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'a,1\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    const r = await tdv(dir, 'diff');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('No data changed between HEAD and the workspace.');
    expect(JSON.parse((await tdv(dir, 'diff', '--json')).stdout)).toMatchObject({ changes: [], summary: { added: 0, modified: 0, deleted: 0 } });
    // A revision that names something still has to exist.
    expect((await tdv(dir, 'diff', 'v9', '--')).code).toBe(2);
  });
});

describe('params diff of nested dicts', () => {
  it('compares leaves (train.lr), not the dicts holding them', async () => {
    const dir = await newRepo();
    write(dir, 'params.yaml', 'train:\n  lr: 0.1\n  layers: {n: 2}\nseed: 1\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo x > o\n    params: [train, seed]\n    outs: [o]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'params');
    const same = await tdv(dir, 'params', 'diff', '--json');
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout)).toEqual([]);
    write(dir, 'params.yaml', 'train:\n  lr: 0.2\n  layers: {n: 2}\nseed: 1\n');
    const r = await tdv(dir, 'params', 'diff', '--json');
    expect(JSON.parse(r.stdout)).toEqual([{ file: 'params.yaml', key: 'train.lr', old: 0.1, new: 0.2, change: 0.1 }]);
  });
});
