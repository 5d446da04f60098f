/**
 * A fault-injecting HTTP proxy for the S3 tests: it sits between tdv and the
 * S3 test server and, as programmed per request, answers 500 or 503 SlowDown,
 * drops the connection, holds the response past the client's timeout,
 * truncates a body mid-stream, or alters a byte of a body.
 *
 *   tdv --HTTP--> proxy (faults) --HTTP--> s3rver
 *
 * Body faults (truncate, corrupt) hit the request body of an upload and the
 * response body of anything else: whichever the request has. Only requests
 * that can suffer the fault count towards "1 in N" (a HEAD has no body to
 * truncate), so the rate is honest for each kind.
 *
 * The proxy also counts what the client did about the faults: requests the
 * AWS SDK retried (its `amz-sdk-request: attempt=N` header) and GETs tdv
 * itself repeated (a verified download that failed is fetched again).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export const FAULT_KINDS = ['status500', 'slowdown503', 'drop', 'delay', 'truncate', 'corrupt'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface FaultStats {
  requests: number;
  /** Faults injected, by kind. */
  faults: Record<FaultKind, number>;
  /** Requests the SDK sent again (attempt > 1). */
  sdkRetries: number;
  /** GETs of an object already fetched before in this phase, on a first SDK attempt: tdv's own re-downloads. */
  refetches: number;
  /** Bytes of response bodies passed on to the client (what tdv received). */
  responseBytes: number;
}

export interface FaultProxy {
  /** The endpoint to give tdv instead of the server's. */
  readonly url: string;
  /**
   * Another endpoint of the same proxy (same faults, same 1-in-N counter) whose
   * requests are also counted apart, so two clients running at once can be told apart.
   */
  endpoint(tag: string): Promise<string>;
  /** The counts of one endpoint's requests. */
  statsOf(tag: string): FaultStats;
  /** Inject `kind` on one eligible request in `every` (none: no faults), at most `limit` times. */
  program(kind: FaultKind | undefined, every?: number, limit?: number): void;
  readonly stats: FaultStats;
  /** Zeroes the counters (and forgets which objects were fetched). */
  reset(): void;
  close(): Promise<void>;
}

export interface FaultProxyOptions {
  /** How long a "delay" fault holds a request: longer than the client's socket timeout. */
  delayMs?: number;
}

