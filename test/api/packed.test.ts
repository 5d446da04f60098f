import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pull } from '../../src/repo/pull.js';
import { push, type PushOptions } from '../../src/repo/push.js';
import { CHUNK_THRESHOLD } from '../../src/remote/transfer/chunker.js';
import { git, read, write } from '../helpers/repo.js';
import { damageRemoteObject, newDir, packedObjects, remoteObjects, sampleRepo, sha } from '../helpers/expect.js';
import { abs, expectClean, rejectsWith, track, withRepo } from '../helpers/api.js';

/**
 * The packed remote layout (remote/packed.ts) through push and pull with a
 * directory remote: what lands on the remote, what a second version sends,
 * what a pull of it reads, and what a damaged or hostile remote gets.
 */
const pushed = (dir: string, opts: PushOptions = {}) => withRepo(dir, (r) => push(r, opts));
const pulled = (dir: string) => withRepo(dir, (r) => pull(r, {}));

async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

/** Deterministic CSV text of about `bytes` bytes, rows numbered from `from`. */
function csv(bytes: number, from = 0): string {
  const rows: string[] = ['id,name,value,city'];
  let n = 0;
  let i = from;
  const cities = ['Lisbon', 'Oslo', 'Kyoto', 'Quito', 'Accra', 'Perth'];
  while (n < bytes) {
    const row = `${i},name_${(i * 7919) % 100_003},${((i * 37) % 10_000) / 100},${cities[i % cities.length]}`;
    rows.push(row);
    n += row.length + 1;
    i++;
  }
  return `${rows.join('\n')}\n`;
}

/** Every file under a remote directory (relative), sorted. */
function files(remote: string, sub: string): string[] {
  const d = path.join(remote, sub);
  return fs.existsSync(d) ? fs.readdirSync(d).sort() : [];
}

function dirBytes(remote: string): number {
  let n = 0;
  for (const sub of ['packs', 'index', 'files']) {
    const walk = (d: string): void => {
      if (!fs.existsSync(d)) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else n += fs.statSync(path.join(d, e.name)).size;
      }
    };
    walk(path.join(remote, sub));
  }
  return n;
}

function indexDoc(remote: string, name: string): { written: number; packs: string[]; blobs: (string | number)[][] } {
  return JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(remote, 'index', name))).toString()) as { written: number; packs: string[]; blobs: (string | number)[][] };
}

