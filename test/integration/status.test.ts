import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, manifest, newRepo, objPath, repoWith, sha, state } from '../helpers/expect.js';

const UP_TO_DATE = 'Data and pipelines are up to date.';

async function json(dir: string, ...args: string[]) {
  const r = await tdv(dir, 'status', '--json', ...args);
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as {
    clean: boolean;
    data: { path: string; pointer: string; workspace: string; cache: string; files?: { added: string[]; modified: string[]; deleted: string[] } }[];
  };
}

describe('tdv status', () => {
  it('says "Data and pipelines are up to date." and exits 0 when nothing changed', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'data/x.bin': 'x' }, ['a.csv', 'data']);
    const before = state(dir);
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`${UP_TO_DATE}\n`);
    expect(state(dir)).toEqual(before);
  });

  it('is up to date in a repository that tracks nothing yet', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${UP_TO_DATE}\n`);
  });

  it('reports a modified file under its pointer, and changes nothing', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'a.csv', 'a changed\n');
    const before = state(dir);
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^a\.csv\.tdv:\n {4}modified: +a\.csv\n$/);
    expect(state(dir)).toEqual(before);
    expect(read(dir, 'a.csv')).toBe('a changed\n');
  });

  it('warns once about a symlink inside a tracked directory, whether or not the directory changed', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    fs.symlinkSync('/etc/hostname', path.join(dir, 'data', 'link'));
    const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.includes('data/link'));
    const unchanged = await tdv(dir, 'status');
    expect(unchanged.code).toBe(0);
    expect(unchanged.stdout).toBe(`${UP_TO_DATE}\n`);
    expect(warnings(unchanged.stderr)).toEqual([expect.stringContaining('symlink not followed')]);
    write(dir, 'data/b', 'b changed');
    const changed = await tdv(dir, 'status');
    expect(changed.code).toBe(0);
    expect(changed.stdout).toMatch(/modified: +data\/b/);
    expect(warnings(changed.stderr)).toEqual([expect.stringContaining('symlink not followed')]);
  });

  it('reports a deleted file', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^a\.csv\.tdv:\n {4}deleted: +a\.csv\n$/);
  });

  it('reports a deleted directory', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^data\.tdv:\n {4}deleted: +data\n$/);
  });

  it('lists the added, modified and deleted files of a directory', async () => {
    const dir = await repoWith({ 'images/a.png': 'A', 'images/b.png': 'B', 'images/sub/c.png': 'C' }, ['images']);
    write(dir, 'images/a.png', 'A2');
    fs.rmSync(path.join(dir, 'images/sub/c.png'));
    write(dir, 'images/sub/new.png', 'N');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('images.tdv:');
    expect(lines[1]).toMatch(/^ {4}modified: +images$/);
    expect(
      lines
        .slice(2)
        .map((l) => l.trim().replace(/\s+/g, ' '))
        .sort(),
    ).toEqual(['added: images/sub/new.png', 'deleted: images/sub/c.png', 'modified: images/a.png'].sort());
  });

  it('detects a same-size rewrite made right after add (within the same second)', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n', 'data/f.txt': 'ffff\n' }, ['a.csv', 'data']);
    write(dir, 'a.csv', 'bbbb\n');
    write(dir, 'data/f.txt', 'gggg\n');
    const s = await json(dir);
    expect(s.clean).toBe(false);
    expect(s.data.map((d) => [d.path, d.workspace])).toEqual([
      ['a.csv', 'modified'],
      ['data', 'modified'],
    ]);
    expect(s.data[1]!.files).toEqual({ added: [], modified: ['f.txt'], deleted: [] });
  });

  it('detects a same-size rewrite made right after a clean status', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    write(dir, 'a.csv', 'bbbb\n');
    expect((await json(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a same-size rewrite whose mtime was put back', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    const file = path.join(dir, 'a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    const { atime, mtime } = fs.statSync(file);
    fs.writeFileSync(file, 'bbbb\n');
    fs.utimesSync(file, atime, mtime);
    expect((await json(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a file replaced by rename with the same size and mtime', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    const file = path.join(dir, 'a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    const { atime, mtime } = fs.statSync(file);
    write(dir, 'replacement', 'bbbb\n');
    fs.utimesSync(path.join(dir, 'replacement'), atime, mtime);
    fs.renameSync(path.join(dir, 'replacement'), file);
    expect((await json(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('detects a truncated file', async () => {
    const dir = await repoWith({ 'a.csv': 'aaaa\n' }, ['a.csv']);
    fs.truncateSync(path.join(dir, 'a.csv'), 0);
    expect((await json(dir)).data.map((d) => d.workspace)).toEqual(['modified']);
  });

  it('reports a file whose executable bit changed (add would record it, checkout would restore it)', async () => {
    const dir = await newRepo();
    write(dir, 'run.sh', '#!/bin/sh\n');
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    expect((await tdv(dir, 'add', 'run.sh')).code).toBe(0);
    fs.chmodSync(path.join(dir, 'run.sh'), 0o644);
    const s = await json(dir);
    expect(s.clean).toBe(false);
    expect(s.data.map((d) => [d.path, d.workspace])).toEqual([['run.sh', 'modified']]);
  });

  it('reports a file whose object is missing from the cache, suggesting tdv pull', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^a\.csv\.tdv:\n {4}not in cache: a\.csv \(run `tdv pull` to fetch it\)\n$/);
    const s = await json(dir);
    expect(s).toEqual({ clean: false, data: [{ path: 'a.csv', pointer: 'a.csv.tdv', workspace: 'unchanged', cache: 'missing' }] });
  });

  it('reports a directory whose manifest is missing from the cache', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    const m = manifest([
      { relpath: 'a', content: 'a' },
      { relpath: 'b', content: 'b' },
    ]);
    fs.rmSync(objPath(dir, m.oid));
    const s = await json(dir);
    expect(s.data).toEqual([{ path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' }]);
  });

  it('reports a directory one of whose files is missing from the cache', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b' }, ['data']);
    fs.rmSync(objPath(dir, sha('b')));
    const s = await json(dir);
    expect(s.data).toEqual([{ path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' }]);
  });

  it('reports a directory as not in cache after the whole cache was deleted', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'f.csv': 'f\n' }, ['data', 'f.csv']);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    const s = await json(dir);
    expect(s.data).toEqual([
      { path: 'data', pointer: 'data.tdv', workspace: 'unchanged', cache: 'missing' },
      { path: 'f.csv', pointer: 'f.csv.tdv', workspace: 'unchanged', cache: 'missing' },
    ]);
  });

  it('--json prints one object {clean, data[]} that JSON.parse accepts', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'images/x.png': 'X', 'images/y.png': 'Y' }, ['a.csv', 'b.csv', 'images']);
    expect(await json(dir)).toEqual({ clean: true, data: [] });

    write(dir, 'a.csv', 'A\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    write(dir, 'images/x.png', 'X2');
    write(dir, 'images/z.png', 'Z');
    fs.rmSync(path.join(dir, 'images/y.png'));
    const s = await json(dir);
    expect(s).toEqual({
      clean: false,
      data: [
        { path: 'a.csv', pointer: 'a.csv.tdv', workspace: 'modified', cache: 'ok' },
        { path: 'b.csv', pointer: 'b.csv.tdv', workspace: 'deleted', cache: 'ok' },
        {
          path: 'images',
          pointer: 'images.tdv',
          workspace: 'modified',
          cache: 'ok',
          files: { added: ['z.png'], modified: ['x.png'], deleted: ['y.png'] },
        },
      ],
    });
  });

  it('--json reports paths relative to the root even from a subdirectory', async () => {
    const dir = await repoWith({ 'data/raw/a.csv': 'a\n' }, ['data/raw/a.csv']);
    write(dir, 'data/raw/a.csv', 'changed\n');
    const s = await json(path.join(dir, 'data'));
    expect(s.data).toEqual([{ path: 'data/raw/a.csv', pointer: 'data/raw/a.csv.tdv', workspace: 'modified', cache: 'ok' }]);
  });

  it('targets restrict the report to the named pointers, paths or directories', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n', 'sub/c.csv': 'c\n' }, ['a.csv', 'b.csv', 'sub/c.csv']);
    write(dir, 'a.csv', 'A\n');
    write(dir, 'b.csv', 'B\n');
    write(dir, 'sub/c.csv', 'C\n');
    const byPath = await tdv(dir, 'status', 'a.csv');
    expect(byPath.code).toBe(0);
    expect(byPath.stdout).toMatch(/^a\.csv\.tdv:\n {4}modified: +a\.csv\n$/);
    expect((await json(dir, 'b.csv.tdv')).data.map((d) => d.path)).toEqual(['b.csv']);
    expect((await json(dir, 'sub')).data.map((d) => d.path)).toEqual(['sub/c.csv']);
    expect((await json(dir, 'a.csv', 'sub/c.csv')).data.map((d) => d.path)).toEqual(['a.csv', 'sub/c.csv']);
    // A clean target is up to date even though others are not.
    write(dir, 'a.csv', 'a\n');
    expect((await tdv(dir, 'status', 'a.csv')).stdout).toBe(`${UP_TO_DATE}\n`);
  });

  it('a target inside a tracked directory reports that directory', async () => {
    const dir = await repoWith({ 'images/a.png': 'A', 'images/b.png': 'B' }, ['images']);
    write(dir, 'images/a.png', 'A2');
    const s = await json(dir, 'images/a.png');
    expect(s.data.map((d) => [d.path, d.workspace])).toEqual([['images', 'modified']]);
  });

  it('an untracked target is an error naming it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o\n');
    const before = snapshot(dir);
    const r = await tdv(dir, 'status', 'other.csv');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'other.csv is not tracked by tdv', '`tdv add other.csv`');
    expect(snapshot(dir)).toEqual(before);
  });
});

/*
 * A changed directory whose stat-cache shard holds exactly its recorded version
 * is compared with that shard file by file (only changed files are hashed, no
 * manifest read, no stat cache rewritten). These check that path finds what the
 * full hash finds.
 */
describe('tdv status of a changed directory, compared through the stat cache', () => {
  const shardFiles = (dir: string) =>
    fs
      .readdirSync(path.join(dir, '.tdv/tmp'))
      .filter((n) => /^statcache-files-.*\.bin$/.test(n))
      .map((n) => fs.readFileSync(path.join(dir, '.tdv/tmp', n)).toString('hex'));

  it('lists an executable bit set or cleared on a file whose content did not change', async () => {
    const dir = await newRepo();
    write(dir, 'data/run.sh', '#!/bin/sh\n');
    write(dir, 'data/tool.sh', '#!/bin/sh\necho\n');
    write(dir, 'data/b.txt', 'b');
    fs.chmodSync(path.join(dir, 'data/tool.sh'), 0o755);
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    // (With a content change too: a directory whose files all match their records is left to the full hash.)
    write(dir, 'data/b.txt', 'b2');
    fs.chmodSync(path.join(dir, 'data/run.sh'), 0o755);
    fs.chmodSync(path.join(dir, 'data/tool.sh'), 0o644);
    const s = await json(dir);
    expect(s.data.map((d) => [d.path, d.workspace])).toEqual([['data', 'modified']]);
    expect(s.data[0]!.files).toEqual({ added: [], modified: ['b.txt', 'run.sh', 'tool.sh'], deleted: [] });
    write(dir, 'data/b.txt', 'b');
    fs.chmodSync(path.join(dir, 'data/run.sh'), 0o644);
    fs.chmodSync(path.join(dir, 'data/tool.sh'), 0o755);
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
  });

  it('detects a file replaced by rename with the same size and mtime', async () => {
    const dir = await repoWith({ 'data/a.csv': 'aaaa\n', 'data/b.csv': 'bbbb\n' }, ['data']);
    const file = path.join(dir, 'data/a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    const { atime, mtime } = fs.statSync(file);
    write(dir, 'replacement', 'zzzz\n');
    fs.utimesSync(path.join(dir, 'replacement'), atime, mtime);
    fs.renameSync(path.join(dir, 'replacement'), file);
    write(dir, 'data/b.csv', 'changed\n');
    expect((await json(dir)).data[0]!.files).toEqual({ added: [], modified: ['a.csv', 'b.csv'], deleted: [] });
  });

  it('hashes only the changed file and leaves the stat cache as it was; a file rewritten with its recorded bytes is clean', async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 30; i++) files[`data/d${i % 3}/f${i}.txt`] = `file ${i}\n`;
    const dir = await repoWith(files, ['data']);
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    const before = shardFiles(dir);
    expect(before).toHaveLength(1);
    write(dir, 'data/d1/f4.txt', 'edited\n');
    fs.rmSync(path.join(dir, 'data/d2/f5.txt'));
    write(dir, 'data/d0/new.txt', 'new\n');
    for (let run = 0; run < 2; run++) {
      expect((await json(dir)).data[0]!.files).toEqual({ added: ['d0/new.txt'], modified: ['d1/f4.txt'], deleted: ['d2/f5.txt'] });
      expect(shardFiles(dir)).toEqual(before);
    }
    // Back to the recorded bytes (a new stat key): the directory is its recorded version again.
    write(dir, 'data/d1/f4.txt', 'file 4\n');
    write(dir, 'data/d2/f5.txt', 'file 5\n');
    fs.rmSync(path.join(dir, 'data/d0/new.txt'));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
  });

  it('a hard-linked file of the directory modified in place: its damaged object is reported and quarantined', async () => {
    const dir = await repoWith({ 'data/a.csv': 'aaaa\n', 'data/b.csv': 'bbbb\n' }, ['data'], 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    const oid = sha('aaaa\n');
    expect(fs.statSync(path.join(dir, 'data/a.csv')).ino).toBe(fs.statSync(objPath(dir, oid)).ino);
    await new Promise((r) => setTimeout(r, 20));
    expect((await tdv(dir, 'status')).stdout.trim()).toBe(UP_TO_DATE);
    const before = shardFiles(dir);
    fs.chmodSync(path.join(dir, 'data/a.csv'), 0o644);
    fs.writeFileSync(path.join(dir, 'data/a.csv'), 'altered in place\n');
    const st = await tdv(dir, 'status', '--json');
    expect(st.stderr).toContain('data/a.csv was modified in place and its cache object');
    expect(JSON.parse(st.stdout).data[0].files).toEqual({ added: [], modified: ['a.csv'], deleted: [] });
    expect(fs.existsSync(objPath(dir, oid))).toBe(false); // quarantined: never linked again
    expect(shardFiles(dir)).toEqual(before); // answered from the shard
  });

  it('after a checkout, compares with the version the checkout restored', async () => {
    const dir = await repoWith({ 'data/a.txt': 'a', 'data/b.txt': 'b' }, ['data']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    write(dir, 'data/b.txt', 'B');
    fs.chmodSync(path.join(dir, 'data/a.txt'), 0o755);
    const before = shardFiles(dir);
    expect((await json(dir)).data[0]!.files).toEqual({ added: [], modified: ['a.txt', 'b.txt'], deleted: [] });
    expect(shardFiles(dir)).toEqual(before);
  });
});
