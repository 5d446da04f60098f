import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { objPath, sha } from '../helpers/expect.js';
import { describeNeeding } from '../helpers/needs.js';
import { tdvBin, tmpDir, write } from '../helpers/repo.js';
import { describeS3, S3_BUCKET, s3Available, s3ClientConfig, s3Env } from '../helpers/s3.js';
import { gitAt, type Serving, servedRepo, startServe, stopAllServes, TRIPS_V1, TRIPS_V2 } from '../helpers/serve.js';

/**
 * Real clients reading through `bin/tdv.js serve`: Debian's awscli, and
 * boto3, pandas and fsspec under Debian's /usr/bin/python3 (the python3 on
 * PATH may be another one without them). The server has a token, so every
 * S3 signature is verified for real.
 */

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const AWS = '/usr/bin/aws';
const PY = '/usr/bin/python3';
const awsMissing = fs.existsSync(AWS) ? undefined : `${AWS} is not installed (apt-get install awscli)`;
const pyMissing = (() => {
  const r = spawnSync(PY, ['-c', 'import boto3, pandas, fsspec, aiohttp'], { encoding: 'utf8' });
  return r.status === 0
    ? undefined
    : `${PY} with boto3, pandas, fsspec and aiohttp is missing (apt-get install python3-boto3 python3-pandas python3-fsspec python3-aiohttp): ${(r.stderr ?? String(r.error)).trim().split('\n').pop()}`;
})();

const TOKEN = 'serve-test-token-0123456789';

let repo: Awaited<ReturnType<typeof servedRepo>>;
let s: Serving;
let home: string;
beforeAll(async () => {
  if (awsMissing && pyMissing) return;
  repo = await servedRepo();
  s = await startServe(repo.dir, ['--token', TOKEN]);
  home = fs.realpathSync(tmpDir('tdv-home-'));
});
afterAll(stopAllServes);

/** A clean environment for the AWS clients: no profile or config of the machine's user. */
function awsEnv(secret = TOKEN): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    AWS_ACCESS_KEY_ID: 'tdv',
    AWS_SECRET_ACCESS_KEY: secret,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: path.join(home, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(home, 'none'),
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_PAGER: '',
  };
}

