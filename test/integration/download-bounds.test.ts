import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdvBin, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, sha } from '../helpers/expect.js';

/**
 * Review finding F13: a download was read, written and hashed whole (three
 * times) before its recorded size was ever looked at, and a manifest read by
 * gc --cloud or fsck --remote went into memory whole. Downloads are now bounded
 * by the recorded size (a manifest by the manifest limit) and refused before
 * a byte is read when the remote states another size. Real bin/tdv throughout.
 */
async function run(dir: string, ...args: string[]) {
  const r = await tdvBin(dir, args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

/** The remote's copy of `oid`, made writable (tdv stores objects read-only). */
function remoteFile(remote: string, oid: string): string {
  const f = path.join(remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
  fs.chmodSync(f, 0o644);
  return f;
}

/** Nothing was left in the cache's temp directory (no partial download). */
function tmpLeft(dir: string): string[] {
  const tmp = path.join(dir, '.tdv', 'tmp');
  return fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((n) => !n.startsWith('statcache') && !n.startsWith('lock') && n !== 'placed.json') : [];
}

async function pushedRepo() {
  const dir = await newRepo();
  const remote = newDir();
  await run(dir, 'remote', 'add', '-q', '-d', 'r', remote);
  // The plain layout's objects are what these tests shorten and swap (the packed layout's bounds: test/api/packed.test.ts).
  await run(dir, 'remote', 'modify', 'r', 'layout', 'plain');
  return { dir, remote };
}

describe('downloads are bounded by the recorded size (F13)', () => {
  it("refuses a file object whose size on the remote differs from the pointer's, before reading it, naming both sizes", async () => {
    const { dir, remote } = await pushedRepo();
    write(dir, 'a', 'a\n');
    await run(dir, 'add', '-q', 'a');
    await run(dir, 'push', '-q');
    // A sparse 64 MiB file: reading it would write 64 MiB per attempt.
    fs.truncateSync(remoteFile(remote, sha('a\n')), 64 << 20);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    fs.rmSync(path.join(dir, 'a'));
    const r = await tdvBin(dir, ['pull']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`object ${sha('a\n')} on remote "r" (${remote}) is corrupt: it is 67108864 bytes, where 2 bytes are recorded for it`);
    expect(r.stderr).toContain('not downloaded');
    expect(cacheObjects(dir)).toEqual([]);
    expect(tmpLeft(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'a'))).toBe(false);
  });

  it('refuses a shorter object too (a file recorded with size N is never taken with other bytes)', async () => {
    const { dir, remote } = await pushedRepo();
    write(dir, 'b', 'bbbbbbbb\n');
    await run(dir, 'add', '-q', 'b');
    await run(dir, 'push', '-q');
    fs.truncateSync(remoteFile(remote, sha('bbbbbbbb\n')), 3);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    const r = await tdvBin(dir, ['fetch']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is 3 bytes, where 9 bytes are recorded for it');
    expect(cacheObjects(dir)).toEqual([]);
  });

  it('refuses a directory manifest on the remote larger than any manifest may be: pull, fsck --remote and gc --cloud', async () => {
    const { dir, remote } = await pushedRepo();
    write(dir, 'd/x', 'X');
    await run(dir, 'add', '-q', 'd');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'd');
    await run(dir, 'push', '-q');
    const m = manifest([{ relpath: 'x', content: 'X' }]);
    // Sparse: 257 MiB stated, nothing on disk.
    fs.truncateSync(remoteFile(remote, m.oid), 257 << 20);
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    const tooBig = `object ${m.oid} on remote "r" (${remote}) is corrupt: it is ${257 << 20} bytes, more than the ${256 << 20} bytes a directory manifest may have`;

    const pull = await tdvBin(dir, ['pull']);
    expect(pull.code).toBe(1);
    expect(pull.stderr).toContain(tooBig);
    expect(cacheObjects(dir)).toEqual([]);
    expect(tmpLeft(dir)).toEqual([]);

    const fsck = await tdvBin(dir, ['fsck', '--remote']);
    expect(fsck.code).toBe(1);
    expect(fsck.stderr).toContain(tooBig);

    // gc reads from the remote the manifest of a directory only history still uses.
    await run(dir, 'remove', '-q', 'd');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'no d');
    const gc = await tdvBin(dir, ['gc', '--all-commits', '--cloud', '--dry']);
    expect(gc.code).toBe(1);
    expectOneLineError(`${gc.stderr}\n`, tooBig);
    expect(tmpLeft(dir)).toEqual([]);
  });
});
