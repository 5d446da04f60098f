import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { add } from '../../src/repo/add.js';
import { gc } from '../../src/repo/gc.js';
import { remove } from '../../src/repo/remove.js';
import { reproduce } from '../../src/repo/repro.js';
import { read, snapshot, write } from '../helpers/repo.js';
import { filePointer, isReadOnly, newRepo, objPath, repoWith, sha } from '../helpers/expect.js';
import { abs, expectClean, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: `remove` called directly, its RemoveResult (pointers,
 * stages, pipeline files and .gitignores touched) and error codes checked.
 * The CLI's wording (and its Git hint) is tested once, in test/cli/remove.test.ts.
 */
const exists = (dir: string, rel: string) => fs.existsSync(path.join(dir, rel));
/** Targets as the CLI passes them: the absolute path, and the name as typed. */
const rm = (dir: string, ...names: string[]) =>
  withRepo(dir, (r) =>
    remove(
      r,
      names.map((n) => ({ path: path.join(dir, n), name: n })),
    ),
  );

describe('remove (API)', () => {
  it('deletes the pointer and its .gitignore line and keeps the data and the cache', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    expect(await rm(dir, 'a.csv.tdv')).toEqual({ removed: ['a.csv.tdv'], stages: [], pipelineFiles: [], gitignores: [{ path: '.gitignore', deleted: false }] });
    expect(exists(dir, 'a.csv.tdv')).toBe(false);
    expect(read(dir, 'a.csv')).toBe('a\n');
    expect(read(dir, '.gitignore')).toBe('/b.csv\n');
    expect(read(dir, 'b.csv.tdv')).toBe(filePointer('b.csv', 'b\n'));
    // The cache is untouched: remove is not gc.
    expect(fs.readFileSync(objPath(dir, sha('a\n')), 'utf8')).toBe('a\n');
    await expectClean(dir);
  });

  it('accepts the data path instead of the pointer, and a directory; a .gitignore left empty is deleted', async () => {
    const dir = await repoWith({ 'data/x': 'x', 'data/sub/y': 'y', 'keep/k.csv': 'k\n' }, ['data', 'keep/k.csv']);
    expect(await rm(dir, 'data')).toEqual({ removed: ['data.tdv'], stages: [], pipelineFiles: [], gitignores: [{ path: '.gitignore', deleted: true }] });
    expect(exists(dir, 'data.tdv')).toBe(false);
    expect(read(dir, 'data/x')).toBe('x');
    expect(read(dir, 'data/sub/y')).toBe('y');
    expect(exists(dir, '.gitignore')).toBe(false);
    expect(read(dir, 'keep/.gitignore')).toBe('/k.csv\n');
  });

  it('names the .gitignore of a subdirectory it edited', async () => {
    const dir = await repoWith({ 'keep/k.csv': 'k\n', 'keep/other.csv': 'o\n' }, ['keep/k.csv', 'keep/other.csv']);
    expect(await rm(dir, 'keep/k.csv')).toEqual({ removed: ['keep/k.csv.tdv'], stages: [], pipelineFiles: [], gitignores: [{ path: 'keep/.gitignore', deleted: false }] });
    expect(read(dir, 'keep/.gitignore')).toBe('/other.csv\n');
  });

  it('keeps the user’s own .gitignore lines', async () => {
    const dir = await newRepo();
    write(dir, '.gitignore', '*.log\n');
    write(dir, 'a.csv', 'a\n');
    await track(dir, 'a.csv');
    expect(read(dir, '.gitignore')).toBe('*.log\n/a.csv\n');
    await rm(dir, 'a.csv');
    expect(read(dir, '.gitignore')).toBe('*.log\n');
  });

  it('a removed path can be added again', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    await rm(dir, 'a.csv');
    const res = await withRepo(dir, (r) => add(r, { paths: abs(dir, 'a.csv') }));
    expect(res.added.map((a) => [a.path, a.changed])).toEqual([['a.csv', true]]);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(read(dir, '.gitignore')).toBe('/a.csv\n');
  });

  for (const type of ['hardlink', 'symlink'] as const) {
    it(`with cache.type ${type} the kept files become writable copies, independent of the cache`, async () => {
      const dir = await repoWith({ 'a.csv': 'a\n', 'data/x': 'x', 'data/sub/y': 'y' }, ['a.csv', 'data'], `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      expect(isReadOnly(path.join(dir, 'a.csv'))).toBe(true);
      expect((await rm(dir, 'a.csv', 'data')).removed).toEqual(['a.csv.tdv', 'data.tdv']);
      for (const [rel, content] of [
        ['a.csv', 'a\n'],
        ['data/x', 'x'],
        ['data/sub/y', 'y'],
      ] as const) {
        const file = path.join(dir, rel);
        const obj = objPath(dir, sha(content));
        expect(fs.lstatSync(file).isFile()).toBe(true);
        expect(fs.statSync(file).nlink).toBe(1);
        expect(fs.statSync(file).ino).not.toBe(fs.statSync(obj).ino);
        expect(isReadOnly(file)).toBe(false);
        expect(read(dir, rel)).toBe(content);
        // Editing the kept file leaves the object alone.
        fs.appendFileSync(file, 'more');
        expect(fs.readFileSync(obj, 'utf8')).toBe(content);
      }
      // And a gc may now delete every object without losing the data.
      expect((await withRepo(dir, (r) => gc(r, { workspace: true, confirm: async () => true }))).removed).toBe(true);
      expect(read(dir, 'data/x')).toBe('xmore');
    });
  }
});

describe('remove (API): errors change nothing', () => {
  it('a path inside a tracked directory: USAGE', async () => {
    const dir = await repoWith({ 'data/x': 'x', 'data/y': 'y' }, ['data']);
    const before = snapshot(dir);
    await rejectsWith(rm(dir, 'data/x'), 'USAGE');
    expect(snapshot(dir)).toEqual(before);
  });

  it('an untracked path among tracked ones: USAGE, and the tracked one is not removed either', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o');
    const before = snapshot(dir);
    await rejectsWith(rm(dir, 'a.csv', 'other.csv'), 'USAGE');
    expect(snapshot(dir)).toEqual(before);
  });

  it('no targets: USAGE', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    await rejectsWith(rm(dir), 'USAGE');
  });
});

describe('remove (API): stages and their outputs', () => {
  const PIPELINE = '# my pipeline\nstages:\n  one:  # first\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n';

  async function twoStages(): Promise<string> {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', PIPELINE);
    expect((await withRepo(dir, (r) => reproduce(r))).ran.sort()).toEqual(['one', 'two']);
    // In the order the two stages finished (they run side by side).
    expect(read(dir, '.gitignore').split('\n').sort()).toEqual(['', '/o1.txt', '/o2.txt']);
    return dir;
  }

  it('a stage output named by its path: USAGE; tdv.lock and the .gitignore lines stay', async () => {
    const dir = await twoStages();
    const before = snapshot(dir);
    await rejectsWith(rm(dir, 'o1.txt'), 'USAGE');
    expect(snapshot(dir)).toEqual(before);
  });

  it('a stage name removes that stage from tdv.yaml and tdv.lock and its .gitignore line; the other stage and the outputs stay', async () => {
    const dir = await twoStages();
    expect(await rm(dir, 'one')).toEqual({
      removed: [],
      stages: ['one'],
      pipelineFiles: [
        { path: 'tdv.yaml', deleted: false },
        { path: 'tdv.lock', deleted: false },
      ],
      gitignores: [{ path: '.gitignore', deleted: false }],
    });
    expect(read(dir, 'tdv.yaml')).toBe('# my pipeline\nstages:\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n');
    expect(read(dir, 'tdv.lock')).not.toContain('one:');
    expect(read(dir, 'tdv.lock')).toContain('o2.txt');
    expect(read(dir, '.gitignore')).toBe('/o2.txt\n');
    expect(read(dir, 'o1.txt')).toBe('1\n');
    expect(isReadOnly(path.join(dir, 'o1.txt'))).toBe(false);
    await expectClean(dir);
  });

  it('removing the last stage deletes tdv.lock (and a .gitignore left empty)', async () => {
    const dir = await twoStages();
    const res = await rm(dir, 'one', 'two');
    expect(res.stages).toEqual(['one', 'two']);
    expect(res.pipelineFiles).toEqual([
      { path: 'tdv.yaml', deleted: false },
      { path: 'tdv.lock', deleted: true },
    ]);
    expect(res.gitignores).toEqual([{ path: '.gitignore', deleted: true }]);
    expect(exists(dir, 'tdv.lock')).toBe(false);
    expect(exists(dir, '.gitignore')).toBe(false);
    expect(read(dir, 'tdv.yaml')).toBe('# my pipeline\nstages: {}\n');
  });
});
