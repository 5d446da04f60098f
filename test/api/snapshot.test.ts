import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, makeRepo, tdv, tmpDir, write } from '../helpers/repo.js';
import { withRepo } from '../helpers/api.js';
import { commitAt } from '../helpers/source.js';
import { damageRemoteObject } from '../helpers/expect.js';
import { dateRevisionTime, isDateRevision, resolveRev, Snapshot, splitRevPath } from '../../src/repo/lib/snapshot.js';
import { localSource } from '../../src/repo/lib/local-source.js';
import { TdvError } from '../../src/errors.js';

async function ok(dir: string, ...args: string[]): Promise<void> {
  const r = await tdv(dir, ...args);
  if (r.code !== 0) throw new Error(`tdv ${args.join(' ')}: ${r.stderr}`);
}

/** Three commits around July 31: data/ (a tracked directory), model.bin (a tracked file) and code in Git. */
async function history(): Promise<{ dir: string; c: string[] }> {
  const dir = await makeRepo();
  write(dir, 'data/trips.csv', 'id,min\n1,5\n');
  write(dir, 'data/sub/more.csv', 'x\n');
  write(dir, 'model.bin', 'v1');
  write(dir, 'src/train.py', 'print(1)\n');
  await ok(dir, 'add', 'data', 'model.bin');
  const c1 = await commitAt(dir, '2016-07-30T10:00:00', 'July 30');
  write(dir, 'data/trips.csv', 'id,min\n1,5\n2,7\n');
  await ok(dir, 'add', 'data');
  const c2 = await commitAt(dir, '2016-07-31T23:30:00', 'late July 31');
  write(dir, 'data/trips.csv', 'id,min\n1,5\n2,7\n3,9\n');
  write(dir, 'model.bin', 'v2');
  await ok(dir, 'add', 'data', 'model.bin');
  const c3 = await commitAt(dir, '2016-08-01T08:00:00', 'August 1');
  return { dir, c: [c1, c2, c3] };
}

