import path from 'node:path';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { compress, decode, decompress, encode, fileEncoder, formatCompression, frameContentSize, loadCodec, MAX_RAW_SIZE, parseCompression } from '../../src/remote/transfer/codec.js';

/** Deterministic incompressible bytes. */
function prand(n: number, seed: string): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0, o = 0; o < n; i++, o += 32) createHash('sha256').update(`${seed}-${i}`).digest().copy(out, o);
  return out;
}

/** CSV-like text: compresses to well under half. */
function csv(rows: number): Buffer {
  const lines = ['id,name,value,score,date,category'];
  for (let i = 0; i < rows; i++) lines.push(`${i},name-${(i * 7919) % 1000},${(i * 31) % 977}.${i % 100},${i % 5},2024-01-${String((i % 28) + 1).padStart(2, '0')},cat${i % 12}`);
  return Buffer.from(lines.join('\n') + '\n');
}

/** The size of the WebAssembly heap the library decompresses in (the same module instance codec.ts loaded). */
function wasmHeapBytes(): number {
  const req = createRequire(import.meta.url);
  const main = req.resolve('@bokuweb/zstd-wasm');
  const { Module } = req(path.join(path.dirname(main), 'module.js')) as { Module: { HEAPU8: Uint8Array } };
  return Module.HEAPU8.length;
}

/** The zstd frame header of a frame compress() wrote: its length (blocks follow). */
function headerLength(frame: Uint8Array): number {
  const fhd = frame[4]!;
  const single = (fhd >> 5) & 1;
  const fcs = [single ? 1 : 0, 2, 4, 8][fhd >> 6]!;
  return 5 + (single ? 0 : 1) + fcs;
}

/** A frame with the same blocks and a header of our making. */
function withHeader(frame: Uint8Array, header: number[]): Buffer {
  const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  return Buffer.concat([magic, Buffer.from(header), frame.subarray(headerLength(frame))]);
}

beforeAll(async () => {
  await loadCodec();
});

describe('compression settings', () => {
  it('parses auto, none, zstd and zstd:LEVEL, and nothing else', () => {
    expect(parseCompression('auto')).toEqual({ mode: 'auto', level: 3 });
    expect(parseCompression('none')).toEqual({ mode: 'none', level: 3 });
    expect(parseCompression('zstd')).toEqual({ mode: 'zstd', level: 3 });
    expect(parseCompression('zstd:1')).toEqual({ mode: 'zstd', level: 1 });
    expect(parseCompression('zstd:19')).toEqual({ mode: 'zstd', level: 19 });
    expect(parseCompression('auto:9')).toEqual({ mode: 'auto', level: 9 });
    for (const bad of ['', 'gzip', 'zstd:0', 'zstd:20', 'zstd:-1', 'zstd:', 'zstd:3.5', 'none:3', 'ZSTD', 'zstd:003']) {
      expect(parseCompression(bad)).toBeUndefined();
    }
    for (const s of ['auto', 'none', 'zstd', 'zstd:9', 'auto:1']) expect(formatCompression(parseCompression(s)!)).toBe(s);
  });
});

