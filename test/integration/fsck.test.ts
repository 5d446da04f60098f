import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, objPath, SAMPLE_DATA, SAMPLE_DIR, sampleRepo, sha } from '../helpers/expect.js';

const DATA = SAMPLE_DATA;
const DIR = SAMPLE_DIR;
const repo = () => sampleRepo();

/** Overwrites a (read-only) object's bytes, as a failing disk or a stray tool might. */
function damage(file: string, bytes: string | Buffer): void {
  fs.chmodSync(file, 0o644);
  fs.writeFileSync(file, bytes);
}

async function fsckJson(dir: string, ...args: string[]) {
  const r = await tdv(dir, 'fsck', '--json', ...args);
  return { code: r.code, stderr: r.stderr, res: JSON.parse(r.stdout) };
}

describe('tdv fsck', () => {
  it('finds nothing wrong in a healthy cache and exits 0', async () => {
    const { dir } = await repo();
    const r = await tdv(dir, 'fsck');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('Checked 5 cache objects (107 B); 5 objects referenced by pointers and tdv.lock.\nNo problems found.\n'.replace('107', String(19 + DIR.text.length)));
    const j = await fsckJson(dir);
    expect(j.res).toEqual({ clean: true, objects: 5, bytes: 19 + DIR.text.length, corrupt: [], referenced: 5, missing: [], errors: [] });
  });

  it('moves a corrupt object to .tdv/tmp/quarantine, reports the data that used it, and exits 1', async () => {
    const { dir } = await repo();
    const oid = sha('b,2\n');
    damage(objPath(dir, oid), 'b,3\n');
    const r = await tdv(dir, 'fsck');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`corrupt: ${oid}: its content hashes to ${sha('b,3\n')}; moved to .tdv/tmp/quarantine/${oid}`);
    expect(r.stdout).toContain(`missing from the cache: data/b.csv (object ${oid.slice(0, 12)}, data.tdv)`);
    expectOneLineError(r.stderr, '1 corrupt object moved to .tdv/tmp/quarantine/', '1 referenced object missing from the cache', '`tdv pull`');
    expect(fs.existsSync(objPath(dir, oid))).toBe(false);
    expect(fs.readFileSync(path.join(dir, '.tdv/tmp/quarantine', oid), 'utf8')).toBe('b,3\n');
    // status no longer trusts that the directory's objects are all there.
    const st = JSON.parse((await tdv(dir, 'status', '--json')).stdout);
    expect(st.data).toEqual([expect.objectContaining({ path: 'data', cache: 'missing' })]);
    // Re-adding the data, which is intact in the workspace, repairs the cache.
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    expect((await tdv(dir, 'fsck')).code).toBe(0);
  });

  it('streams large objects and quarantines one with a flipped byte', async () => {
    const dir = await newRepo();
    const big = crypto.randomBytes(3 << 20);
    write(dir, 'big.bin', big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    const file = objPath(dir, sha(big));
    const bad = Buffer.from(big);
    bad[2 << 20]! ^= 1;
    damage(file, bad);
    const j = await fsckJson(dir);
    expect(j.code).toBe(1);
    expect(j.res.corrupt).toEqual([{ oid: sha(big), reason: `its content hashes to ${sha(bad)}`, quarantined: `.tdv/tmp/quarantine/${sha(big)}` }]);
    expect(j.res.missing).toEqual([{ oid: sha(big), path: 'big.bin', pointer: 'big.bin.tdv' }]);
  });

  it('checks thousands of small objects on two threads and finds the one bad object among them', async () => {
    const dir = await newRepo();
    for (let i = 0; i < 2500; i++) write(dir, `many/f${i}`, `file ${i}\n`);
    expect((await tdv(dir, 'add', 'many')).code).toBe(0);
    damage(objPath(dir, sha('file 1234\n')), 'file 1235\n');
    const j = await fsckJson(dir);
    expect(j.res.objects).toBe(2501);
    expect(j.res.corrupt.map((c: { oid: string }) => c.oid)).toEqual([sha('file 1234\n')]);
    expect(j.res.missing).toEqual([{ oid: sha('file 1234\n'), path: 'many/f1234', pointer: 'many.tdv' }]);
  });

  it('quarantines a manifest whose bytes changed, and then reports the whole directory missing', async () => {
    const { dir } = await repo();
    damage(objPath(dir, DIR.oid), DIR.text.replace('a.csv', 'x.csv'));
    const j = await fsckJson(dir);
    expect(j.res.corrupt.map((c: { oid: string }) => c.oid)).toEqual([DIR.oid]);
    expect(j.res.missing).toEqual([{ oid: DIR.oid, path: 'data/', pointer: 'data.tdv' }]);
  });

  it('reports a manifest that matches its hash but does not parse (a hostile one), and leaves it: its bytes are what was written', async () => {
    const dir = await newRepo();
    const text = JSON.stringify([{ relpath: '../../escape', sha256: sha('x'), size: 1 }]);
    const oid = `${sha(text)}.dir`;
    fs.mkdirSync(path.dirname(objPath(dir, oid)), { recursive: true });
    fs.writeFileSync(objPath(dir, oid), text);
    const j = await fsckJson(dir);
    expect(j.code).toBe(1);
    expect(j.res.corrupt).toEqual([]);
    expect(j.res.errors).toEqual([expect.stringMatching(/unsafe relpath \.\.\/\.\.\/escape: it has a "\.\." component.*left in the cache/)]);
    expect(fs.readFileSync(objPath(dir, oid), 'utf8')).toBe(text);
  });

  it('quarantines an object that is a symlink without following it', async () => {
    const { dir } = await repo();
    const outside = path.join(newDir(), 'precious');
    fs.writeFileSync(outside, 'weights');
    const file = objPath(dir, sha('weights'));
    fs.rmSync(file);
    fs.symlinkSync(outside, file);
    const j = await fsckJson(dir);
    expect(j.res.corrupt).toEqual([expect.objectContaining({ oid: sha('weights'), reason: 'not a regular file (a symlink)' })]);
    expect(fs.readFileSync(outside, 'utf8')).toBe('weights');
  });

  it('reports objects missing behind tdv.lock outs, naming tdv.lock', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    fs.rmSync(objPath(dir, sha('made\n')));
    const j = await fsckJson(dir);
    expect(j.code).toBe(1);
    expect(j.res.missing).toEqual([{ oid: sha('made\n'), path: 'out.txt', pointer: 'tdv.lock' }]);
  });

  it('reports a malformed pointer file as an error naming it, and still checks the objects', async () => {
    const { dir } = await repo();
    write(dir, 'bad.tdv', 'outs:\n- path: bad\n  sha256: nothex\n  size: 1\n');
    const j = await fsckJson(dir);
    expect(j.code).toBe(1);
    expect(j.res.objects).toBe(5);
    expect(j.res.errors).toEqual([expect.stringMatching(/^bad\.tdv:\d+:\d+: outs\[0\]\.sha256 must be 64 lowercase hex digits/)]);
    // The pointers that do parse still count (review 2, finding 15: it said 0 referenced).
    const good = await fsckJson((await repo()).dir);
    expect(j.res.referenced).toBe(good.res.referenced);
    expect(j.res.referenced).toBeGreaterThan(0);
  });

  describe('--remote', () => {
    it('checks presence and size of every referenced object on the remote', async () => {
      const { dir, remote } = await sampleRepo({ layout: 'plain' });
      expect((await tdv(dir, 'push')).code).toBe(0);
      const ok = await fsckJson(dir, '--remote');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.res.remote).toEqual({ remote: 'store', url: remote, checked: 5, missing: [], wrongSize: [] });

      const at = (oid: string) => path.join(remote, 'files/sha256', oid.slice(0, 2), oid.slice(2));
      fs.rmSync(at(sha('a,1\n')));
      damage(at(sha('weights')), 'weigh');
      const r = await tdv(dir, 'fsck', '--remote', 'store');
      expect(r.code).toBe(1);
      expect(r.stdout).toContain(`missing from remote "store": data/a.csv (object ${sha('a,1\n').slice(0, 12)}, data.tdv)`);
      expect(r.stdout).toContain(`wrong size on remote "store": model.bin (object ${sha('weights').slice(0, 12)}): 5 bytes, expected 7`);
      expectOneLineError(r.stderr, '1 missing from remote "store"', '1 with the wrong size on remote "store"', 'tdv push -r store');
    });

    it('in a clone with an empty cache, reads manifests from the remote to know which files to check', async () => {
      const { dir, remote } = await sampleRepo({ layout: 'plain' });
      expect((await tdv(dir, 'push')).code).toBe(0);
      await git(dir, 'add', '-A');
      await git(dir, 'commit', '-qm', 'data');
      const b = path.join(newDir(), 'clone');
      await git(path.dirname(b), 'clone', '-q', dir, b);
      fs.rmSync(path.join(remote, 'files/sha256', sha('c,3\n').slice(0, 2), sha('c,3\n').slice(2)));
      const j = await fsckJson(b, '--remote');
      expect(j.code).toBe(1);
      expect(cacheObjects(b)).toEqual([]); // the manifest was read in memory, not cached
      expect(j.res.missing.map((m: { path: string }) => m.path).sort()).toEqual(['data/', 'model.bin']);
      expect(j.res.remote.checked).toBe(5);
      expect(j.res.remote.missing).toEqual([{ oid: sha('c,3\n'), path: 'data/sub/c.csv', pointer: 'data.tdv' }]);
    });

    it('an unknown remote name is a usage error', async () => {
      const { dir } = await repo();
      const r = await tdv(dir, 'fsck', '--remote', 'nope');
      expect(r.code).toBe(2);
      expectOneLineError(r.stderr, 'unknown remote "nope"');
    });
  });
});
