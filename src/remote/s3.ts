import './s3-env.js'; // first: it must run before the SDK modules evaluate
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import type { Readable } from 'node:stream';
import { DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import pLimit from 'p-limit';
import { isOid, type Oid } from '../formats/oid.js';
import { compareCodePoints } from '../formats/manifest.js';
import { type ErrorCode, isSystemError, RemoteError } from '../errors.js';
import { maskUrl, type RemoteConfig } from '../formats/config.js';
import { assertObjectFile } from '../cache/store.js';
import { keyNotOnRemote, notOnRemote } from './local.js';
import { MAX_TEXT_BYTES, tooLargeError } from '../util/fs.js';
import { isLayoutKey, type ByteRange, type KeyInfo, type KeySource, type ObjectBody, type OnBytes, type Remote } from './remote.js';
import { throttledBody, throttledReadable, type TokenBucket } from './rate.js';

const MiB = 1 << 20;
/** Files below this go up in one PutObject from memory; larger ones in parts, streamed from disk. */
export const MULTIPART_THRESHOLD = 8 * MiB;
/** Truncated listing pages with no keys in a row before a listing is taken to be stuck. */
const MAX_EMPTY_PAGES = 100;
const MIN_PART = 8 * MiB;
const MAX_PARTS = 10_000;
/** Parts of one file in flight at once. */
const PART_QUEUE = 4;
/**
 * Uploads of files of 1 MiB or more in flight at once per remote. A multipart
 * upload buffers up to PART_QUEUE + 1 parts, a single PUT up to 8 MiB, so this
 * bounds memory (4 × 5 × 8 MiB) however many jobs run; for large files
 * bandwidth, not latency, is the limit anyway.
 */
const MULTIPART_AT_ONCE = 4;
const DELETE_BATCH = 1000;
/**
 * Attempts per upload the server refused because its bytes arrived altered
 * (BadDigest: Content-MD5 or checksum mismatch), which the SDK does not retry;
 * as many as a download whose bytes arrive altered gets.
 */
const UPLOAD_ATTEMPTS = 3;

/** Parts of at least 8 MiB, grown in whole MiB so no file needs more than S3's 10,000 parts. */
export function partSizeFor(size: number): number {
  return Math.max(MIN_PART, Math.ceil(size / MAX_PARTS / MiB) * MiB);
}

export interface S3RemoteOptions {
  /** Transfers that will run at once (`-j`), so the connection pool is sized for them. */
  jobs?: number;
  /** The file credentials in the remote's config come from, for messages. */
  configFile?: string;
  /** ListObjectsV2 MaxKeys (S3's own limit is 1000); smaller only to test paging cheaply. */
  listPageSize?: number;
  /** A client to use instead of building one from the config (tests inject a fake server's). */
  client?: S3Client;
  /** The remote's rate limit (`--limit-rate`, `limit_rate`), shared by all its transfers. */
  rate?: TokenBucket;
}

/** What an error message needs to know about the remote; never holds a secret. */
export interface S3ErrorContext {
  name: string;
  url: string;
  bucket: string;
  endpoint?: string;
  /** Where the credentials come from, e.g. "profile ci" (see credentialSource). */
  credentials: string;
  /** Values that must never appear in a message (the secret key, the key id). */
  redact?: readonly string[];
}

/**
 * Makes the S3 remote for `remote.<name>` with url `s3://bucket/prefix`. Objects
 * live at `<prefix>/files/sha256/ab/cdef...`, exactly as in the cache.
 */
export async function createS3Remote(name: string, cfg: RemoteConfig, loc: { bucket: string; prefix: string }, opts: S3RemoteOptions = {}): Promise<Remote> {
  if ((cfg.access_key_id === undefined) !== (cfg.secret_access_key === undefined)) {
    const missing = cfg.access_key_id === undefined ? 'access_key_id' : 'secret_access_key';
    throw new RemoteError('BAD_REMOTE', `remote "${name}" has only half of a key pair: ${missing} is not set; run \`tdv remote modify ${name} ${missing} VALUE --local\`, or unset the other one`);
  }
  return new S3Remote(name, cfg, loc, opts);
}

/**
 * A remote in an S3 bucket (or anything speaking the S3 API: MinIO, Ceph, R2, ...).
 * PUT is atomic on S3, so an object is never visible half-written and needs no
 * temporary name; a multipart upload becomes visible only when completed.
 * All SDK failures leave through `translateS3Error`, which turns those that
 * concern the whole remote into wide RemoteErrors.
 */
export class S3Remote implements Remote {
  readonly url: string;
  readonly defaultJobs = Math.max(8, 4 * os.availableParallelism());
  readonly bucket: string;
  /** `prefix/` or empty: prepended to every key. */
  private readonly base: string;
  private readonly client: S3Client;
  private readonly ctx: S3ErrorContext;
  private readonly pageSize: number;
  private readonly multipart = pLimit(MULTIPART_AT_ONCE);
  private bucketChecked: Promise<void> | undefined;
  private readonly rate: TokenBucket | undefined;
  private readonly whenRequired: boolean;

  constructor(
    readonly name: string,
    cfg: RemoteConfig,
    loc: { bucket: string; prefix: string },
    opts: S3RemoteOptions = {},
  ) {
    this.bucket = loc.bucket;
    const prefix = loc.prefix.replace(/^\/+|\/+$/g, '');
    this.base = prefix ? `${prefix}/` : '';
    this.url = `s3://${loc.bucket}${prefix ? `/${prefix}` : ''}`;
    this.pageSize = Math.min(1000, Math.max(1, opts.listPageSize ?? 1000));
    this.rate = opts.rate;
    this.whenRequired = cfg.checksum === 'when_required';
    this.ctx = {
      name,
      url: this.url,
      bucket: loc.bucket,
      endpoint: cfg.endpointurl === undefined ? undefined : maskUrl(cfg.endpointurl),
      credentials: credentialSource(cfg, process.env, opts.configFile ?? '.tdv/config.local.yaml'),
      redact: [cfg.secret_access_key, cfg.access_key_id].filter((s): s is string => !!s),
    };
    this.client = opts.client ?? new S3Client(clientConfig(cfg, opts.jobs ?? cfg.jobs ?? this.defaultJobs));
    // With `when_required` the SDK sends no checksum with an upload, and a body altered on
    // the way would be stored as it arrived, under the object's name. Content-MD5 makes
    // the server refuse it (BadDigest) instead; every S3-compatible server checks it.
    if (cfg.checksum === 'when_required') {
      this.client.middlewareStack.add(
        (next, context) => async (args) => {
          const req = args.request as { headers?: Record<string, string>; body?: unknown };
          if ((context.commandName === 'PutObjectCommand' || context.commandName === 'UploadPartCommand') && req.body instanceof Uint8Array && req.headers) {
            req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64');
          }
          return next(args);
        },
        { step: 'build', name: 'tdvContentMd5' },
      );
    }
  }

  keyOf(oid: Oid): string {
    return `${this.base}files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`;
  }

  async has(oid: Oid): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(oid) }));
      return true;
    } catch (err) {
      if (!isNotFound(err)) throw this.fail(err, `checking object ${oid}`, oid);
    }
    // HEAD has no body, so a missing bucket looks like a missing object: tell them apart once.
    await this.checkBucket();
    return false;
  }

  async stat(oid: Oid): Promise<{ size: number } | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.keyOf(oid) }));
      return { size: res.ContentLength ?? 0 };
    } catch (err) {
      if (!isNotFound(err)) throw this.fail(err, `checking object ${oid}`, oid);
    }
    await this.checkBucket();
    return undefined;
  }

  async listPrefix(prefix: string, max?: number): Promise<Oid[]> {
    if (!/^[0-9a-f]{2}$/.test(prefix)) throw new RangeError(`not an object prefix: ${prefix}`);
    const out: Oid[] = [];
    for await (const oid of this.listUnder(`${prefix}/`)) {
      out.push(oid);
      if (max !== undefined && out.length >= max) break;
    }
    return out;
  }

  list(): AsyncIterable<Oid> {
    // One listing of everything: as many requests as 256 prefix listings would make
    // for a large remote, and far fewer for a small one.
    return this.listUnder('');
  }

  async put(oid: Oid, from: string, size: number, onBytes?: OnBytes): Promise<void> {
    return this.putFile(this.keyOf(oid), from, size, onBytes, `uploading object ${oid}`, oid);
  }

  /** Uploads a local file as `Key`: one PUT from memory below MULTIPART_THRESHOLD, parts streamed from disk above. */
  private async putFile(Key: string, from: string, size: number, onBytes: OnBytes | undefined, what: string, oid?: Oid): Promise<void> {
    assertObjectFile(from); // a FIFO in the cache would block the read forever
    if (size < MULTIPART_THRESHOLD) {
      // From memory, so the SDK can retry it. Below 1 MiB read synchronously (four async
      // calls per file cost more than the read); larger ones take turns with the multipart
      // uploads, so `jobs` uploads never hold jobs x 8 MiB.
      const send = async (body: Buffer) => {
        await this.putBuffer(Key, body, what, oid);
        onBytes?.(body.length);
      };
      if (size < MiB) await send(fs.readFileSync(from));
      else await this.multipart(async () => send(await fsp.readFile(from)));
      return;
    }
    await this.multipart(async () => {
      for (let attempt = 1; ; attempt++) {
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key, Body: this.paced(fs.createReadStream(from, { highWaterMark: MiB })) },
          partSize: partSizeFor(size),
          queueSize: PART_QUEUE,
          leavePartsOnError: false, // abort the multipart upload: no orphaned parts to pay for
        });
        let sent = 0;
        upload.on('httpUploadProgress', (p) => {
          if (p.loaded !== undefined && p.loaded > sent) {
            onBytes?.(p.loaded - sent);
            sent = p.loaded;
          }
        });
        try {
          await upload.done();
        } catch (err) {
          if (isSystemError(err) && err.path === from) throw err; // reading the local file failed, not the remote
          if (alteredOnTheWay(err) && attempt < UPLOAD_ATTEMPTS) {
            if (sent) onBytes?.(-sent);
            continue;
          }
          throw this.fail(err, what, oid);
        }
        if (sent < size) onBytes?.(size - sent);
        return;
      }
    });
  }

  async get(oid: Oid): Promise<ObjectBody> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(oid) }));
      if (!res.Body) throw new Error('GetObject returned no body');
      // A failure mid-body stays a plain error: the caller retries those. The stated
      // length lets the caller refuse an object of the wrong size unread.
      const body = res.Body as Readable;
      return throttledBody(res.ContentLength === undefined ? body : Object.assign(body, { size: res.ContentLength }), this.rate);
    } catch (err) {
      if (isNotFound(err)) throw notOnRemote(this, oid);
      throw this.fail(err, `downloading object ${oid}`, oid);
    }
  }

  async remove(oids: readonly Oid[]): Promise<Oid[]> {
    const failed: Oid[] = [];
    for (let i = 0; i < oids.length; i += DELETE_BATCH) {
      const batch = oids.slice(i, i + DELETE_BATCH);
      const byKey = new Map(batch.map((oid) => [this.keyOf(oid), oid]));
      try {
        const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: [...byKey.keys()].map((Key) => ({ Key })), Quiet: true } }));
        for (const e of res.Errors ?? []) {
          const oid = e.Key === undefined ? undefined : byKey.get(e.Key);
          if (oid !== undefined) failed.push(oid);
        }
      } catch (err) {
        const e = this.fail(err, `deleting ${batch.length} objects`);
        if (e.wide) throw e;
        failed.push(...batch);
      }
    }
    return failed;
  }

  private runKey(key: string): string {
    return `${this.base}runs/${key.slice(0, 2)}/${key.slice(2)}`;
  }

  async putRun(key: string, data: Buffer): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.runKey(key), Body: data, ContentLength: data.length }));
    } catch (err) {
      throw this.fail(err, `uploading run record ${key}`);
    }
  }

  /**
   * A run record is small JSON: one over MAX_TEXT_BYTES is refused unread (a
   * RemoteError, not `wide`: the caller skips that record), as the directory
   * remote refuses it, rather than downloaded whole into memory.
   */
  async getRun(key: string): Promise<Buffer | undefined> {
    let data: Buffer;
    let size: number | undefined;
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.runKey(key) }));
      size = res.ContentLength;
      if (size !== undefined && size > MAX_TEXT_BYTES) {
        (res.Body as Readable | undefined)?.destroy();
        data = Buffer.alloc(0);
      } else {
        data = Buffer.from(await res.Body!.transformToByteArray());
        size = data.length;
      }
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.fail(err, `downloading run record ${key}`);
    }
    if (size !== undefined && size > MAX_TEXT_BYTES) {
      const e = tooLargeError(`remote "${this.name}": run record ${this.url}/runs/${key.slice(0, 2)}/${key.slice(2)}`, size, MAX_TEXT_BYTES, 'a run record');
      throw new RemoteError(e.code, e.message, { data: e.data });
    }
    return data;
  }

  async listRuns(): Promise<string[]> {
    const root = `${this.base}runs/`;
    const out: string[] = [];
    for await (const k of this.keysUnder(root, `${this.url}/runs`)) {
      const rel = k.slice(root.length);
      const key = rel.slice(0, 2) + rel.slice(3);
      if (rel[2] === '/' && /^[0-9a-f]{64}$/.test(key)) out.push(key);
    }
    return out;
  }

  async putRepoMarker(id: string, data: Buffer): Promise<void> {
    // Like an object's upload: a body altered on the way (BadDigest) is sent again.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: `${this.base}repos/${id}`, Body: data, ContentLength: data.length }));
        return;
      } catch (err) {
        if (alteredOnTheWay(err) && attempt < UPLOAD_ATTEMPTS) continue;
        throw this.fail(err, `writing marker repos/${id}`);
      }
    }
  }

  async listRepoMarkers(): Promise<string[]> {
    const root = `${this.base}repos/`;
    const out: string[] = [];
    for await (const k of this.keysUnder(root, `${this.url}/repos`)) {
      const id = k.slice(root.length);
      if (id && !id.includes('/')) out.push(id);
    }
    return out.sort();
  }

  // Raw layout keys (remote.ts) and rate limits (rate.ts): one block, so that other
  // changes to this class merge cleanly. Keys are relative to the remote's prefix.

  /** Uploads a key: one PutObject from memory, or the file's multipart path above MULTIPART_THRESHOLD. */
  async putKey(key: string, from: KeySource, onBytes?: OnBytes): Promise<void> {
    const Key = this.base + this.checkKey(key);
    const what = `uploading ${key}`;
    if ('data' in from) {
      await this.putBuffer(Key, from.data, what);
      onBytes?.(from.data.length);
      return;
    }
    // A local source tdv made: a FIFO would block the read; a missing one is a local failure, thrown as it is.
    assertObjectFile(from.file);
    await this.putFile(Key, from.file, fs.statSync(from.file).size, onBytes, what);
  }

  /**
   * A key's bytes, or a range of them (`Range: bytes=a-(b-1)`). A range past
   * the end is cut there (S3 does so itself, and answers 416 for one that
   * starts past it); an empty range is an empty body, without a request.
   */
  async getKey(key: string, range?: ByteRange): Promise<ObjectBody> {
    const Key = this.base + this.checkKey(key);
    if (range && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
      throw new RangeError(`bad byte range ${range.start}-${range.end} for key ${key}`);
    }
    if (range && range.end === range.start) return emptyBody();
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: range ? `bytes=${range.start}-${range.end - 1}` : undefined }));
      if (!res.Body) throw new Error('GetObject returned no body');
      const body = res.Body as Readable;
      return throttledBody(res.ContentLength === undefined ? body : Object.assign(body, { size: res.ContentLength }), this.rate);
    } catch (err) {
      if (isNotFound(err)) throw keyNotOnRemote(this, key);
      if (range && ((err as SdkErrorShape).name === 'InvalidRange' || (err as SdkErrorShape).$metadata?.httpStatusCode === 416)) return emptyBody();
      throw this.fail(err, `downloading ${key}`);
    }
  }

  /** Every key below `dir/`, paged, in S3's order (byte order; keys are ASCII, so code points). */
  async listKeys(dir: string, max?: number): Promise<KeyInfo[]> {
    const root = dir === '' ? this.base : `${this.base}${this.checkKey(dir)}/`;
    const out: KeyInfo[] = [];
    if (max !== undefined && max <= 0) return out;
    const pageSize = max === undefined ? this.pageSize : Math.min(this.pageSize, max);
    for await (const k of this.keysWithSizes(root, `${this.url}/${dir}`, pageSize)) {
      const key = k.key.slice(this.base.length);
      if (!isLayoutKey(key)) continue; // not one of tdv's: another tool's object under the prefix
      out.push({ key, size: k.size });
      if (max !== undefined && out.length >= max) break;
    }
    return out;
  }

  /** Deletes keys in DeleteObjects batches of 1,000; every key is checked before any is deleted. */
  async deleteKeys(keys: readonly string[]): Promise<string[]> {
    for (const k of keys) this.checkKey(k);
    const failed: string[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      try {
        const res = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.base + k })), Quiet: true } }));
        for (const e of res.Errors ?? []) if (e.Key !== undefined && e.Code !== 'NoSuchKey') failed.push(e.Key.slice(this.base.length));
      } catch (err) {
        const e = this.fail(err, `deleting ${batch.length} keys`);
        if (e.wide) throw e;
        failed.push(...batch);
      }
    }
    return failed;
  }

  /**
   * What remote/exchange.ts needs to presign URLs and stream uploads under a
   * raw key (`exchange/...`): this remote's client (its credentials sign the
   * URLs), the bucket, the full key, and the error translation. Kept to one
   * accessor so the exchange's S3 calls live in its own file.
   */
  exchangeAccess(key: string): { client: S3Client; bucket: string; Key: string; fail: (err: unknown, action: string) => RemoteError } {
    return { client: this.client, bucket: this.bucket, Key: this.base + this.checkKey(key), fail: (err, action) => this.fail(err, action) };
  }

  private checkKey(key: string): string {
    if (isLayoutKey(key)) return key;
    throw new RemoteError(
      'BAD_KEY',
      `remote "${this.name}": ${JSON.stringify(key.length > 100 ? `${key.slice(0, 100)}...` : key)} is not a valid key on ${this.url}; the remote's index or listing names it, so it may have been tampered with: check the remote`,
      {
        data: { key },
      },
    );
  }

  /**
   * One PutObject from memory. Without a rate limit the SDK sends the buffer
   * (and retries it); with one, the body is streamed through the limiter, so
   * its checksum is computed here (the SDK would otherwise switch a stream to
   * aws-chunked framing, which s3rver stores as data and Ceph refuses) and a
   * failed attempt is retried here (the SDK does not retry streams).
   */
  private async putBuffer(Key: string, body: Buffer, what: string, oid?: Oid): Promise<void> {
    const paced = this.rate !== undefined && body.length > 0;
    const sums = paced ? (this.whenRequired ? { ContentMD5: createHash('md5').update(body).digest('base64') } : { ChecksumSHA256: createHash('sha256').update(body).digest('base64') }) : {};
    for (let attempt = 1; ; attempt++) {
      try {
        const Body = paced ? throttledReadable([body], this.rate!) : body;
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body, ContentLength: body.length, ...sums }));
        return;
      } catch (err) {
        if (attempt < UPLOAD_ATTEMPTS && (alteredOnTheWay(err) || (paced && transient(err)))) continue;
        throw this.fail(err, what, oid);
      }
    }
  }

  /** An upload body paced by the rate limit, or the body itself without one. */
  private paced(body: Readable): Readable {
    return this.rate ? throttledReadable(body, this.rate) : body;
  }

  close(): void {
    this.client.destroy();
  }

  /** Every oid whose key starts with `files/sha256/<sub>`, page by page. */
  private async *listUnder(sub: string): AsyncIterable<Oid> {
    const root = `${this.base}files/sha256/`;
    for await (const key of this.keysUnder(root + sub, `${this.url}/files/sha256/${sub}`)) {
      const rel = key.slice(root.length); // "ab/cdef..."
      if (rel[2] !== '/') continue;
      const oid = rel.slice(0, 2) + rel.slice(3);
      if (isOid(oid)) yield oid;
    }
  }

  /**
   * Every key under `prefix`, page by page. A listing must make progress: a
   * server (or a proxy, or a bug) that hands back a continuation token it gave
   * before, says "truncated" without a token, lists keys out of order (S3
   * lists in ascending UTF-8 byte order, so a repeated page shows as such) or keeps
   * sending empty truncated pages would make the loop endless or the listing
   * silently incomplete (and gc --cloud act on a partial view): each is an
   * error naming the remote.
   */
  private async *keysUnder(prefix: string, shown: string): AsyncIterable<string> {
    for await (const k of this.keysWithSizes(prefix, shown)) yield k.key;
  }

  /** keysUnder, with each key's size. */
  private async *keysWithSizes(prefix: string, shown: string, pageSize = this.pageSize): AsyncIterable<KeyInfo> {
    const seen = new Set<string>();
    let token: string | undefined;
    let last: string | undefined;
    let empty = 0;
    const broken = (why: string) =>
      new RemoteError('BAD_LISTING', `remote "${this.ctx.name}": listing ${shown} ${why}, so it would never end or be incomplete; the server is not behaving as S3 does`, { wide: true });
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: pageSize, ContinuationToken: token }));
      } catch (err) {
        throw this.fail(err, `listing ${shown}`);
      }
      const contents = page.Contents ?? [];
      for (const o of contents) {
        if (o.Key === undefined || !o.Key.startsWith(prefix)) continue;
        if (last !== undefined && compareCodePoints(o.Key, last) <= 0) throw broken(`returned key ${JSON.stringify(o.Key.slice(prefix.length))} again or out of order`);
        last = o.Key;
        yield { key: o.Key, size: o.Size ?? 0 };
      }
      if (!page.IsTruncated) return;
      token = page.NextContinuationToken;
      if (!token) throw broken('was cut short (a truncated page without a continuation token)');
      if (seen.has(token)) throw broken(`repeated continuation token ${JSON.stringify(token.length > 40 ? `${token.slice(0, 40)}...` : token)}`);
      seen.add(token);
      empty = contents.length === 0 ? empty + 1 : 0;
      if (empty >= MAX_EMPTY_PAGES) throw broken(`returned ${MAX_EMPTY_PAGES} empty pages in a row`);
    } while (true);
  }

  /** Throws REMOTE_NOT_FOUND if the bucket does not exist; anything else it cannot tell is let pass. */
  private checkBucket(): Promise<void> {
    this.bucketChecked ??= this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${this.base}files/sha256/`, MaxKeys: 1 })).then(
      () => undefined,
      (err: unknown) => {
        const e = this.fail(err, 'checking the bucket');
        if (e.code === 'REMOTE_NOT_FOUND' || e.code === 'REMOTE_UNREACHABLE' || e.code === 'REMOTE_NO_CREDENTIALS') throw e;
        // Listing may be forbidden where reading is allowed; the object is then simply absent.
      },
    );
    return this.bucketChecked.catch((err: unknown) => {
      if ((err as RemoteError).code !== 'REMOTE_NOT_FOUND') this.bucketChecked = undefined; // transient: ask again next time
      throw err;
    });
  }

  private fail(err: unknown, action: string, oid?: Oid): RemoteError {
    return translateS3Error(err, this.ctx, action, oid);
  }
}

function clientConfig(cfg: RemoteConfig, jobs: number): S3ClientConfig {
  const checksum = cfg.checksum === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  // Transfers run `jobs` objects at once, each large one with PART_QUEUE parts: no request should wait for a socket.
  const maxSockets = Math.max(jobs, 8) + MULTIPART_AT_ONCE * PART_QUEUE;
  const config: S3ClientConfig = {
    endpoint: cfg.endpointurl,
    forcePathStyle: cfg.force_path_style,
    profile: cfg.profile,
    region: cfg.region ?? regionFromChain(cfg.profile),
    followRegionRedirects: true,
    requestChecksumCalculation: checksum,
    responseChecksumValidation: checksum,
    maxAttempts: 5,
    retryMode: 'standard',
    // The SDK's own notices (e.g. "multiple credential sources") go to console.warn otherwise.
    logger: quietLogger,
    requestHandler: {
      httpAgent: new http.Agent({ keepAlive: true, maxSockets }),
      httpsAgent: new https.Agent({ keepAlive: true, maxSockets }),
      connectionTimeout: 5_000,
      // An idle timeout, not a total one: a large part or object may take minutes on a slow link.
      // TDV_S3_SOCKET_TIMEOUT_MS shortens it for tests that hold responses back on purpose.
      socketTimeout: socketTimeoutMs(),
      // The handler warns on the console when requests queue for sockets; a CLI's output is not the place.
      logger: quietLogger,
    },
  };
  if (cfg.access_key_id && cfg.secret_access_key) {
    config.credentials = { accessKeyId: cfg.access_key_id, secretAccessKey: cfg.secret_access_key };
  }
  return config;
}

function socketTimeoutMs(): number {
  const ms = Number(process.env.TDV_S3_SOCKET_TIMEOUT_MS);
  return Number.isInteger(ms) && ms > 0 ? ms : 60_000;
}

const noop = () => {};
const quietLogger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * The SDK's region chain (AWS_REGION, the profile's `region`), falling back to
 * us-east-1 where it finds none: an S3-compatible endpoint often has no region
 * at all, and on AWS `followRegionRedirects` corrects a wrong guess.
 */
function regionFromChain(profile: string | undefined): () => Promise<string> {
  let region: Promise<string> | undefined;
  return () =>
    (region ??= (async () => {
      const probe = new S3Client({ profile });
      try {
        return await probe.config.region();
      } catch {
        return 'us-east-1';
      } finally {
        probe.destroy();
      }
    })());
}

/**
 * Which credentials the SDK will use, in its own order of preference, for messages.
 * Names where they come from, never their values.
 */
export function credentialSource(cfg: RemoteConfig, env: NodeJS.ProcessEnv, configFile: string): string {
  if (cfg.access_key_id && cfg.secret_access_key) return `access_key_id from ${configFile}`;
  if (cfg.profile) return `profile ${cfg.profile}`;
  if (env.AWS_PROFILE) return `AWS_PROFILE=${env.AWS_PROFILE}`;
  if (env.AWS_ACCESS_KEY_ID) return 'environment variables (AWS_ACCESS_KEY_ID)';
  return 'the default AWS credential chain';
}

const ACCESS_DENIED = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
]);
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EPROTO',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** Errors of servers that do not understand the SDK's newer checksum headers or aws-chunked uploads. */
const CHECKSUM_TROUBLE = /checksum|aws-chunked|x-amz-trailer|x-amz-content-sha256|STREAMING-/i;

interface SdkErrorShape {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
  errors?: unknown[];
}

/**
 * Turns an SDK failure into a one-line RemoteError naming the remote and its
 * url. Failures that concern every object (no bucket, no access, no
 * credentials, no connection) are `wide`; the rest name the object. No message
 * ever contains a secret: SDK text is passed through `redact`.
 */
export function translateS3Error(err: unknown, ctx: S3ErrorContext, action: string, oid?: Oid): RemoteError {
  if (err instanceof RemoteError) return err;
  const e = (typeof err === 'object' && err !== null ? err : {}) as SdkErrorShape;
  const name = e.name ?? '';
  const status = e.$metadata?.httpStatusCode;
  const where = `remote "${ctx.name}" (${ctx.url})`;
  const data = { remote: ctx.name, url: ctx.url, ...(oid ? { oid } : {}) };
  const wide = (code: ErrorCode, message: string) => new RemoteError(code, message, { wide: true, cause: err, data });

  if (name === 'CredentialsProviderError') {
    const detail = oneLine(e.message, ctx.redact);
    return wide(
      'REMOTE_NO_CREDENTIALS',
      `${where}: no AWS credentials found (${ctx.credentials}${detail ? `: ${detail}` : ''}); set access_key_id and secret_access_key for the remote in .tdv/config.local.yaml, export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile from ~/.aws/credentials (the remote's profile option or AWS_PROFILE)`,
    );
  }
  if (name === 'NoSuchBucket') {
    return wide('REMOTE_NOT_FOUND', `${where}: bucket ${ctx.bucket} does not exist${ctx.endpoint ? ` at ${ctx.endpoint}` : ''}; create it or fix the remote's url`);
  }
  if (name === 'InvalidBucketName') {
    return wide('REMOTE_NOT_FOUND', `${where}: "${ctx.bucket}" is not a valid bucket name; fix the remote's url`);
  }
  if (name === 'RequestTimeTooSkewed') {
    return wide('REMOTE_CLOCK_SKEW', `${where}: the request was refused because this machine's clock is off by more than 15 minutes; set the clock (e.g. enable NTP) and run the command again`);
  }
  if (name === 'AuthorizationHeaderMalformed' || name === 'PermanentRedirect' || name === 'IllegalLocationConstraintException') {
    return wide('REMOTE_WRONG_REGION', `${where}: the bucket is in another region (${name}); set it with \`tdv remote modify ${ctx.name} region REGION\``);
  }
  // A 403 with its own name on one object (an archived object, a per-key policy) concerns that object only.
  if (ACCESS_DENIED.has(name) || (status === 403 && (name === '' || name === 'Unknown' || name === 'Forbidden' || !oid))) {
    const why = name && name !== 'Unknown' && name !== 'Forbidden' ? ` (${name})` : '';
    return wide('REMOTE_ACCESS_DENIED', `${where}: access denied${why} using ${ctx.credentials}; check the credentials and that they may list, read and write ${ctx.url}`);
  }
  if (CHECKSUM_TROUBLE.test(`${name} ${e.message ?? ''}`) && (status === 400 || status === 501)) {
    return wide(
      'REMOTE_CHECKSUM_UNSUPPORTED',
      `${where}: the server rejected the request's checksum headers (${name || `HTTP ${status}`}); run \`tdv remote modify ${ctx.name} checksum when_required\``,
    );
  }
  const net = networkCode(err);
  if (net) {
    return wide('REMOTE_UNREACHABLE', `cannot reach ${ctx.endpoint ?? 'the S3 endpoint'} for remote "${ctx.name}" (${ctx.url}): ${net}; check the remote's endpointurl and your network`);
  }
  const what = name && name !== 'Error' && name !== 'Unknown' ? `${name}: ` : status ? `HTTP ${status}: ` : '';
  const detail = oneLine(e.message, ctx.redact);
  return new RemoteError('REMOTE_FAILED', `${where}: ${action} failed: ${what}${detail || 'unknown error'}`, { cause: err, data });
}

