/**
 * The compression of blobs on a packed remote (issue 14): zstd through
 * @bokuweb/zstd-wasm (a WebAssembly build: nothing to compile or download at
 * install; see commit 08d20bc for its measurements against a native binding,
 * gzip and brotli), or none.
 *
 * Each blob (a chunk of a large file, or a small file in a pack) is stored
 * either raw ('none') or as one zstd frame ('zstd') that names its content size;
 * the reader knows the raw size from the index and refuses any frame that would
 * decode to anything else, before allocating.
 *
 * The 'auto' mode (the default) skips data that does not compress (images,
 * archives, already-compressed formats) by trial: a large file's first chunk is
 * compressed, and when that does not pay the rest of the file is stored raw
 * without trying (fileEncoder). 'zstd' compresses every blob, keeping the raw
 * bytes only for a blob that does not shrink by a tenth; 'none' never compresses.
 *
 * Measured (scripts/measure-chunking.mjs, 2-core machine shared with other
 * jobs: speeds approximate), per 256 KiB chunk, 32 MiB of each:
 *
 *   level  CSV ratio  MB/s comp/decomp   JSON lines ratio  MB/s comp/decomp
 *   1      .411       74 / 151           .187              118 / 276
 *   3      .380       46 / 212           .193              102 / 334
 *   6      .363       11 / 196           .176               23 / 474
 *   9      .359        8 / 207           .169               13 / 409
 *
 * Compressing chunk by chunk costs little: the whole 200 MB CSV at level 3 is
 * .386 of its size in 64 KiB chunks, .374 in 256 KiB ones, .372 in 1 MiB ones.
 * The 'auto' trial on a random 256 KiB chunk takes about 0.5 ms (1 MiB: 2.4 ms).
 */
import { createRequire } from 'node:module';

/** How a blob is stored: raw, or one zstd frame. Part of the remote format. */
export type Codec = 'none' | 'zstd';

/** A remote's compression setting: `auto` (default), `zstd` or `none`, and the zstd level. */
export interface Compression {
  mode: 'auto' | 'zstd' | 'none';
  level: number;
}

/**
 * zstd's level 3 (its own default): 8% smaller than level 1 on CSV for 60% of
 * its speed; levels 6 and 9 gain another 4-5% for a quarter to a sixth of the
 * speed (table above), which only a slow link repays (`zstd:9`).
 */
export const DEFAULT_LEVEL = 3;
export const MIN_LEVEL = 1;
export const MAX_LEVEL = 19;
export const DEFAULT_COMPRESSION: Readonly<Compression> = Object.freeze({ mode: 'auto', level: DEFAULT_LEVEL });

/**
 * A compressed blob is kept only when it is at most this fraction of the raw
 * size: below a tenth saved, decompressing costs more than the bytes are worth.
 */
export const PAYS = 0.9;

/**
 * The largest blob decompress accepts. decompress allocates the raw size the
 * caller expects (from its own index) in the WebAssembly heap, which never
 * shrinks and holds at most 2 GiB; a blob is a chunk (at most 1 MiB) or a file
 * below CHUNK_THRESHOLD, far below this. Larger data is chunked, not compressed whole.
 */
export const MAX_RAW_SIZE = 128 << 20;

/**
 * Parses a compression setting: `auto`, `none`, `zstd` or `zstd:LEVEL` (1-19),
 * optionally `auto:LEVEL` (the level auto uses). Undefined when invalid.
 */
export function parseCompression(s: string): Compression | undefined {
  const m = /^(auto|zstd|none)(?::([0-9]{1,2}))?$/.exec(s.trim());
  if (!m) return undefined;
  const mode = m[1] as Compression['mode'];
  if (m[2] === undefined) return { mode, level: DEFAULT_LEVEL };
  const level = Number(m[2]);
  if (mode === 'none' || level < MIN_LEVEL || level > MAX_LEVEL) return undefined;
  return { mode, level };
}

/** The setting as parseCompression reads it back (`auto`, `none`, `zstd:9`...). */
export function formatCompression(c: Compression): string {
  return c.mode === 'none' || c.level === DEFAULT_LEVEL ? c.mode : `${c.mode}:${c.level}`;
}

