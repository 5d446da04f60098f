import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorize, verifySigV2, verifySigV4 } from '../../src/serve/auth.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

/** AWS's documented Signature V4 examples for S3 (the "examplebucket" GET Object and presigned URL examples). */
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const EXAMPLE_TIME = Date.UTC(2013, 4, 24, 0, 0, 0);

function fakeReq(method: string, url: string, headers: [string, string][]) {
  const rawHeaders = headers.flat();
  const lower: Record<string, string> = {};
  for (const [k, v] of headers) lower[k.toLowerCase()] = v;
  return { method, url, rawHeaders, headers: lower } as unknown as http.IncomingMessage;
}

describe('AWS Signature V4 verification', () => {
  const headerReq = (signature: string) =>
    fakeReq('GET', '/test.txt', [
      ['Host', 'examplebucket.s3.amazonaws.com'],
      ['Range', 'bytes=0-9'],
      ['x-amz-content-sha256', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
      ['x-amz-date', '20130524T000000Z'],
      ['Authorization', `AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=${signature}`],
    ]);
  const good = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';

  it("accepts AWS's header example and refuses it with another secret, another signature, or a changed header", () => {
    const url = new URL('http://x/test.txt');
    expect(verifySigV4(headerReq(good), url, SECRET, EXAMPLE_TIME)).toEqual({ ok: true });
    expect(verifySigV4(headerReq(good), url, `${SECRET}x`, EXAMPLE_TIME)).toMatchObject({ ok: false, status: 403, code: 'SignatureDoesNotMatch' });
    expect(verifySigV4(headerReq(good.replace(/^f/, 'e')), url, SECRET, EXAMPLE_TIME)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    const req = headerReq(good);
    req.rawHeaders[3] = 'bytes=0-10';
    expect(verifySigV4(req, url, SECRET, EXAMPLE_TIME)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
  });

  it('refuses a signed request more than 15 minutes from the clock', () => {
    const url = new URL('http://x/test.txt');
    expect(verifySigV4(headerReq(good), url, SECRET, EXAMPLE_TIME + 14 * 60_000)).toEqual({ ok: true });
    expect(verifySigV4(headerReq(good), url, SECRET, EXAMPLE_TIME + 16 * 60_000)).toMatchObject({ ok: false, code: 'RequestTimeTooSkewed' });
  });

  it("accepts AWS's presigned URL example until it expires", () => {
    const q =
      'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
    const req = fakeReq('GET', `/test.txt?${q}`, [['Host', 'examplebucket.s3.amazonaws.com']]);
    const url = new URL(`http://x/test.txt?${q}`);
    expect(verifySigV4(req, url, SECRET, EXAMPLE_TIME + 3600_000)).toEqual({ ok: true });
    expect(verifySigV4(req, url, 'other', EXAMPLE_TIME + 3600_000)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
    expect(verifySigV4(req, url, SECRET, EXAMPLE_TIME + 86401_000)).toMatchObject({ ok: false, code: 'AccessDenied', message: 'Request has expired' });
    const tampered = fakeReq('GET', `/other.txt?${q}`, [['Host', 'examplebucket.s3.amazonaws.com']]);
    expect(verifySigV4(tampered, new URL(`http://x/other.txt?${q}`), SECRET, EXAMPLE_TIME + 3600_000)).toMatchObject({ ok: false, code: 'SignatureDoesNotMatch' });
  });

  it("accepts AWS's Signature Version 2 example (virtual-host style), and refuses it altered", () => {
    const req = (sig: string, path = '/photos/puppy.jpg') =>
      fakeReq('GET', path, [
        ['Host', 'johnsmith.s3.amazonaws.com'],
        ['Date', 'Tue, 27 Mar 2007 19:36:42 +0000'],
        ['Authorization', `AWS AKIAIOSFODNN7EXAMPLE:${sig}`],
      ]);
    const t = Date.parse('Tue, 27 Mar 2007 19:36:42 +0000');
    const url = new URL('http://x/photos/puppy.jpg');
    expect(verifySigV2(req('bWq2s1WEIj+Ydj0vQ697zp+IXMU='), url, SECRET, t, 'johnsmith')).toEqual({ ok: true });
    expect(verifySigV2(req('bWq2s1WEIj+Ydj0vQ697zp+IXMU=', '/photos/kitten.jpg'), new URL('http://x/photos/kitten.jpg'), SECRET, t, 'johnsmith')).toMatchObject({
      ok: false,
      code: 'SignatureDoesNotMatch',
    });
    expect(verifySigV2(req('bWq2s1WEIj+Ydj0vQ697zp+IXMU='), url, SECRET, t + 3600_000, 'johnsmith')).toMatchObject({ ok: false, code: 'RequestTimeTooSkewed' });
  });

  it('takes Bearer, ?token= (setting a cookie) and the cookie, and nothing else, when a token is set', () => {
    const token = 'T'.repeat(43);
    const at = (headers: [string, string][], path = '/main/x') => authorize(fakeReq('GET', path, headers), new URL(`http://h${path}`), token, 8765);
    expect(at([])).toMatchObject({ ok: false, status: 401 });
    expect(at([['Authorization', `Bearer ${token}`]])).toEqual({ ok: true });
    expect(at([['Authorization', 'Bearer nope']])).toMatchObject({ ok: false, status: 403 });
    // The cookie holds a value derived from the token and the port, not the token: browsers send it to every
    // port of the host, so another service there must not learn the token (the Bearer and S3 secret) from it.
    const set = at([], `/main/x?token=${token}`);
    expect(set).toEqual({ ok: true, setCookie: expect.stringMatching(/^tdv_token_8765=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/) });
    const value = /=([^;]+);/.exec((set as { setCookie: string }).setCookie)![1]!;
    expect(value).not.toContain(token);
    expect(at([], '/main/x?token=nope')).toMatchObject({ ok: false, status: 403 });
    expect(at([['Cookie', `a=b; tdv_token_8765=${value}`]])).toEqual({ ok: true });
    expect(at([['Cookie', `tdv_token_8765=${token}`]])).toMatchObject({ ok: false, status: 403 });
    expect(at([['Authorization', `Bearer ${value}`]])).toMatchObject({ ok: false, status: 403 });
    expect(authorize(fakeReq('GET', '/main/x', [['Cookie', `tdv_token_9999=${value}`]]), new URL('http://h/main/x'), token, 9999)).toMatchObject({ ok: false, status: 403 });
    expect(at([['Cookie', `tdv_token_9999=${token}`]])).toMatchObject({ ok: false, status: 401 });
    expect(authorize(fakeReq('GET', '/', []), new URL('http://h/'), undefined, 1)).toEqual({ ok: true });
  });
});

describe('Signature V4 from a real S3 client (@aws-sdk/client-s3), verified by an in-process server', () => {
  let server: http.Server;
  let endpoint: string;
  const secret = 'the-serve-token-0123456789';
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const r = verifySigV4(req, new URL(req.url!, 'http://x'), secret);
      res.statusCode = r.ok ? 200 : 403;
      res.setHeader('Content-Length', 0);
      res.setHeader('ETag', '"x"');
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  async function head(secretAccessKey: string, key: string) {
    const { S3Client, HeadObjectCommand } = await import('@aws-sdk/client-s3');
    const c = new S3Client({ endpoint, region: 'eu-west-3', forcePathStyle: true, credentials: { accessKeyId: 'tdv', secretAccessKey } });
    try {
      await c.send(new HeadObjectCommand({ Bucket: 'b', Key: key, Range: 'bytes=0-1' }));
      return 200;
    } catch (err) {
      return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    } finally {
      c.destroy();
    }
  }

  it('accepts the right secret for keys with spaces, unicode, @, = and +, and refuses a wrong one', async () => {
    for (const key of ['main/data/a b.csv', '@2016-07-31/données/x=1+2.csv', 'feature/x/~tilde!(*).txt']) {
      expect(await head(secret, key), key).toBe(200);
      expect(await head(`${secret}x`, key), key).toBe(403);
    }
  });
});
