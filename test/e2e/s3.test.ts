import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { git, read, TDV_BIN, tdvBin, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newDir, newRepo, objPath, sha } from '../helpers/expect.js';
import { describeS3, S3_BUCKET, s3Available, s3ClientConfig, s3Env } from '../helpers/s3.js';

/** Credentials from the environment, as in CI: the standard AWS chain, no secret in any file (for the server under test). */
const ENV = () => s3Env();

async function s3Client() {
  const { S3Client } = await import('@aws-sdk/client-s3');
  return new S3Client(s3ClientConfig());
}

/** Object ids under `prefix` in the test bucket. */
async function remoteOids(prefix: string): Promise<string[]> {
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await c.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/files/sha256/`, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push(o.Key!.split('/').slice(-2).join(''));
    token = r.NextContinuationToken;
  } while (token);
  c.destroy();
  return out.sort();
}

async function putRaw(prefix: string, oid: string, body: string): Promise<void> {
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const c = await s3Client();
  await c.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: `${prefix}/files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`, Body: body }));
  c.destroy();
}

/**
 * These tests look at and plant keys under `files/sha256/`: the plain layout,
 * pinned. The packed layout over S3 is tested in slow-link.test.ts and by the
 * registry, import and serve suites, which use the default.
 */
function remoteYaml(url: string): string {
  return `core:\n  remote: s3\nremote:\n  s3:\n    url: ${url}\n    endpointurl: ${s3Available()!.endpoint}\n    force_path_style: true\n    checksum: when_required\n    layout: plain\n`;
}

/** A committed repo tracking `data/` (n files) and `model.bin`, with an S3 default remote under a fresh prefix. */
async function origin(n = 3): Promise<{ dir: string; prefix: string; files: Record<string, string> }> {
  const dir = await newRepo();
  const prefix = `e2e-${randomBytes(6).toString('hex')}`;
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), remoteYaml(`s3://${S3_BUCKET}/${prefix}`));
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`data/part${i % 4}/f${i}.csv`] = `row,${i}\n`;
  for (const [rel, c] of Object.entries(files)) write(dir, rel, c);
  write(dir, 'model.bin', 'weights');
  const r = await tdvBin(dir, ['add', 'data', 'model.bin']);
  expect(r.code, r.stderr).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'data');
  return { dir, prefix, files };
}

async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

