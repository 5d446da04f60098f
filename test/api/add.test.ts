import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { add } from '../../src/repo/add.js';
import { git, read, snapshot, write } from '../helpers/repo.js';
import { cacheObjects, dirPointer, filePointer, manifest, newRepo, sha } from '../helpers/expect.js';
import { abs, openRepo, rejectsWith, withRepo } from '../helpers/api.js';

/** Porcelain layer: `add` called directly, its AddResult and error codes checked (the CLI's wording is in test/cli/). */
describe('add (API)', () => {
  it('tracks a file and a directory: result, pointers, cache and .gitignore', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    write(dir, 'data/x.bin', 'x');
    write(dir, 'data/sub/y.bin', 'yy');
    const { repo, warnings } = await openRepo(dir);
    const res = await add(repo, { paths: abs(dir, 'a.csv', 'data') });
    const m = manifest([
      { relpath: 'x.bin', content: 'x' },
      { relpath: 'sub/y.bin', content: 'yy' },
    ]);
    expect(res.added).toEqual([
      { path: 'a.csv', pointer: 'a.csv.tdv', oid: sha('a\n'), size: 2, changed: true },
      { path: 'data', pointer: 'data.tdv', oid: m.oid, size: 3, nfiles: 2, changed: true },
    ]);
    expect([...res.gitFiles].sort()).toEqual(['.gitignore', 'a.csv.tdv', 'data.tdv']);
    expect(warnings).toEqual([]);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(read(dir, 'data.tdv')).toBe(
      dirPointer('data', [
        { relpath: 'x.bin', content: 'x' },
        { relpath: 'sub/y.bin', content: 'yy' },
      ]),
    );
    expect(cacheObjects(dir)).toEqual([sha('a\n'), sha('x'), sha('yy'), m.oid].sort());
    expect(read(dir, '.gitignore').split('\n')).toEqual(expect.arrayContaining(['/a.csv', '/data']));
  });

  it('adding unchanged data again is a no-op (changed: false) and rewrites nothing', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    await withRepo(dir, (r) => add(r, { paths: abs(dir, 'a.csv') }));
    const before = snapshot(dir);
    const res = await withRepo(dir, (r) => add(r, { paths: abs(dir, 'a.csv') }));
    expect(res.added.map((a) => [a.path, a.changed])).toEqual([['a.csv', false]]);
    expect(snapshot(dir)).toEqual(before);
  });

  it('a changed file gets a new pointer (changed: true, new oid)', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    await withRepo(dir, (r) => add(r, { paths: abs(dir, 'a.csv') }));
    fs.chmodSync(path.join(dir, 'a.csv'), 0o644);
    write(dir, 'a.csv', 'a2\n');
    const res = await withRepo(dir, (r) => add(r, { paths: abs(dir, 'a.csv') }));
    expect(res.added).toEqual([{ path: 'a.csv', pointer: 'a.csv.tdv', oid: sha('a2\n'), size: 3, changed: true }]);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a2\n'));
  });

  it('refuses bad targets with USAGE before writing anything', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    write(dir, 'data/x', 'x');
    await withRepo(dir, (r) => add(r, { paths: abs(dir, 'data') }));
    await git(dir, 'add', '-A');
    const before = snapshot(dir);
    const cases: string[][] = [
      [], // nothing to add
      abs(dir, 'nope.csv'), // does not exist
      [dir], // the root
      abs(dir, '.tdv/config.yaml'), // tdv's own directory
      abs(dir, 'data.tdv'), // a pointer file
      abs(dir, 'data/x'), // inside a tracked directory
      [path.dirname(dir)], // outside the repository
      abs(dir, 'a.csv', 'nope.csv'), // one bad target refuses all
    ];
    for (const paths of cases) {
      await rejectsWith(
        withRepo(dir, (r) => add(r, { paths })),
        'USAGE',
      );
    }
    expect(snapshot(dir)).toEqual(before);
  });

  it('refuses a symlink with USAGE: tdv tracks files, not links', async () => {
    const dir = await newRepo();
    write(dir, 'real.csv', 'r\n');
    fs.symlinkSync('real.csv', path.join(dir, 'link.csv'));
    await rejectsWith(
      withRepo(dir, (r) => add(r, { paths: abs(dir, 'link.csv') })),
      'USAGE',
    );
    expect(fs.existsSync(path.join(dir, 'link.csv.tdv'))).toBe(false);
  });
});
