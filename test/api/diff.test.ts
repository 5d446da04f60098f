import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tripsCsv, weatherCsv } from '../../fixtures/bikeshare/generate.mjs';
import { diff, type DiffOptions } from '../../src/repo/diff.js';
import { remove } from '../../src/repo/remove.js';
import { write } from '../helpers/repo.js';
import { newRepo, objPath, sha, state } from '../helpers/expect.js';
import { commitData, editedSinceV1 as edited, v1DataManifest, day, julyHistory } from '../helpers/history.js';
import { abs, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: `diff` called directly, its DiffResult and error codes
 * checked. How the CLI words it (and splits revisions from paths) is tested
 * once, in test/cli/diff.test.ts.
 */
const diffOf = (dir: string, opts: DiffOptions & { at?: string[] } = {}) => withRepo(dir, (r) => diff(r, { ...opts, targets: abs(dir, ...(opts.at ?? [])) }));
const paths = async (dir: string, opts: DiffOptions & { at?: string[] } = {}) => (await diffOf(dir, opts)).changes.map((c) => c.path);

describe('diff (API)', () => {
  it('by default compares HEAD with the workspace, file by file, and writes nothing', async () => {
    const { dir, v1 } = await edited();
    const before = state(dir);
    expect(await diffOf(dir)).toEqual({
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
    expect(state(dir)).toEqual(before);
  });

  it('compares two revisions without checking anything out: the bike-share days of July 30 and 31', async () => {
    const { dir, commits } = await julyHistory();
    const before = state(dir);
    const res = await diffOf(dir, { a: commits[29]!.slice(0, 10), b: 'july-end' });
    expect(res.changes).toEqual([
      { path: `data/trips/${day(31)}.csv`, status: 'added', new: { hash: sha(tripsCsv(31, 20)), size: tripsCsv(31, 20).length } },
      { path: 'data/weather.csv', status: 'modified', old: { hash: sha(weatherCsv(30)), size: weatherCsv(30).length }, new: { hash: sha(weatherCsv(31)), size: weatherCsv(31).length } },
    ]);
    expect(res.summary).toEqual({ added: 1, modified: 1, deleted: 0 });
    expect((await diffOf(dir, { a: 'HEAD~2', b: 'HEAD' })).summary).toEqual({ added: 2, modified: 1, deleted: 0 });
    expect(state(dir)).toEqual(before);
  });

  it('lists every file of a tracked directory that appears or disappears between revisions', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data', 'model.bin']);
    await withRepo(dir, (r) => remove(r, [{ path: path.join(dir, 'data'), name: 'data' }]));
    write(dir, 'extra/e.bin', 'e');
    await commitData(dir, 'v3', ['extra']);
    expect((await diffOf(dir, { a: 'HEAD~1', b: 'HEAD' })).changes.map((c) => `${c.status} ${c.path}`)).toEqual([
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
    expect((await diffOf(dir)).changes).toEqual([{ path: 'run.sh', status: 'modified', old: { hash: sha('echo'), size: 4 }, new: { hash: sha('echo'), size: 4, isexec: true } }]);
  });

  it('targets narrow it: a tracked path, a file inside a directory, a pointer file, a directory of pointers', async () => {
    const { dir } = await edited();
    write(dir, 'models/x.bin', 'x1');
    await commitData(dir, 'v2', ['data', 'model.bin', 'models/x.bin']);
    write(dir, 'models/x.bin', 'x2');
    await track(dir, 'models/x.bin');
    expect(await paths(dir, { a: 'v1', at: ['data'] })).toEqual(['data/a.csv', 'data/b.csv', 'data/d.csv']);
    expect(await paths(dir, { a: 'v1', at: ['data/a.csv'] })).toEqual(['data/a.csv']);
    expect(await paths(dir, { a: 'v1', at: ['model.bin.tdv'] })).toEqual(['model.bin']);
    expect(await paths(dir, { a: 'v1', at: ['models'] })).toEqual(['models/x.bin']);
    expect(await paths(dir, { a: 'v1', at: ['data/sub'] })).toEqual([]);
  });

  it('nothing changed: no changes, zero counts', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data', 'model.bin']);
    expect(await diffOf(dir)).toMatchObject({ changes: [], summary: { added: 0, modified: 0, deleted: 0 } });
    expect((await diffOf(dir, { a: 'HEAD', b: 'HEAD' })).changes).toEqual([]);
  });

  it('an unknown revision is UNKNOWN_REVISION; an untracked target is NOT_TRACKED', async () => {
    const { dir } = await edited();
    await rejectsWith(diffOf(dir, { a: 'nope' }), 'UNKNOWN_REVISION');
    write(dir, 'notes.txt', 'n');
    await rejectsWith(diffOf(dir, { at: ['notes.txt'] }), 'NOT_TRACKED');
    await rejectsWith(diffOf(dir, { at: ['data/nope.csv'] }), 'NOT_TRACKED');
  });

  it('a directory manifest missing from the cache is MISSING_OBJECTS naming it; paths the same on both sides need none', async () => {
    const { dir } = await edited();
    await commitData(dir, 'v2', ['data']);
    const m = v1DataManifest();
    fs.rmSync(objPath(dir, m.oid));
    const err = await rejectsWith(diffOf(dir, { a: 'v1', b: 'HEAD' }), 'MISSING_OBJECTS');
    expect(err.data).toEqual({ paths: ['data'] });
    expect((await diffOf(dir, { a: 'v1', b: 'HEAD', at: ['model.bin'] })).changes).toEqual([]);
  });
});
