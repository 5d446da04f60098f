import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { isOid } from '../../formats/oid.js';

/**
 * The packed remote layout's two formats: packs and their indexes.
 *
 * A pack (`packs/<sha256 of its headers>.pack`, see PackBuilder) is the 8 bytes `TDVPACK1`, then
 * records, each a 4-byte big-endian header length, a one-line JSON header
 * `{"id":..,"kind":..,"codec":..,"raw":N,"len":N}` (plus `"size":N`, the
 * file's size, for a recipe) and `len` payload bytes.
 * The headers make a pack readable without its index (README: recovering
 * data with standard tools); the index makes one blob one ranged GET.
 *
 * An index (`index/<sha256 of the index>.json.gz`) is gzipped JSON
 * `{"format":"tdv-index","version":1,"written":ms,"packs":[name...],"blobs":[[id, kind,
 * pack number, offset, length, raw size, codec, file size?]...]}`. Offsets
 * and lengths are the payload's; the raw size is the blob's size once
 * decoded. A blob is one of:
 * - `o` object: a whole cache object (a small file or a manifest), id = its oid;
 * - `c` chunk: a content-defined chunk of a large file, id = its SHA-256;
 * - `r` recipe: a large file's chunk list (see Recipe), id = the file's oid,
 *   with the file's size as the eighth field.
 *
 * Every name and number read from a remote is untrusted: decodeIndex and
 * decodeRecipe check them all, and every decoded blob is hashed against its
 * id before it is used.
 */
export const PACK_MAGIC = Buffer.from('TDVPACK1');
export type BlobKind = 'object' | 'chunk' | 'recipe';
export type BlobCodec = 'none' | 'zstd';
const KIND_CODE: Record<BlobKind, string> = { object: 'o', chunk: 'c', recipe: 'r' };
const CODE_KIND: Record<string, BlobKind> = { o: 'object', c: 'chunk', r: 'recipe' };
const CODEC_CODE: Record<BlobCodec, string> = { none: 'n', zstd: 'z' };
const CODE_CODEC: Record<string, BlobCodec> = { n: 'none', z: 'zstd' };

/** Where one blob lives. */
export interface BlobEntry {
  id: string;
  kind: BlobKind;
  /** The pack's name: the SHA-256 of its bytes, hex. */
  pack: string;
  offset: number;
  length: number;
  /** Bytes once decoded. */
  raw: number;
  codec: BlobCodec;
  /** A recipe's file size. */
  fileSize?: number;
}

/** No blob is larger than this, decoded or not (the largest chunk, or a small object, is far below it). */
export const MAX_BLOB = 64 << 20;
/** An index, gzipped, and its JSON are bounded (a hostile remote cannot make tdv read gigabytes). */
export const MAX_INDEX_BYTES = 256 << 20;
/**
 * An index's JSON is at most this many times its gzipped size (beyond a
 * first MiB): its ids and pack names are SHA-256s in hex, which gzip shrinks
 * about 2:1, so a real index is never near it, while a gzip bomb (1 MiB of
 * repeated rows unpacking to 256 MiB, parsed to gigabytes) is refused unparsed.
 */
export const MAX_INDEX_RATIO = 16;
/** A recipe: about 80 bytes per chunk; 4 Mi chunks is a 1 TiB file at 256 KiB per chunk. */
export const MAX_RECIPE_BYTES = 256 << 20;
const HEX64 = /^[0-9a-f]{64}$/;

export const packKey = (name: string) => `packs/${name}.pack`;
export const indexKey = (name: string) => `index/${name}.json.gz`;
/** The index name in an `index/` key, or undefined when the key is not an index's. */
export function indexNameOf(key: string): string | undefined {
  const m = /^index\/([0-9a-f]{64})\.json\.gz$/.exec(key);
  return m?.[1];
}
export function packNameOf(key: string): string | undefined {
  const m = /^packs\/([0-9a-f]{64})\.pack$/.exec(key);
  return m?.[1];
}

/**
 * Builds one pack in memory-bounded pieces: the caller writes `take()` out as
 * they come. The pack's name is the SHA-256 of its magic and record headers
 * (each names its blob's id, the hash of the blob's bytes, and its sizes),
 * not of every byte: that would be a second pass over gigabytes, and every
 * payload is verified against its id when read anyway.
 */
export class PackBuilder {
  private readonly hash = createHash('sha256');
  private parts: Buffer[] = [];
  private offset = 0;
  readonly entries: Omit<BlobEntry, 'pack'>[] = [];

  constructor() {
    this.push(PACK_MAGIC);
  }

  /** Bytes so far. */
  get size(): number {
    return this.offset;
  }

  get count(): number {
    return this.entries.length;
  }

