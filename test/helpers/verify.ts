/**
 * Independent checks that no object anywhere is partial or wrong: every cache
 * object and every object on an S3 remote is read back and hashed here, with
 * nothing of tdv's own code, and compared with its name.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pLimit from 'p-limit';
import { expect } from 'vitest';
import { tdv } from './repo.js';
import { S3_BUCKET, S3RVER_KEY } from './s3.js';

const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

/** MD5 (hex) of every object in a cache: what an S3 server's ETag of each should be. */
export function cacheMd5s(root: string): Map<string, string> {
  const base = path.join(root, '.tdv', 'cache', 'files', 'sha256');
  const out = new Map<string, string>();
  for (const p of fs.readdirSync(base)) {
    for (const rest of fs.readdirSync(path.join(base, p)))
      out.set(
        p + rest,
        crypto
          .createHash('md5')
          .update(fs.readFileSync(path.join(base, p, rest)))
          .digest('hex'),
      );
  }
  return out;
}

/** True when `bytes` are what `oid` (`<hex>` or `<hex>.dir`) names. */
export function matches(oid: string, bytes: Buffer): boolean {
  return sha(bytes) === oid.slice(0, 64);
}

/**
 * Hashes every object in a repo's cache; fails the test on any whose bytes do
 * not match its name. Returns the objects (oid -> size) and the temp files
 * left in `.tdv/tmp` and beside objects (leftovers of an interrupted write).
 */
export function hashCache(root: string, cacheDir = path.join(root, '.tdv', 'cache')): { objects: Map<string, number>; leftovers: string[] } {
  const base = path.join(cacheDir, 'files', 'sha256');
  const objects = new Map<string, number>();
  const leftovers: string[] = [];
  if (fs.existsSync(base)) {
    for (const p of fs.readdirSync(base)) {
      for (const rest of fs.readdirSync(path.join(base, p))) {
        const file = path.join(base, p, rest);
        if (!/^[0-9a-f]{62}(\.dir)?$/.test(rest)) {
          leftovers.push(path.relative(root, file));
          continue;
        }
        const bytes = fs.readFileSync(file);
        expect(matches(p + rest, bytes), `cache object ${p + rest} is corrupt or partial (${bytes.length} bytes)`).toBe(true);
        objects.set(p + rest, bytes.length);
      }
    }
  }
  const tmp = path.join(root, '.tdv', 'tmp');
  if (fs.existsSync(tmp)) for (const n of fs.readdirSync(tmp)) if (n.startsWith('obj.')) leftovers.push(`.tdv/tmp/${n}`);
  return { objects, leftovers };
}

/** `tdv fsck --json` finds nothing wrong. */
export async function fsckOk(dir: string): Promise<void> {
  const r = await tdv(dir, 'fsck', '--json');
  expect(r.code, `fsck: ${r.stdout}${r.stderr}`).toBe(0);
  expect(JSON.parse(r.stdout).clean).toBe(true);
}

/** Looks at an S3 remote directly (not through tdv or any proxy) and hashes what it holds. */
export class RemoteInspector {
  private readonly client: S3Client;
  /** key -> ETag of objects already hashed and found right: unchanged ones need not be read again. */
  private readonly good = new Map<string, string>();

  constructor(endpoint: string) {
    this.client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  /** Every object under `prefix`, with its size and ETag. */
  async list(prefix: string): Promise<Map<string, { key: string; size: number; etag: string }>> {
    const out = new Map<string, { key: string; size: number; etag: string }>();
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/files/sha256/`, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        const parts = o.Key!.split('/');
        out.set(parts.at(-2)! + parts.at(-1)!, { key: o.Key!, size: o.Size ?? 0, etag: o.ETag ?? '' });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  /**
   * Checks every object on the remote not already found right (with the same
   * ETag); fails the test on any partial or wrong one, or one with a size other
   * than `expected` says. An object whose ETag (the server's MD5 of the bytes it
   * stored) equals `md5s` (the MD5 of the true content, computed by the test) is
   * right; any other is read back and SHA-256-hashed here. Returns how many were
   * checked and which expected ones are absent.
   */
  async verify(prefix: string, expected: ReadonlyMap<string, number>, md5s?: ReadonlyMap<string, string>): Promise<{ verified: number; missing: string[] }> {
    const listed = await this.list(prefix);
    const limit = pLimit(16);
    let verified = 0;
    await limit.map([...listed], async ([oid, o]) => {
      if (this.good.get(o.key) === o.etag) return;
      const md5 = md5s?.get(oid);
      if (md5 && o.etag.replace(/"/g, '') === md5 && o.size === expected.get(oid)) {
        this.good.set(o.key, o.etag);
        verified++;
        return;
      }
      const res = await this.client.send(new GetObjectCommand({ Bucket: S3_BUCKET, Key: o.key }));
      const bytes = Buffer.from(await res.Body!.transformToByteArray());
      expect(matches(oid, bytes), `remote object ${oid} is corrupt or partial (${bytes.length} bytes)`).toBe(true);
      if (expected.has(oid)) expect(bytes.length, `remote object ${oid}`).toBe(expected.get(oid));
      this.good.set(o.key, o.etag);
      verified++;
    });
    return { verified, missing: [...expected.keys()].filter((k) => !listed.has(k)) };
  }

  close(): void {
    this.client.destroy();
  }
}
