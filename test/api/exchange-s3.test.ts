import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { DeleteObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { exchangeObjectKey, S3Exchange } from '../../src/remote/exchange.js';
import { S3Remote } from '../../src/remote/s3.js';
import { openExchange } from '../../src/repo/lib/exchange.js';
import type { JobFile } from '../../src/stages/job.js';
import { withRepo } from '../helpers/api.js';
import { makeRepo, tdv, tmpDir, write } from '../helpers/repo.js';
import { describeS3, S3_BUCKET, s3Available, s3ClientConfig, s3RemoteConfig } from '../helpers/s3.js';

/**
 * The job byte exchange (remote/exchange.ts) on each S3 test server: inputs
 * uploaded once under exchange/objects/<sha256> and fetched by presigned GET,
 * output slots written by a presigned POST form (what busybox wget can send)
 * or PUT, read back and removed; and the remote's own commands leave the
 * exchange/ keys alone.
 */

function file(p: string, body: Buffer): JobFile & { body: Buffer } {
  return { path: p, sha256: createHash('sha256').update(body).digest('hex'), size: body.length, body };
}

function exchangeOn(prefix: string): { remote: S3Remote; exchange: S3Exchange } {
  const remote = new S3Remote('s3', s3RemoteConfig(prefix), { bucket: S3_BUCKET, prefix });
  return { remote, exchange: new S3Exchange(remote) };
}

async function keysUnder(prefix: string): Promise<string[]> {
  const client = new S3Client(s3ClientConfig());
  try {
    const res = await client.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/` }));
    return (res.Contents ?? []).map((o) => o.Key!.slice(prefix.length + 1)).sort();
  } finally {
    client.destroy();
  }
}

/** A multipart/form-data body as the Kubernetes upload helper builds it (fields, then the file). */
function formBody(fields: Record<string, string>, data: Buffer): { body: Buffer; type: string } {
  const b = `tdv${randomBytes(8).toString('hex')}`;
  const head = Object.entries(fields)
    .map(([k, v]) => `--${b}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`)
    .join('');
  const pre = `${head}--${b}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  return { body: Buffer.concat([Buffer.from(pre), data, Buffer.from(`\r\n--${b}--\r\n`)]), type: `multipart/form-data; boundary=${b}` };
}

async function text(r: Readable | undefined): Promise<string | undefined> {
  if (!r) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks).toString();
}

describeS3('job exchange on S3', () => {
  it('uploads each input once, under its sha256, and hands out URLs that fetch its bytes without credentials', async () => {
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const { remote, exchange } = exchangeOn(prefix);
    const a = file('data/a.csv', Buffer.from('id\n1\n'));
    const b = file('b.bin', randomBytes(70_000));
    const same = { ...file('copy/a.csv', a.body) };
    const empty = file('empty', Buffer.alloc(0));
    const opened: string[] = [];
    const open = (f: JobFile) => {
      opened.push(f.path);
      return Readable.from([[a, b, same, empty].find((x) => x.path === f.path)!.body]);
    };
    const urls = await exchange.inputUrls([a, b, same, empty], open);
    expect(opened.sort()).toEqual(['b.bin', 'data/a.csv', 'empty']); // the copy has a's sha256: sent once
    expect(await keysUnder(prefix)).toEqual([a, b, empty].map((f) => exchangeObjectKey(f.sha256)).sort());
    for (const f of [a, b, empty]) {
      const res = await fetch(urls.get(f.sha256)!); // no credentials: the URL is all it takes
      expect(res.status).toBe(200);
      expect(Buffer.from(await res.arrayBuffer()).equals(f.body)).toBe(true);
    }
    // A second job reading the same files uploads nothing.
    opened.length = 0;
    await exchange.inputUrls([a, b], open);
    expect(opened).toEqual([]);
    remote.close();
  });

  it('sends an input again when the copy there has the wrong size, and refuses bytes that are not what the cache claims', async () => {
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const { remote, exchange } = exchangeOn(prefix);
    const a = file('a', Buffer.from('the real bytes'));
    const client = new S3Client(s3ClientConfig());
    await client.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: `${prefix}/${exchangeObjectKey(a.sha256)}`, Body: 'short' }));
    const urls = await exchange.inputUrls([a], () => Readable.from([a.body]));
    expect(await (await fetch(urls.get(a.sha256)!)).text()).toBe('the real bytes');

    const liar = file('liar', Buffer.from('claimed'));
    await expect(exchange.inputUrls([liar], () => Readable.from([Buffer.from('other!!')]))).rejects.toThrow(/liar: its cached bytes .* are not/);
    expect(await keysUnder(prefix)).toEqual([exchangeObjectKey(a.sha256)]); // nothing left under the liar's name
    client.destroy();
    remote.close();
  });

  it('an output slot takes a POST form upload (busybox wget) or a PUT, reads back, and is removed', async () => {
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const { remote, exchange } = exchangeOn(prefix);
    const slot = await exchange.outputSlot('tdv-train-1a2b3c', 'outputs.tar');
    expect(await slot.read()).toBeUndefined();
    const { body, type } = formBody(slot.form!.fields, Buffer.from('tar bytes\r\n--not-a-boundary'));
    const res = await fetch(slot.form!.url, { method: 'POST', body, headers: { 'content-type': type } });
    expect(res.status, await res.text()).toBeLessThan(300);
    expect(await text(await slot.read())).toBe('tar bytes\r\n--not-a-boundary');
    await slot.remove();
    expect(await slot.read()).toBeUndefined();

    const put = await fetch(slot.url, { method: 'PUT', body: 'by put' });
    expect(put.status).toBe(200);
    expect(await text(await slot.read())).toBe('by put');
    await slot.remove();
    expect(await keysUnder(prefix)).toEqual([]);
    remote.close();
  });

  it('the POST form writes only its own key (a real S3 checks the signed policy; s3rver checks no policy)', async (ctx) => {
    if (s3Available()!.kind !== 'ceph') ctx.skip(); // s3rver ignores the policy field entirely
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const { remote, exchange } = exchangeOn(prefix);
    const slot = await exchange.outputSlot('tdv-train-1a2b3c', 'outputs.tar');
    const { body, type } = formBody({ ...slot.form!.fields, key: `${prefix}/files/sha256/00/elsewhere` }, Buffer.from('x'));
    const res = await fetch(slot.form!.url, { method: 'POST', body, headers: { 'content-type': type } });
    expect(res.status).toBe(403);
    expect(await keysUnder(prefix)).toEqual([]);
    remote.close();
  });

  it('openExchange: the S3 remote beneath the layout; undefined for a directory remote', async () => {
    const dir = await makeRepo();
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const cfg = s3RemoteConfig(prefix);
    write(
      dir,
      '.tdv/config.local.yaml',
      `remote:\n  s3:\n${Object.entries(cfg)
        .map(([k, v]) => `    ${k}: ${String(v)}\n`)
        .join('')}  disk:\n    url: ${tmpDir()}\n`,
    );
    const ex = await withRepo(dir, (r) => openExchange(r, 's3'));
    expect(ex).toBeInstanceOf(S3Exchange);
    expect(await withRepo(dir, (r) => openExchange(r, 'disk'))).toBeUndefined();
  });

  it('gc --cloud neither counts nor deletes the exchange/ keys (a Job elsewhere may still fetch them)', async () => {
    const dir = await makeRepo();
    const prefix = `exchange-${randomBytes(6).toString('hex')}`;
    const cfg = s3RemoteConfig(prefix);
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), 'core:\n  remote: s3\n');
    write(
      dir,
      '.tdv/config.local.yaml',
      `remote:\n  s3:\n${Object.entries(cfg)
        .map(([k, v]) => `    ${k}: ${String(v)}\n`)
        .join('')}`,
    );
    write(dir, 'a.txt', 'kept');
    write(dir, 'b.txt', 'garbage');
    expect((await tdv(dir, 'add', 'a.txt', 'b.txt')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    fs.rmSync(path.join(dir, 'b.txt.tdv'));
    const { remote, exchange } = exchangeOn(prefix);
    const input = file('in', Buffer.from('an input'));
    await exchange.inputUrls([input], () => Readable.from([input.body]));
    const slot = await exchange.outputSlot('tdv-x-1', 'outputs.tar');
    await fetch(slot.url, { method: 'PUT', body: 'left by a killed run' });
    const r = await tdv(dir, 'gc', '--workspace', '--cloud', '-f', '--json');
    expect(r.code, r.stderr).toBe(0);
    const keys = await keysUnder(prefix);
    expect(keys).toContain(exchangeObjectKey(input.sha256));
    expect(keys).toContain('exchange/jobs/tdv-x-1/outputs.tar');
    const client = new S3Client(s3ClientConfig());
    await client.send(new DeleteObjectsCommand({ Bucket: S3_BUCKET, Delete: { Objects: keys.map((k) => ({ Key: `${prefix}/${k}` })) } }));
    client.destroy();
    remote.close();
  });
});
