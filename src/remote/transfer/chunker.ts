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
 * Measured (scripts/measure-chunking.mjs, Node 20 on a 2-core AMD EPYC shared
 * with other jobs, so speeds are best-of and approximate). A 200 MB synthetic
 * CSV (4.07M rows `id,name,value,score,date,category`); v2 = v1 + 1% rows
 * appended, or v1 with 1,000 rows (50 KB) inserted mid-file; "new" = bytes of
 * v2's chunks not among v1's, raw / after zstd-3, as a fraction of v2:
 *
 *   avg (min avg/4, max avg*4)  chunks  append new      insert new       v1 zstd-3  cut MB/s
 *   64 KiB                      2705    .0100 / .0038   .0006 / .0002    .386       535
 *   256 KiB (chosen)             671    .0116 / .0043   .0036 / .0013    .374       1391
 *   1 MiB                        168    .0104 / .0038   .0064 / .0024    .372       781
 *   fixed 256 KiB blocks         764    .0108           .5012 (every block after the insert)
 *
 * 256 KiB: a second version costs well under the 0.02 target either way, with
 * a quarter of the chunks of 64 KiB (a smaller chunk index, fewer objects or
 * pack entries, fewer zstd calls: the WebAssembly zstd pays per call, and
 * compresses small chunks worse), while 1 MiB chunks resend more around an
 * insertion (the chunk holding an edit, and sometimes one or two after it until
 * the cuts fall in step again, are resent whole). Normalized chunking level 2
 * (FastCDC's choice) against level 0 and 1 on a 64 MB CSV: chunk sizes spread
 * far less (standard deviation 88 KiB vs 213 KiB at level 0) and no max-size
 * cuts, and about as many bytes resent.
 *
 * Threshold 4 MiB: below it a second version sent whole costs at most ~1.7 MB
 * (a 4 MiB CSV under zstd-3; chunked: ~0.1 MB), while chunking every file of
 * 1-4 MiB (photos, small tables, which rarely change in part) would multiply
 * their index entries by 4-16.
 *
 * Speed (1 GiB of random bytes in /dev/shm, default sizes): the cut search alone
 * 1.0-1.5 GB/s in WebAssembly (0.4-0.7 GB/s in the best JavaScript loop);
 * chunkFile (read, cut, copy, SHA-256 on the thread pool) 0.3-0.72 GB/s
 * depending on the machine's load.
 */
import fs from 'node:fs';
import { createHash, webcrypto as crypto } from 'node:crypto';
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

/**
 * Names the chunking (Gear table, masks, DEFAULT_CHUNK_PARAMS) for a remote's
 * layout record: a remote written with another name cannot share chunks with
 * this one, and a reader can tell. Change it whenever anything above changes.
 */
export const CHUNKER_ID = 'fastcdc-nc2-gear-tdv1-64k-256k-1m';

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

/**
 * The highest bit of the masks. The mask's bits are the `n` bits just below
 * bit MASK_TOP + 1 (bit k of the Gear hash depends on the last k + 1 bytes, so
 * high bits see the widest window). Bits 29-31 stay out, which lets a search
 * roll several bytes per step with pre-shifted tables (a mask shifted left by
 * up to 3 loses none of its bits); the WebAssembly loop below does not need it,
 * but it is part of the format now.
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

// ---------------------------------------------------------------- the cut search
//
// The search runs in WebAssembly: measured 1.2-1.5 GB/s against 0.43-0.72 GB/s for the
// best JavaScript loop (4 bytes a step with pre-shifted tables), on 256 MiB of random
// bytes, best of 6 runs on this loaded 2-core machine. The module is 150 bytes, built
// below from its instructions (no build step, nothing to download); in text format:
//
//   (func (export "scan") (param $warm i32) (param $from i32) (param $limit i32) (param $mask i32) (result i32)
//     (local $h i32) (local $i i32)
//     (local.set $i (local.get $warm))
//     (block (loop                                                 ;; roll bytes [warm, from) untested
//       (br_if 1 (i32.ge_u (local.get $i) (local.get $from)))
//       (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
//                              (i32.load (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
//       (local.set $i (i32.add (local.get $i) (i32.const 1)))
//       (br 0)))
//     (block (loop                                                 ;; roll and test [from, limit)
//       (br_if 1 (i32.ge_u (local.get $i) (local.get $limit)))
//       (if (i32.eqz (i32.and (local.tee $h (...as above...)) (local.get $mask)))
//         (then (return (i32.add (local.get $i) (i32.const 1)))))
//       (local.set $i (i32.add (local.get $i) (i32.const 1)))
//       (br 0)))
//     (i32.const -1))
//
// over an imported memory holding the Gear table (256 little-endian i32) at address 0
// and the bytes to search from address TABLE_BYTES. test/unit/chunker.test.ts checks
// it against a byte-at-a-time JavaScript definition.

function scanModuleBytes(): Uint8Array {
  const uleb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const section = (id: number, bytes: number[]) => [id, ...uleb(bytes.length), ...bytes];
  const name = (s: string) => [...uleb(s.length), ...Buffer.from(s)];
  const [GET, SET, TEE, I32] = [0x20, 0x21, 0x22, 0x7f];
  const [BLOCK, LOOP, IF, END, BR, BR_IF, RETURN, VOID] = [0x02, 0x03, 0x04, 0x0b, 0x0c, 0x0d, 0x0f, 0x40];
  const [CONST, LOAD, LOAD8U, EQZ, GE_U, ADD, AND, SHL] = [0x41, 0x28, 0x2d, 0x45, 0x4f, 0x6a, 0x71, 0x74];
  const [warm, from, limit, mask, h, i] = [0, 1, 2, 3, 4, 5];
  // (h << 1) + GEAR[mem[i]], left on the stack
  const roll = [GET, h, CONST, 1, SHL, GET, i, LOAD8U, 0, 0, CONST, 2, SHL, LOAD, 2, 0, ADD];
  const next = [GET, i, CONST, 1, ADD, SET, i, BR, 0];
  const body = [
    ...[1, 2, I32], // two i32 locals: h, i
    ...[GET, warm, SET, i],
    ...[BLOCK, VOID, LOOP, VOID, GET, i, GET, from, GE_U, BR_IF, 1, ...roll, SET, h, ...next, END, END],
    ...[BLOCK, VOID, LOOP, VOID, GET, i, GET, limit, GE_U, BR_IF, 1, ...roll, TEE, h, GET, mask, AND, EQZ],
    ...[IF, VOID, GET, i, CONST, 1, ADD, RETURN, END, ...next, END, END],
    ...[CONST, 0x7f, END], // -1
  ];
  return new Uint8Array([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // "\0asm", version 1
    ...section(1, [1, 0x60, 4, I32, I32, I32, I32, 1, I32]), // type: (i32 i32 i32 i32) -> i32
    ...section(2, [1, ...name('e'), ...name('m'), 0x02, 0x00, 0x01]), // import memory e.m, at least 1 page
    ...section(3, [1, 0]), // one function of type 0
    ...section(7, [1, ...name('scan'), 0x00, 0]), // export it as "scan"
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

/** The part of the WebAssembly global this file uses (the compiler's lib here has no WebAssembly types). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Memory: new (d: { initial: number }) => { buffer: ArrayBuffer };
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
};

const TABLE_BYTES = 1024;
const PAGE = 65536;
let scanModule: object | undefined;

/**
 * A WebAssembly instance of the search with its memory: the Gear table, then
 * room for `capacity` bytes to search. One is shared by every search of the
 * process; each search copies the bytes it scans in (about as many bytes as
 * the chunk: measured ~0.1 s per GiB), which keeps it synchronous and
 * reentrant-free, so interleaved chunkFile generators cannot disturb each other.
 */
class Scanner {
  readonly bytes: Uint8Array;
  private readonly fn: (warm: number, from: number, limit: number, mask: number) => number;

  constructor(readonly capacity: number) {
    scanModule ??= new WebAssembly.Module(scanModuleBytes());
    const memory = new WebAssembly.Memory({ initial: Math.ceil((TABLE_BYTES + capacity) / PAGE) });
    const dv = new DataView(memory.buffer, 0, TABLE_BYTES);
    GEAR.forEach((g, k) => dv.setInt32(k * 4, g, true));
    this.fn = new WebAssembly.Instance(scanModule, { e: { m: memory } }).exports.scan as Scanner['fn'];
    this.bytes = new Uint8Array(memory.buffer, TABLE_BYTES, capacity);
  }

  /**
   * The first i in [from, limit) where the Gear hash rolled over buf[warm..i]
   * matches `mask`, as i + 1 (the cut falls after byte i), or -1 when none
   * does; the bytes in [warm, from) are rolled in untested.
   */
  find(buf: Uint8Array, warm: number, from: number, limit: number, mask: number): number {
    this.bytes.set(buf.subarray(warm, limit));
    const r = this.fn(TABLE_BYTES, TABLE_BYTES + from - warm, TABLE_BYTES + limit - warm, mask);
    return r < 0 ? -1 : r - TABLE_BYTES + warm;
  }
}

let shared: Scanner | undefined;

/** The shared scanner, with room for `n` bytes. */
function scanner(n: number): Scanner {
  if (!shared || shared.capacity < n) shared = new Scanner(Math.max(n, 4 << 20));
  return shared;
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
  const sc = scanner(params.max);
  let cut = sc.find(buf, from, from, normal, maskOf(bits + 2));
  if (cut < 0 && normal < limit) cut = sc.find(buf, Math.max(from, normal - 32), normal, limit, maskOf(bits - 2));
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

/**
 * makeChunk with the SHA-256 computed off the main thread (Web Crypto's digest
 * runs on libuv's thread pool), so hashing overlaps the cut search: measured
 * 721 against 503 MB/s for chunkFile on 1 GiB of random bytes in /dev/shm (best
 * of 4 runs each, alternating, on this loaded 2-core machine).
 */
async function digestChunk(buf: Uint8Array, start: number, end: number, offset: number): Promise<Chunk> {
  const data = Buffer.allocUnsafe(end - start);
  data.set(buf.subarray(start, end));
  const d = await crypto.subtle.digest('SHA-256', data);
  return { offset, size: end - start, sha256: Buffer.from(d).toString('hex'), data };
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
 * so it may keep them). The next block is read, and the chunks are hashed on
 * the thread pool, while the chunks of the current one are handed out. The boundaries are those of chunkBuffer on the whole
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
      const ready: Promise<Chunk>[] = [];
      while (start < end && (eof || end - start >= params.max)) {
        const cut = nextCut(buf, start, end, params, eof);
        const chunk = digestChunk(buf, start, cut, base + start);
        // Awaited in order below; one left behind by a caller that stopped early must not count as unhandled.
        chunk.catch(() => undefined);
        ready.push(chunk);
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
      for (const c of ready) yield await c;
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
