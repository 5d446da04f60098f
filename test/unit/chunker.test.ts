import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CHUNK_THRESHOLD, CHUNKER_ID, type Chunk, type ChunkParams, checkChunkParams, chunkBuffer, chunkFile, DEFAULT_CHUNK_PARAMS, GEAR, nextCut } from '../../src/remote/transfer/chunker.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

/** Deterministic pseudo-random bytes (SHA-256 in counter mode), the same on every machine and Node version. */
function prand(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, o = 0; o < n; i++, o += 32) createHash('sha256').update(`${seed}-${i}`).digest().copy(out, o);
  return out;
}

const SMALL: ChunkParams = { min: 256, avg: 1024, max: 4096 };

/**
 * The definition the fast search must agree with: one byte at a time, the hash
 * starting at 0 at start + min, the mask's n bits just below bit 29.
 */
function referenceCut(buf: Uint8Array, start: number, end: number, p: ChunkParams): number {
  if (end - start <= p.min) return end;
  const bits = Math.log2(p.avg);
  const mask = (n: number) => ((2 ** n - 1) * 2 ** (29 - n)) | 0;
  let h = 0;
  for (let i = start + p.min; i < Math.min(end, start + p.max); i++) {
    h = ((h << 1) + GEAR[buf[i]!]!) | 0;
    if ((h & mask(i < start + p.avg ? bits + 2 : bits - 2)) === 0) return i + 1;
  }
  return Math.min(end, start + p.max);
}

function sizes(chunks: Chunk[]): number[] {
  return chunks.map((c) => c.size);
}

async function collect(gen: AsyncGenerator<Chunk>): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

function fileOf(data: Uint8Array): string {
  const f = path.join(tmp(), 'data');
  fs.writeFileSync(f, data);
  return f;
}

