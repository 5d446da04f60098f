import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, snapshot, tdv, write } from '../helpers/repo.js';
import { dirPointer, expectOneLineError, filePointer, isReadOnly, manifest, mtimeNs, newDir, newRepo, objPath, setConfig, sha, state } from '../helpers/expect.js';
import { add } from '../../src/repo/add.js';
import { abs, expectClean, openRepo, withRepo } from '../helpers/api.js';

describe('tdv add: files', () => {
  it('writes the pointer exactly as the spec shows, caches the content read-only and git-ignores the file', async () => {
    const dir = await newRepo();
    const content = 'a,b\n1,2\n';
    write(dir, 'data.csv', content);
    const { repo, warnings } = await openRepo(dir);
    const r = await add(repo, { paths: abs(dir, 'data.csv') });
    expect(warnings).toEqual([]);
    expect(r).toEqual({ added: [{ path: 'data.csv', pointer: 'data.csv.tdv', oid: sha(content), size: content.length, changed: true }], gitFiles: ['data.csv.tdv', '.gitignore'] });
    expect(read(dir, 'data.csv.tdv')).toBe(`outs:\n- path: data.csv\n  sha256: ${sha(content)}\n  size: ${content.length}\n`);
    const obj = objPath(dir, sha(content));
    expect(fs.readFileSync(obj, 'utf8')).toBe(content);
    expect(fs.statSync(obj).mode & 0o777).toBe(0o444);
    expect(read(dir, '.gitignore')).toBe('/data.csv\n');
    expect(await git(dir, 'check-ignore', 'data.csv')).toBe('data.csv');
    // Default cache.type (reflink,copy): the workspace file stays an independent, writable file.
    expect(read(dir, 'data.csv')).toBe(content);
    expect(isReadOnly(path.join(dir, 'data.csv'))).toBe(false);
    expect(fs.statSync(path.join(dir, 'data.csv')).ino).not.toBe(fs.statSync(obj).ino);
  });

  it('writes the pointer beside a nested file, with the path relative to the pointer’s directory', async () => {
    const dir = await newRepo();
    write(dir, 'data/raw/2024/events.json', '{"a":1}\n');
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'data/raw/2024/events.json') }));
    expect(read(dir, 'data/raw/2024/events.json.tdv')).toBe(filePointer('events.json', '{"a":1}\n'));
    expect(read(dir, 'data/raw/2024/.gitignore')).toBe('/events.json\n');
    expect(fs.existsSync(path.join(dir, '.gitignore'))).toBe(false);
    expect(r.gitFiles).toEqual(['data/raw/2024/events.json.tdv', 'data/raw/2024/.gitignore']);
  });

  it('records isexec for an executable file', async () => {
    const dir = await newRepo();
    write(dir, 'run.sh', '#!/bin/sh\necho hi\n');
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    const r = await tdv(dir, 'add', 'run.sh');
    expect(r.code).toBe(0);
    expect(read(dir, 'run.sh.tdv')).toBe(filePointer('run.sh', '#!/bin/sh\necho hi\n', true));
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o100).toBe(0o100);
  });

  it('appends to an existing .gitignore and never duplicates the line', async () => {
    const dir = await newRepo();
    write(dir, '.gitignore', 'node_modules');
    write(dir, 'data.csv', 'v1\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    expect(read(dir, '.gitignore')).toBe('node_modules\n/data.csv\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    write(dir, 'data.csv', 'v2\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    expect(read(dir, '.gitignore')).toBe('node_modules\n/data.csv\n');
  });

  it('re-adding an unchanged file is a no-op that says so', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'same\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    const ptr = path.join(dir, 'data.csv.tdv');
    const before = state(dir);
    const t0 = mtimeNs(ptr);
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'data.csv') }));
    expect(r.added.map((a) => [a.path, a.size, a.changed])).toEqual([['data.csv', 5, false]]);
    expect(mtimeNs(ptr)).toBe(t0);
    expect(state(dir)).toEqual(before);
  });

  it('re-adding a changed file updates the pointer and keeps the old version in the cache', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'version one\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    write(dir, 'data.csv', 'version two, longer\n');
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'data.csv') }));
    expect(r.added).toEqual([{ path: 'data.csv', pointer: 'data.csv.tdv', oid: sha('version two, longer\n'), size: 20, changed: true }]);
    expect(read(dir, 'data.csv.tdv')).toBe(filePointer('data.csv', 'version two, longer\n'));
    expect(fs.readFileSync(objPath(dir, sha('version one\n')), 'utf8')).toBe('version one\n');
    expect(fs.readFileSync(objPath(dir, sha('version two, longer\n')), 'utf8')).toBe('version two, longer\n');
  });

  it('adds several paths in one command', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    write(dir, 'b.csv', 'b\n');
    const r = await tdv(dir, 'add', 'a.csv', 'b.csv');
    expect(r.code).toBe(0);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(read(dir, 'b.csv.tdv')).toBe(filePointer('b.csv', 'b\n'));
    expect(read(dir, '.gitignore')).toBe('/a.csv\n/b.csv\n');
  });
});