  add(id: string, kind: BlobKind, codec: BlobCodec, raw: number, payload: Buffer, fileSize?: number): void {
    const header = recordHeader(id, kind, codec, raw, payload.length, fileSize);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    this.push(len);
    this.push(header);
    this.entries.push({ id, kind, offset: this.offset, length: payload.length, raw, codec, ...(fileSize !== undefined ? { fileSize } : {}) });
    // The payload is not hashed into the name: its id is its hash already (see the class comment).
    this.push(payload, false);
  }

  /** The bytes added since the last call (for writing to a temp file as the pack grows). */
  take(): Buffer[] {
    const out = this.parts;
    this.parts = [];
    return out;
  }

  /** The pack's name (its hash) and its entries: call once, after the last `take()`. */
  finish(): { name: string; entries: BlobEntry[] } {
    const name = this.hash.digest('hex');
    return { name, entries: this.entries.map((e) => ({ ...e, pack: name })) };
  }

  private push(b: Buffer, named = true): void {
    this.parts.push(b);
    if (named) this.hash.update(b);
    this.offset += b.length;
  }
}

function recordHeader(id: string, kind: BlobKind, codec: BlobCodec, raw: number, len: number, fileSize?: number): Buffer {
  return Buffer.from(JSON.stringify({ id, kind, codec, raw, len, ...(fileSize !== undefined ? { size: fileSize } : {}) }));
}

/** The bytes one blob's record takes in its pack: length field, header and payload (what repacking weighs). */
export function recordSize(e: Omit<BlobEntry, 'pack'>): number {
  return 4 + recordHeader(e.id, e.kind, e.codec, e.raw, e.length, e.fileSize).length + e.length;
}

/** An index's bytes (gzipped JSON) and its name (their hash). */
export function encodeIndex(entries: readonly BlobEntry[]): { name: string; bytes: Buffer } {
  const packs: string[] = [];
  const packNo = new Map<string, number>();
  const blobs = entries.map((e) => {
    let n = packNo.get(e.pack);
    if (n === undefined) {
      n = packs.length;
      packs.push(e.pack);
      packNo.set(e.pack, n);
    }
    const row: (string | number)[] = [e.id, KIND_CODE[e.kind], n, e.offset, e.length, e.raw, CODEC_CODE[e.codec]];
    if (e.fileSize !== undefined) row.push(e.fileSize);
    return row;
  });
  // `written`: when two indexes name the same blob, the later one's copy is read (`push --repair` stores a damaged blob again).
  const bytes = zlib.gzipSync(JSON.stringify({ format: 'tdv-index', version: 1, written: Date.now(), packs, blobs }), { level: 6 });
  return { name: createHash('sha256').update(bytes).digest('hex'), bytes };
}

/** Why an index (or recipe) from a remote cannot be used: thrown by the decoders, with what is wrong. */
export class BadLayoutData extends Error {}

const isCount = (x: unknown, max = Number.MAX_SAFE_INTEGER): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;

/**
 * The entries of an index, every field checked: ids are oids (objects and
 * recipes) or SHA-256s (chunks), packs are SHA-256 names, numbers are whole
 * and bounded. `name` is the index's name, checked against the bytes' hash.
 */
