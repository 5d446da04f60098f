import { inject } from 'vitest';
import { describeNeeding } from './needs.js';
import type { RemoteConfig } from '../../src/formats/config.js';

/** The bucket s3-server.mjs creates (and CI's server has). */
export const S3_BUCKET = 'tdv-test';

/** s3rver knows only this key pair; it checks the key id but not v4 signatures. */
export const S3RVER_KEY = 'S3RVER';

function provided(key: 's3Endpoint' | 's3SkipReason'): string {
  try {
    return inject(key) ?? '';
  } catch {
    return ''; // not under vitest's globalSetup
  }
}

/** The S3 test server, when there is one (see global-setup.ts). */
export function s3Available(): { endpoint: string; bucket: string } | undefined {
  const endpoint = process.env.TDV_TEST_S3_ENDPOINT || provided('s3Endpoint');
  return endpoint ? { endpoint, bucket: S3_BUCKET } : undefined;
}

/** Why there is no S3 test server, or undefined when there is one. */
export function s3SkipReason(): string | undefined {
  if (s3Available()) return undefined;
  return provided('s3SkipReason') || 'no S3 test server: TDV_TEST_S3_ENDPOINT is unset and globalSetup started none';
}

/** A remote config for `s3://tdv-test/<prefix>` on the test server. */
export function s3RemoteConfig(prefix: string, over: Partial<RemoteConfig> = {}): RemoteConfig {
  const s3 = s3Available();
  if (!s3) throw new Error(s3SkipReason());
  return {
    url: `s3://${S3_BUCKET}/${prefix}`,
    endpointurl: s3.endpoint,
    force_path_style: true,
    // s3rver predates the SDK's default CRC32 checksums on uploads.
    checksum: 'when_required',
    access_key_id: S3RVER_KEY,
    secret_access_key: S3RVER_KEY,
    ...over,
  };
}

/** `describe` for tests that need S3: skips locally without it, fails under CI=true (see needs.ts). */
export function describeS3(name: string, body: () => void): void {
  describeNeeding('S3', s3SkipReason(), name, body);
}
