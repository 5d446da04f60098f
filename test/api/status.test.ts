import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { status } from '../../src/repo/status.js';
import { write } from '../helpers/repo.js';
import { manifest, newRepo, objPath, repoWith, sha, state } from '../helpers/expect.js';
import { abs, rejectsWith, withRepo } from '../helpers/api.js';
import { pipelineRepo } from '../helpers/pipeline.js';

/** Porcelain layer: `status` called directly, its StatusResult checked (the CLI's wording is in test/cli/status.test.ts). */
const statusOf = (dir: string, ...targets: string[]) => withRepo(dir, (r) => status(r, { targets: abs(dir, ...targets) }));

describe('status (API)', () => {
  it('is clean when nothing changed, and in a repository that tracks nothing, and writes nothing', async () => {
    expect(await statusOf(await newRepo())).toEqual({ clean: true, data: [] });
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x.bin': 'x' }, ['a.csv', 'data']);
    const before = state(dir);
    expect(await statusOf(dir)).toEqual({ clean: true, data: [] });
    expect(state(dir)).toEqual(before);
  });

  it('reports modified and deleted files and directories under their pointers', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'gone/x': 'x' }, ['a.csv', 'b.csv', 'gone']);
    write(dir, 'a.csv', 'a changed\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(path.join(dir, 'gone'), { recursive: true });
    expect(await statusOf(dir)).toEqual({
      clean: false,
      data: [
        { path: 'a.csv', pointer: 'a.csv.tdv', workspace: 'modified', cache: 'ok' },
        { path: 'b.csv', pointer: 'b.csv.tdv', workspace: 'deleted', cache: 'ok' },
        { path: 'gone', pointer: 'gone.tdv', workspace: 'deleted', cache: 'ok' },
      ],
    });
  });

  it('lists the added, modified and deleted files of a modified directory', async () => {
    const dir = await repoWith({ 'images/a.png': 'A', 'images/b.png': 'B', 'images/sub/c.png': 'C' }, ['images']);
    write(dir, 'images/a.png', 'A2');
    fs.rmSync(path.join(dir, 'images/sub/c.png'));
    write(dir, 'images/sub/new.png', 'N');
    expect((await statusOf(dir)).data).toEqual([
      { path: 'images', pointer: 'images.tdv', workspace: 'modified', cache: 'ok', files: { added: ['sub/new.png'], modified: ['a.png'], deleted: ['sub/c.png'] } },
    ]);
  });

  it('reports cache: missing for a file object, a manifest, or one file of a directory not in the cache', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'd1/a': 'a1', 'd2/a': 'a2', 'd2/b': 'b2' }, ['a.csv', 'd1', 'd2']);
    fs.rmSync(objPath(dir, sha('a\n')));
    fs.rmSync(objPath(dir, manifest([{ relpath: 'a', content: 'a1' }]).oid));
    fs.rmSync(objPath(dir, sha('b2')));
    expect((await statusOf(dir)).data).toEqual([
      { path: 'a.csv', pointer: 'a.csv.tdv', workspace: 'unchanged', cache: 'missing' },
      { path: 'd1', pointer: 'd1.tdv', workspace: 'unchanged', cache: 'missing' },
      { path: 'd2', pointer: 'd2.tdv', workspace: 'unchanged', cache: 'missing' },
    ]);
  });

  it('a changed executable bit is a modification', async () => {
    const dir = await newRepo();
    write(dir, 'run.sh', '#!/bin/sh\n');
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    const { add } = await import('../../src/repo/add.js');
    await withRepo(dir, (r) => add(r, { paths: abs(dir, 'run.sh') }));
    fs.chmodSync(path.join(dir, 'run.sh'), 0o644);
    expect((await statusOf(dir)).data.map((d) => [d.path, d.workspace])).toEqual([['run.sh', 'modified']]);
  });

  it('a symlink where the data should be is a blocker, reported as such', async () => {
    const dir = await repoWith({ 'model.bin': 'w' }, ['model.bin']);
    fs.rmSync(path.join(dir, 'model.bin'));
    fs.symlinkSync('/nonexistent/model.bin', path.join(dir, 'model.bin'));
    const [d] = (await statusOf(dir)).data;
    expect(d).toMatchObject({ path: 'model.bin', workspace: 'modified', cache: 'ok', blocker: expect.any(Object) });
  });

  it('targets restrict the report to pointers, paths, directories, and the directory holding a path', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'sub/c.csv': 'c\n', 'images/x.png': 'X' }, ['a.csv', 'b.csv', 'sub/c.csv', 'images']);
    for (const f of ['a.csv', 'b.csv', 'sub/c.csv', 'images/x.png']) write(dir, f, 'changed');
    const paths = async (...t: string[]) => (await statusOf(dir, ...t)).data.map((d) => d.path);
    expect(await paths('a.csv')).toEqual(['a.csv']);
    expect(await paths('b.csv.tdv')).toEqual(['b.csv']);
    expect(await paths('sub')).toEqual(['sub/c.csv']);
    expect(await paths('a.csv', 'sub/c.csv')).toEqual(['a.csv', 'sub/c.csv']);
    expect(await paths('images/x.png')).toEqual(['images']);
    write(dir, 'a.csv', 'a\n');
    expect(await statusOf(dir, 'a.csv')).toEqual({ clean: true, data: [] });
  });

  it('an untracked target is NOT_TRACKED', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o\n');
    const err = await rejectsWith(statusOf(dir, 'other.csv'), 'NOT_TRACKED');
    expect(err.exitCode).toBe(2);
  });

  it('reports pipeline stages that would run, with their reasons', async () => {
    const dir = await pipelineRepo('stages:\n  copy:\n    cmd: cp in.txt out.txt\n    deps: [in.txt]\n    outs: [out.txt]\n', { 'in.txt': 'hi\n' });
    const res = await statusOf(dir);
    expect(res.clean).toBe(false);
    expect(res.stages).toEqual([{ name: 'copy', reasons: [expect.any(String)] }]);
  });
});
