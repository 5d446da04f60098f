import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import type { Oid } from '../../src/formats/oid.js';
import { RemoteError } from '../../src/errors.js';
import type { RemoteConfig } from '../../src/formats/config.js';
import type { Remote } from '../../src/remote/remote.js';
import { TokenBucket } from '../../src/remote/rate.js';
import { createS3Remote, credentialSource, partSizeFor, translateS3Error, type S3ErrorContext } from '../../src/remote/s3.js';
import { tmpDir } from '../helpers/repo.js';
import { describeS3, s3Available, s3ClientConfig, s3RemoteConfig, S3_BUCKET } from '../helpers/s3.js';
import { remoteContract } from './remote.contract.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A direct client for each test server (by endpoint), to look at and tamper with what the remote stored. */
const admins = new Map<string, S3Client>();
function adminClient(): S3Client {
  const config = s3ClientConfig();
  let admin = admins.get(config.endpoint);
  if (!admin) admins.set(config.endpoint, (admin = new S3Client(config)));
  return admin;
}

/** Prefixes the current server's block wrote under, removed at its end so a reused server's bucket stays small. */
let used: string[] = [];
const uniquePrefix = (what: string) => {
  const p = `${what}-${crypto.randomUUID()}`;
  used.push(p);
  return p;
};

