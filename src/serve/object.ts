import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errnoCode, TdvError } from '../errors.js';
import { quotePath } from '../formats/paths.js';
import { splitRevPath, type ByteRange, type Snapshot, SnapshotError, type SnapshotEntry } from '../repo/lib/snapshot.js';
import type { ServeContext } from './context.js';

/**
 * What S3 and plain HTTP share: a `<rev>/<path>` key resolved to a file of a
 * revision, and that file sent with Range, ETag, Last-Modified and
 * conditional requests, streamed with backpressure.
 */

/** A key resolved: the revision's snapshot and the entry at the path. */
export interface Resolved {
  rev: string;
  snap: Snapshot;
  path: string;
  entry: SnapshotEntry;
}

/** Keys longer than this name nothing (S3's limit is 1024 bytes; a path may be 4096, a revision 1024). */
const MAX_KEY = 5200;

/**
 * Whether a key may name something: no empty, `.` or `..` segment (so no
 * leading `/` either), no NUL, not absurdly long. Checked before any revision
 * or path is looked up, so a hostile key costs nothing.
 */
export function plausibleKey(key: string, allowTrailingSlash = false): boolean {
  if (key === '' || key.length > MAX_KEY || key.includes('\0')) return false;
  const segs = (allowTrailingSlash && key.endsWith('/') ? key.slice(0, -1) : key).split('/');
  return !segs.some((s) => s === '' || s === '.' || s === '..');
}

/**
 * Splits `<rev>/<path>` and finds what the revision has there; undefined for
 * an unknown revision or a path it does not have. `path` may be '' (the
 * revision's root directory).
 */
export async function resolveKey(ctx: ServeContext, key: string): Promise<Resolved | undefined> {
  const split = revPath(ctx, key);
  if (!split) return undefined;
  const snap = await ctx.snapshot(split.commit);
  const entry = await snap.stat(split.path);
  return entry ? { rev: split.rev, snap, path: split.path, entry } : undefined;
}

/** `splitRevPath`, with revision errors meaning "no such revision". */
export function revPath(ctx: ServeContext, key: string): { rev: string; commit: string; path: string } | undefined {
  try {
    return splitRevPath(ctx.source.history, key);
  } catch (err) {
    if (err instanceof TdvError) return undefined;
    throw err;
  }
}

/** A file's size: recorded for data, the blob's length for Git files. */
export function entrySize(snap: Snapshot, e: SnapshotEntry): number {
  if (e.size !== undefined) return e.size;
  if (e.source === 'git' && e.blob) return snap.source.history.blob(e.blob).length;
  return 0;
}

/**
 * The ETag: stable for the same content, and never 32 hex digits, so no
 * client takes it for an MD5 of the body and fails its check: the SHA-256 of
 * a data file, the blob id of a Git file.
 */
export function etagOf(e: SnapshotEntry): string {
  return `"${e.oid ?? e.blob ?? ''}"`;
}

/** `Last-Modified`: the revision's commit time. */
export function lastModified(snap: Snapshot): Date {
  return new Date(snap.time * 1000);
}

const TYPES: Record<string, string> = {
  csv: 'text/csv; charset=utf-8',
  tsv: 'text/tab-separated-values; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  json: 'application/json',
  jsonl: 'application/x-ndjson',
  ndjson: 'application/x-ndjson',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  xml: 'application/xml',
  html: 'text/html; charset=utf-8',
  htm: 'text/html; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
  arrow: 'application/vnd.apache.arrow.file',
  feather: 'application/vnd.apache.arrow.file',
  avro: 'application/avro',
  orc: 'application/octet-stream',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  svg: 'image/svg+xml',
  pdf: 'application/pdf',
  gz: 'application/gzip',
  zip: 'application/zip',
  tar: 'application/x-tar',
  zst: 'application/zstd',
  npy: 'application/octet-stream',
  py: 'text/x-python; charset=utf-8',
  ipynb: 'application/x-ipynb+json',
};