describe('packed remote layout', () => {
  it('a new remote gets the layout record, packs and one index per upload round, no plain objects; a fresh clone pulls it back', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const res = await pushed(dir);
    expect(res).toMatchObject({ transferred: 5, failed: [] });
    expect(JSON.parse(fs.readFileSync(path.join(remote, 'tdv-remote.json'), 'utf8'))).toMatchObject({ format: 'tdv-remote', layout: 2 });
    expect(fs.existsSync(path.join(remote, 'files'))).toBe(false);
    // Files, then the manifest: two rounds, each a pack and an index naming it.
    expect(files(remote, 'index')).toHaveLength(2);
    expect(files(remote, 'packs')).toHaveLength(2);
    for (const p of files(remote, 'packs')) expect(p).toMatch(/^[0-9a-f]{64}\.pack$/);
    const b = await clone(dir);
    expect((await pulled(b)).fetch).toMatchObject({ transferred: 5, failed: [] });
    expect(read(b, 'model.bin')).toBe('weights');
    await expectClean(b);
  });

  it('a remote already holding plain objects stays plain unless layout: packed is set; both layouts are read', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), '    layout: plain\n');
    await pushed(dir);
    expect(fs.existsSync(path.join(remote, 'tdv-remote.json'))).toBe(false);
    expect(remoteObjects(remote)).toHaveLength(5);
    expect(files(remote, 'packs')).toEqual([]);
    // The setting gone: the remote already has plain objects, so it stays plain.
    fs.writeFileSync(path.join(dir, '.tdv', 'config.yaml'), fs.readFileSync(path.join(dir, '.tdv', 'config.yaml'), 'utf8').replace('    layout: plain\n', ''));
    write(dir, 'model.bin', 'weights v2');
    await track(dir, 'model.bin');
    await pushed(dir);
    expect(files(remote, 'packs')).toEqual([]);
    expect(fs.existsSync(path.join(remote, 'files', 'sha256', sha('weights v2').slice(0, 2), sha('weights v2').slice(2)))).toBe(true);
    // Asked for: packed from now on; what was plain stays readable.
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), '    layout: packed\n');
    write(dir, 'model.bin', 'weights v3');
    await track(dir, 'model.bin');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'v3');
    await pushed(dir);
    expect(fs.existsSync(path.join(remote, 'tdv-remote.json'))).toBe(true);
    expect([...packedObjects(remote).keys()]).toEqual([sha('weights v3')]);
    const b = await clone(dir);
    expect((await pulled(b)).fetch).toMatchObject({ failed: [] });
    expect(read(b, 'model.bin')).toBe('weights v3');
    expect(read(b, 'data/a.csv')).toBe('a,1\n');
  });

  it('a large file is chunked: a second version with rows inserted in the middle sends a small part of it, and a clone holding the first pulls the second from its own chunks plus the new ones', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const v1 = csv(CHUNK_THRESHOLD * 2);
    write(dir, 'big.csv', v1);
    await track(dir, 'big.csv');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'v1');
    await pushed(dir);
    const afterV1 = dirBytes(remote);
    // Text compresses.
    expect(afterV1).toBeLessThan(v1.length * 0.5);
    const packsV1 = files(remote, 'packs');
    const b = await clone(dir);
    await pulled(b);
    expect(read(b, 'big.csv')).toBe(v1);

    const lines = v1.split('\n');
    const inserted = csv(20_000, 10_000_000).split('\n').slice(1, -1);
    lines.splice(Math.floor(lines.length / 2), 0, ...inserted);
    const v2 = lines.join('\n');
    write(dir, 'big.csv', v2);
    await track(dir, 'big.csv');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'v2');
    await pushed(dir);
    const sent = dirBytes(remote) - afterV1;
    expect(sent).toBeLessThan(v2.length * 0.05);

    // The first version's packs gone: the second can only come from B's cache plus the new packs.
    for (const p of packsV1) fs.rmSync(path.join(remote, 'packs', p));
    await git(b, 'pull', '-q');
    const res = await pulled(b);
    expect(res.fetch).toMatchObject({ transferred: 1, failed: [] });
    expect(read(b, 'big.csv')).toBe(v2);
  });

  it('data that does not compress is stored as it is; compression: none stores everything raw', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const noise = randomBytes(CHUNK_THRESHOLD + 123_457);
    write(dir, 'noise.bin', noise);
    await track(dir, 'noise.bin');
    await pushed(dir);
    const codecs = (kind: string) =>
      files(remote, 'index').flatMap((n) =>
        indexDoc(remote, n)
          .blobs.filter((b) => b[1] === kind)
          .map((b) => b[6]),
      );
    expect(new Set(codecs('c'))).toEqual(new Set(['n']));
    expect(codecs('o')).toContain('z');

    const other = await sampleRepo({ commit: true });
    fs.appendFileSync(path.join(other.dir, '.tdv', 'config.yaml'), '    compression: none\n');
    await pushed(other.dir);
    for (const n of files(other.remote, 'index')) for (const b of indexDoc(other.remote, n).blobs) expect(b[6]).toBe('n');
  });

  it('many small files are a few packs and one index, not one object each', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    for (let i = 0; i < 2000; i++) write(dir, `many/f${i}.txt`, `file ${i}\n`.repeat(1 + (i % 7)));
    await track(dir, 'many');
    expect(await pushed(dir)).toMatchObject({ transferred: 2006, failed: [] });
    expect(files(remote, 'packs').length).toBeLessThanOrEqual(2);
    expect(files(remote, 'index').length).toBeLessThanOrEqual(2);
    const b = await clone(dir);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'many');
    await git(b, 'pull', '-q');
    expect((await pulled(b)).fetch).toMatchObject({ failed: [] });
    expect(read(b, 'many/f1999.txt')).toBe('file 1999\n'.repeat(1 + (1999 % 7)));
  });

  it('a damaged blob is refused and never cached; push --repair stores it again and the newer copy is read', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    await pushed(dir);
    damageRemoteObject(remote, sha('weights'));
    const b = await clone(dir);
    const res = await pulled(b);
    expect(res.fetch.failed).toEqual([
      { oid: sha('weights'), path: 'model.bin', error: expect.stringMatching(/is corrupt: its copy in packs\/[0-9a-f]{64}\.pack hashes to [0-9a-f]{64}.*tdv push --repair/) },
    ]);
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
    // Without --repair the remote "has" it: nothing is sent.
    expect(await pushed(dir)).toMatchObject({ transferred: 0 });
    expect(await pushed(dir, { repair: true, targets: abs(dir, 'model.bin') })).toMatchObject({ transferred: 1, failed: [] });
    expect((await pulled(b)).fetch).toMatchObject({ failed: [] });
    expect(read(b, 'model.bin')).toBe('weights');
  });

  it('hostile remotes: an index whose bytes do not match its name, a layout newer than this tdv, a recipe whose chunks do not add up', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    await pushed(dir);
    const b = await clone(dir);
    const [first] = files(remote, 'index');
    const forged = path.join(remote, 'index', `${'0'.repeat(64)}.json.gz`);
    fs.copyFileSync(path.join(remote, 'index', first!), forged);
    const err = await rejectsWith(pulled(b), 'CORRUPT_ON_REMOTE');
    expect(err.message).toContain(`index/${'0'.repeat(64)}.json.gz is damaged: its content does not hash to its name`);
    fs.rmSync(forged);

    fs.chmodSync(path.join(remote, 'tdv-remote.json'), 0o644);
    fs.writeFileSync(path.join(remote, 'tdv-remote.json'), JSON.stringify({ format: 'tdv-remote', layout: 3 }));
    expect((await rejectsWith(pulled(b), 'REMOTE_LAYOUT_UNSUPPORTED')).message).toContain('upgrade tdv');
    fs.writeFileSync(path.join(remote, 'tdv-remote.json'), JSON.stringify({ format: 'tdv-remote', layout: 2 }));

    // A forged index naming a recipe for data.csv's object whose chunk sizes do not add up.
    const { dir: d2, remote: r2 } = await sampleRepo({ commit: true });
    const big = csv(CHUNK_THRESHOLD + 1000);
    write(d2, 'big.csv', big);
    await track(d2, 'big.csv');
    await git(d2, 'add', '-A');
    await git(d2, 'commit', '-qm', 'big');
    await pushed(d2);
    const c = await clone(d2);
    for (const n of files(r2, 'index')) {
      const doc = indexDoc(r2, n);
      const recipe = doc.blobs.find((x) => x[1] === 'r');
      if (!recipe) continue;
      recipe[7] = Number(recipe[7]) + 1; // the file size the index claims
      const bytes = zlib.gzipSync(JSON.stringify({ format: 'tdv-index', version: 1, ...doc }));
      const name = createHash('sha256').update(bytes).digest('hex');
      fs.rmSync(path.join(r2, 'index', n));
      fs.writeFileSync(path.join(r2, 'index', `${name}.json.gz`), bytes);
    }
    const r = await pulled(c);
    expect(r.fetch.failed).toEqual([{ oid: sha(big), path: 'big.csv', error: expect.stringMatching(/corrupt|damaged/) }]);
    expect(fs.existsSync(path.join(c, 'big.csv'))).toBe(false);
  });
});
