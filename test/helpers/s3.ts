import { afterAll, beforeAll, describe, inject } from 'vitest';
import { describeNeeding } from './needs.js';
import type { RemoteConfig } from '../../src/formats/config.js';

/** The bucket s3-server.mjs and ceph.sh create (and CI's servers have). */
export const S3_BUCKET = 'tdv-test';

/** s3rver knows only this key pair; it checks the key id but not v4 signatures. */
export const S3RVER_KEY = 'S3RVER';

/**
 * One S3 test server: `s3rver` (a dev dependency, lenient: it does not check
 * signatures, ignores If-None-Match and stores aws-chunked framing as data) or
 * `ceph` (Debian's radosgw, a real S3 implementation; see ceph.sh).
 */
export interface S3TestServer {
  kind: 's3rver' | 'ceph';
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
}

function provided(key: 's3Endpoint' | 's3SkipReason'): string {
  try {
    return inject(key) ?? '';
  } catch {
    return ''; // not under vitest's globalSetup
  }
}

function s3rver(): S3TestServer | undefined {
  const endpoint = process.env.TDV_TEST_S3_ENDPOINT || provided('s3Endpoint');
  return endpoint ? { kind: 's3rver', endpoint, bucket: S3_BUCKET, accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY } : undefined;
}

/** Ceph's radosgw, when TDV_TEST_CEPH_ENDPOINT, _KEY and _SECRET name one (.ci/run starts it with ceph.sh). */
function ceph(): S3TestServer | undefined {
  const { TDV_TEST_CEPH_ENDPOINT: endpoint, TDV_TEST_CEPH_KEY: accessKeyId, TDV_TEST_CEPH_SECRET: secretAccessKey } = process.env;
  return endpoint && accessKeyId && secretAccessKey ? { kind: 'ceph', endpoint, bucket: S3_BUCKET, accessKeyId, secretAccessKey } : undefined;
}

function cephSkipReason(): string | undefined {
  if (ceph()) return undefined;
  return 'no Ceph: TDV_TEST_CEPH_ENDPOINT, TDV_TEST_CEPH_KEY and TDV_TEST_CEPH_SECRET are not all set; run `test/helpers/ceph.sh start DIR PORT` and export the lines it prints';
}

/** The server the running describeS3 block is for (set while its body is collected and while its tests run). */
let current: S3TestServer | undefined;

/** The S3 test server of the enclosing describeS3 block; outside one, s3rver, when there is one (see global-setup.ts). */
export function s3Available(): S3TestServer | undefined {
  return current ?? s3rver();
}

/** Why there is no s3rver, or undefined when there is one. */
export function s3SkipReason(): string | undefined {
  if (s3rver()) return undefined;
  return provided('s3SkipReason') || 'no S3 test server: TDV_TEST_S3_ENDPOINT is unset and globalSetup started none';
}

function server(): S3TestServer {
  const s3 = s3Available();
  if (!s3) throw new Error(s3SkipReason());
  return s3;
}

/** The current server's keys as the AWS SDK's environment variables (the standard credential chain, as in CI). */
export function s3Env(): { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string } {
  const s3 = server();
  return { AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
}

/** Options for an `S3Client` that talks to the current server directly (to look at or tamper with what tdv stored). */
export function s3ClientConfig() {
  const s3 = server();
  return {
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED' as const,
    responseChecksumValidation: 'WHEN_REQUIRED' as const,
  };
}

/** A remote config for `s3://tdv-test/<prefix>` on the current server. */
export function s3RemoteConfig(prefix: string, over: Partial<RemoteConfig> = {}): RemoteConfig {
  const s3 = server();
  return {
    url: `s3://${S3_BUCKET}/${prefix}`,
    endpointurl: s3.endpoint,
    force_path_style: true,
    // s3rver predates the SDK's default CRC32 checksums on uploads.
    checksum: 'when_required',
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
    ...over,
  };
}

/** `describe(kind, body)` with `current` set to `s3` while the body is collected and while its tests run. */
function describeOn(s3: S3TestServer | undefined, body: () => void): () => void {
  return () => {
    if (!s3) {
      body(); // skipped: collected only to list its tests, which never run
      return;
    }
    beforeAll(() => {
      current = s3;
    });
    afterAll(() => {
      current = undefined;
    });
    const outer = current;
    current = s3;
    try {
      body();
    } finally {
      current = outer;
    }
  };
}

/**
 * `describe` for tests that need S3: the body runs once per S3 test server, in
 * a block named "s3rver" and one named "ceph", with s3Available(),
 * s3RemoteConfig(), s3Env() and s3ClientConfig() giving that server. A missing server skips its block locally, saying why, and
 * fails it under CI=true (see needs.ts).
 */
export function describeS3(name: string, body: () => void): void {
  describe(name, () => {
    const s3 = s3rver();
    describeNeeding('S3', s3SkipReason(), 's3rver', describeOn(s3, body));
    const c = ceph();
    describeNeeding('Ceph', cephSkipReason(), 'ceph', describeOn(c, body));
  });
}

/**
 * `describe` for tests that need s3rver itself, not any S3 (a comment at each
 * call site says what about s3rver they rely on).
 */
export function describeS3rver(name: string, body: () => void): void {
  describeNeeding('S3', s3SkipReason(), name, describeOn(s3rver(), body));
}