describeS3('S3 remote, end to end with bin/tdv against each S3 test server', () => {
  it('push, then pull into a fresh clone with an empty cache, with credentials from the environment', async () => {
    const { dir, prefix, files } = await origin();
    const p = await tdvBin(dir, ['push'], ENV());
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toBe(''); // no SDK warning, no noise
    expect(p.stdout).toMatch(/^Pushed 5 objects \(\d+ B\) to remote "s3"\.\n?$/);
    const dirOid = manifest(Object.entries(files).map(([k, v]) => ({ relpath: k.slice(5), content: v }))).oid;
    expect(await remoteOids(prefix)).toEqual([dirOid, sha('weights'), ...Object.values(files).map(sha)].sort());

    const b = await clone(dir);
    const r = await tdvBin(b, ['pull'], ENV());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    for (const [rel, c] of Object.entries(files)) expect(read(b, rel)).toBe(c);
    expect(read(b, 'model.bin')).toBe('weights');
    expect((await tdvBin(b, ['status'])).stdout.trim()).toBe('Data and pipelines are up to date.');
  });

  it('a second push transfers nothing, and status --remote agrees', async () => {
    const { dir } = await origin();
    expect((await tdvBin(dir, ['push'], ENV())).code).toBe(0);
    const again = await tdvBin(dir, ['push', '--json'], ENV());
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ transferred: 0, failed: 0, bytes: 0 });
    const st = await tdvBin(dir, ['status', '--remote', '--json'], ENV());
    expect(JSON.parse(st.stdout)).toEqual({ remote: 's3', clean: true, data: [] });
  });

  it('pull of one file inside a directory downloads only it and the manifest', async () => {
    const { dir } = await origin(8);
    expect((await tdvBin(dir, ['push'], ENV())).code).toBe(0);
    const b = await clone(dir);
    const r = await tdvBin(b, ['pull', 'data/part1/f5.csv', '--json'], ENV());
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 2, restored: 1 });
    expect(cacheObjects(b)).toHaveLength(2);
    expect(read(b, 'data/part1/f5.csv')).toBe('row,5\n');
    expect(fs.existsSync(path.join(b, 'data/part0'))).toBe(false);
  });

  it('an object replaced on the remote with other content is caught and never admitted', async () => {
    const { dir, prefix } = await origin();
    expect((await tdvBin(dir, ['push'], ENV())).code).toBe(0);
    await putRaw(prefix, sha('weights'), 'tampered');
    const b = await clone(dir);
    const r = await tdvBin(b, ['pull', 'model.bin'], ENV());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`object ${sha('weights')} on remote "s3" (s3://${S3_BUCKET}/${prefix}) is corrupt`);
    expect(fs.existsSync(objPath(b, sha('weights')))).toBe(false);
    expect(fs.existsSync(path.join(b, 'model.bin'))).toBe(false);
  });

  it('a push killed midway leaves no manifest without its files; the rerun sends only the rest', async () => {
    const { dir, prefix } = await origin(300);
    const child = spawn('node', [TDV_BIN, 'push', '-j', '2'], { cwd: dir, env: { ...process.env, ...ENV() }, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    // Kill it once some objects are up, but (very likely) not all.
    for (let i = 0; i < 400; i++) {
      if ((await remoteOids(prefix)).length >= 20 || child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await exited;
    // An upload whose body was sent before the kill can still land after it: wait
    // until the listing holds still, so the count the rerun must make up is exact.
    let partial = await remoteOids(prefix);
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = await remoteOids(prefix);
      if (now.length === partial.length) break;
      partial = now;
    }
    const dirOid = read(dir, 'data.tdv').match(/sha256: (\S+)/)![1]!;
    console.log(`push killed with ${partial.length} of 302 objects on the remote`);
    expect(partial.length).toBeLessThan(302); // really interrupted
    expect(partial).not.toContain(dirOid); // no manifest without its files
    const again = await tdvBin(dir, ['push', '--json'], ENV());
    expect(again.code, again.stderr).toBe(0);
    const res = JSON.parse(again.stdout);
    expect(res.transferred).toBe(302 - partial.length);
    expect(await remoteOids(prefix)).toHaveLength(302);
    const b = await clone(dir);
    const p = await tdvBin(b, ['pull'], ENV());
    expect(p.code, p.stderr).toBe(0);
    expect(read(b, 'data/part3/f299.csv')).toBe('row,299\n');
  });

  it('refused credentials: one line naming the remote and where the credentials came from, never the secret', async () => {
    const { dir } = await origin();
    const secret = 'not-the-real-secret-0123456789';
    const r = await tdvBin(dir, ['push'], { AWS_ACCESS_KEY_ID: 'WRONGKEY', AWS_SECRET_ACCESS_KEY: secret });
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, 'remote "s3"', /access denied/i, 'environment variables (AWS_ACCESS_KEY_ID)');
    expect(r.stderr + r.stdout).not.toContain(secret);
  });

  it('a missing bucket is named', async () => {
    const dir = await newRepo();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), remoteYaml('s3://no-such-bucket-tdv/x'));
    write(dir, 'a.txt', 'a');
    expect((await tdvBin(dir, ['add', 'a.txt'])).code).toBe(0);
    const r = await tdvBin(dir, ['push'], ENV());
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, 'no-such-bucket-tdv', /does not exist/);
  });

  it('an unreachable endpoint is named, quickly', async () => {
    const dir = await newRepo();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), remoteYaml(`s3://${S3_BUCKET}/x`).replace(s3Available()!.endpoint, 'http://127.0.0.1:1'));
    write(dir, 'a.txt', 'a');
    expect((await tdvBin(dir, ['add', 'a.txt'])).code).toBe(0);
    const started = Date.now();
    const r = await tdvBin(dir, ['push'], ENV());
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, 'http://127.0.0.1:1', 'remote "s3"');
  });

  it('credentials from a profile and from the environment at once: no SDK notice on stderr', async () => {
    const { dir } = await origin();
    const creds = path.join(newDir(), 'credentials');
    fs.writeFileSync(creds, `[ci]\naws_access_key_id = ${ENV().AWS_ACCESS_KEY_ID}\naws_secret_access_key = ${ENV().AWS_SECRET_ACCESS_KEY}\n`);
    const r = await tdvBin(dir, ['push'], { ...ENV(), AWS_PROFILE: 'ci', AWS_SHARED_CREDENTIALS_FILE: creds, AWS_CONFIG_FILE: path.join(path.dirname(creds), 'none') });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });
});
