import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { status } from '../../src/repo/status.js';
import { write } from '../helpers/repo.js';
import { manifest, newRepo, objPath, repoWith, sha, state } from '../helpers/expect.js';
import { abs, openRepo, rejectsWith, withRepo } from '../helpers/api.js';
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
    expect(res.stages).toEqual([{ name: 'copy', reasons: ['never run'] }]);
  });

  it('warns once about a symlink inside a tracked directory, whether or not the directory changed', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    fs.symlinkSync('/etc/hostname', path.join(dir, 'data', 'link'));
    const run = async () => {
      const { repo, warnings } = await openRepo(dir);
      return { res: await status(repo), warnings: warnings.filter((w) => w.includes('data/link')) };
    };
    const unchanged = await run();
    expect(unchanged.res).toEqual({ clean: true, data: [] });
    expect(unchanged.warnings).toEqual([expect.stringContaining('symlink not followed')]);
    write(dir, 'data/b', 'b changed');
    const changed = await run();
    expect(changed.res.data.map((d) => [d.path, d.workspace, d.files])).toEqual([['data', 'modified', { added: [], modified: ['b'], deleted: [] }]]);
    expect(changed.warnings).toEqual([expect.stringContaining('symlink not followed')]);
  });

  it('detects a same-size rewrite made right after add (within the same second)', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n', 'data/f.txt': 'ffff\n' }, ['a.csv', 'data']);
    write(dir, 'a.csv', 'bbbb\n');
    write(dir, 'data/f.txt', 'gggg\n');
    const s = await statusOf(dir);
    expect(s.clean).toBe(false);
    expect(s.data.map((d) => [d.path, d.workspace])).toEqual([
      ['a.csv', 'modified'],
      ['data', 'modified'],
    ]);
    expect(s.data[1]!.files).toEqual({ added: [], modified: ['f.txt'], deleted: [] });
  });

  it('detects a same-size rewrite made right after a clean status', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    expect((await statusOf(dir)).clean).toBe(true);
    write(dir, 'a.csv', 'bbbb\n');
    expect((await statusOf(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a same-size rewrite whose mtime was put back', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    const file = path.join(dir, 'a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await statusOf(dir)).clean).toBe(true);
    const { atime, mtime } = fs.statSync(file);
    fs.writeFileSync(file, 'bbbb\n');
    fs.utimesSync(file, atime, mtime);
    expect((await statusOf(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a file replaced by rename with the same size and mtime', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    const file = path.join(dir, 'a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await statusOf(dir)).clean).toBe(true);
    const { atime, mtime } = fs.statSync(file);
    write(dir, 'replacement', 'bbbb\n');
    fs.utimesSync(path.join(dir, 'replacement'), atime, mtime);
    fs.renameSync(path.join(dir, 'replacement'), file);
    expect((await statusOf(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a truncated file', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    fs.truncateSync(path.join(dir, 'a.csv'), 0);
    expect((await statusOf(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('reports everything as not in cache after the whole cache was deleted', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'f.csv': 'f\n' }, ['data', 'f.csv']);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    expect((await statusOf(dir)).data).toEqual([
      { path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' },
      { path: 'f.csv', pointer: 'f.csv.tdv', workspace: 'unchanged', cache: 'missing' },
    ]);
  });

  it('a Repo opened in a subdirectory reports paths relative to the root', async () => {
    const dir = await repoWith({ 'data/raw/a.csv': 'a\n' }, ['data/raw/a.csv']);
    write(dir, 'data/raw/a.csv', 'changed\n');
    expect((await withRepo(path.join(dir, 'data'), (r) => status(r))).data).toEqual([{ path: 'data/raw/a.csv', pointer: 'data/raw/a.csv.tdv', workspace: 'modified', cache: 'ok' }]);
  });

  it('changes nothing but the stat cache, whatever it reports', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'd/x': 'x', 'm.bin': 'm' }, ['a.csv', 'd', 'm.bin']);
    write(dir, 'a.csv', 'a changed\n');
    fs.rmSync(path.join(dir, 'd/x'));
    fs.rmSync(objPath(dir, sha('m')));
    const before = state(dir);
    expect((await statusOf(dir)).data.map((d) => [d.path, d.workspace, d.cache])).toEqual([
      ['a.csv', 'modified', 'ok'],
      ['d', 'modified', 'ok'],
      ['m.bin', 'unchanged', 'missing'],
    ]);
    expect(state(dir)).toEqual(before);
  });
});