describe('tdv add: directories', () => {
  const files = [
    { relpath: 'a.png', content: 'AAAA' },
    { relpath: 'sub/b.png', content: 'BB' },
    { relpath: 'sub/deeper/c.png', content: 'C' },
  ];

  it('stores a canonical .dir manifest and writes a pointer with the manifest id, total size and nfiles', async () => {
    const dir = await newRepo();
    for (const f of files) write(dir, `data/images/${f.relpath}`, f.content);
    const m = manifest(files);
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'data/images') }));
    expect(r.added).toEqual([{ path: 'data/images', pointer: 'data/images.tdv', oid: m.oid, size: 7, nfiles: 3, changed: true }]);
    expect(read(dir, 'data/images.tdv')).toBe(dirPointer('images', files));
    expect(read(dir, 'data/images.tdv')).toContain(`  sha256: ${m.oid}\n  size: 7\n  nfiles: 3\n`);
    expect(fs.readFileSync(objPath(dir, m.oid), 'utf8')).toBe(m.text);
    expect(objPath(dir, m.oid).endsWith('.dir')).toBe(true);
    for (const f of files) expect(fs.readFileSync(objPath(dir, sha(f.content)), 'utf8')).toBe(f.content);
    expect(read(dir, 'data/.gitignore')).toBe('/images\n');
    expect(await git(dir, 'check-ignore', 'data/images/sub/b.png')).toBe('data/images/sub/b.png');
  });

  it('accepts a trailing slash', async () => {
    const dir = await newRepo();
    for (const f of files) write(dir, `images/${f.relpath}`, f.content);
    const r = await tdv(dir, 'add', 'images/');
    expect(r.code).toBe(0);
    expect(read(dir, 'images.tdv')).toBe(dirPointer('images', files));
    expect(read(dir, '.gitignore')).toBe('/images\n');
  });

  it('re-adding an unchanged directory is a no-op that says so', async () => {
    const dir = await newRepo();
    for (const f of files) write(dir, `images/${f.relpath}`, f.content);
    expect((await tdv(dir, 'add', 'images')).code).toBe(0);
    const t0 = mtimeNs(path.join(dir, 'images.tdv'));
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'images') }));
    expect(r.added.map((a) => [a.path, a.nfiles, a.size, a.changed])).toEqual([['images', 3, 7, false]]);
    expect(mtimeNs(path.join(dir, 'images.tdv'))).toBe(t0);
  });

  it('re-adding a directory with an added, a modified and a deleted file updates the pointer', async () => {
    const dir = await newRepo();
    for (const f of files) write(dir, `images/${f.relpath}`, f.content);
    expect((await tdv(dir, 'add', 'images')).code).toBe(0);
    write(dir, 'images/a.png', 'AAAA2');
    fs.rmSync(path.join(dir, 'images/sub/deeper/c.png'));
    write(dir, 'images/new.png', 'N');
    const r = await tdv(dir, 'add', 'images');
    expect(r.code).toBe(0);
    const now = [
      { relpath: 'a.png', content: 'AAAA2' },
      { relpath: 'new.png', content: 'N' },
      { relpath: 'sub/b.png', content: 'BB' },
    ];
    expect(read(dir, 'images.tdv')).toBe(dirPointer('images', now));
    await expectClean(dir);
  });

  it('leaves paths matched by .tdvignore out of the manifest', async () => {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\nscratch/\n');
    write(dir, 'data/keep.csv', 'k\n');
    write(dir, 'data/junk.tmp', 'junk');
    write(dir, 'data/scratch/notes.csv', 'n\n');
    const r = await withRepo(dir, (repo) => add(repo, { paths: abs(dir, 'data') }));
    expect(r.added.map((a) => [a.path, a.nfiles, a.size, a.changed])).toEqual([['data', 1, 2, true]]);
    expect(read(dir, 'data.tdv')).toBe(dirPointer('data', [{ relpath: 'keep.csv', content: 'k\n' }]));
    expect(fs.existsSync(objPath(dir, sha('junk')))).toBe(false);
    // Ignored files may change freely without making the directory dirty.
    write(dir, 'data/junk.tmp', 'other junk');
    write(dir, 'data/scratch/more.csv', 'm\n');
    await expectClean(dir);
  });

  it('records isexec for executables inside a directory', async () => {
    const dir = await newRepo();
    write(dir, 'tools/run.sh', '#!/bin/sh\n');
    write(dir, 'tools/readme.txt', 'r\n');
    fs.chmodSync(path.join(dir, 'tools/run.sh'), 0o755);
    expect((await tdv(dir, 'add', 'tools')).code).toBe(0);
    const want = [
      { relpath: 'readme.txt', content: 'r\n' },
      { relpath: 'run.sh', content: '#!/bin/sh\n', isexec: true },
    ];
    expect(read(dir, 'tools.tdv')).toBe(dirPointer('tools', want));
    expect(fs.readFileSync(objPath(dir, manifest(want).oid), 'utf8')).toContain('"relpath":"run.sh","sha256":"' + sha('#!/bin/sh\n') + '","size":10,"isexec":true}');
  });

  it('adds an empty directory as a manifest with no files', async () => {
    const dir = await newRepo();
    fs.mkdirSync(path.join(dir, 'empty'));
    const r = await tdv(dir, 'add', 'empty');
    expect(r.code).toBe(0);
    expect(read(dir, 'empty.tdv')).toBe(dirPointer('empty', []));
    expect(fs.readFileSync(objPath(dir, manifest([]).oid), 'utf8')).toBe('[]');
  });
});