describe('Snapshot: any revision, read without the work tree', () => {
  it('lists data and Git files together, expands tracked directories, and reads each at its revision', async () => {
    const { dir, c } = await history();
    await withRepo(dir, async (repo) => {
      const src = await localSource(repo);
      const old = await Snapshot.open(src, c[0]!);
      expect((await old.list(''))!.map((e) => `${e.kind}:${e.source}:${e.path}`)).toEqual([
        'file:git:.gitignore',
        'file:git:.tdvignore',
        'dir:data:data',
        'file:git:data.tdv',
        'file:data:model.bin',
        'file:git:model.bin.tdv',
        'dir:git:src',
      ]);
      expect((await old.list('', { recursive: true }))!.map((e) => e.path)).toContain('data/sub/more.csv');
      expect((await old.list('data'))!.map((e) => `${e.kind}:${e.path}`)).toEqual(['dir:data/sub', 'file:data/trips.csv']);
      expect((await old.read((await old.stat('data/trips.csv'))!)).toString()).toBe('id,min\n1,5\n');
      expect((await old.read((await old.stat('model.bin'))!)).toString()).toBe('v1');
      expect((await old.read((await old.stat('src/train.py'))!)).toString()).toBe('print(1)\n');
      const now = await Snapshot.open(src, 'HEAD');
      expect((await now.read((await now.stat('data/trips.csv'))!)).toString()).toBe('id,min\n1,5\n2,7\n3,9\n');
      // A range is inclusive, as HTTP's.
      const chunks: Buffer[] = [];
      for await (const b of await now.open((await now.stat('data/trips.csv'))!, { start: 3, end: 5 })) chunks.push(b as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('min');
    });
  });

  it('answers nothing for paths outside the revision: .., empty segments, absolute, .git, .tdv, untracked', async () => {
    const { dir } = await history();
    await withRepo(dir, async (repo) => {
      const s = await Snapshot.open(await localSource(repo), 'HEAD');
      for (const p of ['..', '../x', 'data/../model.bin', 'data//trips.csv', '/etc/passwd', './model.bin', 'data/', '.git/config', '.tdv/config.yaml', 'missing', 'data/missing.csv']) {
        expect(await s.stat(p), p).toBeUndefined();
      }
      expect(await s.list('model.bin')).toBeUndefined();
      expect(await s.list('nope')).toBeUndefined();
    });
  });

  it('fetches a missing object from the remote, verified, and keeps it in the cache; a corrupt remote copy is refused', async () => {
    const { dir } = await history();
    const remote = tmpDir('tdv-remote-');
    await ok(dir, 'remote', 'add', '-d', 'store', remote);
    await ok(dir, 'push');
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
    await withRepo(dir, async (repo) => {
      const s = await Snapshot.open(await localSource(repo), 'HEAD');
      const e = (await s.stat('data/trips.csv'))!;
      expect((await s.read(e)).toString()).toBe('id,min\n1,5\n2,7\n3,9\n');
      expect(repo.store.has(e.oid!)).toBe(true);
      // model.bin's object on the remote is replaced by other bytes.
      const m = (await s.stat('model.bin'))!;
      damageRemoteObject(remote, m.oid!, 'v9');
      await expect(s.read(m)).rejects.toMatchObject({ code: 'CORRUPT_ON_REMOTE' });
      expect(repo.store.has(m.oid!)).toBe(false);
    });
  });
});

describe('revisions: dates and revision/path keys', () => {
  it('@DATE is the last commit on HEAD at or before the end of that day, whatever the time now', async () => {
    const { dir, c } = await history();
    await withRepo(dir, async (repo) => {
      const h = (await localSource(repo)).history;
      expect(resolveRev(h, '@2016-07-30')).toBe(c[0]);
      // Committed at 23:30 on July 31: "the data as of July 31" includes it (git's --before=2016-07-31 would not, before 23:30).
      expect(resolveRev(h, '@2016-07-31')).toBe(c[1]);
      expect(resolveRev(h, '@2016-07-31T12:00')).toBe(c[0]);
      expect(resolveRev(h, '@2016-08-02')).toBe(c[2]);
      expect(resolveRev(h, '@')).toBe(c[2]);
      expect(() => resolveRev(h, '@2016-07-29')).toThrow(/no commit on main was made at or before 2016-07-29/);
      for (const bad of ['@2016-02-30', '@2016-13-01', '@2016-07-31T25:00']) expect(() => resolveRev(h, bad), bad).toThrow(TdvError);
    });
  });

  it('parses date revisions with and without a zone', () => {
    expect(isDateRevision('@2016-07-31')).toBe(true);
    expect(isDateRevision('@{yesterday}')).toBe(false);
    expect(dateRevisionTime('@2016-07-31T12:00:00Z')).toBe(Date.UTC(2016, 6, 31, 12) / 1000);
    expect(dateRevisionTime('@2016-07-31T14:00+02:00')).toBe(Date.UTC(2016, 6, 31, 12) / 1000);
    expect(dateRevisionTime('@2016-07-31')).toBe(new Date(2016, 6, 31, 23, 59, 59).getTime() / 1000);
    // A year below 100 is that year, not 19xx (JavaScript's Date reads 99 as 1999).
    const y99 = new Date(0);
    y99.setUTCFullYear(99, 11, 31);
    expect(dateRevisionTime('@0099-12-31T00:00:00Z')).toBe(y99.getTime() / 1000);
    expect(dateRevisionTime('@0099-12-31')).toBeLessThan(Date.UTC(1000, 0, 1) / 1000);
    expect(() => dateRevisionTime('@0099-02-29')).toThrow(/not a valid date/);
    expect(() => dateRevisionTime('@2016-07-31T12:00+99:99')).toThrow(/time zone/);
  });

  it('splits <rev>/<path> where the revision holds slashes, and never reads a path as a revision', async () => {
    const { dir, c } = await history();
    await git(dir, 'branch', 'feature/x', c[0]!);
    await git(dir, 'tag', 'v1', c[1]!);
    await withRepo(dir, async (repo) => {
      const h = (await localSource(repo)).history;
      expect(splitRevPath(h, 'feature/x/data/trips.csv')).toEqual({ rev: 'feature/x', commit: c[0], path: 'data/trips.csv' });
      expect(splitRevPath(h, 'v1/model.bin')).toEqual({ rev: 'v1', commit: c[1], path: 'model.bin' });
      expect(splitRevPath(h, '@2016-07-31/data')).toEqual({ rev: '@2016-07-31', commit: c[1], path: 'data' });
      expect(splitRevPath(h, 'main~2/')).toEqual({ rev: 'main~2', commit: c[0], path: '' });
      expect(splitRevPath(h, 'main')).toEqual({ rev: 'main', commit: c[2], path: '' });
      expect(splitRevPath(h, 'nope/data')).toBeUndefined();
      expect(splitRevPath(h, '')).toBeUndefined();
    });
  });
});