interface ZstdWasm {
  init(): Promise<void>;
  createCCtx(): number;
  createDCtx(): number;
  compressUsingDict(cctx: number, buf: Uint8Array, dict: Uint8Array, level?: number): Uint8Array;
  decompressUsingDict(dctx: number, buf: Uint8Array, dict: Uint8Array, opts?: { defaultHeapSize?: number }): Uint8Array;
}

/**
 * The loaded library with one compression and one decompression context, kept
 * for the process: the library's plain compress() makes a context per call,
 * which halves the speed on small blobs (measured 20 vs 40 MB/s on 4 KiB pieces
 * of CSV, the same output). "usingDict" with an empty dictionary is plain zstd
 * (the frame names no dictionary).
 */
let zstd: { lib: ZstdWasm; cctx: number; dctx: number } | undefined;
let loading: Promise<void> | undefined;
const NO_DICT = new Uint8Array(0);

/**
 * Loads the zstd WebAssembly module (once; about 250 KB, compiled in a few
 * milliseconds): call before compress/decompress/encode. Lazy so commands that
 * never compress pay nothing. The package is not bundled (scripts/bundle.mjs
 * keeps dependencies in node_modules): it reads its zstd.wasm beside its own
 * JavaScript file, so the same code works from dist/ and dist/bundle/.
 */
