import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, manifest, newDir, newRepo, objPath, sha, state } from '../helpers/expect.js';
import { tripsCsv, weatherCsv } from '../../fixtures/bikeshare/generate.mjs';
import { commitData, day, julyHistory, julyUpTo } from '../helpers/history.js';

interface Change {
  path: string;
  pointer: string;
  change: string;
  version: { hash: string; size: number; nfiles?: number } | null;
  previous: { hash: string; size: number; nfiles?: number } | null;
  files: { added: number; modified: number; deleted: number } | null;
}
interface Entry {
  commit: string;
  date: string;
  author: { name: string; email: string };
  subject: string;
  changes: Change[];
}

async function logJson(dir: string, ...args: string[]): Promise<{ branch: string | null; head: string; firstParent: boolean; shallow: boolean; commits: Entry[] }> {
  const r = await tdv(dir, 'log', ...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function julyVersion(d: number) {
  const files = julyUpTo(d);
  const m = manifest(Object.entries(files).map(([relpath, content]) => ({ relpath, content })));
  return { hash: m.oid, size: m.size, nfiles: d + 1 };
}

describe('tdv log', () => {
  it('lists every version of the bike-share data, newest first, with what changed in each', async () => {
    const { dir, commits } = await julyHistory();
    const before = state(dir);
    const res = await logJson(dir, 'data');
    expect(res.branch).toBe('main');
    expect(res.head).toBe(commits[30]);
    expect(res.firstParent).toBe(true);
    expect(res.shallow).toBe(false);
    expect(res.commits.map((c) => c.commit)).toEqual([...commits].reverse());
    const last = res.commits[0]!;
    expect(last.subject).toBe(`Trips of ${day(31)}`);
    expect(last.author).toEqual({ name: 't', email: 't@t' });
    expect(last.date).toBe(new Date(Number(await git(dir, 'log', '-1', '--format=%at')) * 1000).toISOString().replace('.000Z', '+00:00'));
    expect(last.changes).toEqual([{ path: 'data', pointer: 'data.tdv', change: 'modified', version: julyVersion(31), previous: julyVersion(30), files: { added: 1, modified: 1, deleted: 0 } }]);
    expect(res.commits[30]!.changes).toEqual([{ path: 'data', pointer: 'data.tdv', change: 'added', version: julyVersion(1), previous: null, files: { added: 2, modified: 0, deleted: 0 } }]);
    expect(state(dir)).toEqual(before);
  });

  it('prints one block per commit: id, date, author, subject, then each changed path', async () => {
    const { dir, commits } = await julyHistory(3);
    const r = await tdv(dir, 'log', 'data', '-n', '2');
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^${commits[2]!.slice(0, 12)}  \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d  t  Trips of ${day(3)}$`));
    const v3 = julyVersion(3);
    expect(lines[1]).toBe(`    M  data  ${v3.hash.slice(0, 8)}  ${(v3.size / 1024).toFixed(1)} KiB  4 files  (+1 ~1 -0 files)`);
    expect(lines[2]).toMatch(new RegExp(`^${commits[1]!.slice(0, 12)} `));
  });

  it('lists only commits where the data changed, and -n limits how many', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a1');
    const c1 = await commitData(dir, 'data v1', ['data']);
    write(dir, 'train.py', 'print(1)');
    await commitData(dir, 'code only', []);
    write(dir, 'data/a.csv', 'a2');
    const c3 = await commitData(dir, 'data v2', ['data']);
    write(dir, 'train.py', 'print(2)');
    await commitData(dir, 'code again', []);
    expect((await logJson(dir, 'data')).commits.map((c) => c.commit)).toEqual([c3, c1]);
    expect((await logJson(dir, 'data', '-n', '1')).commits.map((c) => c.commit)).toEqual([c3]);
    const r = await tdv(dir, 'log', '-n', '0');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '-n must be a whole number >= 1');
  });

  it('without a path follows every pointer: several outputs per commit, additions and deletions', async () => {
    const dir = await newRepo();
    write(dir, 'model.bin', 'm1');
    write(dir, 'models/small.bin', 's1');
    const c1 = await commitData(dir, 'two models', ['model.bin', 'models/small.bin']);
    write(dir, 'model.bin', 'm2');
    write(dir, 'models/small.bin', 's2');
    const c2 = await commitData(dir, 'both retrained', ['model.bin', 'models/small.bin']);
    expect((await tdv(dir, 'remove', 'model.bin')).code).toBe(0);
    const c3 = await commitData(dir, 'drop the big one', []);
    const res = await logJson(dir);
    expect(res.commits.map((c) => [c.commit, c.changes.map((x) => `${x.change} ${x.path} (${x.pointer})`)])).toEqual([
      [c3, ['deleted model.bin (model.bin.tdv)']],
      [c2, ['modified model.bin (model.bin.tdv)', 'modified models/small.bin (models/small.bin.tdv)']],
      [c1, ['added model.bin (model.bin.tdv)', 'added models/small.bin (models/small.bin.tdv)']],
    ]);
    expect(res.commits[0]!.changes[0]).toEqual({ path: 'model.bin', pointer: 'model.bin.tdv', change: 'deleted', version: null, previous: { hash: sha('m2'), size: 2 }, files: null });
    // A directory of pointers, and a pointer file by name.
    expect((await logJson(dir, 'models')).commits.map((c) => c.commit)).toEqual([c2, c1]);
    expect((await logJson(dir, 'models/small.bin.tdv')).commits.map((c) => c.commit)).toEqual([c2, c1]);
    // Data whose pointer is gone from HEAD still has a history.
    expect((await logJson(dir, 'model.bin')).commits.map((c) => c.commit)).toEqual([c3, c2, c1]);
  });

  it('follows the first parent through a merge: the branch arrives as one change', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a');
    const base = await commitData(dir, 'base', ['data']);
    await git(dir, 'checkout', '-qb', 'feature');
    write(dir, 'data/b.csv', 'b');
    await commitData(dir, 'feature: b', ['data']);
    write(dir, 'data/c.csv', 'c');
    await commitData(dir, 'feature: c', ['data']);
    await git(dir, 'checkout', '-q', 'main');
    write(dir, 'notes.md', 'n');
    await commitData(dir, 'notes', []);
    await git(dir, 'merge', '-q', '--no-ff', '-m', 'merge feature', 'feature');
    const merge = await git(dir, 'rev-parse', 'HEAD');
    const res = await logJson(dir, 'data');
    expect(res.commits.map((c) => [c.commit, c.subject])).toEqual([
      [merge, 'merge feature'],
      [base, 'base'],
    ]);
    expect(res.commits[0]!.changes[0]!.files).toEqual({ added: 2, modified: 0, deleted: 0 });
    const help = await tdv(dir, 'log', '--help');
    expect(help.stdout).toContain('first parent');
  });

  it('a directory version whose manifest is not cached has unknown file counts, not an error', async () => {
    const { dir } = await julyHistory(3);
    const m = julyVersion(2);
    fs.rmSync(path.join(dir, '.tdv/cache/files/sha256', m.hash.slice(0, 2), m.hash.slice(2)));
    const res = await logJson(dir, 'data');
    expect(res.commits.map((c) => c.changes[0]!.files)).toEqual([null, null, { added: 2, modified: 0, deleted: 0 }]);
    const text = await tdv(dir, 'log', 'data');
    expect(text.stdout.split('\n')[1]).toMatch(/^ {4}M {2}data {2}[0-9a-f]{8} {2}[\d.]+ KiB {2}4 files$/);
  });

  it('follows stage outputs recorded in tdv.lock', async () => {
    const dir = await newRepo();
    const lock = (content: string) => `schema: 1\nstages:\n  train:\n    cmd: python train.py\n    outs:\n    - path: model.pkl\n      sha256: ${sha(content)}\n      size: ${content.length}\n`;
    write(dir, 'tdv.lock', lock('v1'));
    const c1 = await commitData(dir, 'first model', []);
    write(dir, 'tdv.lock', lock('v2'));
    const c2 = await commitData(dir, 'retrained', []);
    const res = await logJson(dir, 'model.pkl');
    expect(res.commits.map((c) => [c.commit, c.changes[0]!.pointer, c.changes[0]!.change, c.changes[0]!.version?.hash])).toEqual([
      [c2, 'tdv.lock', 'modified', sha('v2')],
      [c1, 'tdv.lock', 'added', sha('v1')],
    ]);
    expect((await logJson(dir)).commits).toHaveLength(2);
  });

  it('follows one file inside a tracked directory: only the commits that changed it, with its own hash and size', async () => {
    const { dir, commits } = await julyHistory(4);
    fs.rmSync(path.join(dir, 'data', 'weather.csv'));
    const gone = await commitData(dir, 'No more weather', ['data']);
    const weather = (d: number) => ({ hash: sha(weatherCsv(d)), size: Buffer.byteLength(weatherCsv(d)) });
    const res = await logJson(dir, 'data/weather.csv');
    expect(res.commits.map((c) => [c.commit, c.changes])).toEqual([
      [gone, [{ path: 'data/weather.csv', pointer: 'data.tdv', change: 'deleted', version: null, previous: weather(4), files: null }]],
      ...[4, 3, 2].map((d) => [commits[d - 1], [{ path: 'data/weather.csv', pointer: 'data.tdv', change: 'modified', version: weather(d), previous: weather(d - 1), files: null }]]),
      [commits[0], [{ path: 'data/weather.csv', pointer: 'data.tdv', change: 'added', version: weather(1), previous: null, files: null }]],
    ]);
    // A day's trips were written once: one version, from a subdirectory with a relative path.
    const trips = await tdv(path.join(dir, 'data'), 'log', `trips/${day(2)}.csv`);
    expect(trips.code, trips.stderr).toBe(0);
    expect(trips.stdout).toMatch(new RegExp(`^${commits[1]!.slice(0, 12)} .*Trips of ${day(2)}\n {4}A  data/trips/${day(2)}\.csv  ${sha(tripsCsv(2, 20)).slice(0, 8)}  `));
    expect(trips.stdout.trim().split('\n')).toHaveLength(2);
    const never = await tdv(dir, 'log', 'data/trips/2024-08-01.csv');
    expect(never.code).toBe(2);
    expectOneLineError(never.stderr, 'data/trips/2024-08-01.csv is in no version of data on this branch', 'tdv log data');
  });

  it('a file inside a tracked directory whose old manifests are not cached: exit 1 naming the fetch that brings them, which works', async () => {
    const { dir, commits } = await julyHistory(3);
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', remote)).code).toBe(0);
    expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
    const m2 = (await logJson(dir, 'data')).commits.find((c) => c.commit === commits[1])!.changes[0]!.version!.hash;
    fs.rmSync(objPath(dir, m2), { force: true });
    const r = await tdv(dir, 'log', 'data/weather.csv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `the contents of data at 2 commits (first: ${commits[2]!.slice(0, 12)}) are not in the cache`, 'tdv fetch --all-commits data');
    expect((await tdv(dir, 'fetch', '--all-commits', 'data')).code).toBe(0);
    expect((await logJson(dir, 'data/weather.csv')).commits.map((c) => c.commit)).toEqual([...commits].reverse());
  });

  it('a path never tracked and a path outside the repository are usage errors', async () => {
    const { dir } = await julyHistory(2);
    write(dir, 'notes.txt', 'n');
    const r2 = await tdv(dir, 'log', 'notes.txt');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'notes.txt was never tracked by tdv on this branch');
    const r3 = await tdv(dir, 'log', newDir());
    expect(r3.code).toBe(2);
    expectOneLineError(r3.stderr, 'is outside the repository');
  });

  it('on a detached HEAD walks from HEAD; with no commits yet it says so', async () => {
    const { dir, commits } = await julyHistory(3);
    await git(dir, 'checkout', '-q', commits[1]!);
    const res = await logJson(dir, 'data');
    expect(res.branch).toBeNull();
    expect(res.commits.map((c) => c.commit)).toEqual([commits[1], commits[0]]);
    const empty = await newRepo();
    const r = await tdv(empty, 'log');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'no commits yet');
  });

  it('in a shallow clone, lists what it has and says the history is cut', async () => {
    const { dir, commits } = await julyHistory(4);
    const clone = path.join(newDir(), 'shallow');
    await git(path.dirname(clone), 'clone', '-q', '--depth', '2', `file://${dir}`, clone);
    const res = await logJson(clone, 'data');
    expect(res.shallow).toBe(true);
    expect(res.commits.map((c) => c.commit)).toEqual([commits[3]]);
    const text = await tdv(clone, 'log', 'data');
    expect(text.stderr).toContain('warning: the history stops at the boundary of this shallow clone; `git fetch --unshallow`');
  });

  it('a malformed pointer in the history is an error naming the commit and file', async () => {
    const dir = await newRepo();
    write(dir, 'x.tdv', 'outs: nope\n');
    await commitData(dir, 'bad', []);
    const bad = await git(dir, 'rev-parse', 'HEAD');
    const r = await tdv(dir, 'log');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `${bad.slice(0, 12)}:x.tdv`, '"outs" must be a non-empty list');
  });
});