describe('chunker', () => {
  it('derives the Gear table from its documented seed (part of the remote format)', () => {
    for (const i of [0, 1, 127, 255]) {
      expect(GEAR[i]).toBe(createHash('sha256').update(`tdv-gear-${i}`).digest().readInt32BE(0));
    }
    const be = Buffer.alloc(1024);
    GEAR.forEach((g, i) => be.writeInt32BE(g, i * 4));
    expect(createHash('sha256').update(be).digest('hex')).toBe('9f3b9942c64d67ac0ffd6de79d94bd052bb803a770f091c63073e4b2af27bf16');
  });

  it('pins the boundaries of a fixed input: a change of table, masks or default sizes fails here', () => {
    expect(DEFAULT_CHUNK_PARAMS).toEqual({ min: 64 << 10, avg: 256 << 10, max: 1 << 20 });
    expect(CHUNK_THRESHOLD).toBe(4 << 20);
    expect(CHUNKER_ID).toBe('fastcdc-nc2-gear-tdv1-64k-256k-1m');
    const data = prand(3 << 20, 'tdv-chunk-test');
    expect(sizes(chunkBuffer(data))).toEqual([347546, 267686, 328963, 328991, 406185, 189302, 344379, 369894, 137818, 152735, 272229]);
    expect(sizes(chunkBuffer(data.subarray(0, 200_000), SMALL)).slice(0, 20)).toEqual([
      1256, 1033, 1242, 1402, 727, 283, 1030, 1074, 1162, 1245, 1032, 1259, 1374, 396, 1296, 1482, 1113, 1855, 1095, 1186,
    ]);
  });

  it('cuts exactly where the byte-at-a-time definition does (the unrolled search is only faster)', () => {
    for (const [p, n] of [
      [SMALL, 300_000],
      [{ min: 64, avg: 256, max: 300 }, 50_000],
      [{ min: 1000, avg: 4096, max: 65536 }, 1 << 20],
    ] as const) {
      const data = prand(n, `ref-${p.avg}`);
      for (let s = 0; s < n;) {
        const cut = nextCut(data, s, n, p, true);
        expect(cut).toBe(referenceCut(data, s, n, p));
        s = cut;
      }
    }
  });

  it('asks for more data (-1) only while the chunk may still continue past the end', () => {
    const data = prand(20_000, 'more');
    const cut = nextCut(data, 0, data.length, SMALL, true);
    expect(cut).toBeGreaterThan(SMALL.min);
    expect(cut).toBeLessThan(SMALL.max);
    expect(nextCut(data, 0, cut, SMALL, false)).toBe(cut); // the cut is decided by the bytes before it
    expect(nextCut(data, 0, cut - 1, SMALL, false)).toBe(-1);
    expect(nextCut(data, 0, cut - 1, SMALL, true)).toBe(cut - 1);
    expect(nextCut(data, 0, SMALL.min, SMALL, false)).toBe(-1);
    expect(nextCut(Buffer.alloc(SMALL.max), 0, SMALL.max, SMALL, false)).toBe(SMALL.max); // max reached: no more needed
    expect(nextCut(Buffer.alloc(SMALL.max), 0, SMALL.max - 1, SMALL, false)).toBe(-1);
    // Offsets are absolute: the same cut from a later start.
    const shifted = Buffer.concat([Buffer.alloc(777), data]);
    expect(nextCut(shifted, 777, shifted.length, SMALL, true)).toBe(cut + 777);
  });

  it('hands out chunks that concatenate to the input, each with its offset and SHA-256', () => {
    const data = prand(1 << 20, 'concat');
    const chunks = chunkBuffer(data, SMALL);
    expect(Buffer.concat(chunks.map((c) => c.data)).equals(data)).toBe(true);
    let offset = 0;
    for (const c of chunks) {
      expect(c.offset).toBe(offset);
      expect(c.data.length).toBe(c.size);
      expect(c.sha256).toBe(createHash('sha256').update(c.data).digest('hex'));
      expect(c.size).toBeLessThanOrEqual(SMALL.max);
      offset += c.size;
    }
    // All but the last chunk are at least min long.
    expect(chunks.slice(0, -1).every((c) => c.size >= SMALL.min)).toBe(true);
  });

  it('gives no chunks for empty input, and one for input no longer than min', async () => {
    expect(chunkBuffer(Buffer.alloc(0))).toEqual([]);
    expect(await collect(chunkFile(fileOf(Buffer.alloc(0))))).toEqual([]);
    for (const n of [1, 1000, DEFAULT_CHUNK_PARAMS.min]) {
      const data = prand(n, 'tiny');
      const [one, ...rest] = await collect(chunkFile(fileOf(data)));
      expect(rest).toEqual([]);
      expect(one).toMatchObject({ offset: 0, size: n, sha256: createHash('sha256').update(data).digest('hex') });
    }
  });

  it('cuts constant data (all zeros, any byte) at max, exact multiples included', async () => {
    const { max } = DEFAULT_CHUNK_PARAMS;
    for (const byte of [0, 0x20, 0x41, 0xff]) {
      expect(sizes(chunkBuffer(Buffer.alloc(3 * max, byte)))).toEqual([max, max, max]);
    }
    expect(sizes(chunkBuffer(Buffer.alloc(2 * max + 1)))).toEqual([max, max, 1]);
    expect(sizes(await collect(chunkFile(fileOf(Buffer.alloc(3 * max)), DEFAULT_CHUNK_PARAMS, { blockSize: max })))).toEqual([max, max, max]);
    // Incompressible data cut into chunks of exactly max (a table that never matches would do this): never more than max.
    expect(Math.max(...sizes(chunkBuffer(prand(4 << 20, 'max'))))).toBeLessThanOrEqual(max);
  });

  it('cuts a file in the same places as the bytes in memory, whatever the read block size', async () => {
    const data = prand(200_000, 'blocks');
    const file = fileOf(data);
    const want = chunkBuffer(data, SMALL);
    for (const blockSize of [1, 7, 4095, 4096, 65536, 1 << 20]) {
      const got = await collect(chunkFile(file, SMALL, { blockSize }));
      expect(got.map((c) => [c.offset, c.size, c.sha256])).toEqual(want.map((c) => [c.offset, c.size, c.sha256]));
    }
    const big = prand(5 << 20, 'blocks-default');
    const bigFile = fileOf(big);
    const bigWant = chunkBuffer(big).map((c) => c.sha256);
    for (const blockSize of [1000, 1 << 20, 16 << 20]) {
      expect((await collect(chunkFile(bigFile, DEFAULT_CHUNK_PARAMS, { blockSize }))).map((c) => c.sha256)).toEqual(bigWant);
    }
  });

  it('lets a caller stop early and keep the chunks it took (each a copy)', async () => {
    const data = prand(3 << 20, 'early');
    const taken: Chunk[] = [];
    for await (const c of chunkFile(fileOf(data), SMALL, { blockSize: 8192 })) {
      taken.push(c);
      if (taken.length === 500) break;
    }
    expect(Buffer.concat(taken.map((c) => c.data)).equals(data.subarray(0, taken.at(-1)!.offset + taken.at(-1)!.size))).toBe(true);
  });

  it('resists shifts: bytes inserted or removed mid-file change only the chunks around the edit', () => {
    const v1 = prand(16 << 20, 'shift');
    const known = new Set(chunkBuffer(v1).map((c) => c.sha256));
    const mid = 8 << 20;
    const inserted = Buffer.concat([v1.subarray(0, mid), prand(1000, 'inserted'), v1.subarray(mid)]);
    const removed = Buffer.concat([v1.subarray(0, mid), v1.subarray(mid + 5000)]);
    for (const v2 of [inserted, removed]) {
      const chunks = chunkBuffer(v2);
      const fresh = chunks.filter((c) => !known.has(c.sha256));
      expect(chunks.length).toBeGreaterThan(40);
      // The chunk holding the edit, and at most two after it until the cuts fall in step again.
      expect(fresh.length).toBeGreaterThanOrEqual(1);
      expect(fresh.length).toBeLessThanOrEqual(3);
      expect(fresh.reduce((n, c) => n + c.size, 0)).toBeLessThan(2 << 20);
    }
  });

  it('passes on a read error (a missing file, a directory) as the errno error', async () => {
    const dir = tmp();
    await expect(collect(chunkFile(path.join(dir, 'missing')))).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(collect(chunkFile(dir))).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('refuses unusable parameters', () => {
    for (const p of [
      { min: 256, avg: 1000, max: 4096 },
      { min: 1024, avg: 1024, max: 4096 },
      { min: 256, avg: 1024, max: 1024 },
      { min: 8, avg: 1024, max: 4096 },
    ]) {
      expect(() => checkChunkParams(p)).toThrow(/chunk/);
    }
    expect(() => checkChunkParams(SMALL)).not.toThrow();
  });
});
