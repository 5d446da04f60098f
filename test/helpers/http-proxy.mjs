/**
 * An HTTP proxy for the S3 tests and the benchmark (scripts/bench.mjs): it sits
 * between tdv and the S3 test server and
 *
 * - counts exactly what crosses it: requests, request-body bytes (uploads) and
 *   response-body bytes (downloads), in all and per HTTP method, counted as
 *   they pass, so a client killed mid-transfer leaves the count of what it sent;
 * - can shape the link: a bandwidth cap in each direction (bytes/s, shared by
 *   every connection, as one uplink is) and a latency added before each request
 *   is forwarded and before each response starts;
 * - injects faults, as programmed per request: answers 500 or 503 SlowDown,
 *   drops the connection, holds the response past the client's timeout,
 *   truncates a body mid-stream, or alters a byte of a body.
 *
 *   tdv --HTTP--> proxy (link, counts, faults) --HTTP--> s3rver
 *
 * It is plain JavaScript so the benchmark (plain Node) and the tests (through
 * fault-proxy.ts, which re-exports it; types in http-proxy.d.mts) share one copy.
 *
 * Body faults (truncate, corrupt) hit the request body of an upload and the
 * response body of anything else: whichever the request has. Only requests
 * that can suffer the fault count towards "1 in N" (a HEAD has no body to
 * truncate), so the rate is honest for each kind.
 *
 * The proxy also counts what the client did about the faults: requests the
 * AWS SDK retried (its `amz-sdk-request: attempt=N` header) and GETs tdv
 * itself repeated (a verified download that failed is fetched again).
 *
 * A process that runs the proxy must keep its event loop free while clients
 * talk through it: spawn clients asynchronously, never with spawnSync.
 */
import http from 'node:http';

export const FAULT_KINDS = /** @type {const} */ (['status500', 'slowdown503', 'drop', 'delay', 'truncate', 'corrupt']);

const S3_ERRORS = {
  status500: { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  slowdown503: { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
};

/** Bytes a shaped link lets through at a time: small enough that the rate is smooth at 4 Mbit/s. */
const SLICE = 16 * 1024;

function zero() {
  return {
    requests: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])),
    sdkRetries: 0,
    refetches: 0,
    bytesUp: 0,
    bytesDown: 0,
    byMethod: {},
    log: [],
  };
}

/**
 * One direction of a link with a bandwidth cap: each slice of bytes waits until
 * the link would have finished sending everything before it and itself, so all
 * connections together get `rate` bytes/s and an idle link saves up no credit.
 */
class Pacer {
  rate = 0;
  /** performance.now() at which the link is free again. */
  free = 0;
  /** @param {number} n */
  delayFor(n) {
    if (!this.rate) return 0;
    const now = performance.now();
    this.free = Math.max(now, this.free) + (n * 1000) / this.rate;
    return this.free - now;
  }
}

/** Resolves once `stream` can take more, or is gone. */
function drained(stream) {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      stream.off('error', done);
      resolve(undefined);
    };
    stream.on('drain', done);
    stream.on('close', done);
    stream.on('error', done);
  });
}

/** A body fault as an edit of the bytes at offset `start`: truncate stops at `at`, corrupt flips the byte at `at`. */
function bodyFault(fault, at) {
  return (chunk, start) => {
    const end = start + chunk.length;
    if (fault === 'truncate') return end > at ? { chunk: chunk.subarray(0, Math.max(0, at - start)), stop: true } : { chunk };
    if (start <= at && at < end) {
      chunk = Buffer.from(chunk);
      chunk[at - start] ^= 0x5a;
    }
    return { chunk };
  };
}

/**
 * Starts a proxy in front of `upstream` (e.g. http://127.0.0.1:4568) on a free loopback port.
 * @param {string} upstream
 * @param {{ delayMs?: number, link?: { up?: number, down?: number, latencyMs?: number }, record?: boolean }} [opts]
 */
