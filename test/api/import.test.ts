import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { importData, type ImportOptions } from '../../src/repo/import.js';
import { parsePointer } from '../../src/formats/pointer.js';
import { expectClean, rejectsWith, withRepo } from '../helpers/api.js';
import { cacheObjects, sha } from '../helpers/expect.js';
import { makeRepo, read } from '../helpers/repo.js';
import { isolateUserCache, makeSource } from '../helpers/source.js';

/**
 * Porcelain layer: `tdv import` from a second repository on this machine
 * (test/helpers/source.ts: a file:// URL with its own directory remote).
 */
isolateUserCache();

const imported = (dir: string, opts: Omit<ImportOptions, 'out'> & { out?: string }) =>
  withRepo(dir, (r) => importData(r, { ...opts, out: path.join(dir, opts.out ?? path.posix.basename(opts.path)) }));

async function pointerOf(dir: string, rel: string) {
  return parsePointer(fs.readFileSync(path.join(dir, rel), 'utf8'), path.join(dir, rel));
}

describe('import (API)', () => {
  it('imports a tracked file: data from the source remote into this cache, pointer with the import record', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    const res = await imported(here, { url: src.url, path: 'data/trips.csv' });
    expect(res).toMatchObject({ path: 'trips.csv', pointer: 'trips.csv.tdv', oid: sha('id,km\n1,v2\n2,v2\n'), import: { url: src.url, path: 'data/trips.csv', commit: src.v2 } });
    expect(res.import.rev).toBeUndefined();
    expect(res.fetch).toMatchObject({ remote: 'store', transferred: 1, failed: [] });
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    expect(read(here, '.gitignore')).toContain('/trips.csv');
    const p = await pointerOf(here, 'trips.csv.tdv');
    expect(p.outs).toEqual([{ path: 'trips.csv', sha256: sha('id,km\n1,v2\n2,v2\n'), size: 16 }]);
    expect(p.import).toEqual({ url: src.url, path: 'data/trips.csv', commit: src.v2 });
    expect(cacheObjects(here)).toEqual([sha('id,km\n1,v2\n2,v2\n')]);
    await expectClean(here);
  });

  it('imports a tracked directory at a tag into -o, and a Git file', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    const res = await imported(here, { url: src.url, path: 'images', rev: 'v1', out: 'data/img' });
    expect(res).toMatchObject({ path: 'data/img', pointer: 'data/img.tdv', nfiles: 2, import: { rev: 'v1', commit: src.v1 } });
    expect(read(here, 'data/img/a.png')).toBe('A');
    expect(read(here, 'data/img/sub/b.png')).toBe('B');
    expect(fs.existsSync(path.join(here, 'data/img/c.png'))).toBe(false);
    const git = await imported(here, { url: src.dir, path: 'src/x.py' });
    expect(git.fetch.transferred).toBe(0);
    expect(read(here, 'x.py')).toBe('print(1)\n');
    // A directory of Git files and tracked data (data/ holds trips.csv's pointer and its data).
    const mixed = await imported(here, { url: src.url, path: 'src', out: 'code' });
    expect(mixed.nfiles).toBe(1);
    expect(read(here, 'code/x.py')).toBe('print(1)\n');
    await expectClean(here);
  });

  it('refuses an existing file, a path tracked already, and a path the source lacks, writing nothing', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    fs.writeFileSync(path.join(here, 'trips.csv'), 'mine');
    await rejectsWith(imported(here, { url: src.url, path: 'data/trips.csv' }), 'EXISTS');
    expect(read(here, 'trips.csv')).toBe('mine');
    await rejectsWith(imported(here, { url: src.url, path: 'nope.csv' }), 'NOT_FOUND');
    expect(fs.existsSync(path.join(here, 'nope.csv'))).toBe(false);
    await imported(here, { url: src.url, path: 'data/trips.csv', out: 't.csv' });
    await rejectsWith(imported(here, { url: src.url, path: 'data/trips.csv', out: 't.csv' }), 'EXISTS');
  });
});
