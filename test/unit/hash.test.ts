import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHUNK, hashFile, hashHandle, sha256 } from '../../src/cache/hash.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
const reference = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe('sha256', () => {
  it('hashes a string and the same bytes as a buffer to the same well-known digest', () => {
    expect(sha256('')).toBe(EMPTY_SHA256);
    expect(sha256('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256(Buffer.from('abc'))).toBe(sha256('abc'));
  });
});

describe('hashFile', () => {
  it('hashes an empty file to the SHA-256 of nothing, size 0, reporting no bytes', async () => {
    const f = path.join(tmp(), 'empty');
    fs.writeFileSync(f, '');
    const seen: number[] = [];
    expect(await hashFile(f, (n) => seen.push(n))).toEqual({ sha256: EMPTY_SHA256, size: 0 });
    expect(seen).toEqual([]);
  });

  it('hashes a small file like crypto does', async () => {
    const f = path.join(tmp(), 'small');
    fs.writeFileSync(f, 'hello\n');
    expect(await hashFile(f)).toEqual({ sha256: reference('hello\n'), size: 6 });
  });

  it('streams a file larger than one chunk and matches crypto over the whole content', async () => {
    const data = randomBytes(3 * CHUNK + 12345);
    const f = path.join(tmp(), 'big');
    fs.writeFileSync(f, data);
    const chunks: number[] = [];
    const r = await hashFile(f, (n) => chunks.push(n));
    expect(r).toEqual({ sha256: reference(data), size: data.length });
    // Progress adds up to the size, and no read was larger than a chunk (memory stays flat).
    expect(chunks.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(Math.max(...chunks)).toBeLessThanOrEqual(CHUNK);
    expect(chunks.length).toBeGreaterThanOrEqual(4);
  });

  it('hashes a file of exactly one chunk and of one chunk plus one byte correctly', async () => {
    const dir = tmp();
    for (const n of [CHUNK, CHUNK + 1, CHUNK - 1]) {
      const data = randomBytes(n);
      const f = path.join(dir, `f${n}`);
      fs.writeFileSync(f, data);
      expect(await hashFile(f)).toEqual({ sha256: reference(data), size: n });
    }
  });

  it('rejects with ENOENT for a missing file', async () => {
    await expect(hashFile(path.join(tmp(), 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('hashHandle with a sink', () => {
  it('a write that fails while the next chunk is read rejects the hash, never as an unhandled rejection', async () => {
    const f = path.join(tmp(), 'three-chunks');
    fs.writeFileSync(f, randomBytes(3 * CHUNK));
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    const fh = await fs.promises.open(f, 'r');
    try {
      // The first write fails a moment later: while hashHandle awaits its next read, not the write.
      const sink = () => new Promise<never>((_, reject) => setImmediate(() => reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }))));
      await expect(hashHandle(fh, { sink })).rejects.toMatchObject({ code: 'ENOSPC' });
      await new Promise((r) => setTimeout(r, 50));
      expect(unhandled).toEqual([]);
    } finally {
      process.removeListener('unhandledRejection', onUnhandled);
      await fh.close();
    }
  });
});
