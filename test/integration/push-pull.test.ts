import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, objPath, remoteObjects, SAMPLE_DATA, SAMPLE_DIR, sampleRepo, sha, state } from '../helpers/expect.js';

function remoteObjPath(remote: string, oid: string): string {
  return path.join(remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
}

const DATA = SAMPLE_DATA;
const DIR = SAMPLE_DIR;
/** A repo with `data/` and `model.bin` tracked and committed, and a local default remote. */
const origin = () => sampleRepo({ commit: true });

async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

/** Bytes of all objects: the four files and the manifest. */
const BYTES = 19 + DIR.text.length;
const ALL = [DIR.oid, sha('a,1\n'), sha('b,2\n'), sha('c,3\n'), sha('weights')].sort();

describe('tdv push / pull with a local remote', () => {
  it('push, then pull into a fresh clone with an empty cache, restores every file', async () => {
    const { dir, remote } = await origin();
    const p = await tdv(dir, 'push');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout.trim()).toBe(`Pushed 5 objects (${BYTES} B) to remote "store".`);
    expect(remoteObjects(remote)).toEqual(ALL);
    for (const oid of ALL) expect(fs.statSync(remoteObjPath(remote, oid)).mode & 0o222).toBe(0);

    const b = await clone(dir);
    expect(cacheObjects(b)).toEqual([]);
    const r = await tdv(b, 'pull');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Fetched 5 objects (${BYTES} B) from remote "store".`);
    expect(r.stdout).toContain('Restored 4 files');
    for (const [rel, c] of Object.entries(DATA)) expect(read(b, rel)).toBe(c);
    expect(read(b, 'model.bin')).toBe('weights');
    expect(cacheObjects(b)).toEqual(ALL);
    expect((await tdv(b, 'status')).stdout.trim()).toBe('Data and pipelines are up to date.');
  });

  it("push --rev pushes the data of that revision, not the workspace's", async () => {
    const { dir, remote } = await origin();
    await git(dir, 'tag', 'v1');
    write(dir, 'model.bin', 'weights v2');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    const r = await tdv(dir, 'push', '--rev', 'v1', 'model.bin');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('Pushed 1 object (7 B) to remote "store".');
    expect(remoteObjects(remote)).toEqual([sha('weights')]);
    // Without --rev, the workspace's version.
    expect((await tdv(dir, 'push', 'model.bin')).code).toBe(0);
    expect(remoteObjects(remote)).toEqual([sha('weights'), sha('weights v2')].sort());
  });

  it('a second push transfers nothing', async () => {
    const { dir, remote } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const before = fs.statSync(remoteObjPath(remote, DIR.oid)).mtimeMs;
    const again = await tdv(dir, 'push', '--json');
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ remote: 'store', transferred: 0, skipped: 5, failed: 0, bytes: 0, failures: [] });
    expect(fs.statSync(remoteObjPath(remote, DIR.oid)).mtimeMs).toBe(before);
  });

  it('two repositories pushing the same content store it once', async () => {
    const { dir, remote } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const other = await newRepo();
    fs.appendFileSync(path.join(other, '.tdv', 'config.yaml'), `core:\n  remote: s\nremote:\n  s:\n    url: ${remote}\n`);
    write(other, 'copy.bin', 'weights');
    expect((await tdv(other, 'add', 'copy.bin')).code).toBe(0);
    const r = await tdv(other, 'push', '--json');
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 0, skipped: 1 });
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('pull of one file inside a directory downloads only that file and the manifest', async () => {
    const { dir } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const b = await clone(dir);
    const r = await tdv(b, 'pull', 'data/sub/c.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 2, failed: 0, restored: 1 });
    expect(cacheObjects(b)).toEqual([DIR.oid, sha('c,3\n')].sort());
    expect(read(b, 'data/sub/c.csv')).toBe('c,3\n');
    expect(fs.existsSync(path.join(b, 'data/a.csv'))).toBe(false);
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
  });

  it('fetch fills the cache and leaves the workspace alone; checkout then restores', async () => {
    const { dir } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const b = await clone(dir);
    const f = await tdv(b, 'fetch', 'model.bin.tdv');
    expect(f.code, f.stderr).toBe(0);
    expect(f.stdout.trim()).toBe('Fetched 1 object (7 B) from remote "store".');
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
    expect((await tdv(b, 'checkout', 'model.bin')).code).toBe(0);
    expect(read(b, 'model.bin')).toBe('weights');
  });

  it('a corrupted object on the remote fails the pull, naming object and remote, and is never admitted', async () => {
    const { dir, remote } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const bad = sha('b,2\n');
    const file = remoteObjPath(remote, bad);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'b,9\n');
    const b = await clone(dir);
    const before = state(b);
    const r = await tdv(b, 'pull');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad} on remote "store" (${remote}) is corrupt`);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: 1 object failed \(first: data\/b\.csv: /);
    expect(fs.existsSync(objPath(b, bad))).toBe(false);
    // The good objects were fetched and checked out (all-or-nothing would hold back every file for one),
    // the bad one is listed as not restored, no temp file is left.
    expect(cacheObjects(b)).toEqual(ALL.filter((o) => o !== bad));
    expect(
      Object.keys(state(b))
        .filter((k) => !k.startsWith('.tdv/cache/') && !k.startsWith('.tdv/tmp/'))
        .sort(),
    ).toEqual([...Object.keys(before), 'data/a.csv', 'data/sub/c.csv', 'model.bin'].sort());
    expect(read(b, 'data/a.csv')).toBe('a,1\n');
    expect(read(b, 'model.bin')).toBe('weights');
    expect(fs.existsSync(path.join(b, 'data/b.csv'))).toBe(false);
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):\n    data/b.csv  [data.tdv]\n');
    expect(r.stderr).toContain('everything else was checked out; run `tdv pull` again');
    expect(fs.readdirSync(path.join(b, '.tdv', 'tmp')).filter((n) => n.startsWith('obj.'))).toEqual([]);
  });

  it('an interrupted push never leaves a manifest without its files, and the rerun sends only the rest', async () => {
    const { dir, remote } = await origin();
    // A file where the remote needs a directory makes every upload under that prefix fail.
    const blocked = sha('b,2\n').slice(0, 2);
    fs.mkdirSync(path.join(remote, 'files', 'sha256'), { recursive: true });
    fs.writeFileSync(path.join(remote, 'files', 'sha256', blocked), 'in the way');
    const r = await tdv(dir, 'push', '--json');
    expect(r.code).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res.failures.map((f: { path: string }) => f.path)).toEqual(expect.arrayContaining(['data/b.csv', 'data']));
    expect(remoteObjects(remote)).not.toContain(DIR.oid);
    fs.rmSync(path.join(remote, 'files', 'sha256', blocked));
    const again = await tdv(dir, 'push', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout).transferred).toBe(ALL.length - res.transferred);
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('push --dry lists what would be uploaded and uploads nothing', async () => {
    const { dir, remote } = await origin();
    const r = await tdv(dir, 'push', '--dry');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('data/sub/c.csv  4 B');
    expect(r.stdout.trim().split('\n').at(-1)).toBe(`Would push 5 objects (${BYTES} B) to remote "store"; 0 already there.`);
    expect(remoteObjects(remote)).toEqual([]);
  });

  it('push reports data that is neither cached nor on the remote, and still pushes the rest', async () => {
    const { dir, remote } = await origin();
    fs.rmSync(objPath(dir, sha('weights')), { force: true });
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('model.bin is not in the cache, nor on remote "store"');
    expect(remoteObjects(remote)).toEqual(ALL.filter((o) => o !== sha('weights')));
  });

  it('status --remote shows what push and fetch would move', async () => {
    const { dir } = await origin();
    const before = await tdv(dir, 'status', '--remote', '--json');
    expect(before.code, before.stderr).toBe(0);
    const j = JSON.parse(before.stdout);
    expect(j.clean).toBe(false);
    expect(j.data).toEqual([
      { path: 'data', pointer: 'data.tdv', objects: 4, missingOnRemote: 4, missingLocally: 0 },
      { path: 'model.bin', pointer: 'model.bin.tdv', objects: 1, missingOnRemote: 1, missingLocally: 0 },
    ]);
    expect((await tdv(dir, 'push')).code).toBe(0);
    const after = await tdv(dir, 'status', '--remote');
    expect(after.stdout.trim()).toBe('Cache and remote "store" are in sync.');
    const b = await clone(dir);
    const c = JSON.parse((await tdv(b, 'status', '-r', 'store', '--json')).stdout);
    expect(c.data).toEqual([
      { path: 'data', pointer: 'data.tdv', objects: 4, missingOnRemote: 0, missingLocally: 4 },
      { path: 'model.bin', pointer: 'model.bin.tdv', objects: 1, missingOnRemote: 0, missingLocally: 1 },
    ]);
  });

  it('pull restores a file deleted from the workspace', async () => {
    const { dir } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    fs.rmSync(path.join(dir, 'data', 'a.csv'));
    const r = await tdv(dir, 'pull');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'data/a.csv')).toBe('a,1\n');
  });
});

