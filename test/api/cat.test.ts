import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { cat } from '../../src/repo/cat.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { makeRepo } from '../helpers/repo.js';
import { damageRemoteObject, sha } from '../helpers/expect.js';
import { isolateUserCache, makeSource } from '../helpers/source.js';

isolateUserCache();

/** A sink that keeps what it is written. */
function sink(): { out: PassThrough; text: () => string } {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  return { out, text: () => Buffer.concat(chunks).toString() };
}

/** Overwrites a read-only object file in place. */
function corrupt(file: string, content: string): void {
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, content);
}

describe('cat', () => {
  it('streams data and Git files at old revisions, from the cache', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      for (const [p, rev, want] of [
        ['data/trips.csv', 'v1', 'id,km\n1,v1\n'],
        ['data/trips.csv', '@2016-08-31', 'id,km\n1,v2\n2,v2\n'],
        ['images/sub/b.png', 'v1', 'B'],
        ['README.md', 'v1', '# source\n'],
      ] as const) {
        const s = sink();
        const r = await cat(repo, { path: p, rev }, s.out);
        expect(s.text()).toBe(want);
        expect(r).toMatchObject({ path: p, bytes: want.length, closed: false, source: p === 'README.md' ? 'git' : 'data' });
      }
    });
  });

  it('fetches a missing object from the remote, verified, and keeps it', async () => {
    const src = await makeSource();
    fs.rmSync(path.join(src.dir, '.tdv', 'cache'), { recursive: true });
    await withRepo(src.dir, async (repo) => {
      const s = sink();
      await cat(repo, { path: 'data/trips.csv', rev: 'v1' }, s.out);
      expect(s.text()).toBe('id,km\n1,v1\n');
      expect(repo.store.has(sha('id,km\n1,v1\n'))).toBe(true);
    });
  });

  it('refuses an object the remote holds damaged, and caches nothing', async () => {
    const src = await makeSource();
    fs.rmSync(path.join(src.dir, '.tdv', 'cache'), { recursive: true });
    damageRemoteObject(src.remote, sha('id,km\n1,v1\n'), 'id,km\n1,XX\n');
    await withRepo(src.dir, async (repo) => {
      const s = sink();
      await rejectsWith(cat(repo, { path: 'data/trips.csv', rev: 'v1' }, s.out), 'CORRUPT_ON_REMOTE');
      expect(s.text()).toBe('');
      expect(repo.store.has(sha('id,km\n1,v1\n'))).toBe(false);
    });
  });

  it('reports a cache object damaged since it was stored, after streaming it', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      corrupt(repo.store.pathOf(sha('id,km\n1,v1\n')), 'id,km\n1,XX\n');
      const err = await rejectsWith(cat(repo, { path: 'data/trips.csv', rev: 'v1' }, sink().out), 'DAMAGED_OBJECT');
      expect(err.message).toContain('data/trips.csv');
    });
  });

  it('reads another repository by URL, from its remote, into this cache', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await withRepo(here, async (repo) => {
      const s = sink();
      await cat(repo, { url: src.url, path: 'images/c.png' }, s.out);
      expect(s.text()).toBe('C');
      expect(repo.store.has(sha('C'))).toBe(true);
    });
    const s = sink();
    await cat(undefined, { url: src.dir, path: 'src/x.py', rev: 'v1' }, s.out);
    expect(s.text()).toBe('print(1)\n');
  });

  it('a directory, a missing file, no repository', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      expect((await rejectsWith(cat(repo, { path: 'images/sub' }, sink().out), 'NOT_A_FILE')).message).toContain('tdv ls images/sub');
      await rejectsWith(cat(repo, { path: 'data' }, sink().out), 'NOT_A_FILE');
      await rejectsWith(cat(repo, { path: 'images/c.png', rev: 'v1' }, sink().out), 'NOT_FOUND');
    });
    await rejectsWith(cat(undefined, { path: 'x' }, sink().out), 'NOT_A_REPO');
  });

  it('stops quietly when the reader goes away', async () => {
    const src = await makeSource();
    await withRepo(src.dir, async (repo) => {
      let got = 0;
      const closing = new Writable({
        write(chunk: Buffer, _enc, cb) {
          got += chunk.length;
          const err = Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });
          cb(err);
        },
      });
      closing.on('error', () => {});
      const r = await cat(repo, { path: 'data/trips.csv' }, closing);
      expect(r.closed).toBe(true);
      expect(got).toBeGreaterThan(0);
    });
  });
});
