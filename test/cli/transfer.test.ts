import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv } from '../helpers/repo.js';
import { damageRemoteObject, expectOneLineError, newDir, newRepo, objPath, packedBytes, SAMPLE_DIR, sampleRepo, sha } from '../helpers/expect.js';
import { formatBytes } from '../../src/ui/output.js';

/**
 * CLI layer: how `tdv push`, `fetch`, `pull` and `status --remote` word their
 * results and errors, their exit codes and --json documents, in one place.
 * What they do is tested through the API, in test/api/transfer.test.ts.
 */
const origin = () => sampleRepo({ commit: true });
const BYTES = 19 + SAMPLE_DIR.text.length;

async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

describe('tdv push / fetch / pull: output', () => {
  it('one summary line each: "Pushed N objects (B) to remote", "Fetched ... from remote", then the checkout summary', async () => {
    const { dir } = await origin();
    expect(await tdv(dir, 'push')).toEqual({ code: 0, stdout: `Pushed 5 objects (${BYTES} B) to remote "store".\n`, stderr: '' });
    const b = await clone(dir);
    const f = await tdv(b, 'fetch', 'model.bin.tdv');
    expect(f).toEqual({ code: 0, stdout: 'Fetched 1 object (7 B) from remote "store".\n', stderr: '' });
    const r = await tdv(b, 'pull');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`Fetched 4 objects (${BYTES - 7} B) from remote "store"; 1 already there.\nRestored 4 files, deleted 0 files.\n`);
  });

  it('--json: push prints the transfer counts and failures; pull adds the checkout counts', async () => {
    const { dir, remote } = await origin();
    const p = await tdv(dir, 'push', '--json');
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout)).toEqual({ remote: 'store', transferred: 5, skipped: 0, failed: 0, bytes: BYTES, sent: packedBytes(remote), failures: [] });
    const b = await clone(dir);
    const r = await tdv(b, 'pull', 'data/sub/c.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 2, failed: 0, restored: 1 });
  });

  it('push --dry: one line per object with its size, then "Would push ..."', async () => {
    const { dir } = await origin();
    const r = await tdv(dir, 'push', '--dry');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('data/sub/c.csv  4 B');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`Would push 5 objects (${BYTES} B) to remote "store"; 0 already there.`);
  });

  it('a corrupt object on the remote: named on stderr, the not-restored list, and one closing error line; exit 1', async () => {
    const { dir, remote } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const bad = sha('b,2\n');
    damageRemoteObject(remote, bad, 'b,9\n');
    const r = await tdv(await clone(dir), 'pull');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad} on remote "store" (${remote}) is corrupt`);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: 1 object failed \(first: data\/b\.csv: /);
    expect(r.stderr).toContain('everything else was checked out; run `tdv pull` again');
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):\n    data/b.csv  [data.tdv]\n');
  });

  it('data neither cached nor on the remote is named; exit 1', async () => {
    const { dir } = await origin();
    fs.rmSync(objPath(dir, sha('weights')), { force: true });
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('model.bin is not in the cache, nor on remote "store"');
  });

  it('a corrupt manifest in the cache: its failure in --json, exit 1', async () => {
    const { dir } = await origin();
    const m = objPath(dir, SAMPLE_DIR.oid);
    fs.chmodSync(m, 0o644);
    fs.writeFileSync(m, '[]');
    const r = await tdv(dir, 'push', '--json');
    expect(r.code).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res.failures).toEqual([{ oid: SAMPLE_DIR.oid, path: 'data', error: expect.stringContaining('directory manifest is corrupt') }]);
  });

  it('a manifest held back: a warning saying how to push the rest, and heldBack in --json', async () => {
    const { dir } = await origin();
    const r = await tdv(dir, 'push', 'data/a.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 1, heldBack: [{ path: 'data', missing: 2 }] });
    expect(r.stderr).toContain('the manifest of data was not pushed: 2 of its files are not on the remote yet');
  });

  it('status --remote: "in sync", or the per-pointer counts in --json', async () => {
    const { dir } = await origin();
    const before = await tdv(dir, 'status', '--remote', '--json');
    expect(before.code, before.stderr).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({
      clean: false,
      data: [
        { path: 'data', missingOnRemote: 4 },
        { path: 'model.bin', missingOnRemote: 1 },
      ],
    });
    expect((await tdv(dir, 'push')).code).toBe(0);
    expect((await tdv(dir, 'status', '--remote')).stdout).toBe('Cache and remote "store" are in sync.\n');
  });
});

describe('tdv push / pull: error lines and exit codes', () => {
  it('without any remote configured: exit 1, says how to add one', async () => {
    const r = await tdv(await newRepo(), 'push');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'no remote configured', 'tdv remote add -d NAME URL');
  });

  it('an unknown remote name: exit 2, listing the known ones', async () => {
    const { dir } = await origin();
    const r = await tdv(dir, 'pull', '-r', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown remote "nope"', 'known remotes: store');
  });

  it('a local remote whose directory is missing: exit 1, named, with the fix', async () => {
    const { dir, remote } = await origin();
    fs.rmSync(remote, { recursive: true });
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `directory ${remote} does not exist`, 'mkdir -p');
  });

  it('pulling a path the directory does not hold: exit 2', async () => {
    const { dir } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const r = await tdv(await clone(dir), 'pull', 'data/nope.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'data/nope.csv is not in the recorded version of data');
  });
});