/** Content-Type by extension (application/octet-stream when unknown). */
export function contentType(p: string): string {
  const base = p.slice(p.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return (dot > 0 && TYPES[base.slice(dot + 1).toLowerCase()]) || 'application/octet-stream';
}

/**
 * A `Range` header's one range over `size` bytes: the range, 'unsatisfiable'
 * (416), or undefined to send the whole file (no header, several ranges, or
 * a malformed one, which RFC 9110 says to ignore).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/** How a caller answers an error: S3's XML or a plain line. */
export type SendError = (status: number, code: string, message: string) => void;

/** Headers every served file carries, so no browser runs a served HTML or SVG file as this origin. */
function safetyHeaders(res: http.ServerResponse): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Security-Policy', 'sandbox');
}

/** True when the client's copy is current (If-None-Match, If-Modified-Since). */
function notModified(req: http.IncomingMessage, etag: string, modified: Date): boolean {
  const inm = req.headers['if-none-match'];
  if (inm !== undefined) return inm.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '') === etag);
  const ims = req.headers['if-modified-since'];
  if (ims !== undefined) {
    const t = Date.parse(ims);
    return !Number.isNaN(t) && Math.floor(modified.getTime() / 1000) <= Math.floor(t / 1000);
  }
  return false;
}

/** False when a precondition fails (If-Match, If-Unmodified-Since): 412. */
function preconditionsHold(req: http.IncomingMessage, etag: string, modified: Date): boolean {
  const im = req.headers['if-match'];
  if (im !== undefined && !im.split(',').some((t) => t.trim() === '*' || t.trim() === etag)) return false;
  const ius = req.headers['if-unmodified-since'];
  if (im === undefined && ius !== undefined) {
    const t = Date.parse(ius);
    if (!Number.isNaN(t) && Math.floor(modified.getTime() / 1000) > Math.floor(t / 1000)) return false;
  }
  return true;
}

/**
 * Sends a file of a revision (GET or HEAD): the whole or one range, with
 * Content-Length, ETag, Last-Modified, Content-Type, 304 and 412 for
 * conditional requests, 416 for a range past the end. The bytes stream from
 * the cache (fetched from the remote first when missing, verified) with
 * backpressure; a client that goes away releases the file at once.
 * `overrides` replace response headers (S3's `response-content-type` and kin).
 */