describe('tdv add: errors write nothing', () => {
  /** Runs `tdv add` with `args` from `cwd`, checks exit code, one-line message and an unchanged repo. */
  async function refuses(dir: string, cwd: string, args: string[], exit: number, ...needles: (string | RegExp)[]) {
    const before = snapshot(dir);
    const r = await tdv(cwd, 'add', ...args);
    expect(r.code).toBe(exit);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, ...needles);
    expect(snapshot(dir)).toEqual(before);
    return r;
  }

  it('a missing path', async () => {
    const dir = await newRepo();
    await refuses(dir, dir, ['nope.csv'], 2, 'nope.csv does not exist');
  });

  it('a missing path next to a valid one: the valid one is not added either', async () => {
    const dir = await newRepo();
    write(dir, 'good.csv', 'g\n');
    await refuses(dir, dir, ['good.csv', 'nope.csv'], 2, 'nope.csv does not exist');
    expect(fs.existsSync(path.join(dir, 'good.csv.tdv'))).toBe(false);
  });

  it('a path outside the repository', async () => {
    const outside = newDir();
    const dir = await newRepo();
    write(outside, 'x.csv', 'x\n');
    const rel = path.relative(dir, path.join(outside, 'x.csv'));
    await refuses(dir, dir, [rel], 2, path.join(outside, 'x.csv'), 'outside the repository');
    expect(fs.readdirSync(outside)).toEqual(['x.csv']);
  });

  it('a path inside .tdv/', async () => {
    const dir = await newRepo();
    await refuses(dir, dir, ['.tdv/config.yaml'], 2, '.tdv/config.yaml is inside .tdv/');
    await refuses(dir, dir, ['.tdv'], 2, 'inside .tdv/');
  });

  it('a pointer file itself, suggesting the data it tracks', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'd\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    await refuses(dir, dir, ['data.csv.tdv'], 2, 'data.csv.tdv is a tdv pointer file', '(data.csv)');
  });

  it('a file Git already tracks, saying to run git rm --cached', async () => {
    const dir = await newRepo();
    write(dir, 'data.csv', 'd\n');
    await git(dir, 'add', 'data.csv');
    await refuses(dir, dir, ['data.csv'], 2, 'data.csv is tracked by Git', /`git rm (-r )?--cached data\.csv`/);
  });

  it('a directory containing a file Git tracks', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    write(dir, 'data/README.md', 'docs\n');
    await git(dir, 'add', 'data/README.md');
    await git(dir, 'commit', '-q', '-m', 'docs');
    await refuses(dir, dir, ['data'], 2, 'data contains data/README.md, which is tracked by Git', /git rm (-r )?--cached/);
  });

  it('a path inside a directory tdv already tracks', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    write(dir, 'data/a.csv', 'changed\n');
    await refuses(dir, dir, ['data/a.csv'], 2, 'data/a.csv is inside data, which data.tdv already tracks', '`tdv add data`');
  });

  it('a directory containing a path tdv already tracks', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    write(dir, 'data/b.csv', 'b\n');
    expect((await tdv(dir, 'add', 'data/a.csv')).code).toBe(0);
    await refuses(dir, dir, ['data'], 2, 'data contains data/a.csv, already tracked by data/a.csv.tdv', '`tdv remove data/a.csv.tdv`');
  });

  it('two overlapping paths in one command', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    await refuses(dir, dir, ['data', 'data/a.csv'], 2, 'data/a.csv is inside data, which is also being added');
    await refuses(dir, dir, ['data/a.csv', 'data'], 2, 'also being added');
  });

  it('a path ignored by .tdvignore', async () => {
    const dir = await newRepo();
    write(dir, '.tdvignore', '*.tmp\n');
    write(dir, 'x.tmp', 'x');
    await refuses(dir, dir, ['x.tmp'], 2, 'x.tmp is ignored by .tdvignore');
  });

  it('no paths at all is a usage error', async () => {
    const dir = await newRepo();
    await refuses(dir, dir, [], 2, "missing required argument 'paths'");
  });
});