export async function startFaultProxy(upstream, opts = {}) {
  const target = new URL(upstream);
  const delayMs = opts.delayMs ?? 5_000;
  let kind;
  let every = 5;
  let limit = Infinity;
  let eligible = 0;
  let injected = 0;
  let stats = zero();
  let byTag = new Map();
  let fetched = new Set();
  const up = new Pacer();
  const down = new Pacer();
  let latencyMs = 0;
  const record = opts.record ?? false;
  const shape = (link = {}) => {
    up.rate = link.up ?? 0;
    down.rate = link.down ?? 0;
    latencyMs = link.latencyMs ?? 0;
  };
  shape(opts.link);
  const sockets = new Set();
  const timers = new Set();
  let closed = false;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  /** Waits `ms` (at once when 0); cut short when the proxy closes. */
  const sleep = (ms) =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const t = setTimeout(() => {
            timers.delete(t);
            resolve(undefined);
          }, ms);
          timers.add(t);
        });

  /** True for the eligible request that should suffer the fault. */
  const hit = () => {
    if (!kind) return false;
    eligible++;
    // The 1st, the (every+1)th, ...: a fault at once, even in a short run.
    if ((eligible - 1) % every !== 0 || injected >= limit) return false;
    injected++;
    return true;
  };

  /**
   * Copies `src` to `dst` through one direction of the link, counting each byte
   * as it is handed on; `edit` (a body fault) may change bytes or stop early,
   * after which `onStop` runs once the cut body was written.
   */
  const pump = async (src, dst, pacer, count, edit, onStop) => {
    let offset = 0;
    try {
      for await (const data of src) {
        let chunk = data;
        let stop = false;
        if (edit) {
          ({ chunk, stop = false } = edit(chunk, offset));
        }
        offset += data.length;
        for (let i = 0; i < chunk.length; i += SLICE) {
          const part = chunk.subarray(i, i + SLICE);
          await sleep(pacer.delayFor(part.length));
          if (dst.destroyed || closed) {
            src.destroy();
            return;
          }
          count(part.length);
          // The last bytes of a cut body are flushed before the connections die.
          if (stop && i + SLICE >= chunk.length) await new Promise((resolve) => dst.write(part, () => resolve(undefined)));
          else if (!dst.write(part)) await drained(dst);
        }
        if (stop) {
          onStop?.();
          return;
        }
      }
      if (!dst.destroyed) dst.end();
    } catch {
      dst.destroy();
    }
  };

  const handler = (tag) => async (req, res) => {
    let mine = byTag.get(tag);
    if (!mine) byTag.set(tag, (mine = zero()));
    const both = [stats, mine];
    const method = req.method ?? 'GET';
    const perMethod = both.map((s) => (s.byMethod[method] ??= { requests: 0, bytesUp: 0, bytesDown: 0 }));
    const count = (k) => both.forEach((s) => s.faults[k]++);
    both.forEach((s) => s.requests++);
    perMethod.forEach((m) => m.requests++);
    // The request's own line in the log (`record`), counted as the others.
    if (record) {
      const line = { method, path: req.url ?? '', range: req.headers.range, bytesUp: 0, bytesDown: 0 };
      both.forEach((s) => s.log.push(line));
      perMethod.push(line);
    }
    const countUp = (n) => {
      both.forEach((s) => (s.bytesUp += n));
      perMethod.forEach((m) => (m.bytesUp += n));
    };
    const countDown = (n) => {
      both.forEach((s) => (s.bytesDown += n));
      perMethod.forEach((m) => (m.bytesDown += n));
    };
    const attempt = Number(/attempt=(\d+)/.exec(String(req.headers['amz-sdk-request'] ?? ''))?.[1] ?? 1);
    if (attempt > 1) both.forEach((s) => s.sdkRetries++);
    // An object's bytes (the SDK adds `?x-id=GetObject`), not a listing.
    const isGet = method === 'GET' && !/[?&]list-type=/.test(req.url);
    if (isGet) {
      const key = `${tag} ${req.url}`;
      if (attempt === 1 && fetched.has(key)) both.forEach((s) => s.refetches++);
      fetched.add(key);
    }
    const bodyLength = Number(req.headers['content-length'] ?? 0);
    const uploads = (method === 'PUT' || method === 'POST') && bodyLength > 0;

    let fault;
    if (kind === 'status500' || kind === 'slowdown503' || kind === 'drop' || kind === 'delay') {
      if (hit()) fault = kind;
    } else if ((kind === 'truncate' || kind === 'corrupt') && uploads) {
      if (hit()) fault = kind;
    }

    // The link's latency: the request reaches the far side this much later.
    await sleep(latencyMs);
    if (closed || req.socket.destroyed) return;

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
      const upReq = http.request({ host: target.hostname, port: target.port, method, path: req.url, headers: req.headers, agent }, async (upRes) => {
        if (dropAfter) {
          upRes.resume();
          upRes.once('end', () => req.socket.destroy());
          return;
        }
        const length = Number(upRes.headers['content-length'] ?? 0);
        let body;
        // Response bodies: GETs of objects (not listings, whose XML would only make the request fail).
        if ((kind === 'truncate' || kind === 'corrupt') && !uploads && isGet && length > 0 && upRes.statusCode === 200 && hit()) body = kind;
        // The link's latency again: the answer takes as long to come back.
        await sleep(latencyMs);
        if (closed || res.destroyed) {
          upRes.destroy();
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        if (body) count(body);
        void pump(upRes, res, down, countDown, body && bodyFault(body, Math.floor(length / 2)), () => {
          upRes.destroy();
          res.socket?.destroy();
        });
      });
      upReq.on('error', () => res.socket?.destroy());
      res.on('close', () => {
        if (!res.writableFinished) upReq.destroy();
      });
      let edit;
      if (fault === 'truncate' || fault === 'corrupt') {
        count(fault);
        edit = bodyFault(fault, Math.floor(bodyLength / 2));
      }
      // Half a truncated body reaches the server, then both connections die.
      void pump(req, upReq, up, countUp, edit, () => {
        upReq.destroy();
        req.socket.destroy();
      });
    };

    if (fault === 'delay') {
      count('delay');
      // Held past the client's timeout: by then it has given up on this connection.
      await sleep(delayMs);
      if (closed || req.socket.destroyed) return;
    }
    forward();
  };
  const servers = [];
  const listen = async (tag) => {
    const server = http.createServer(handler(tag));
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.keepAliveTimeout = 60_000;
    await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
    servers.push(server);
    return `http://127.0.0.1:${server.address().port}`;
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
    shape,
    get stats() {
      return stats;
    },
    reset() {
      stats = zero();
      byTag = new Map();
      fetched = new Set();
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      agent.destroy();
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(() => resolve(undefined)))));
    },
  };
}