export async function sendFile(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  snap: Snapshot,
  entry: SnapshotEntry,
  sendError: SendError,
  extra: Record<string, string> = {},
  overrides: Record<string, string> = {},
): Promise<void> {
  const size = entrySize(snap, entry);
  const etag = etagOf(entry);
  const modified = lastModified(snap);
  for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', modified.toUTCString());
  res.setHeader('Accept-Ranges', 'bytes');
  if (!preconditionsHold(req, etag, modified)) return sendError(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
  if (notModified(req, etag, modified)) {
    res.statusCode = 304;
    res.end();
    return;
  }
  let range = parseRange(req.headers.range, size);
  // If-Range: a range only while the client's copy is this one.
  const ifRange = req.headers['if-range'];
  if (range !== undefined && ifRange !== undefined && ifRange !== etag && ifRange !== modified.toUTCString()) range = undefined;
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${size}`);
    return sendError(416, 'InvalidRange', `The requested range is not satisfiable: the object is ${size} bytes`);
  }
  res.setHeader('Content-Type', contentType(entry.path));
  for (const [k, v] of Object.entries(overrides)) res.setHeader(k, v);
  safetyHeaders(res);
  if (req.method === 'HEAD') {
    res.statusCode = range ? 206 : 200;
    if (range) res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    res.setHeader('Content-Length', range ? range.end - range.start + 1 : size);
    res.end();
    return;
  }
  // Opened before the status is sent: a missing object fetched from the remote,
  // or one that cannot be, still gets a proper error status.
  const body = await snap.open(entry, range && size > 0 ? range : undefined);
  // A whole data file is hashed as it streams (once per cache file: see VERIFIED), its last
  // chunk held back until the hash is known, so a cache object damaged since it was
  // written is never sent complete: the client sees a short body, as `tdv cat` fails.
  const check = !range && entry.source === 'data' && entry.oid ? await verifier(snap, entry) : undefined;
  // A range cannot be checked by itself: the whole cache file is hashed first, once per cache file
  // (a ranged reader such as awscli's or fsspec's then pays one read of the file, up front).
  if (range && entry.source === 'data' && entry.oid) {
    try {
      await verifyWhole(snap, entry);
    } catch (err) {
      body.destroy();
      throw err;
    }
  }
  res.statusCode = range ? 206 : 200;
  if (range) res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  res.setHeader('Content-Length', range ? range.end - range.start + 1 : size);
  try {
    if (check) await pipeline(body, check, res);
    else await pipeline(body, res);
  } catch (err) {
    // The client went away, or the read failed mid-way: pipeline destroyed both
    // ends (the file handle is closed); a short body tells the client.
    body.destroy();
    if (err instanceof SnapshotError) throw err;
  }
}

/** Cache files whose bytes were hashed whole and matched, by path: their identity then (device, inode, size, times). */
const VERIFIED = new Map<string, string>();
const VERIFIED_MAX = 10_000;

function fileIdentity(st: fs.Stats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** Whole-file checks under way, by cache file and identity: concurrent ranged readers share one. */
const VERIFYING = new Map<string, Promise<void>>();

/** Hashes a data file's cache object whole unless verified already; rejects with DAMAGED_OBJECT when it does not match. */
async function verifyWhole(snap: Snapshot, entry: SnapshotEntry): Promise<void> {
  const file = snap.source.store.pathOf(entry.oid!);
  let id: string;
  try {
    id = fileIdentity(await fs.promises.stat(file));
  } catch {
    return; // removed since it was opened (a concurrent `tdv gc`): the open stream still reads what it was
  }
  if (VERIFIED.get(file) === id) return;
  const key = `${file}\0${id}`;
  let p = VERIFYING.get(key);
  if (!p) {
    p = (async () => {
      const hash = createHash('sha256');
      try {
        for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
      } catch (err) {
        if (errnoCode(err) === 'ENOENT') return; // removed meanwhile, as above
        throw err;
      }
      if (hash.digest('hex') !== entry.oid) throw new SnapshotError('DAMAGED_OBJECT', damagedMessage(snap, entry, file, 'it was not served'));
      remember(file, id);
    })();
    p.finally(() => VERIFYING.delete(key)).catch(() => {});
    VERIFYING.set(key, p);
  }
  await p;
}

function remember(file: string, id: string): void {
  if (VERIFIED.size >= VERIFIED_MAX) VERIFIED.delete(VERIFIED.keys().next().value!);
  VERIFIED.set(file, id);
}

function damagedMessage(snap: Snapshot, entry: SnapshotEntry, file: string, what: string): string {
  return `the cache object ${file} of ${quotePath(entry.path)} at ${snap.label} is damaged (its bytes do not hash to ${entry.oid!.slice(0, 12)}); ${what}; run \`tdv fsck\` (it moves damaged objects aside), then \`tdv pull\` fetches it again`;
}

/**
 * A pass-through that hashes a data file's bytes and sends the last chunk
 * only once they match its id; undefined when this cache file was verified
 * already (same inode, size and times) and is not worth hashing again.
 */
async function verifier(snap: Snapshot, entry: SnapshotEntry): Promise<Transform | undefined> {
  const file = snap.source.store.pathOf(entry.oid!);
  let id: string;
  try {
    id = fileIdentity(await fs.promises.stat(file));
  } catch {
    return undefined; // gone since it was opened: the open stream still reads it
  }
  if (VERIFIED.get(file) === id) return undefined;
  return new VerifyingStream(createHash('sha256'), entry.oid!, () => remember(file, id), damagedMessage(snap, entry, file, 'the response was cut short'));
}

class VerifyingStream extends Transform {
  private held: Buffer | undefined;

  constructor(
    private readonly hash: Hash,
    private readonly oid: string,
    private readonly onGood: () => void,
    private readonly damaged: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    const prev = this.held;
    this.held = chunk;
    cb(null, prev);
  }

  override _flush(cb: TransformCallback): void {
    if (this.hash.digest('hex') !== this.oid) return cb(new SnapshotError('DAMAGED_OBJECT', this.damaged));
    this.onGood();
    cb(null, this.held);
  }
}