export function decodeIndex(bytes: Buffer, name: string): { written: number; entries: BlobEntry[] } {
  if (createHash('sha256').update(bytes).digest('hex') !== name) throw new BadLayoutData(`its content does not hash to its name`);
  let doc: unknown;
  try {
    const max = Math.min(MAX_INDEX_BYTES, Math.max(1 << 20, bytes.length * MAX_INDEX_RATIO));
    let json: Buffer;
    try {
      json = zlib.gunzipSync(bytes, { maxOutputLength: max });
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') throw new BadLayoutData(`it unpacks to more than ${max} bytes, far more than an index of ${bytes.length} bytes holds`);
      throw err;
    }
    doc = JSON.parse(json.toString('utf8'));
  } catch (err) {
    if (err instanceof BadLayoutData) throw err;
    throw new BadLayoutData(`it is not gzipped JSON (${(err as Error).message})`);
  }
  const d = doc as { format?: unknown; version?: unknown; written?: unknown; packs?: unknown; blobs?: unknown };
  if (typeof d !== 'object' || d === null || d.format !== 'tdv-index') throw new BadLayoutData('it is not a tdv index');
  if (d.version !== 1) throw new BadLayoutData(`it has version ${JSON.stringify(d.version)}, which this tdv does not read; upgrade tdv`);
  if (!Array.isArray(d.packs) || !d.packs.every((p) => typeof p === 'string' && HEX64.test(p))) throw new BadLayoutData('its pack names are not SHA-256 names');
  if (!Array.isArray(d.blobs)) throw new BadLayoutData('it has no blob list');
  const written = isCount(d.written) ? d.written : 0;
  const packs = d.packs as string[];
  const out: BlobEntry[] = [];
  for (const row of d.blobs as unknown[]) {
    if (!Array.isArray(row) || row.length < 7 || row.length > 8) throw new BadLayoutData('a blob entry is not a list of 7 or 8 fields');
    const [id, k, p, offset, length, raw, c, fileSize] = row as unknown[];
    const kind = typeof k === 'string' ? CODE_KIND[k] : undefined;
    const codec = typeof c === 'string' ? CODE_CODEC[c] : undefined;
    if (!kind || !codec) throw new BadLayoutData(`a blob entry has an unknown kind or codec (${JSON.stringify(k)}, ${JSON.stringify(c)})`);
    if (typeof id !== 'string' || !(kind === 'chunk' ? HEX64.test(id) : isOid(id))) throw new BadLayoutData(`a blob id is not an object id: ${JSON.stringify(id).slice(0, 80)}`);
    if (!isCount(p, packs.length - 1)) throw new BadLayoutData(`blob ${id} names no pack of the index`);
    if (!isCount(offset) || !isCount(length, MAX_BLOB) || !isCount(raw, MAX_BLOB) || offset < PACK_MAGIC.length) throw new BadLayoutData(`blob ${id} has an impossible offset or size`);
    if (kind === 'recipe' ? !isCount(fileSize) : fileSize !== undefined) throw new BadLayoutData(`blob ${id} has a wrong file size field`);
    if (codec === 'none' && raw !== length) throw new BadLayoutData(`blob ${id} is stored raw but its sizes differ`);
    out.push({ id, kind, pack: packs[p]!, offset, length, raw, codec, ...(kind === 'recipe' ? { fileSize: fileSize as number } : {}) });
  }
  return { written, entries: out };
}

/** A large file as chunks: their SHA-256s and sizes, in order. */
export interface Recipe {
  size: number;
  chunks: [sha256: string, size: number][];
}

export function encodeRecipe(r: Recipe): Buffer {
  return Buffer.from(JSON.stringify({ format: 'tdv-recipe', version: 1, size: r.size, chunks: r.chunks }));
}

/** A recipe, checked: SHA-256 ids, chunk sizes from 1 to `maxChunk`, adding up to its size (and to `expectSize` when known). */
export function decodeRecipe(bytes: Buffer, maxChunk: number, expectSize?: number): Recipe {
  let d: { format?: unknown; version?: unknown; size?: unknown; chunks?: unknown };
  try {
    d = JSON.parse(bytes.toString('utf8')) as typeof d;
  } catch {
    throw new BadLayoutData('a recipe is not JSON');
  }
  if (typeof d !== 'object' || d === null || d.format !== 'tdv-recipe' || d.version !== 1) throw new BadLayoutData('a recipe is not a tdv recipe of version 1');
  if (!isCount(d.size) || !Array.isArray(d.chunks)) throw new BadLayoutData('a recipe has no size or chunk list');
  if (expectSize !== undefined && d.size !== expectSize) throw new BadLayoutData(`a recipe says ${d.size} bytes where ${expectSize} are recorded`);
  let sum = 0;
  for (const c of d.chunks as unknown[]) {
    if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== 'string' || !HEX64.test(c[0]) || !isCount(c[1], maxChunk) || c[1] === 0) throw new BadLayoutData('a recipe has a bad chunk entry');
    sum += c[1] as number;
  }
  if (sum !== d.size) throw new BadLayoutData(`a recipe's chunks add up to ${sum} bytes, not ${d.size}`);
  return { size: d.size, chunks: d.chunks as Recipe['chunks'] };
}

/** The layout record `tdv-remote.json`: which layout version wrote the remote. */
export const LAYOUT_KEY = 'tdv-remote.json';
export const LAYOUT_VERSION = 2;
export function encodeLayoutRecord(): Buffer {
  return Buffer.from(`${JSON.stringify({ format: 'tdv-remote', layout: LAYOUT_VERSION, written_by: 'tdv' })}\n`);
}
/** The layout version a record states; throws BadLayoutData when it is not one. */
export function decodeLayoutRecord(bytes: Buffer): number {
  let d: { format?: unknown; layout?: unknown };
  try {
    d = JSON.parse(bytes.toString('utf8')) as typeof d;
  } catch {
    throw new BadLayoutData('it is not JSON');
  }
  if (typeof d !== 'object' || d === null || d.format !== 'tdv-remote' || !isCount(d.layout)) throw new BadLayoutData('it is not a tdv layout record');
  return d.layout;
}
