/**
 * The test proxy (test/helpers/http-proxy.mjs) in front of a plain HTTP echo
 * server: its counts are exact per method, a shaped link delivers bodies
 * unchanged, and the body faults cut or alter what they should.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';

/** Answers GET /N with N deterministic bytes, PUT with the SHA-256 of what it received (and stores its length). */
let upstream: http.Server;
let received: number[] = [];
let proxy: FaultProxy;

const bytes = (n: number) => Buffer.alloc(n, 'abcdefgh');

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    if (req.method === 'PUT') {
      const h = crypto.createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () => {
        received.push(n);
        res.end(h.digest('hex'));
      });
      req.on('error', () => {});
      return;
    }
    const body = bytes(Number(req.url!.slice(1)));
    res.writeHead(200, { 'content-length': body.length });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  proxy = await startFaultProxy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`);
});
afterAll(async () => {
  await proxy.close();
  await new Promise((r) => upstream.close(r));
});
beforeEach(() => {
  proxy.reset();
  proxy.program(undefined);
  proxy.shape();
  received = [];
});

async function call(method: string, urlPath: string, body?: Buffer): Promise<{ status: number; body: Buffer } | 'cut'> {
  try {
    const r = await fetch(`${proxy.url}${urlPath}`, { method, body, headers: body ? { 'content-length': String(body.length) } : {} });
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  } catch {
    return 'cut';
  }
}
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

describe('http-proxy', () => {
  it('counts requests and body bytes exactly, per method', async () => {
    const up = crypto.randomBytes(300_000);
    expect(await call('PUT', '/x', up)).toEqual({ status: 200, body: Buffer.from(sha(up)) });
    expect(await call('GET', '/123456')).toEqual({ status: 200, body: bytes(123456) });
    await call('GET', '/10');
    await call('HEAD', '/99');
    const s = proxy.stats;
    expect(s.requests).toBe(4);
    expect(s.bytesUp).toBe(300_000);
    expect(s.bytesDown).toBe(64 + 123456 + 10);
    expect(s.byMethod).toEqual({
      PUT: { requests: 1, bytesUp: 300_000, bytesDown: 64 },
      GET: { requests: 2, bytesUp: 0, bytesDown: 123466 },
      HEAD: { requests: 1, bytesUp: 0, bytesDown: 0 },
    });
  });

  it('with record, logs each request with its path, Range header and body bytes', async () => {
    const logging = await startFaultProxy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, { record: true });
    try {
      await fetch(`${logging.url}/2000`, { headers: { range: 'bytes=0-9' } }).then((r) => r.arrayBuffer());
      await fetch(`${logging.url}/up`, { method: 'PUT', body: Buffer.alloc(77) }).then((r) => r.arrayBuffer());
      expect(logging.stats.log).toEqual([
        { method: 'GET', path: '/2000', range: 'bytes=0-9', bytesUp: 0, bytesDown: 2000 },
        { method: 'PUT', path: '/up', range: undefined, bytesUp: 77, bytesDown: 64 },
      ]);
    } finally {
      await logging.close();
    }
  });

  it('a shaped link (caps both ways, latency) passes bodies unchanged and counts them', async () => {
    proxy.shape({ up: 2_000_000, down: 2_000_000, latencyMs: 20 });
    const up = crypto.randomBytes(200_000);
    const results = await Promise.all([call('PUT', '/a', up), call('PUT', '/b', up), call('GET', '/150000')]);
    expect(results).toEqual([
      { status: 200, body: Buffer.from(sha(up)) },
      { status: 200, body: Buffer.from(sha(up)) },
      { status: 200, body: bytes(150000) },
    ]);
    expect(proxy.stats.bytesUp).toBe(400_000);
    expect(proxy.stats.bytesDown).toBe(150_000 + 128);
  });

  it('a truncated upload reaches the server only in part, and counts only what passed', async () => {
    proxy.program('truncate', 1, 1);
    const up = crypto.randomBytes(400_000);
    expect(await call('PUT', '/t', up)).toBe('cut');
    expect(proxy.stats.faults.truncate).toBe(1);
    expect(proxy.stats.bytesUp).toBe(200_000);
    expect(received.every((n) => n <= 200_000)).toBe(true);
  });

  it('a corrupted download has one byte altered', async () => {
    proxy.program('corrupt', 1, 1);
    const r = await call('GET', '/100000');
    expect(r).not.toBe('cut');
    const got = (r as { body: Buffer }).body;
    const want = bytes(100000);
    expect(got.length).toBe(want.length);
    const diff = [...got].flatMap((b, i) => (b === want[i] ? [] : [i]));
    expect(diff).toEqual([50000]);
  });
});
