/**
 * Byte exchange for jobs that run where tdv's cache is not (Kubernetes): the
 * job's containers fetch inputs and return outputs themselves, over presigned
 * URLs on the repository's S3 remote, so no credential ever enters them.
 *
 *   <prefix>/exchange/objects/<sha256>        inputs, content-addressed: uploaded
 *                                             once, reused by every later job
 *   <prefix>/exchange/jobs/<job id>/<name>    one job's output slots: written by
 *                                             the job (presigned POST or PUT), read
 *                                             back by tdv, then removed
 *
 * These are raw keys beside the remote's own layout (files/, packs/, index/,
 * runs/, repos/), never read as objects: `gc --cloud` and the packed layout
 * list only their own directories, so they neither count nor delete these
 * (a Job still running elsewhere may be about to fetch an input). Slots are
 * removed once read; a killed run's slots and old inputs stay until removed
 * by hand (`aws s3 rm --recursive s3://bucket/prefix/exchange/`).
 */
import { createHash, createHmac } from 'node:crypto';
import type { Readable } from 'node:stream';
import { HeadObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import pLimit from 'p-limit';
import type { JobExchange, JobFile } from '../stages/job.js';
import type { S3Remote } from './s3.js';
import { RemoteError } from '../errors.js';

/** How long a presigned URL stays valid: long enough for a Job to wait for a node and run for a day. */
export const URL_SECONDS = 24 * 3600;
/** Inputs at most this many are checked one HEAD each; more are checked by one listing of exchange/objects. */
const HEAD_AT_MOST = 64;
/** Uploads and HEADs in flight at once. */
const AT_ONCE = 8;
/** The largest output slot a job may fill (S3's limit for one POST is 5 GiB). */
const SLOT_MAX_BYTES = 5 * 1024 ** 3;

const OID_RE = /^[0-9a-f]{64}$/;
const JOB_RE = /^[a-z0-9][a-z0-9.-]{0,62}$/;
const NAME_RE = /^[A-Za-z0-9._-]{1,100}$/;

/** The raw key of an input's bytes. */
export function exchangeObjectKey(sha256: string): string {
  if (!OID_RE.test(sha256)) throw new RangeError(`not a sha256: ${sha256}`);
  return `exchange/objects/${sha256}`;
}

/** The raw key of output slot `name` of job `job`. */
export function exchangeSlotKey(job: string, name: string): string {
  if (!JOB_RE.test(job) || !NAME_RE.test(name) || name === '.' || name === '..') throw new RangeError(`not a job slot: ${job}/${name}`);
  return `exchange/jobs/${job}/${name}`;
}

/** A JobExchange over an S3 remote (the raw one, under the packed layout if any). */
export class S3Exchange implements JobExchange {
  constructor(
    private readonly remote: S3Remote,
    private readonly seconds = URL_SECONDS,
  ) {}

  async inputUrls(files: readonly JobFile[], open: (f: JobFile) => Readable, signal?: AbortSignal): Promise<Map<string, string>> {
    const bySha = new Map<string, JobFile>();
    for (const f of files) if (!bySha.has(f.sha256)) bySha.set(f.sha256, f);
    const have = await this.present([...bySha.values()]);
    const limit = pLimit(AT_ONCE);
    await Promise.all(
      [...bySha.values()]
        .filter((f) => !have.has(f.sha256))
        .map((f) =>
          limit(async () => {
            signal?.throwIfAborted();
            await this.upload(f, open(f), signal);
          }),
        ),
    );
    const urls = new Map<string, string>();
    for (const sha of bySha.keys()) urls.set(sha, await this.sign(exchangeObjectKey(sha), 'GET'));
    return urls;
  }

  async outputSlot(job: string, name: string) {
    const key = exchangeSlotKey(job, name);
    const a = this.remote.exchangeAccess(key);
    return {
      url: await this.sign(key, 'PUT'),
      form: await this.postForm(key),
      read: async (): Promise<Readable | undefined> => {
        try {
          const res = await a.client.send(new GetObjectCommand({ Bucket: a.bucket, Key: a.Key }));
          return res.Body as Readable;
        } catch (err) {
          if (isNotFound(err)) return undefined;
          throw a.fail(err, `downloading ${key}`);
        }
      },
      remove: async (): Promise<void> => {
        const failed = await this.remote.deleteKeys([key]);
        if (failed.length) throw new RemoteError('REMOTE_FAILED', `remote "${this.remote.name}": could not delete ${this.remote.url}/${key}`);
      },
    };
  }

  /** The inputs already in the exchange with the right size (a short or damaged upload is sent again). */
  private async present(files: JobFile[]): Promise<Set<string>> {
    const have = new Set<string>();
    if (files.length > HEAD_AT_MOST) {
      const sizes = new Map(files.map((f) => [exchangeObjectKey(f.sha256), f]));
      for (const k of await this.remote.listKeys('exchange/objects')) {
        const f = sizes.get(k.key);
        if (f && f.size === k.size) have.add(f.sha256);
      }
      return have;
    }
    const limit = pLimit(AT_ONCE);
    await Promise.all(
      files.map((f) =>
        limit(async () => {
          const a = this.remote.exchangeAccess(exchangeObjectKey(f.sha256));
          try {
            const res = await a.client.send(new HeadObjectCommand({ Bucket: a.bucket, Key: a.Key }));
            if (res.ContentLength === f.size) have.add(f.sha256);
          } catch (err) {
            if (!isNotFound(err)) throw a.fail(err, `checking ${exchangeObjectKey(f.sha256)}`);
          }
        }),
      ),
    );
    return have;
  }

  /** Uploads an input's bytes, refusing them (and leaving nothing) when they do not hash to its sha256. */
  private async upload(f: JobFile, body: Readable, signal?: AbortSignal): Promise<void> {
    const key = exchangeObjectKey(f.sha256);
    const a = this.remote.exchangeAccess(key);
    const hash = createHash('sha256');
    let size = 0;
    const checked = body.map((chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
      return chunk;
    });
    try {
      if (f.size === 0) {
        await a.client.send(new PutObjectCommand({ Bucket: a.bucket, Key: a.Key, Body: Buffer.alloc(0), ContentLength: 0 }), { abortSignal: signal });
      } else {
        // Upload (lib-storage) buffers parts, so the SDK never sends a stream of unknown
        // length (aws-chunked framing, which s3rver stores as data and Ceph refuses).
        await new Upload({ client: a.client, params: { Bucket: a.bucket, Key: a.Key, Body: checked }, leavePartsOnError: false, abortController: abortOf(signal) }).done();
      }
    } catch (err) {
      body.destroy();
      throw a.fail(err, `uploading ${key}`);
    }
    const got = hash.digest('hex');
    if (size !== f.size || (f.size > 0 && got !== f.sha256)) {
      await this.remote.deleteKeys([key]);
      throw new RemoteError('REMOTE_FAILED', `input ${f.path}: its cached bytes (${size} bytes, sha256 ${got}) are not ${f.sha256}; run \`tdv fsck\``);
    }
  }

  private async sign(key: string, method: 'GET' | 'PUT'): Promise<string> {
    const a = this.remote.exchangeAccess(key);
    const cmd = method === 'GET' ? new GetObjectCommand({ Bucket: a.bucket, Key: a.Key }) : new PutObjectCommand({ Bucket: a.bucket, Key: a.Key });
    try {
      return await getSignedUrl(a.client, cmd, { expiresIn: this.seconds });
    } catch (err) {
      throw a.fail(err, `signing a URL for ${key}`);
    }
  }

  /**
   * An S3 POST upload form for exactly `key` (browser-based upload, SigV4 POST
   * policy, AWS's "Authenticating Requests in Browser-Based Uploads"): the
   * policy names the bucket and the key, so the form can write nothing else.
   * Signed here with node:crypto (five HMACs) rather than with another SDK
   * package. The bucket's URL is taken from a presigned URL of the key, so
   * path-style and virtual-hosted endpoints both come out right.
   */
  private async postForm(key: string): Promise<{ url: string; fields: Record<string, string> }> {
    const a = this.remote.exchangeAccess(key);
    let creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    let region: string;
    try {
      creds = await a.client.config.credentials();
      region = await a.client.config.region();
    } catch (err) {
      throw a.fail(err, `signing an upload form for ${key}`);
    }
    const signed = new URL(await this.sign(key, 'GET'));
    const url = new URL(signed.origin);
    const path = signed.pathname;
    const tail = `/${a.Key}`;
    url.pathname = path.endsWith(tail) ? path.slice(0, -tail.length) || '/' : '/';
    const now = new Date();
    const amzDate = now
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z');
    const day = amzDate.slice(0, 8);
    const credential = `${creds.accessKeyId}/${day}/${region}/s3/aws4_request`;
    const fields: Record<string, string> = {
      key: a.Key,
      'x-amz-algorithm': 'AWS4-HMAC-SHA256',
      'x-amz-credential': credential,
      'x-amz-date': amzDate,
      ...(creds.sessionToken ? { 'x-amz-security-token': creds.sessionToken } : {}),
    };
    const policy = {
      expiration: new Date(now.getTime() + this.seconds * 1000).toISOString(),
      conditions: [{ bucket: a.bucket }, ...Object.entries(fields).map(([k, v]) => ({ [k]: v })), ['content-length-range', 0, SLOT_MAX_BYTES]],
    };
    const policy64 = Buffer.from(JSON.stringify(policy)).toString('base64');
    const hmac = (k: Buffer | string, s: string) => createHmac('sha256', k).update(s).digest();
    const signingKey = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), region), 's3'), 'aws4_request');
    return { url: url.toString(), fields: { ...fields, policy: policy64, 'x-amz-signature': createHmac('sha256', signingKey).update(policy64).digest('hex') } };
  }
}

function abortOf(signal: AbortSignal | undefined): AbortController | undefined {
  if (!signal) return undefined;
  const c = new AbortController();
  if (signal.aborted) c.abort();
  else signal.addEventListener('abort', () => c.abort(), { once: true });
  return c;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  if (e?.name === 'NoSuchBucket') return false;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}
