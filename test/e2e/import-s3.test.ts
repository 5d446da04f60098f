import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { expect, it } from 'vitest';
import { git, read, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';
import { describeS3, S3_BUCKET, s3Available, s3Env } from '../helpers/s3.js';
import { commitAt, isolateUserCache } from '../helpers/source.js';

/**
 * `tdv import` / `update` / `pull` of data whose source repository keeps it
 * on an S3 remote (the test server), through the real bin/tdv. Credentials
 * come from the environment, as in CI: no secret in any file.
 */
isolateUserCache();

async function ok(dir: string, ...args: string[]): Promise<string> {
  const r = await tdvBin(dir, args, s3Env());
  expect(r.code, `tdv ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** A source repository whose committed config has an S3 default remote under a fresh prefix; `data/trips.csv` and `images/` pushed there. */
async function s3Source(): Promise<{ dir: string; url: string; v1: string }> {
  const dir = await newRepo();
  const prefix = `import-${randomBytes(6).toString('hex')}`;
  fs.appendFileSync(
    path.join(dir, '.tdv', 'config.yaml'),
    `core:\n  remote: s3\nremote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    endpointurl: ${s3Available()!.endpoint}\n    force_path_style: true\n    checksum: when_required\n`,
  );
  write(dir, 'data/trips.csv', 'id,km\n1,v1\n');
  write(dir, 'images/a.png', 'A');
  write(dir, 'images/sub/b.png', 'B');
  await ok(dir, 'add', 'data/trips.csv', 'images');
  const v1 = await commitAt(dir, '2016-07-01T12:00:00Z', 'v1');
  await git(dir, 'tag', 'v1');
  await ok(dir, 'push');
  return { dir, url: pathToFileURL(dir).href, v1 };
}

describeS3('tdv import from a source with an S3 remote', () => {
  it('imports a file and a directory, a fresh clone pulls them from S3, update follows the source, status says when it moved', async () => {
    const src = await s3Source();
    const here = await newRepo();
    await ok(here, 'import', src.url, 'data/trips.csv');
    await ok(here, 'import', src.url, 'images', '--rev', 'v1', '-o', 'img');
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v1\n');
    expect(read(here, 'img/sub/b.png')).toBe('B');
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'imports');

    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', here, clone);
    const pulled = await ok(clone, 'pull');
    expect(pulled).toContain(`from remote "s3" of ${src.url} (imported data)`);
    expect(read(clone, 'trips.csv')).toBe('id,km\n1,v1\n');
    expect(read(clone, 'img/a.png')).toBe('A');
    expect(await ok(clone, 'status')).toBe('Data and pipelines are up to date.');

    // The source moves on: status in the clone says so, update brings it, status is clean again.
    write(src.dir, 'data/trips.csv', 'id,km\n1,v2\n');
    await ok(src.dir, 'add', 'data/trips.csv');
    const v2 = await commitAt(src.dir, '2016-08-01T12:00:00Z', 'v2');
    await ok(src.dir, 'push');
    expect(await ok(clone, 'status')).toContain(`update available:  trips.csv (HEAD of ${src.url} is now ${v2.slice(0, 12)}`);
    await ok(clone, 'update');
    expect(read(clone, 'trips.csv')).toBe('id,km\n1,v2\n');
    expect(await ok(clone, 'status')).toBe('Data and pipelines are up to date.');
    // The tagged import did not move.
    expect(read(clone, 'img/a.png')).toBe('A');
  });

  it('with wrong credentials the download fails with one line naming the source, and nothing is written', async () => {
    const src = await s3Source();
    const here = await newRepo();
    const r = await tdvBin(here, ['import', src.url, 'data/trips.csv'], { AWS_ACCESS_KEY_ID: 'WRONG', AWS_SECRET_ACCESS_KEY: 'WRONG' });
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, src.url, 'remote "s3"', 'access denied');
    expect(fs.existsSync(path.join(here, 'trips.csv'))).toBe(false);
    expect(fs.existsSync(path.join(here, 'trips.csv.tdv'))).toBe(false);
  });
});
