import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { cat } from '../../src/repo/cat.js';
import { get } from '../../src/repo/get.js';
import { ls } from '../../src/repo/ls.js';
import { rejectsWith, withRepo } from '../helpers/api.js';
import { makeRepo, read, tdv, tmpDir, write } from '../helpers/repo.js';
import { describeS3, S3_BUCKET, s3Available } from '../helpers/s3.js';
import { commitAt, isolateUserCache } from '../helpers/source.js';
import { PassThrough } from 'node:stream';

isolateUserCache();

/** The committed part of an S3 remote named `s3` (no credentials: they never go in config.yaml). */
function s3Yaml(prefix: string): string {
  return `core:\n  remote: s3\nremote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    endpointurl: ${s3Available()!.endpoint}\n    force_path_style: true\n    checksum: when_required\n`;
}

/** Credentials for remote `s3` at `url` (on the test server's endpoint) in `dir`'s config.local.yaml. */
function localKeys(dir: string, url: string, endpoint = s3Available()!.endpoint): void {
  write(
    dir,
    '.tdv/config.local.yaml',
    `remote:\n  s3:\n    url: ${url}\n    endpointurl: ${endpoint}\n    access_key_id: ${s3Available()!.accessKeyId}\n    secret_access_key: ${s3Available()!.secretAccessKey}\n`,
  );
}

describeS3('ls, cat and get of a repository whose remote is on S3', () => {
  // No credentials from the environment or a profile: only config.local.yaml may supply them.
  const saved: Record<string, string | undefined> = {};
  beforeAll(() => {
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE']) saved[k] = process.env[k];
    for (const k of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE']) delete process.env[k];
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/tdv-test-credentials';
    process.env.AWS_CONFIG_FILE = '/nonexistent/tdv-test-config';
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  async function s3Source(): Promise<{ dir: string; url: string }> {
    const dir = await makeRepo();
    const prefix = `registry-${randomBytes(6).toString('hex')}`;
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), s3Yaml(prefix));
    localKeys(dir, `s3://${S3_BUCKET}/${prefix}`);
    write(dir, 'data/trips.csv', 'id\n1\n');
    write(dir, 'images/a.png', 'A');
    expect((await tdv(dir, 'add', 'data/trips.csv', 'images')).code).toBe(0);
    await commitAt(dir, '2016-07-01T00:00:00Z', 'v1');
    const push = await tdv(dir, 'push');
    expect(push.code, push.stderr).toBe(0);
    return { dir, url: `s3://${S3_BUCKET}/${prefix}` };
  }

  it('reads with the credentials of this repository config.local.yaml for the same remote', async () => {
    const src = await s3Source();
    const here = await makeRepo();
    localKeys(here, src.url);
    await withRepo(here, async (repo) => {
      expect((await ls(repo, { url: src.dir, path: 'images' })).entries.map((e) => e.path)).toEqual(['a.png']);
      const out = new PassThrough();
      let text = '';
      out.on('data', (d) => (text += d));
      await cat(repo, { url: src.dir, path: 'data/trips.csv', rev: '@2016-07-31' }, out);
      expect(text).toBe('id\n1\n');
      const dest = fs.realpathSync(tmpDir());
      await get(repo, { url: src.dir, path: 'images', out: path.join(dest, 'imgs') }, dest);
      expect(read(dest, 'imgs/a.png')).toBe('A');
    });
  });

  it('without credentials, one line naming the source and its remote', async () => {
    const src = await s3Source();
    const here = await makeRepo();
    // Same name, another location: its keys are not handed to a bucket they were not given for.
    localKeys(here, `s3://${S3_BUCKET}/elsewhere`);
    await withRepo(here, async (repo) => {
      const err = await rejectsWith(get(repo, { url: src.dir, path: 'images' }, fs.realpathSync(tmpDir())), 'REMOTE_NO_CREDENTIALS');
      expect(err.message).toContain(src.dir);
      expect(err.message).toContain('"s3"');
      expect(err.message).not.toContain('\n');
    });
    // Same name and bucket, another endpoint: the keys are for that endpoint, not for the one the source names.
    localKeys(here, src.url, 'http://127.0.0.1:9');
    await withRepo(here, (repo) => rejectsWith(get(repo, { url: src.dir, path: 'images' }, fs.realpathSync(tmpDir())), 'REMOTE_NO_CREDENTIALS'));
  });
});