const S3_ERRORS = {
  status500: { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  slowdown503: { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
} as const;

function zero(): FaultStats {
  return { requests: 0, faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>, sdkRetries: 0, refetches: 0, responseBytes: 0 };
}

/** Starts a proxy in front of `upstream` (e.g. http://127.0.0.1:4568) on a free loopback port. */
export async function startFaultProxy(upstream: string, opts: FaultProxyOptions = {}): Promise<FaultProxy> {
  const target = new URL(upstream);
  const delayMs = opts.delayMs ?? 5_000;
  let kind: FaultKind | undefined;
  let every = 5;
  let limit = Infinity;
  let eligible = 0;
  let injected = 0;
  let stats = zero();
  let byTag = new Map<string, FaultStats>();
  let fetched = new Set<string>();
  const sockets = new Set<import('node:net').Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  /** True for the eligible request that should suffer the fault. */
  const hit = (): boolean => {
    if (!kind) return false;
    eligible++;
    // The 1st, the (every+1)th, ...: a fault at once, even in a short run.
    if ((eligible - 1) % every !== 0 || injected >= limit) return false;
    injected++;
    return true;
  };
  const handler = (tag: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
    let mine = byTag.get(tag);
    if (!mine) byTag.set(tag, (mine = zero()));
    const both = [stats, mine];
    const count = (k: FaultKind) => both.forEach((s) => s.faults[k]++);
    both.forEach((s) => s.requests++);
    const attempt = Number(/attempt=(\d+)/.exec(String(req.headers['amz-sdk-request'] ?? ''))?.[1] ?? 1);
    if (attempt > 1) both.forEach((s) => s.sdkRetries++);
    // An object's bytes (the SDK adds `?x-id=GetObject`), not a listing.
    const isGet = req.method === 'GET' && !/[?&]list-type=/.test(req.url!);
    if (isGet) {
      const key = `${tag} ${req.url}`;
      if (attempt === 1 && fetched.has(key)) both.forEach((s) => s.refetches++);
      fetched.add(key);
    }
    const bodyLength = Number(req.headers['content-length'] ?? 0);
    const uploads = (req.method === 'PUT' || req.method === 'POST') && bodyLength > 0;

    let fault: FaultKind | undefined;
    if (kind === 'status500' || kind === 'slowdown503' || kind === 'drop' || kind === 'delay') {
      if (hit()) fault = kind;
    } else if ((kind === 'truncate' || kind === 'corrupt') && uploads) {
      if (hit()) fault = kind;
    }

    if (fault === 'status500' || fault === 'slowdown503') {
      count(fault);
      const e = S3_ERRORS[fault];
      req.resume();
      req.once('end', () => {
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${e.message}</Message><RequestId>fault</RequestId></Error>`;
        res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    // Half the dropped connections never reach the server; the other half are dropped
    // after it answered, so the work was done but the client never hears of it.
    if (fault === 'drop') count('drop');
    if (fault === 'drop' && stats.faults.drop % 2 === 1) {
      req.socket.destroy();
      return;
    }
    const dropAfter = fault === 'drop';

    const forward = () => {
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
        if (dropAfter) {
          upRes.resume();
          upRes.once('end', () => req.socket.destroy());
          return;
        }
        const length = Number(upRes.headers['content-length'] ?? 0);
        let body: FaultKind | undefined;
        // Response bodies: GETs of objects (not listings, whose XML would only make the request fail).
        if ((kind === 'truncate' || kind === 'corrupt') && !uploads && isGet && length > 0 && upRes.statusCode === 200 && hit()) body = kind;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (!body) {
          upRes.on('data', (chunk: Buffer) => both.forEach((s) => (s.responseBytes += chunk.length)));
          upRes.pipe(res);
          return;
        }
        count(body);
        const at = Math.floor(length / 2);
        let seen = 0;
        upRes.on('data', (chunk: Buffer) => {
          const start = seen;
          seen += chunk.length;
          if (body === 'truncate') {
            if (start >= at) return;
            if (seen > at) {
              res.write(chunk.subarray(0, at - start));
              upRes.destroy();
              res.socket?.destroy();
              return;
            }
            res.write(chunk);
            return;
          }
          if (start <= at && at < seen) {
            chunk = Buffer.from(chunk);
            chunk[at - start]! ^= 0x5a;
          }
          res.write(chunk);
        });
        upRes.on('end', () => res.end());
      });
      up.on('error', () => res.socket?.destroy());
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
      });
      if (fault === 'truncate' || fault === 'corrupt') {
        count(fault);
        const at = Math.floor(bodyLength / 2);
        let seen = 0;
        req.on('data', (chunk: Buffer) => {
          const start = seen;
          seen += chunk.length;
          if (fault === 'truncate') {
            if (start >= at) return;
            if (seen > at) {
              // Half the body reaches the server, then both connections die.
              up.write(chunk.subarray(0, at - start), () => {
                up.destroy();
                req.socket.destroy();
              });
              return;
            }
            up.write(chunk);
            return;
          }
          if (start <= at && at < seen) {
            chunk = Buffer.from(chunk);
            chunk[at - start]! ^= 0x5a;
          }
          up.write(chunk);
        });
        req.on('end', () => up.end());
      } else {
        req.pipe(up);
      }
    };

    if (fault === 'delay') {
      count('delay');
      // Held past the client's timeout: by then it has given up on this connection.
      const t = setTimeout(() => {
        timers.delete(t);
        if (req.socket.destroyed) return;
        forward();
      }, delayMs);
      timers.add(t);
      return;
    }
    forward();
  };
  const servers: http.Server[] = [];
  const listen = async (tag: string): Promise<string> => {
    const server = http.createServer(handler(tag));
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const url = await listen('');

  return {
    url,
    endpoint: listen,
    statsOf: (tag) => byTag.get(tag) ?? zero(),
    program(k, n = 5, max = Infinity) {
      kind = k;
      every = n;
      limit = max;
      eligible = 0;
      injected = 0;
    },
    get stats() {
      return stats;
    },
    reset() {
      stats = zero();
      byTag = new Map();
      fetched = new Set();
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      agent.destroy();
      await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    },
  };
}