describe('tdv add with linked cache types', () => {
  for (const type of ['hardlink', 'symlink'] as const) {
    it(`cache.type ${type}: workspace files become read-only links to their objects and status stays clean`, async () => {
      const dir = await newRepo();
      setConfig(dir, `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      write(dir, 'big.bin', 'file content\n');
      write(dir, 'images/a.png', 'AAA');
      write(dir, 'images/sub/b.png', 'BB');
      const r = await tdv(dir, 'add', 'big.bin', 'images');
      expect(r.code).toBe(0);
      expect(read(dir, 'big.bin.tdv')).toBe(filePointer('big.bin', 'file content\n'));
      expect(read(dir, 'images.tdv')).toBe(
        dirPointer('images', [
          { relpath: 'a.png', content: 'AAA' },
          { relpath: 'sub/b.png', content: 'BB' },
        ]),
      );
      for (const [rel, content] of [
        ['big.bin', 'file content\n'],
        ['images/a.png', 'AAA'],
        ['images/sub/b.png', 'BB'],
      ] as const) {
        const abs = path.join(dir, rel);
        const obj = objPath(dir, sha(content));
        expect(read(dir, rel)).toBe(content);
        if (type === 'hardlink') {
          expect(fs.lstatSync(abs).isFile()).toBe(true);
          expect(fs.statSync(abs).ino).toBe(fs.statSync(obj).ino);
        } else {
          expect(fs.lstatSync(abs).isSymbolicLink()).toBe(true);
          expect(path.resolve(path.dirname(abs), fs.readlinkSync(abs))).toBe(obj);
        }
        expect(isReadOnly(abs)).toBe(true);
      }
      await expectClean(dir);
    });

    it(`cache.type ${type}: re-adding unchanged linked targets is a no-op`, async () => {
      const dir = await newRepo();
      setConfig(dir, `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      write(dir, 'big.bin', 'file content\n');
      write(dir, 'images/a.png', 'AAA');
      expect((await tdv(dir, 'add', 'big.bin', 'images')).code).toBe(0);
      const t0 = mtimeNs(path.join(dir, 'big.bin.tdv'));
      const { repo, warnings } = await openRepo(dir);
      const again = await add(repo, { paths: abs(dir, 'big.bin', 'images') });
      expect(warnings).toEqual([]);
      expect(again.added.map((a) => [a.path, a.nfiles, a.size, a.changed])).toEqual([
        ['big.bin', undefined, 13, false],
        ['images', 1, 3, false],
      ]);
      expect(read(dir, 'big.bin.tdv')).toBe(filePointer('big.bin', 'file content\n'));
      expect(mtimeNs(path.join(dir, 'big.bin.tdv'))).toBe(t0);
      await expectClean(dir);
    });

    it(`cache.type ${type}: re-adding a linked file after unprotecting and editing it records the new version`, async () => {
      const dir = await newRepo();
      setConfig(dir, `cache:\n  type: ${type}\n  allow_root_links: true\n`);
      write(dir, 'big.bin', 'v1\n');
      expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
      expect((await tdv(dir, 'unprotect', 'big.bin')).code).toBe(0);
      write(dir, 'big.bin', 'v2\n');
      const r = await tdv(dir, 'add', 'big.bin');
      expect(r.code).toBe(0);
      expect(read(dir, 'big.bin.tdv')).toBe(filePointer('big.bin', 'v2\n'));
      expect(fs.readFileSync(objPath(dir, sha('v1\n')), 'utf8')).toBe('v1\n');
      expect(isReadOnly(path.join(dir, 'big.bin'))).toBe(true);
      await expectClean(dir);
    });
  }

  it('cache.type hardlink keeps executables as executable copies', async () => {
    const dir = await newRepo();
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    write(dir, 'run.sh', '#!/bin/sh\n');
    fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
    expect((await tdv(dir, 'add', 'run.sh')).code).toBe(0);
    expect(read(dir, 'run.sh.tdv')).toBe(filePointer('run.sh', '#!/bin/sh\n', true));
    expect(fs.statSync(path.join(dir, 'run.sh')).mode & 0o100).toBe(0o100);
    expect(fs.statSync(objPath(dir, sha('#!/bin/sh\n'))).mode & 0o777).toBe(0o444);
    await expectClean(dir);
  });
});