async function removeUsed(): Promise<void> {
  const client = adminClient();
  for (const prefix of used) {
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/`, ContinuationToken: token }));
      const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket: S3_BUCKET, Delete: { Objects: keys, Quiet: true } }));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }
  used = [];
}

afterAll(() => {
  for (const admin of admins.values()) admin.destroy();
});

/** A remote on its own prefix of the test bucket, closed when the test ends. */
async function s3Remote(prefix = uniquePrefix('t'), over: Partial<RemoteConfig> = {}, opts: { listPageSize?: number } = {}, bucket = S3_BUCKET): Promise<Remote> {
  const remote = await createS3Remote('s3test', s3RemoteConfig(prefix, over), { bucket, prefix }, opts);
  onTestFinished(() => remote.close());
  return remote;
}

async function rejection(p: Promise<unknown>): Promise<RemoteError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RemoteError);
  return err as RemoteError;
}

function file(content: Buffer | string): { path: string; size: number } {
  const p = path.join(tmpDir('tdv-s3-'), 'f');
  fs.writeFileSync(p, content);
  return { path: p, size: Buffer.byteLength(content) };
}

describeS3('S3 remote', () => {
  afterAll(removeUsed);

  remoteContract('s3', async () => {
    const prefix = uniquePrefix('c');
    const remote = await s3Remote(prefix);
    return {
      remote,
      async corrupt(oid, bytes) {
        const Key = `${prefix}/files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`;
        await adminClient().send(new PutObjectCommand({ Bucket: S3_BUCKET, Key, Body: bytes }));
      },
    };
  });

  it('stores objects at <prefix>/files/sha256/ab/cdef..., the cache layout', async () => {
    const prefix = uniquePrefix('layout');
    const remote = await s3Remote(prefix);
    const f = file('layout');
    const oid = sha256('layout');
    await remote.put(oid, f.path, f.size);
    await remote.put(`${oid}.dir`, f.path, f.size);
    const res = await adminClient().send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/` }));
    expect(res.Contents?.map((o) => o.Key).sort()).toEqual([`${prefix}/files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`, `${prefix}/files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}.dir`]);
    expect(remote.url).toBe(`s3://${S3_BUCKET}/${prefix}`);
  });

  it('a file of 8 MiB or more goes up in parts, reporting progress as each part lands', async () => {
    const remote = await s3Remote();
    const content = crypto.randomBytes((20 << 20) + 5);
    const f = file(content);
    const calls: number[] = [];
    await remote.put(sha256(content), f.path, f.size, (n) => calls.push(n));
    expect(calls.length).toBeGreaterThanOrEqual(3); // 8 + 8 + 4 MiB
    expect(calls.reduce((a, b) => a + b, 0)).toBe(content.length);
  });

  it.each([
    ['a small', 1000],
    ['a multipart', 9 << 20],
  ])('round-trips %s file with the default checksum setting (when_supported)', async (_what, size) => {
    const remote = await s3Remote(uniquePrefix('crc'), { checksum: undefined });
    const content = crypto.randomBytes(size);
    const f = file(content);
    await remote.put(sha256(content), f.path, f.size);
    const chunks: Buffer[] = [];
    for await (const c of await remote.get(sha256(content))) chunks.push(Buffer.from(c));
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });

  it.each([
    ['small', 10],
    ['multipart', 9 << 20],
  ])('an unreadable %s source file fails as a local file error, not a remote one', async (_what, size) => {
    const remote = await s3Remote();
    const missing = path.join(tmpDir('tdv-s3-'), 'gone');
    const err = await remote.put(sha256('gone'), missing, size).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).not.toBeInstanceOf(RemoteError);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(await remote.has(sha256('gone'))).toBe(false);
  });

  it('ignores keys under files/sha256 that are not objects', async () => {
    const prefix = uniquePrefix('junk');
    const remote = await s3Remote(prefix);
    const oid = sha256('real');
    const f = file('real');
    await remote.put(oid, f.path, f.size);
    for (const Key of [`${prefix}/files/sha256/${oid.slice(0, 2)}/not-an-oid`, `${prefix}/files/sha256/readme.txt`]) {
      await adminClient().send(new PutObjectCommand({ Bucket: S3_BUCKET, Key, Body: 'x' }));
    }
    expect(await remote.listPrefix(oid.slice(0, 2))).toEqual([oid]);
    const all: Oid[] = [];
    for await (const o of remote.list()) all.push(o);
    expect(all).toEqual([oid]);
  });

  it('pages listings with a small page size', async () => {
    const remote = await s3Remote(uniquePrefix('pages'), {}, { listPageSize: 3 });
    const f = file('x');
    const oids = Array.from({ length: 10 }, (_, i) => sha256(`page ${i}`));
    await Promise.all(oids.map((oid) => remote.put(oid, f.path, f.size)));
    const all: Oid[] = [];
    for await (const o of remote.list()) all.push(o);
    expect(all.sort()).toEqual([...oids].sort());
  });

  it('removes more than one DeleteObjects batch (1,000 keys) at once', async () => {
    const prefix = uniquePrefix('rm');
    const remote = await s3Remote(prefix);
    const f = file('x');
    const oids = Array.from({ length: 1005 }, (_, i) => sha256(`rm ${i}`));
    const queue = [...oids];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let o = queue.pop(); o; o = queue.pop()) await remote.put(o, f.path, f.size);
      }),
    );
    expect(await remote.remove(oids)).toEqual([]);
    const left: Oid[] = [];
    for await (const o of remote.list()) left.push(o);
    expect(left).toEqual([]);
  });

  it.each([
    ['when_required (Content-MD5)', 'when_required' as const],
    ['when_supported (x-amz-checksum-sha256)', undefined],
  ])('under a rate limit, uploads stream through the limiter and arrive whole, checksum %s; every transfer pays', async (_what, checksum) => {
    const rate = new TokenBucket(4 << 20); // burst 1 MiB
    const remote = await createS3Remote('s3test', s3RemoteConfig(uniquePrefix('rate'), { checksum }), { bucket: S3_BUCKET, prefix: '' }, { rate });
    onTestFinished(() => remote.close());
    const small = crypto.randomBytes((2 << 20) + 11); // one PutObject
    const big = crypto.randomBytes((9 << 20) + 5); // multipart
    const t0 = performance.now();
    const f = file(small);
    await remote.put(sha256(small), f.path, f.size);
    await remote.putKey(`packs/${sha256(big)}.pack`, { file: file(big).path });
    await remote.putKey('index/x.json.gz', { data: small });
    const up = small.length * 2 + big.length;
    expect((performance.now() - t0) / 1000).toBeGreaterThanOrEqual((up - rate.burst) / rate.rate);
    const read = async (body: AsyncIterable<Uint8Array>) => {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(Buffer.from(c));
      return Buffer.concat(chunks);
    };
    const t1 = performance.now();
    expect((await read(await remote.get(sha256(small)))).equals(small)).toBe(true);
    expect((await read(await remote.getKey(`packs/${sha256(big)}.pack`, { start: 1 << 20, end: 9 << 20 }))).equals(big.subarray(1 << 20, 9 << 20))).toBe(true);
    expect((performance.now() - t1) / 1000).toBeGreaterThanOrEqual((small.length + (8 << 20) - rate.burst) / rate.rate);
  });

  it('wrong credentials: REMOTE_ACCESS_DENIED, wide, naming their source and never the secret', async () => {
    // Both servers reject an unknown key id (InvalidAccessKeyId, 403; a bare 403 for HEAD).
    const secret = 'TOP-SECRET-do-not-print-1234';
    const remote = await s3Remote(uniquePrefix('denied'), { access_key_id: 'WRONG', secret_access_key: secret });
    const f = file('denied');
    const calls = [() => remote.has(sha256('denied')), () => remote.put(sha256('denied'), f.path, f.size), () => remote.listPrefix('ab'), () => remote.get(sha256('denied'))];
    for (const call of calls) {
      const err = await rejection(call());
      expect(err.code).toBe('REMOTE_ACCESS_DENIED');
      expect(err.wide).toBe(true);
      expect(err.message).toContain('access_key_id from .tdv/config.local.yaml');
      expect(err.message).toContain('remote "s3test"');
      expect(err.message).toContain(`s3://${S3_BUCKET}/denied-`);
      expect(err.message).not.toContain(secret);
      expect(err.message).not.toContain('\n');
      expect(JSON.stringify(err.data)).not.toContain(secret);
    }
  });

  it('a missing bucket: REMOTE_NOT_FOUND, wide, from has as well as put and list', async () => {
    const remote = await s3Remote('p', {}, {}, 'tdv-no-such-bucket');
    const f = file('nb');
    const calls = [() => remote.has(sha256('nb')), () => remote.put(sha256('nb'), f.path, f.size), () => remote.listPrefix('ab'), () => remote.get(sha256('nb'))];
    for (const call of calls) {
      const err = await rejection(call());
      expect(err.code).toBe('REMOTE_NOT_FOUND');
      expect(err.wide).toBe(true);
      expect(err.message).toContain('bucket tdv-no-such-bucket does not exist');
      expect(err.message).toContain('s3://tdv-no-such-bucket/p');
    }
  });

  it('no credentials anywhere: REMOTE_NO_CREDENTIALS, wide, saying how to provide them', async () => {
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_') && k !== 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED') vi.stubEnv(k, undefined);
    const empty = tmpDir('tdv-noaws-');
    vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
    vi.stubEnv('AWS_SHARED_CREDENTIALS_FILE', path.join(empty, 'credentials'));
    vi.stubEnv('AWS_CONFIG_FILE', path.join(empty, 'config'));
    onTestFinished(() => {
      vi.unstubAllEnvs();
    });
    const remote = await s3Remote(uniquePrefix('nocreds'), { access_key_id: undefined, secret_access_key: undefined });
    const err = await rejection(remote.has(sha256('nocreds')));
    expect(err.code).toBe('REMOTE_NO_CREDENTIALS');
    expect(err.wide).toBe(true);
    expect(err.message).toContain('the default AWS credential chain');
    expect(err.message).toContain('AWS_ACCESS_KEY_ID');
    expect(err.message).not.toContain('\n');
  });
});