/** The network-level cause of a failure, if that is what it is: an errno code or "timed out". */
function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const x = e as SdkErrorShape;
    if (x.code && UNREACHABLE.has(x.code)) return x.code;
    // A connection that never opened concerns every request; an idle socket mid-transfer, only its object.
    if (x.name === 'TimeoutError' && /connect/i.test(x.message ?? '')) return 'timed out';
    const inner = x.errors?.[0] ?? x.cause; // AggregateError (several addresses tried) or a wrapped cause
    e = inner;
  }
  return undefined;
}

function oneLine(message: string | undefined, redact: readonly string[] = []): string {
  let s = (message ?? '').split('\n')[0]!.trim();
  if (s === 'UnknownError') return '';
  for (const secret of redact) if (secret) s = s.split(secret).join('***');
  return maskUrl(s);
}

/** The server refused an upload whose bytes did not match its Content-MD5 or checksum: altered in transit. */
function alteredOnTheWay(err: unknown): boolean {
  const name = (err as SdkErrorShape)?.name;
  return name === 'BadDigest' || name === 'XAmzContentChecksumMismatch' || name === 'XAmzContentSHA256Mismatch';
}

/** A failure worth another attempt: the server's (5xx, throttling) or the connection's. */
function transient(err: unknown): boolean {
  const e = err as SdkErrorShape & { $retryable?: unknown };
  const status = e?.$metadata?.httpStatusCode;
  return status === undefined || status >= 500 || status === 429 || e?.$retryable !== undefined || e?.name === 'RequestTimeout';
}

function emptyBody(): ObjectBody {
  return { size: 0, [Symbol.asyncIterator]: () => ({ next: async () => ({ done: true as const, value: undefined }) }) };
}

function isNotFound(err: unknown): boolean {
  const e = err as SdkErrorShape;
  if (e?.name === 'NoSuchBucket') return false;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}
