import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';
import { commitAt, isolateUserCache, makeSource } from '../helpers/source.js';

/**
 * CLI layer: how `tdv import`, `tdv update` and the imports part of `tdv
 * status` and `tdv pull` word their results, their --json documents and exit
 * codes, once. What they do is tested through the API, in test/api/import.test.ts.
 */
isolateUserCache();

describe('tdv import / update / status: output', () => {
  it('import says what came from where and what to git add; status and update word a moved source', async () => {
    const src = await makeSource();
    const here = await newRepo();
    fs.mkdirSync(path.join(here, 'data'));
    const r = await tdv(path.join(here, 'data'), 'import', src.url, 'data/trips.csv');
    expect(r).toEqual({
      code: 0,
      stdout: `Imported data/trips.csv of ${src.url} at HEAD (${src.v2.slice(0, 12)}) into data/trips.csv (16 B) -> data/trips.csv.tdv\n\nTo track it with Git, run:\n  git add data/trips.csv.tdv data/.gitignore\n`,
      stderr: '',
    });
    expect(read(here, 'data/trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    expect((await tdv(here, 'status')).stdout).toBe('Data and pipelines are up to date.\n');
    expect((await tdv(here, 'update')).stdout).toBe(`data/trips.csv is up to date with HEAD of ${src.url} (${src.v2.slice(0, 12)})\n`);

    write(src.dir, 'data/trips.csv', 'id,km\n1,v3\n');
    expect((await tdv(src.dir, 'add', 'data/trips.csv')).code).toBe(0);
    const v3 = await commitAt(src.dir, '2016-09-01T12:00:00Z', 'v3');
    expect((await tdv(src.dir, 'push')).code).toBe(0);
    const s = await tdv(here, 'status');
    expect(s).toEqual({
      code: 0,
      stdout: `data/trips.csv.tdv:\n    update available:  data/trips.csv (HEAD of ${src.url} is now ${v3.slice(0, 12)}, was ${src.v2.slice(0, 12)}; run \`tdv update data/trips.csv.tdv\`)\n`,
      stderr: '',
    });
    const json = JSON.parse((await tdv(here, 'status', '--json')).stdout) as { clean: boolean; imports: unknown[] };
    expect(json).toMatchObject({ clean: false, imports: [{ path: 'data/trips.csv', state: 'moved', commit: src.v2, latest: v3, url: src.url, source: 'data/trips.csv' }] });

    const u = await tdv(here, 'update', 'data/trips.csv');
    expect(u).toEqual({
      code: 0,
      stdout: `Updated data/trips.csv to HEAD of ${src.url} (${src.v2.slice(0, 12)} -> ${v3.slice(0, 12)})\n\nTo track the changes with Git, run:\n  git add data/trips.csv.tdv\n`,
      stderr: '',
    });
    expect(read(here, 'data/trips.csv')).toBe('id,km\n1,v3\n');
  });

  it('a moved source and a workspace change of the same import: one header, both lines', async () => {
    const src = await makeSource();
    const here = await newRepo();
    expect((await tdv(here, 'import', src.url, 'images', '--rev', 'v1')).code).toBe(0);
    expect((await tdv(here, 'update', '--rev', 'main')).code).toBe(0);
    const pointer = fs.readFileSync(path.join(here, 'images.tdv'), 'utf8');
    // Back to the v1 version's record, but still following main: main has moved past it.
    fs.writeFileSync(path.join(here, 'images.tdv'), pointer.replace(src.v2, src.v1));
    fs.rmSync(path.join(here, 'images/c.png'), { force: true });
    const r = await tdv(here, 'status');
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').filter((l) => l === 'images.tdv:')).toHaveLength(1);
    expect(r.stdout).toMatch(/^images\.tdv:\n {4}update available: {2}images \(main of .* is now [0-9a-f]{12}, was [0-9a-f]{12}; run `tdv update images\.tdv`\)\n {4}modified: {5}images\n/);
  });

  it('--json: import and update print their results as one document', async () => {
    const src = await makeSource();
    const here = await newRepo();
    // A relative path is relative to where tdv runs.
    const r = await tdv(here, 'import', path.relative(here, src.dir), 'images', '--rev', 'v1', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      path: 'images',
      pointer: 'images.tdv',
      import: { url: src.dir, path: 'images', rev: 'v1', commit: src.v1 },
      nfiles: 2,
      fetch: { remote: 'store', transferred: 3, failed: [] },
      gitFiles: ['images.tdv', '.gitignore'],
    });
    const u = await tdv(here, 'update', '--rev', 'main', '--json');
    expect(u.code, u.stderr).toBe(0);
    expect(JSON.parse(u.stdout)).toMatchObject({ imports: [{ path: 'images', rev: 'main', from: src.v1, to: src.v2, state: 'updated' }], gitFiles: ['images.tdv'] });
  });

  it('refusals are one line with a fix, exit 1 or 2, and write nothing', async () => {
    const src = await makeSource();
    const here = await newRepo();
    write(here, 'trips.csv', 'mine');
    let r = await tdv(here, 'import', src.url, 'data/trips.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'trips.csv already exists', '-o', '--force');
    r = await tdv(here, 'import', src.url, 'no/such.csv', '-o', 'x.csv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'no/such.csv does not exist in', 'tdv ls');
    r = await tdv(here, 'import', '--', '--upload-pack=touch /tmp/pwned', 'a');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'starts with "-"');
    // A symlink on the way to the destination.
    fs.symlinkSync(newDir(), path.join(here, 'elsewhere'));
    r = await tdv(here, 'import', src.url, 'data/trips.csv', '-o', 'elsewhere/t.csv');
    expect(r.code).not.toBe(0);
    expectOneLineError(r.stderr, 'symlink');
    // A file Git tracks.
    write(here, 'notes.txt', 'n');
    await git(here, 'add', 'notes.txt');
    r = await tdv(here, 'import', src.url, 'data/trips.csv', '-o', 'notes.txt', '--force');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'notes.txt is tracked by Git');
    expect(read(here, 'notes.txt')).toBe('n');
    expect(fs.readdirSync(here).filter((f) => f.endsWith('.tdv') && f !== '.tdv')).toEqual([]);
  });

  it('an unreachable source: status warns on stderr and exits 0; update fails with one line naming it', async () => {
    const src = await makeSource();
    const here = await newRepo();
    expect((await tdv(here, 'import', src.dir, 'data/trips.csv')).code).toBe(0);
    fs.renameSync(src.dir, `${src.dir}.gone`);
    try {
      const s = await tdv(here, 'status');
      expect(s.code).toBe(0);
      expect(s.stdout).toBe('Data and pipelines are up to date.\n');
      expect(s.stderr).toMatch(new RegExp(`^warning: trips\\.csv\\.tdv: cannot tell whether HEAD of ${src.dir} moved: .+\\n$`));
      const u = await tdv(here, 'update');
      expect(u.code).toBe(1);
      expectOneLineError(u.stderr, `cannot read the Git repository ${src.dir}`);
    } finally {
      fs.renameSync(`${src.dir}.gone`, src.dir);
    }
  });

  it('pull in a fresh clone says where imported data came from (the real bin/tdv)', async () => {
    const src = await makeSource();
    const here = await newRepo();
    expect((await tdv(here, 'import', src.url, 'images')).code).toBe(0);
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'import');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', here, clone);
    const r = await tdvBin(clone, ['pull']);
    expect(r).toEqual({ code: 0, stdout: `Fetched 4 objects (323 B) from remote "store" of ${src.url} (imported data).\nRestored 3 files, deleted 0 files.`, stderr: '' });
    expect(read(clone, 'images/c.png')).toBe('C');
  });
});
