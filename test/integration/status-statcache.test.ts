import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, manifest, newRepo, objPath, repoWith, sha, state } from '../helpers/expect.js';

/** `tdv status --json`, which must succeed and print nothing on stderr. */
async function json(dir: string, ...args: string[]) {
  const r = await tdv(dir, 'status', '--json', ...args);
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as {
    clean: boolean;
    data: { path: string; pointer: string; workspace: string; cache: string; files?: { added: string[]; modified: string[]; deleted: string[] } }[];
  };
}

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
    expect((await json(dir)).clean).toBe(true);
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
    expect((await json(dir)).clean).toBe(true);
  });

  it('detects a file replaced by rename with the same size and mtime', async () => {
    const dir = await repoWith({ 'data/a.csv': 'aaaa\n', 'data/b.csv': 'bbbb\n' }, ['data']);
    const file = path.join(dir, 'data/a.csv');
    await new Promise((r) => setTimeout(r, 20));
    expect((await json(dir)).clean).toBe(true);
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
    expect((await json(dir)).clean).toBe(true);
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
    expect((await json(dir)).clean).toBe(true);
  });

  it('a hard-linked file of the directory modified in place: its damaged object is reported and quarantined', async () => {
    const dir = await repoWith({ 'data/a.csv': 'aaaa\n', 'data/b.csv': 'bbbb\n' }, ['data'], 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    const oid = sha('aaaa\n');
    expect(fs.statSync(path.join(dir, 'data/a.csv')).ino).toBe(fs.statSync(objPath(dir, oid)).ino);
    await new Promise((r) => setTimeout(r, 20));
    expect((await json(dir)).clean).toBe(true);
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

describe('the stat cache pairs each file with its own hash', () => {
  it('a directory x/ beside x.txt (the walk lists x/... first, the manifest x.txt first): a second add records each file as it is', async () => {
    const dir = await newRepo();
    write(dir, 'd/x/in.txt', 'inner\n');
    write(dir, 'd/x.txt', 'outer, longer\n');
    write(dir, 'd/x-y.txt', 'dash\n');
    expect((await tdv(dir, 'add', 'd')).code).toBe(0);
    // Something new makes the second add hash the directory again, the others from the stat cache.
    write(dir, 'd/z.txt', 'z\n');
    expect((await tdv(dir, 'add', 'd')).code).toBe(0);
    const want = manifest([
      { relpath: 'x/in.txt', content: 'inner\n' },
      { relpath: 'x.txt', content: 'outer, longer\n' },
      { relpath: 'x-y.txt', content: 'dash\n' },
      { relpath: 'z.txt', content: 'z\n' },
    ]);
    expect(read(dir, 'd.tdv')).toContain(want.oid);
    fs.rmSync(path.join(dir, 'd'), { recursive: true });
    expect((await tdv(dir, 'checkout', 'd')).code).toBe(0);
    expect([read(dir, 'd/x/in.txt'), read(dir, 'd/x.txt'), read(dir, 'd/x-y.txt')]).toEqual(['inner\n', 'outer, longer\n', 'dash\n']);
  });
});
