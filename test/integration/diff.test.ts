import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tripsCsv, weatherCsv } from '../../fixtures/bikeshare/generate.mjs';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, manifest, newRepo, sha, state } from '../helpers/expect.js';
import { commitData, day, julyHistory } from '../helpers/history.js';

const short = (content: string) => sha(content).slice(0, 8);

/** v1: data/{a,b,c}.csv and model.bin; the workspace then edits a, deletes b, adds d, and changes the model. */
async function edited() {
  const dir = await newRepo();
  write(dir, 'data/a.csv', 'a1');
  write(dir, 'data/b.csv', 'b1');
  write(dir, 'data/sub/c.csv', 'c1');
  write(dir, 'model.bin', 'm1');
  const v1 = await commitData(dir, 'v1', ['data', 'model.bin']);
  await git(dir, 'tag', 'v1');
  write(dir, 'data/a.csv', 'a22');
  fs.rmSync(path.join(dir, 'data/b.csv'));
  write(dir, 'data/d.csv', 'dddd');
  write(dir, 'model.bin', 'm2');
  return { dir, v1 };
}

describe('tdv diff', () => {
  it('by default compares HEAD with the workspace, file by file, with sizes and short hashes', async () => {
    const { dir } = await edited();
    const before = state(dir);
    const r = await tdv(dir, 'diff');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n').filter(Boolean)).toEqual([
      `modified:  data/a.csv  (2 B, ${short('a1')} -> 3 B, ${short('a22')})`,
      `deleted:   data/b.csv  (2 B, ${short('b1')})`,
      `added:     data/d.csv  (4 B, ${short('dddd')})`,
      `modified:  model.bin  (2 B, ${short('m1')} -> 2 B, ${short('m2')})`,
      '4 files changed between HEAD and the workspace: 1 added, 2 modified, 1 deleted.',
    ]);
    expect(state(dir)).toEqual(before);
  });

  it('--json: a, b, every change with old and new versions, and the counts', async () => {
    const { dir, v1 } = await edited();
    const r = await tdv(dir, 'diff', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      a: { rev: 'HEAD', commit: v1 },
      b: {},
      changes: [
        { path: 'data/a.csv', status: 'modified', old: { hash: sha('a1'), size: 2 }, new: { hash: sha('a22'), size: 3 } },
        { path: 'data/b.csv', status: 'deleted', old: { hash: sha('b1'), size: 2 } },
        { path: 'data/d.csv', status: 'added', new: { hash: sha('dddd'), size: 4 } },
        { path: 'model.bin', status: 'modified', old: { hash: sha('m1'), size: 2 }, new: { hash: sha('m2'), size: 2 } },
      ],
      summary: { added: 1, modified: 2, deleted: 1 },
    });
  });

  it('compares two revisions without checking anything out: the bike-share days of July 30 and 31', async () => {
    const { dir, commits } = await julyHistory();
    const before = state(dir);
    const r = await tdv(dir, 'diff', commits[29]!.slice(0, 10), 'july-end', '--json');
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.changes).toEqual([
      { path: `data/trips/${day(31)}.csv`, status: 'added', new: { hash: sha(tripsCsv(31, 20)), size: tripsCsv(31, 20).length } },
      { path: 'data/weather.csv', status: 'modified', old: { hash: sha(weatherCsv(30)), size: weatherCsv(30).length }, new: { hash: sha(weatherCsv(31)), size: weatherCsv(31).length } },
    ]);
    expect(res.summary).toEqual({ added: 1, modified: 1, deleted: 0 });
    expect(state(dir)).toEqual(before);
    const text = await tdv(dir, 'diff', 'HEAD~2', 'HEAD');
    expect(text.stdout.trim().split('\n').at(-1)).toBe('3 files changed between HEAD~2 and HEAD: 2 added, 1 modified, 0 deleted.');
  });

  it('lists every file of a tracked directory that appears or disappears between revisions', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data', 'model.bin']);
    expect((await tdv(dir, 'remove', 'data')).code).toBe(0);
    write(dir, 'extra/e.bin', 'e');
    await commitData(dir, 'v3', ['extra']);
    const r = await tdv(dir, 'diff', 'HEAD~1', 'HEAD', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).changes.map((c: { path: string; status: string }) => `${c.status} ${c.path}`)).toEqual([
      'deleted data/a.csv',
      'deleted data/d.csv',
      'deleted data/sub/c.csv',
      'added extra/e.bin',
    ]);
  });

  it('an executable bit that changes counts as modified', async () => {
    const dir = await newRepo();
    write(dir, 'run.sh', 'echo');
    await commitData(dir, 'one', ['run.sh']);
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    const r = await tdv(dir, 'diff', '--json');
    expect(JSON.parse(r.stdout).changes).toEqual([{ path: 'run.sh', status: 'modified', old: { hash: sha('echo'), size: 4 }, new: { hash: sha('echo'), size: 4, isexec: true } }]);
  });

  it('targets narrow it: a tracked path, a file inside a directory, a pointer file, a directory of pointers', async () => {
    const { dir } = await edited();
    write(dir, 'models/x.bin', 'x1');
    await commitData(dir, 'v2', ['data', 'model.bin', 'models/x.bin']);
    write(dir, 'models/x.bin', 'x2');
    expect((await tdv(dir, 'add', 'models/x.bin')).code).toBe(0);
    const paths = async (...args: string[]) => {
      const r = await tdv(dir, 'diff', 'v1', ...args, '--json');
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout).changes.map((c: { path: string }) => c.path);
    };
    expect(await paths('data')).toEqual(['data/a.csv', 'data/b.csv', 'data/d.csv']);
    expect(await paths('data/a.csv')).toEqual(['data/a.csv']);
    expect(await paths('model.bin.tdv')).toEqual(['model.bin']);
    expect(await paths('models')).toEqual(['models/x.bin']);
    expect(await paths('data/sub')).toEqual([]);
  });

  it('-- separates revisions from targets; a name that is both is refused as ambiguous', async () => {
    const { dir } = await edited();
    await git(dir, 'branch', 'data', 'v1');
    const r = await tdv(dir, 'diff', 'data');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '"data" is both a revision and a path', 'tdv diff data --', 'tdv diff -- data');
    const asRev = await tdv(dir, 'diff', '--json', 'data', '--');
    expect(asRev.code, asRev.stderr).toBe(0);
    expect(JSON.parse(asRev.stdout).a.rev).toBe('data');
    const asPath = await tdv(dir, 'diff', '--json', '--', 'data');
    expect(asPath.code, asPath.stderr).toBe(0);
    expect(JSON.parse(asPath.stdout).changes.map((c: { path: string }) => c.path)).toEqual(['data/a.csv', 'data/b.csv', 'data/d.csv']);
  });

  it('says when nothing changed', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data', 'model.bin']);
    const r = await tdv(dir, 'diff');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('No data changed between HEAD and the workspace.');
    expect((await tdv(dir, 'diff', 'HEAD', 'HEAD')).stdout.trim()).toBe('No data changed between HEAD and HEAD.');
  });

  it('an unknown revision, a name that is neither revision nor path, and an untracked target are usage errors', async () => {
    const { dir } = await edited();
    const r = await tdv(dir, 'diff', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '"nope" is neither a revision nor a path in the workspace', 'tdv diff REV -- nope');
    const r2 = await tdv(dir, 'diff', 'nope', '--', 'data');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'unknown revision "nope"');
    write(dir, 'notes.txt', 'n');
    const r3 = await tdv(dir, 'diff', 'notes.txt');
    expect(r3.code).toBe(2);
    expectOneLineError(r3.stderr, 'notes.txt is not tracked by tdv in HEAD nor in the workspace');
    const r5 = await tdv(dir, 'diff', 'v1', 'HEAD', 'HEAD~1', '--', 'data');
    expect(r5.code).toBe(2);
    expectOneLineError(r5.stderr, 'at most two revisions before --, got 3: v1 HEAD HEAD~1');
    const r4 = await tdv(dir, 'diff', 'v1', 'HEAD', 'HEAD');
    expect(r4.code).toBe(2);
    expectOneLineError(r4.stderr, 'HEAD is not tracked by tdv in v1 nor in HEAD');
  });

  it('a directory manifest missing from the cache is an error that names it and says how to fetch it', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data']);
    const m = manifest([
      { relpath: 'a.csv', content: 'a1' },
      { relpath: 'b.csv', content: 'b1' },
      { relpath: 'sub/c.csv', content: 'c1' },
    ]);
    fs.rmSync(path.join(dir, '.tdv/cache/files/sha256', m.oid.slice(0, 2), m.oid.slice(2)));
    const r = await tdv(dir, 'diff', 'v1', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `cannot list the files of data at v1: its directory manifest ${m.oid} is not in the cache`, 'tdv fetch --rev v1 data');
    // Paths whose version is the same on both sides need no manifest.
    const same = await tdv(dir, 'diff', 'v1', 'HEAD', 'model.bin');
    expect(same.code, same.stderr).toBe(0);
    expect(same.stdout.trim()).toBe('No data changed between v1 and HEAD.');
  });
});