describe('S3 remote without a server', () => {
  it('an unreachable endpoint: REMOTE_UNREACHABLE, wide, within a few seconds', async () => {
    const cfg: RemoteConfig = { url: 's3://b/p', endpointurl: 'http://127.0.0.1:1', force_path_style: true, access_key_id: 'k', secret_access_key: 's3cr3t-value' };
    const remote = await createS3Remote('far', cfg, { bucket: 'b', prefix: 'p' });
    onTestFinished(() => remote.close());
    const t0 = Date.now();
    const err = await rejection(remote.has(sha256('far')));
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.code).toBe('REMOTE_UNREACHABLE');
    expect(err.wide).toBe(true);
    expect(err.message).toBe('cannot reach http://127.0.0.1:1 for remote "far" (s3://b/p): ECONNREFUSED; check the remote\'s endpointurl and your network');
  });

  it('an empty range is an empty body without a request; a bad key is refused before any', async () => {
    const cfg: RemoteConfig = { url: 's3://b/p', endpointurl: 'http://127.0.0.1:1', force_path_style: true, access_key_id: 'k', secret_access_key: 's' };
    const remote = await createS3Remote('far', cfg, { bucket: 'b', prefix: 'p' });
    onTestFinished(() => remote.close());
    const body = await remote.getKey('packs/x.pack', { start: 7, end: 7 });
    expect(body.size).toBe(0);
    for await (const _ of body) throw new Error('an empty body yielded bytes');
    for (const call of [() => remote.getKey('../x'), () => remote.putKey('a//b', { data: Buffer.from('x') }), () => remote.listKeys('/abs'), () => remote.deleteKeys(['ok', 'x/./y'])]) {
      expect((await rejection(call())).code).toBe('BAD_KEY');
    }
  });

  it('parts are at least 8 MiB and never more than 10,000', () => {
    expect(partSizeFor(20 << 20)).toBe(8 << 20);
    const big = 200 * 2 ** 30; // 200 GiB
    expect(partSizeFor(big) % (1 << 20)).toBe(0);
    expect(Math.ceil(big / partSizeFor(big))).toBeLessThanOrEqual(10_000);
  });

  it('names the credentials in use by where they come from, never by value', () => {
    const base: RemoteConfig = { url: 's3://b' };
    const cf = '.tdv/config.local.yaml';
    expect(credentialSource({ ...base, access_key_id: 'AKIA', secret_access_key: 'sec' }, {}, cf)).toBe('access_key_id from .tdv/config.local.yaml');
    // Only one half of a key pair: the SDK's chain is used.
    expect(credentialSource({ ...base, access_key_id: 'AKIA' }, {}, cf)).toBe('the default AWS credential chain');
    expect(credentialSource({ ...base, profile: 'ci' }, { AWS_ACCESS_KEY_ID: 'x' }, cf)).toBe('profile ci');
    // The SDK prefers a profile named in AWS_PROFILE to keys in the environment.
    expect(credentialSource(base, { AWS_PROFILE: 'dev', AWS_ACCESS_KEY_ID: 'x' }, cf)).toBe('AWS_PROFILE=dev');
    expect(credentialSource(base, { AWS_ACCESS_KEY_ID: 'x' }, cf)).toBe('environment variables (AWS_ACCESS_KEY_ID)');
    expect(credentialSource(base, {}, cf)).toBe('the default AWS credential chain');
  });

  describe('error translation (real SDK error shapes)', () => {
    const ctx: S3ErrorContext = { name: 'origin', url: 's3://bkt/data', bucket: 'bkt', credentials: 'profile ci', redact: ['SECRETKEY', 'AKIDEXAMPLE'] };
    const sdkError = (name: string, status: number, message: string) => new S3ServiceException({ name, $fault: status < 500 ? 'client' : 'server', $metadata: { httpStatusCode: status }, message });
    const oid = sha256('x');

    it.each([
      ['AccessDenied', 403],
      ['SignatureDoesNotMatch', 403],
      ['InvalidAccessKeyId', 403],
      ['ExpiredToken', 400],
      ['Unknown', 403], // HEAD: no body, only the status
    ])('%s (%i) is REMOTE_ACCESS_DENIED, wide', (name, status) => {
      const err = translateS3Error(sdkError(name, status, 'UnknownError'), ctx, `checking object ${oid}`, oid);
      expect(err.code).toBe('REMOTE_ACCESS_DENIED');
      expect(err.wide).toBe(true);
      expect(err.message).toMatch(/^remote "origin" \(s3:\/\/bkt\/data\): access denied.* using profile ci; /);
    });

    it('NoSuchBucket is REMOTE_NOT_FOUND, wide', () => {
      const err = translateS3Error(sdkError('NoSuchBucket', 404, 'The specified bucket does not exist'), ctx, 'listing');
      expect(err).toMatchObject({ code: 'REMOTE_NOT_FOUND', wide: true });
      expect(err.message).toBe('remote "origin" (s3://bkt/data): bucket bkt does not exist; create it or fix the remote\'s url');
    });

    it('CredentialsProviderError is REMOTE_NO_CREDENTIALS, wide', () => {
      const e = Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' });
      const err = translateS3Error(e, ctx, 'checking');
      expect(err).toMatchObject({ code: 'REMOTE_NO_CREDENTIALS', wide: true });
      expect(err.message).toContain('(profile ci: Could not load credentials from any providers)');
    });

    it.each([
      ['a refused connection', Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:9000'), { code: 'ECONNREFUSED', syscall: 'connect' }), 'ECONNREFUSED'],
      ['an unknown host', Object.assign(new Error('getaddrinfo ENOTFOUND minio.invalid'), { code: 'ENOTFOUND' }), 'ENOTFOUND'],
      ['several addresses refused', Object.assign(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], ''), {}), 'ECONNREFUSED'],
      ['a connection timeout', Object.assign(new Error('Socket timed out without establishing a connection within 5000 ms'), { name: 'TimeoutError' }), 'timed out'],
    ])('%s is REMOTE_UNREACHABLE, wide', (_what, e, shown) => {
      const err = translateS3Error(e, { ...ctx, endpoint: 'http://minio:9000' }, 'checking');
      expect(err).toMatchObject({ code: 'REMOTE_UNREACHABLE', wide: true });
      expect(err.message).toBe(`cannot reach http://minio:9000 for remote "origin" (s3://bkt/data): ${shown}; check the remote's endpointurl and your network`);
    });

    it('any other failure concerns one object: not wide, naming it, secrets redacted, one line', () => {
      const err = translateS3Error(sdkError('InternalError', 500, 'We encountered an internal error (key AKIDEXAMPLE, secret SECRETKEY).\nPlease try again.'), ctx, `uploading object ${oid}`, oid);
      expect(err.code).toBe('REMOTE_FAILED');
      expect(err.wide).toBe(false);
      expect(err.data).toMatchObject({ oid });
      expect(err.message).toBe(`remote "origin" (s3://bkt/data): uploading object ${oid} failed: InternalError: We encountered an internal error (key ***, secret ***).`);
    });
  });

  describe('no SDK warning noise', () => {
    const childEnv = () => {
      const env: Record<string, string | undefined> = { ...process.env };
      delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED; // this worker has it set by importing s3.ts
      return env;
    };
    const script = (body: string) => ['--input-type=module', '-e', body];

    it('the bare SDK does warn on this Node (so the next test can see a warning)', async (t) => {
      if (Number(process.versions.node.split('.')[0]) >= 22) t.skip('the SDK only warns on Node < 22');
      const r = await execa(process.execPath, script(`const { S3Client } = await import('@aws-sdk/client-s3'); new S3Client({ region: 'us-east-1' }).destroy();`), {
        cwd: ROOT,
        env: childEnv(),
        extendEnv: false,
        reject: false,
      });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain('NodeVersionSupportWarning');
    });

    it('importing dist/remote/s3.js and using a remote prints nothing on stderr', async (t) => {
      const built = path.join(ROOT, 'dist/remote/s3.js');
      const sources = ['src/remote/s3.ts', 'src/remote/s3-env.ts'].map((f) => fs.statSync(path.join(ROOT, f)).mtimeMs);
      const st = fs.statSync(built, { throwIfNoEntry: false });
      if (!st || st.mtimeMs < Math.max(...sources)) {
        const why = `${built} is missing or older than its sources; run \`npm run build\``;
        if (process.env.CI === 'true') throw new Error(why);
        console.warn(`skipping: ${why}`);
        t.skip(why);
      }
      const s3 = s3Available();
      const cfg: RemoteConfig = s3 ? s3RemoteConfig('warn') : { url: 's3://b/p', endpointurl: 'http://127.0.0.1:1', force_path_style: true, access_key_id: 'k', secret_access_key: 's' };
      const body = `const { createS3Remote } = await import(${JSON.stringify(pathToFileURL(built).href)});
const r = await createS3Remote('w', ${JSON.stringify(cfg)}, { bucket: ${JSON.stringify(s3 ? S3_BUCKET : 'b')}, prefix: 'warn' });
await r.has('${sha256('warn')}').catch(() => {});
r.close();`;
      const r = await execa(process.execPath, script(body), { cwd: ROOT, env: childEnv(), extendEnv: false, reject: false });
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toBe('');
    });
  });
});