async function aws(args: string[], secret?: string) {
  const r = await execa(AWS, ['--endpoint-url', s.url, ...args], { env: awsEnv(secret), extendEnv: false, reject: false, cwd: home });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

describeNeeding('awscli', awsMissing, 'tdv serve read by awscli (/usr/bin/aws)', () => {
  it('s3 ls lists the branches and tags, then a revision recursively', async () => {
    const top = await aws(['s3', 'ls', `s3://${s.bucket}/`]);
    expect(top.code, top.stderr).toBe(0);
    expect(top.stdout.split('\n').map((l) => l.trim())).toEqual(['PRE feature/', 'PRE main/', 'PRE v1.0/']);
    const rec = await aws(['s3', 'ls', '--recursive', `s3://${s.bucket}/@2016-07-31/data/`]);
    expect(rec.code, rec.stderr).toBe(0);
    expect(rec.stdout).toMatch(new RegExp(`^2016-07-30 12:00:00 +${TRIPS_V1.length} @2016-07-31/data/trips\\.csv$`, 'm'));
    expect(
      rec.stdout
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/).slice(3).join(' ')),
    ).toEqual(['@2016-07-31/data/trips.csv', '@2016-07-31/data/zones/a.csv', '@2016-07-31/data/zones/b c.csv']);
  });

  it('s3 cp of a file at a date revision and at a tag', async () => {
    const out = path.join(home, 'trips.csv');
    const r = await aws(['s3', 'cp', `s3://${s.bucket}/@2016-07-31/data/trips.csv`, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(out, 'utf8')).toBe(TRIPS_V1);
    const m = await aws(['s3', 'cp', `s3://${s.bucket}/v1.0/model.bin`, path.join(home, 'model.bin')]);
    expect(m.code, m.stderr).toBe(0);
    expect(fs.readFileSync(path.join(home, 'model.bin')).equals(repo.model2)).toBe(true);
  });

  it('s3api get-object --range gives those bytes and the Content-Range', async () => {
    const out = path.join(home, 'range.bin');
    const r = await aws(['s3api', 'get-object', '--bucket', s.bucket, '--key', 'main~1/model.bin', '--range', 'bytes=100-199', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ContentRange: `bytes 100-199/${repo.model1.length}`, ContentLength: 100, ETag: `"${sha(repo.model1)}"` });
    expect(fs.readFileSync(out).equals(repo.model1.subarray(100, 200))).toBe(true);
  });

  it('list-objects-v2 pages through every key, one page of 2 at a time', async () => {
    const r = await aws(['s3api', 'list-objects-v2', '--bucket', s.bucket, '--prefix', 'main/', '--page-size', '2', '--output', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const keys = (JSON.parse(r.stdout) as { Contents: { Key: string }[] }).Contents.map((c) => c.Key);
    expect(keys).toEqual([
      'main/.gitignore',
      'main/.tdvignore',
      'main/README.md',
      'main/data.tdv',
      'main/data/trips.csv',
      'main/data/zones/a.csv',
      'main/data/zones/b c.csv',
      'main/model.bin',
      'main/model.bin.tdv',
    ]);
    const one = await aws(['s3api', 'list-objects-v2', '--bucket', s.bucket, '--prefix', 'main/', '--max-items', '3', '--output', 'json']);
    expect(JSON.parse(one.stdout)).toMatchObject({ NextToken: expect.any(String) });
  });

  it('put-object and delete-object are AccessDenied; a wrong secret is SignatureDoesNotMatch', async () => {
    const body = path.join(home, 'body.txt');
    fs.writeFileSync(body, 'x');
    const put = await aws(['s3api', 'put-object', '--bucket', s.bucket, '--key', 'main/new.txt', '--body', body]);
    expect(put.code).not.toBe(0);
    expect(put.stderr).toMatch(/AccessDenied/);
    const del = await aws(['s3', 'rm', `s3://${s.bucket}/main/README.md`]);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toMatch(/AccessDenied/);
    const wrong = await aws(['s3', 'ls', `s3://${s.bucket}/`], 'not-the-token');
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/SignatureDoesNotMatch/);
    expect(fs.existsSync(path.join(repo.dir, 'new.txt'))).toBe(false);
  });
});

/** Runs a Python program under /usr/bin/python3 with the server's URL, bucket and token; gives its JSON output. */
async function python(program: string, secret = TOKEN): Promise<Record<string, unknown>> {
  const r = await execa(PY, ['-c', program], { env: { ...awsEnv(secret), URL: s.url, BUCKET: s.bucket, TOKEN }, extendEnv: false, reject: false, cwd: home });
  if (r.exitCode !== 0) throw new Error(`python failed (${r.exitCode}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

describeNeeding('python3-boto3/pandas/fsspec', pyMissing, 'tdv serve read by boto3, pandas and fsspec (/usr/bin/python3)', () => {
  it('boto3: paginated list_objects_v2 and list_objects with a delimiter, ranged get, head, presigned URL, wrong token refused', async () => {
    const out = await python(`
import json, os, urllib.request
import boto3, botocore.config, botocore.exceptions
url, bucket, token = os.environ['URL'], os.environ['BUCKET'], os.environ['TOKEN']
def client(secret, **cfg):
    return boto3.client('s3', endpoint_url=url, aws_access_key_id='tdv', aws_secret_access_key=secret, region_name='us-east-1',
                        config=botocore.config.Config(s3={'addressing_style': 'path'}, retries={'max_attempts': 1}, **cfg))
c = client(token)
res = {}
pages = list(c.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix='main/', Delimiter='/', PaginationConfig={'PageSize': 2}))
res['v2_pages'] = len(pages)
res['v2_keys'] = [o['Key'] for p in pages for o in p.get('Contents', [])]
res['v2_prefixes'] = [x['Prefix'] for p in pages for x in p.get('CommonPrefixes', [])]
res['top'] = [x['Prefix'] for x in c.list_objects_v2(Bucket=bucket, Delimiter='/')['CommonPrefixes']]
v1 = list(c.get_paginator('list_objects').paginate(Bucket=bucket, Prefix='v1.0/data/', PaginationConfig={'PageSize': 1}))
res['v1_pages'] = len(v1)
res['v1_keys'] = [o['Key'] for p in v1 for o in p.get('Contents', [])]
g = c.get_object(Bucket=bucket, Key='@2016-07-31/data/trips.csv', Range='bytes=0-8')
res['range'] = g['Body'].read().decode()
res['range_header'] = g['ContentRange']
h = c.head_object(Bucket=bucket, Key='main/data/trips.csv')
res['head'] = {'ETag': h['ETag'], 'ContentLength': h['ContentLength'], 'LastModified': h['LastModified'].isoformat()}
res['location'] = c.get_bucket_location(Bucket=bucket).get('LocationConstraint')
res['buckets'] = [b['Name'] for b in c.list_buckets()['Buckets']]
# This boto3 presigns with Signature Version 2 unless told s3v4: both are verified.
res['presigned'] = []
res['tampered'] = []
for signer in [c, client(token, signature_version='s3v4')]:
    signed = signer.generate_presigned_url('get_object', Params={'Bucket': bucket, 'Key': 'feature/x/notes.txt'}, ExpiresIn=300)
    res['presigned'].append(urllib.request.urlopen(signed).read().decode())
    try:
        urllib.request.urlopen(signed.replace('notes.txt', 'README.md'))
        res['tampered'].append(200)
    except urllib.error.HTTPError as e:
        res['tampered'].append(e.code)
try:
    client('wrong-token').head_object(Bucket=bucket, Key='main/README.md')
    res['wrong'] = 'allowed'
except botocore.exceptions.ClientError as e:
    res['wrong'] = e.response['ResponseMetadata']['HTTPStatusCode']
try:
    c.get_object(Bucket=bucket, Key='main/../README.md')
    res['hostile'] = 'served'
except botocore.exceptions.ClientError as e:
    res['hostile'] = e.response['Error']['Code']
try:
    c.put_object(Bucket=bucket, Key='main/x', Body=b'x')
except botocore.exceptions.ClientError as e:
    res['put'] = e.response['Error']['Code']
print(json.dumps(res))
`);
    expect(out).toEqual({
      v2_pages: 4,
      v2_keys: ['main/.gitignore', 'main/.tdvignore', 'main/README.md', 'main/data.tdv', 'main/model.bin', 'main/model.bin.tdv'],
      v2_prefixes: ['main/data/'],
      top: ['feature/', 'main/', 'v1.0/'],
      v1_pages: 3,
      v1_keys: ['v1.0/data/trips.csv', 'v1.0/data/zones/a.csv', 'v1.0/data/zones/b c.csv'],
      range: TRIPS_V1.slice(0, 9),
      range_header: `bytes 0-8/${TRIPS_V1.length}`,
      head: { ETag: `"${sha(TRIPS_V2)}"`, ContentLength: TRIPS_V2.length, LastModified: '2016-08-02T12:00:00+00:00' },
      location: null,
      buckets: [s.bucket],
      presigned: ['notes\n', 'notes\n'],
      tampered: [403, 403],
      wrong: 403,
      hostile: 'NoSuchKey',
      put: 'AccessDenied',
    });
  });

  it('pandas.read_csv over HTTP at a date revision; fsspec HTTPFileSystem ls and cat', async () => {
    const out = await python(`
import json, os
import pandas, fsspec
url, token = os.environ['URL'], os.environ['TOKEN']
auth = {'Authorization': 'Bearer ' + token}
res = {}
df = pandas.read_csv(url + '/@2016-07-31/data/trips.csv', storage_options=auth)
res['old'] = df['trips'].tolist()
res['new'] = pandas.read_csv(url + '/main/data/trips.csv?token=' + token)['trips'].tolist()
fs = fsspec.filesystem('http', headers=auth)
res['ls'] = sorted(e['name'].replace(url, '') + ' ' + e['type'] for e in fs.ls(url + '/main/data/', detail=True))
res['ls_html'] = sorted(e.replace(url, '') for e in fsspec.filesystem('http', headers={**auth, 'Accept': 'text/html'}).ls(url + '/main/data/zones/', detail=False))
res['cat'] = fs.cat(url + '/main~1/data/zones/b%20c.csv').decode()
res['size'] = fs.size(url + '/main/model.bin')
with fs.open(url + '/main/model.bin', block_size=1024) as f:
    f.seek(1000)
    res['seek'] = list(f.read(4))
print(json.dumps(res))
`);
    expect(out).toEqual({
      old: [10, 12],
      new: [10, 12, 15],
      ls: ['/main/data/trips.csv file', '/main/data/zones/ directory'],
      ls_html: ['/main/data/zones/a.csv', '/main/data/zones/b%20c.csv'],
      cat: 'zone\nb c\n',
      size: repo.model2.length,
      seek: [...repo.model2.subarray(1000, 1004)],
    });
  });
});

describeS3('tdv serve fetches objects missing from the cache from an S3 remote', () => {
  it('serves a file whose object is only on the remote (cache emptied), verified and kept; a corrupt remote object is a one-line 502', async () => {
    const ENV = s3Env();
    const dir = (await servedRepo()).dir;
    const prefix = `serve-${randomBytes(6).toString('hex')}`;
    fs.appendFileSync(
      path.join(dir, '.tdv', 'config.yaml'),
      // Plain: the test replaces an object's key under files/sha256 (packed blobs are damaged in test/api/packed.test.ts).
      `core:\n  remote: s3\nremote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    endpointurl: ${s3Available()!.endpoint}\n    force_path_style: true\n    checksum: when_required\n    layout: plain\n`,
    );
    const pushed = await tdvBin(dir, ['push', '--rev', 'main', '--rev', 'main~1'], ENV);
    expect(pushed.code, pushed.stderr).toBe(0);
    // A third commit whose object is altered on the remote.
    write(dir, 'bad.csv', 'good bytes\n');
    expect((await tdvBin(dir, ['add', 'bad.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'], ENV)).code).toBe(0);
    await gitAt(dir, '2016-08-04T12:00:00Z', 'add', '-A');
    await gitAt(dir, '2016-08-04T12:00:00Z', 'commit', '-qm', 'bad');
    const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
    const c = new S3Client(s3ClientConfig());
    const badOid = sha('good bytes\n');
    await c.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: `${prefix}/files/sha256/${badOid.slice(0, 2)}/${badOid.slice(2)}`, Body: 'evil bytes\n' }));
    c.destroy();
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
    fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true });
    const srv = await startServe(dir, [], ENV);
    // Many readers of one missing object at once: all get the verified bytes.
    const bodies = await Promise.all(Array.from({ length: 6 }, () => fetch(`${srv.url}/@2016-07-31/data/trips.csv`).then(async (r) => [r.status, await r.text()])));
    for (const b of bodies) expect(b).toEqual([200, TRIPS_V1]);
    expect(fs.existsSync(objPath(dir, sha(TRIPS_V1)))).toBe(true);
    const listing = (await (await fetch(`${srv.url}/main/data/zones/`)).json()) as { entries: unknown[] };
    expect(listing.entries).toHaveLength(2);
    const bad = await fetch(`${srv.url}/main/bad.csv`);
    expect(bad.status).toBe(502);
    const text = await bad.text();
    expect(text).not.toContain('evil');
    expect(text.trim().split('\n')).toHaveLength(1);
    expect(fs.existsSync(objPath(dir, badOid))).toBe(false);
    expect((await srv.stop()).code).toBe(0);
  });
});
