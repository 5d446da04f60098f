import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ObjectStore } from '../../src/cache/store.js';
import { LocalRemote } from '../../src/remote/local.js';
import { PackedRemote } from '../../src/remote/packed.js';
import { newDir } from '../helpers/expect.js';

/** A forged index naming `n` empty blobs, each under its own id, at one offset of one (empty) pack. */
function forge(remote: string, n: number): string[] {
  const pack = '0'.repeat(64);
  fs.mkdirSync(path.join(remote, 'packs'), { recursive: true });
  fs.writeFileSync(path.join(remote, 'packs', `${pack}.pack`), 'TDVPACK1');
  const ids = Array.from({ length: n }, (_, i) => createHash('sha256').update(`forged ${i}`).digest('hex'));
  const bytes = zlib.gzipSync(JSON.stringify({ format: 'tdv-index', version: 1, written: 1, packs: [pack], blobs: ids.map((id) => [id, 'o', 0, 8, 0, 0, 'n']) }));
  const name = createHash('sha256').update(bytes).digest('hex');
  fs.mkdirSync(path.join(remote, 'index'), { recursive: true });
  fs.writeFileSync(path.join(remote, 'index', `${name}.json.gz`), bytes);
  return ids;
}

describe('packed downloads from a forged index', () => {
  it('200,000 empty blobs in one ranged read: each refused (its bytes do not hash to its id), no stack overflow, nothing cached', async () => {
    const remote = newDir();
    const cache = newDir();
    const store = new ObjectStore(cache, path.join(cache, 'tmp'));
    const packed = new PackedRemote(new LocalRemote('r', remote), { layout: undefined, chunking: true, compression: { mode: 'auto', level: 3 } }, store, 2);
    const ids = forge(remote, 200_000);
    const res = await packed.fetchPacked(
      ids.map((oid, i) => ({ oid, size: 0, path: `f${i}` })),
      { jobs: 2 },
    );
    expect(res.done).toEqual([]);
    expect(res.rest).toEqual([]);
    expect(res.failed).toHaveLength(ids.length);
    expect(res.failed[0]!.error.message).toMatch(/is corrupt/);
    expect(fs.existsSync(store.objectsDir) ? fs.readdirSync(store.objectsDir) : []).toEqual([]);
  });
});