describe('zstd codec', () => {
  it('round-trips text, and keeps zstd only when it saves a tenth', () => {
    const text = csv(20_000);
    const z = encode(text, { mode: 'auto', level: 3 });
    expect(z.codec).toBe('zstd');
    expect(z.bytes.length).toBeLessThan(text.length * 0.5);
    expect(frameContentSize(z.bytes)).toBe(text.length);
    expect(decode('zstd', z.bytes, text.length).equals(text)).toBe(true);
    const noise = prand(100_000, 'noise');
    const r = encode(noise, { mode: 'zstd', level: 3 });
    expect(r.codec).toBe('none');
    expect(r.bytes.equals(noise)).toBe(true);
    expect(encode(text, { mode: 'none', level: 3 }).codec).toBe('none');
    expect(encode(Buffer.alloc(0), { mode: 'zstd', level: 3 })).toEqual({ codec: 'none', bytes: Buffer.alloc(0) });
    // An empty frame decodes to nothing.
    expect(decompress(compress(Buffer.alloc(0), 3), 0).length).toBe(0);
    expect(() => decode('none', noise, noise.length - 1)).toThrow(/expected/);
  });

  it('under auto, a file whose first chunk does not compress is stored raw without trying the rest; under zstd every chunk is tried', () => {
    const text = csv(5000);
    const auto = fileEncoder({ mode: 'auto', level: 3 });
    expect([auto(prand(65536, 'a')), auto(text), auto(text)].map((r) => r.codec)).toEqual(['none', 'none', 'none']);
    const autoText = fileEncoder({ mode: 'auto', level: 3 });
    expect([autoText(text), autoText(prand(65536, 'b')), autoText(text)].map((r) => r.codec)).toEqual(['zstd', 'none', 'zstd']);
    const always = fileEncoder({ mode: 'zstd', level: 3 });
    expect([always(prand(65536, 'c')), always(text)].map((r) => r.codec)).toEqual(['none', 'zstd']);
    const never = fileEncoder({ mode: 'none', level: 3 });
    expect(never(text).codec).toBe('none');
  });

  it('refuses hostile frames with a plain Error, before allocating what they claim', () => {
    const text = csv(2000);
    const frame = compress(text, 3);
    const n = text.length;
    const before = wasmHeapBytes();
    const refuse = (data: Uint8Array, rawSize: number, why: RegExp) => {
      let err: unknown;
      try {
        decompress(data, rawSize);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(why);
    };
    // A header claiming 1 TiB, 2 GiB, 1.5 GiB (8-byte and 4-byte content size fields, no single segment: window byte 0x70).
    const huge = (fcs: bigint) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(fcs);
      return withHeader(frame, [0xc0, 0x70, ...b]);
    };
    refuse(huge(1n << 40n), n, /names 1099511627776 bytes/);
    refuse(huge(0xffffffffffffffffn), n, /names/);
    refuse(withHeader(frame, [0x80, 0x70, 0x00, 0x00, 0x00, 0x80]), n, /names 2147483648 bytes/);
    refuse(withHeader(frame, [0x80, 0x70, 0x00, 0x00, 0x00, 0x60]), n, /names 1610612736 bytes/);
    refuse(frame, 1 << 30, /raw size .* out of range/);
    // A frame that does not name its size (legal zstd; tdv never writes one).
    refuse(withHeader(frame, [0x00, 0x70]), n, /does not name its content size/);
    // A frame whose header names fewer bytes than its blocks hold: decoding stops at the buffer's end.
    const short = Buffer.alloc(4);
    short.writeUInt32LE(n - 100);
    refuse(withHeader(frame, [0x80, 0x70, ...short]), n - 100, /corrupt/);
    // Garbage, a dictionary frame, a reserved bit, a skippable frame, nothing.
    refuse(prand(1000, 'garbage'), 1000, /bad magic/);
    refuse(withHeader(frame, [0x21, 0x01]), n, /dictionary/);
    refuse(withHeader(frame, [0x28]), n, /reserved/);
    refuse(Buffer.from([0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]), 0, /bad magic/);
    refuse(Buffer.alloc(0), 0, /not a zstd frame/);
    // Truncated anywhere: in the header, in a block, before the last byte.
    for (const cut of [3, 5, 6, 12, frame.length >> 1, frame.length - 1]) refuse(frame.subarray(0, cut), n, /not a zstd frame|truncated|corrupt|decoded/);
    // A wrong expected size either way.
    refuse(frame, n + 1, /expected/);
    refuse(frame, n - 1, /expected/);
    // Nothing above grew the heap towards what the headers claimed.
    expect(wasmHeapBytes()).toBeLessThan(before + (64 << 20));
    // A header naming the size the caller expects, over blocks holding less: refused after
    // decoding into a buffer of the expected size (the most decompress ever allocates).
    const eight = Buffer.alloc(4);
    eight.writeUInt32LE(8 << 20);
    refuse(withHeader(frame, [0x80, 0x70, ...eight]), 8 << 20, /corrupt|decoded/);
    expect(wasmHeapBytes()).toBeLessThan(before + (64 << 20));
    // And the codec still works.
    expect(decompress(frame, n).equals(text)).toBe(true);
  });

  it('never returns bytes of another length from a damaged frame', () => {
    const text = csv(3000);
    const frame = compress(text, 3);
    for (let i = 20; i < frame.length; i += 97) {
      const bad = Buffer.from(frame);
      bad[i] = bad[i]! ^ 0x5a;
      try {
        expect(decompress(bad, text.length).length).toBe(text.length);
      } catch (e) {
        expect(e).toBeInstanceOf(Error);
      }
    }
  });

  it('refuses a level outside 1-19', () => {
    expect(() => compress(Buffer.from('x'), 0)).toThrow(/level/);
    expect(() => compress(Buffer.from('x'), 20)).toThrow(/level/);
    // Nor anything decompress would refuse to read back; encode stores such a blob raw.
    const huge = Buffer.alloc(MAX_RAW_SIZE + 1);
    expect(() => compress(huge, 3)).toThrow(/more than one blob/);
    expect(encode(huge, { mode: 'zstd', level: 3 }).codec).toBe('none');
  });
});
