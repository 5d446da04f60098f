import { describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
import { read, tdv, tdvBin, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, remoteObjects, sampleRepo, SAMPLE_DIR, sha } from '../helpers/expect.js';

describe('tdv gc --not-in-remote (DVC meaning: keep a referenced object only if the remote lacks it)', () => {
  it('deletes from the cache what the remote holds, and nothing the remote lacks', async () => {
    const { dir, remote } = await sampleRepo();
    // Garbage: an old version of model.bin, in neither the workspace nor the remote.
    write(dir, 'model.bin', 'old weights');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    write(dir, 'model.bin', 'weights');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    // Only model.bin and one file of data/ reach the remote (data/'s manifest is held back).
    expect((await tdv(dir, 'push', 'model.bin', 'data/a.csv')).code).toBe(0);
    const onRemote = remoteObjects(remote);
    expect(onRemote.sort()).toEqual([sha('weights'), sha('a,1\n')].sort());
    const before = cacheObjects(dir);

    const r = await tdvBin(dir, ['gc', '--workspace', '--not-in-remote', '-f']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('2 referenced objects are on remote "store"');
    const after = cacheObjects(dir);
    // Everything not on the remote and referenced stayed: the manifest of data/ and its two other files.
    expect(after.sort()).toEqual([SAMPLE_DIR.oid, sha('b,2\n'), sha('c,3\n')].sort());
    // Removed: exactly the referenced objects on the remote, and the unreferenced old version.
    expect(before.filter((o) => !after.includes(o)).sort()).toEqual([sha('weights'), sha('a,1\n'), sha('old weights')].sort());
    for (const o of before) if (!onRemote.includes(o) && o !== sha('old weights')) expect(after).toContain(o);
    // The workspace is untouched, and `tdv fetch` brings the removed ones back.
    expect(read(dir, 'model.bin')).toBe('weights');
    expect(read(dir, 'data/a.csv')).toBe('a,1\n');
    expect((await tdv(dir, 'fetch', 'model.bin', 'data/a.csv')).code).toBe(0);
    expect(cacheObjects(dir)).toEqual(expect.arrayContaining([sha('weights'), sha('a,1\n')]));
  });

  it('--dry deletes nothing and lists the referenced objects the remote holds', async () => {
    const { dir } = await sampleRepo();
    expect((await tdv(dir, 'push')).code).toBe(0);
    const before = cacheObjects(dir);
    const r = await tdv(dir, 'gc', '--workspace', '--not-in-remote', '--dry', '--json');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { removed: boolean; objects: number; inRemote: { remote: string; objects: number } };
    expect(doc.removed).toBe(false);
    expect(doc.objects).toBe(before.length);
    expect(doc.inRemote).toEqual({ remote: 'store', objects: before.length });
    expect(cacheObjects(dir)).toEqual(before);
  });

  it('refuses to be combined with --cloud, and a cache.type that may symlink into the cache', async () => {
    const { dir } = await sampleRepo();
    const r = await tdv(dir, 'gc', '--workspace', '--not-in-remote', '--cloud', '-f');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '--not-in-remote and --cloud cannot be combined');
    write(dir, '.tdv/config.local.yaml', 'cache:\n  type: symlink,copy\n');
    const s = await tdv(dir, 'gc', '--workspace', '--not-in-remote', '-f');
    expect(s.code).toBe(2);
    expectOneLineError(s.stderr, 'symlink');
  });
  it('keeps an object whose copy on the remote is truncated (a name is not a copy)', async () => {
    const { dir, remote } = await sampleRepo({ layout: 'plain' });
    expect((await tdv(dir, 'push', 'model.bin')).code).toBe(0);
    const oid = sha('weights');
    expect(remoteObjects(remote)).toContain(oid);
    // A half-written upload or a broken remote: the name is there, the bytes are not.
    const found: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name === oid.slice(2)) found.push(p);
      }
    };
    walk(remote);
    expect(found).toHaveLength(1);
    fs.writeFileSync(found[0]!, '');
    const r = await tdvBin(dir, ['gc', '--workspace', '--not-in-remote', '-f']);
    expect(r.code, r.stderr).toBe(0);
    // The cache's copy is the only good one: it stays.
    expect(cacheObjects(dir)).toContain(oid);
  });
});