export function loadCodec(): Promise<void> {
  loading ??= (async () => {
    // A CommonJS package: require() gives its exports object whatever the bundler does to import().
    const lib = createRequire(import.meta.url)('@bokuweb/zstd-wasm') as ZstdWasm;
    await lib.init();
    zstd = { lib, cctx: lib.createCCtx(), dctx: lib.createDCtx() };
  })().catch((e: unknown) => {
    loading = undefined;
    throw new Error(`cannot load the zstd codec (@bokuweb/zstd-wasm): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  return loading;
}

function loaded(): NonNullable<typeof zstd> {
  if (!zstd) throw new Error('the zstd codec is not loaded: await loadCodec() first');
  return zstd;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** One zstd frame of `data` at `level` (1-19), naming its content size. */
export function compress(data: Uint8Array, level: number): Buffer {
  if (!Number.isInteger(level) || level < MIN_LEVEL || level > MAX_LEVEL) throw new Error(`zstd level ${level} is not in ${MIN_LEVEL}-${MAX_LEVEL}`);
  // Nothing is written that decompress would refuse to read back.
  if (data.length > MAX_RAW_SIZE) throw new Error(`zstd: ${data.length} bytes is more than one blob may hold (${MAX_RAW_SIZE})`);
  const z = loaded();
  return asBuffer(z.lib.compressUsingDict(z.cctx, data, NO_DICT, level));
}

const MAGIC = 0xfd2fb528;

/**
 * The content size a zstd frame's header names, read here rather than by the
 * library, which would allocate whatever a hostile header claims: undefined
 * when the frame does not name one. Throws on anything but a zstd frame.
 * (RFC 8878, 3.1.1: magic, Frame_Header_Descriptor, [Window_Descriptor],
 * [Dictionary_ID], [Frame_Content_Size].)
 */
export function frameContentSize(data: Uint8Array): number | undefined {
  if (data.length < 5) throw new Error(`not a zstd frame: ${data.length} bytes`);
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new Error('not a zstd frame: bad magic number');
  const fhd = data[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if (fhd & 0x08) throw new Error('not a zstd frame: reserved bit set');
  const dictIdBytes = [0, 1, 2, 4][fhd & 3]!;
  if (dictIdBytes) throw new Error('zstd frame needs a dictionary (tdv never writes one)');
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  const at = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  if (fcsBytes === 0) return undefined;
  if (data.length < at + fcsBytes) throw new Error('zstd frame truncated in its header');
  switch (fcsBytes) {
    case 1:
      return dv.getUint8(at);
    case 2:
      return dv.getUint16(at, true) + 256;
    case 4:
      return dv.getUint32(at, true);
    default: {
      const v = dv.getBigUint64(at, true);
      return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
    }
  }
}

/**
 * The bytes of one zstd frame that must decode to exactly `rawSize` bytes.
 * Bounded for hostile input: the frame header must name `rawSize` as its
 * content size (checked here, before the library allocates), the frame may be
 * no larger than zstd's bound for that size, the output buffer is `rawSize`
 * bytes (decoding stops with an error past it), and a result of any other
 * length is refused. Throws a plain Error; the caller names the blob.
 */
export function decompress(data: Uint8Array, rawSize: number): Buffer {
  if (!Number.isSafeInteger(rawSize) || rawSize < 0 || rawSize > MAX_RAW_SIZE) throw new Error(`zstd: raw size ${rawSize} out of range`);
  const named = frameContentSize(data);
  if (named === undefined) throw new Error('zstd frame does not name its content size (tdv always writes it)');
  if (named !== rawSize) throw new Error(`zstd frame names ${named} bytes of content, expected ${rawSize}`);
  // ZSTD_compressBound (+ slack): our frame of rawSize bytes is never larger (raw blocks plus headers).
  const bound = rawSize + (rawSize >>> 8) + (rawSize < 128 << 10 ? ((128 << 10) - rawSize) >>> 11 : 0) + 64;
  if (data.length > bound) throw new Error(`zstd frame of ${data.length} bytes is too large for ${rawSize} bytes of content`);
  let out: Uint8Array;
  try {
    const z = loaded();
    out = z.lib.decompressUsingDict(z.dctx, data, NO_DICT, { defaultHeapSize: rawSize });
  } catch (e) {
    throw new Error(`zstd frame is corrupt (${e instanceof Error ? e.message : String(e)})`, { cause: e });
  }
  if (out.length !== rawSize) throw new Error(`zstd frame decoded to ${out.length} bytes, expected ${rawSize}`);
  return asBuffer(out);
}

/** Whether a compressed size is worth keeping over the raw one (saves at least a tenth). */
export function pays(rawSize: number, compressedSize: number): boolean {
  return compressedSize <= rawSize * PAYS;
}

/**
 * Encodes one blob under a setting: zstd when the setting compresses and the
 * frame saves at least a tenth (PAYS), else the raw bytes ('none', a view of
 * `data`, not a copy). The codec returned is the decision: under 'auto', a
 * large file's first chunk coming back 'none' means the rest of the file is not
 * worth trying (fileEncoder does that). Needs loadCodec() unless mode is 'none'.
 */
export function encode(data: Uint8Array, c: Compression): { codec: Codec; bytes: Buffer } {
  if (c.mode !== 'none' && data.length > 0 && data.length <= MAX_RAW_SIZE) {
    const z = compress(data, c.level);
    if (pays(data.length, z.length)) return { codec: 'zstd', bytes: z };
  }
  return { codec: 'none', bytes: asBuffer(data) };
}

/** Decodes a blob stored with `codec`, checking it is `rawSize` bytes (decompress's bounds for zstd). */
export function decode(codec: Codec, bytes: Uint8Array, rawSize: number): Buffer {
  if (codec === 'zstd') return decompress(bytes, rawSize);
  if (bytes.length !== rawSize) throw new Error(`raw blob of ${bytes.length} bytes, expected ${rawSize}`);
  return asBuffer(bytes);
}

/**
 * An encoder for the chunks of one file, in order: under 'auto' the first chunk
 * is the trial, and when it does not compress by a tenth every later chunk is
 * stored raw without trying (an already-compressed file costs one chunk's
 * compression, about 1-5 ms, instead of the whole file's). Under 'zstd' every
 * chunk is tried; under 'none' none is.
 */
export function fileEncoder(c: Compression): (chunk: Uint8Array) => { codec: Codec; bytes: Buffer } {
  let skip = c.mode === 'none';
  let first = true;
  return (chunk) => {
    if (skip) return { codec: 'none', bytes: asBuffer(chunk) };
    const r = encode(chunk, c);
    if (first && c.mode === 'auto' && r.codec === 'none') skip = true;
    first = false;
    return r;
  };
}