describe('tdv push / pull: remote errors', () => {
  it('without any remote configured, says how to add one', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'no remote configured', 'tdv remote add -d NAME URL');
  });

  it('an unknown remote name is a usage error listing the known ones', async () => {
    const { dir } = await origin();
    const r = await tdv(dir, 'pull', '-r', 'nope');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown remote "nope"', 'known remotes: store');
  });

  it('a local remote whose directory is missing is named, with the fix', async () => {
    const { dir, remote } = await origin();
    fs.rmSync(remote, { recursive: true });
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `directory ${remote} does not exist`, 'mkdir -p');
    expect(fs.existsSync(remote)).toBe(false);
  });
});

describe('tdv push / pull: partial and shared directories', () => {
  it('pushing one file of a directory holds its manifest back, and says so', async () => {
    const { dir, remote } = await origin();
    const r = await tdv(dir, 'push', 'data/a.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 1, heldBack: [{ path: 'data', missing: 2 }] });
    expect(r.stderr).toContain('the manifest of data was not pushed: 2 of its files are not on the remote yet');
    expect(remoteObjects(remote)).toEqual([sha('a,1\n')]);
    // Once the rest is there, the manifest follows.
    expect((await tdv(dir, 'push', 'data')).code).toBe(0);
    expect(remoteObjects(remote)).toEqual(ALL.filter((o) => o !== sha('weights')));
  });

  it('the same directory content tracked at two paths is uploaded and counted once', async () => {
    const { dir, remote } = await origin();
    for (const [rel, c] of Object.entries(DATA)) write(dir, rel.replace('data/', 'copy/'), c);
    expect((await tdv(dir, 'add', 'copy')).code).toBe(0);
    const r = await tdv(dir, 'push', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 5, failed: 0, bytes: BYTES });
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('a push after the first, with one directory content at two paths, is a no-op, not a crash (attack suite #17)', async () => {
    const { dir, remote } = await origin();
    for (const [rel, c] of Object.entries(DATA)) write(dir, rel.replace('data/', 'copy/'), c);
    expect((await tdv(dir, 'add', 'copy')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    const again = await tdv(dir, 'push', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ transferred: 0, failed: 0 });
    expect(remoteObjects(remote)).toEqual(ALL);
  });

  it('pulling a path the directory does not hold is a usage error', async () => {
    const { dir } = await origin();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const b = await clone(dir);
    const r = await tdv(b, 'pull', 'data/nope.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'data/nope.csv is not in the recorded version of data');
  });

  it('a corrupt manifest in the cache fails that directory only; the rest is pushed', async () => {
    const { dir, remote } = await origin();
    const m = objPath(dir, DIR.oid);
    fs.chmodSync(m, 0o644);
    fs.writeFileSync(m, '[]');
    const r = await tdv(dir, 'push', '--json');
    expect(r.code).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res.failures).toHaveLength(1);
    expect(res.failures[0].path).toBe('data');
    expect(res.failures[0].error).toContain('directory manifest is corrupt');
    expect(remoteObjects(remote)).toEqual([sha('weights')]);
  });
});
