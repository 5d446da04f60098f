import http from 'node:http';
import { TdvError, UsageError, errnoCode } from '../errors.js';
import type { Repo } from '../repo/repo.js';
import { localSource } from '../repo/lib/local-source.js';
import { resolveRev, Snapshot } from '../repo/lib/snapshot.js';
import { authorize, hostName, isLoopback } from './auth.js';
import type { ServeContext } from './context.js';
import { handleHttp, sendText } from './http.js';
import { handleS3, type S3Request, sendS3Error } from './s3.js';

export interface ServeOptions {
  host: string;
  port: number;
  /** Required by every request when set (and always set off loopback). */
  token?: string;
  remote?: string;
  bucket?: string;
  /** Where a handler's unexpected errors are reported (one line each); the server keeps running. */
  onError?: (message: string) => void;
}

export interface Served {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  readonly bucket: string;
  /** Things the user should know at start (one line each), e.g. a bucket name that is also a branch. */
  readonly notes: string[];
  close(): Promise<void>;
}

/** How many revisions' snapshots stay loaded: each holds a tree's listing (and manifests read). */
const SNAPSHOTS_KEPT = 32;

/**
 * A read-only server over the repository's history: the S3 API (s3.ts), files
 * and listings over plain HTTP (http.ts) and the web view (web.ts). It never
 * writes to the workspace, the index or HEAD; objects fetched on demand go to
 * the cache.
 *
 * A request is S3 when its Host names the bucket (virtual-host style), when
 * it carries an S3 signature, or when its path starts with the bucket
 * (path style); otherwise `/` and `/-/...` are the web view and
 * `/<rev>/<path>` plain HTTP.
 */
export async function startServer(repo: Repo, opts: ServeOptions): Promise<Served> {
  const source = await localSource(repo, opts.remote);
  const snapshots = new Map<string, Promise<Snapshot>>();
  const ctx: ServeContext = {
    repo,
    source,
    bucket: opts.bucket ?? defaultBucket(repo.root),
    snapshot(rev: string) {
      const commit = resolveRev(source.history, rev);
      let s = snapshots.get(commit);
      if (s) {
        // Most recently used last: the first key is the one to drop.
        snapshots.delete(commit);
      } else {
        s = Snapshot.open(source, rev, commit);
        s.catch(() => snapshots.delete(commit));
      }
      snapshots.set(commit, s);
      while (snapshots.size > SNAPSHOTS_KEPT) snapshots.delete(snapshots.keys().next().value!);
      return s;
    },
  };
  let port = opts.port;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    route(ctx, req, res, opts, port).catch((err: unknown) => {
      // Never reached in normal operation (route catches); keeps the server alive regardless.
      opts.onError?.(`unexpected error: ${(err as Error)?.message ?? String(err)}`);
      res.destroy();
    });
  };
  const server = http.createServer({ requireHostHeader: false }, handler);
  // `Expect: 100-continue` (awscli and boto3 send it with bodies): answered like any request, so a refused
  // upload is refused before its body is sent.
  server.on('checkContinue', handler);
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenError(err, opts)));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const notes: string[] = [];
  // Unsigned requests whose path starts with the bucket are S3 (path style): a branch or tag of
  // the same name is then reachable over plain HTTP only through another revision name.
  if (source.history.refs.dwim(ctx.bucket) !== undefined) {
    notes.push(`the bucket name "${ctx.bucket}" is also a branch or tag: unsigned /${ctx.bucket}/... requests are answered as S3; choose another name with --bucket`);
  }
  return {
    url: `http://${host}:${port}`,
    port,
    bucket: ctx.bucket,
    notes,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        source.history.close();
      }),
  };
}

/** A listen failure as one line naming the flag to change. */
function listenError(err: unknown, opts: ServeOptions): Error {
  const code = errnoCode(err);
  if (code === 'EADDRINUSE') return new UsageError(`port ${opts.port} on ${opts.host} is in use; choose another with --port (--port 0 picks a free one)`);
  if (code === 'EACCES') return new UsageError(`not allowed to listen on port ${opts.port} of ${opts.host}; choose a port above 1023 with --port`);
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EINVAL') {
    return new UsageError(`cannot listen on ${opts.host} (${code}): it is not an address of this machine; choose another with --host (127.0.0.1 for this machine only, 0.0.0.0 for every interface)`);
  }
  return new TdvError('IO_ERROR', `cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`);
}

/** The bucket a repository is served as: its directory's name, made a legal bucket name. */
export function defaultBucket(root: string): string {
  const base = root.split(/[\\/]/).pop() ?? '';
  const name = base
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return name.length >= 3 ? name.slice(0, 63) : `tdv-${name || 'repo'}`;
}

/** Whether a request carries S3 credentials (a SigV4 or V2 signature, header or query string). */
function hasS3Signature(req: http.IncomingMessage, url: URL): boolean {
  const auth = req.headers.authorization ?? '';
  return (
    auth.startsWith('AWS4-HMAC-SHA256 ') ||
    auth.startsWith('AWS ') ||
    url.searchParams.has('X-Amz-Signature') ||
    url.searchParams.has('AWSAccessKeyId') ||
    req.headers['x-amz-content-sha256'] !== undefined ||
    req.headers['x-amz-date'] !== undefined
  );
}

/** The S3 request this is, or undefined for plain HTTP and the web view. */
function s3Request(ctx: ServeContext, req: http.IncomingMessage, url: URL, path: string): S3Request | undefined {
  const host = hostName(req.headers.host ?? '');
  if (host.startsWith(`${ctx.bucket}.`)) return { bucket: ctx.bucket, key: decodeKey(path.slice(1)) };
  const slash = path.indexOf('/', 1);
  const first = decodeKey(slash === -1 ? path.slice(1) : path.slice(1, slash));
  if (hasS3Signature(req, url)) {
    if (path === '/') return { bucket: undefined, key: '' };
    return { bucket: first, key: slash === -1 ? '' : decodeKey(path.slice(slash + 1)) };
  }
  if (first === ctx.bucket) return { bucket: first, key: slash === -1 ? '' : decodeKey(path.slice(slash + 1)) };
  return undefined;
}

/** A key as S3 decodes it; a malformed escape is kept as it came (and then names nothing). */
function decodeKey(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return `\0${s}`;
  }
}

async function route(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse, opts: ServeOptions, port: number): Promise<void> {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'http://localhost');
  } catch {
    return sendText(res, 400, 'the request URL is malformed');
  }
  // The path as sent: URL parsing would resolve `.`, `..` and `%2e%2e` segments, turning
  // `/main/./x` into `/main/x` and `/main/../x` into `/x`, where they must name nothing.
  const rawPath = (req.url ?? '/').replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, '').replace(/[?#].*$/s, '') || '/';
  let s3: S3Request | undefined;
  try {
    s3 = s3Request(ctx, req, url, rawPath);
    const fail = (status: number, code: string, message: string) => (s3 ? sendS3Error(req, res, status, code, message) : sendText(res, status, message));
    // Without a token the server trusts this machine only; a page elsewhere that
    // rebinds its DNS name to 127.0.0.1 would otherwise read it through the browser.
    const name = hostName(req.headers.host ?? '');
    const bare = name.startsWith(`${ctx.bucket}.`) ? name.slice(ctx.bucket.length + 1) : name;
    if (opts.token === undefined && name !== '' && !isLoopback(bare)) {
      return fail(403, 'AccessDenied', `Host ${name} is not this machine: without --token only loopback names are served`);
    }
    const auth = authorize(req, url, opts.token, port, Date.now(), bare !== name ? ctx.bucket : undefined);
    if (!auth.ok) return fail(auth.status, auth.code, auth.message);
    if (auth.setCookie) res.setHeader('Set-Cookie', auth.setCookie);
    res.setHeader('Referrer-Policy', 'no-referrer');
    if (s3) return await handleS3(ctx, req, res, url, s3);
    if (rawPath === '/' || rawPath.startsWith('/-/')) {
      const { handleWeb } = await import('./web.js');
      if (await handleWeb(ctx, req, res)) return;
      return sendText(res, 404, `not found: ${url.pathname}`);
    }
    return await handleHttp(ctx, req, res, rawPath);
  } catch (err) {
    // Reading a revision or fetching an object failed: one line, a 5xx, and the server goes on.
    const message = (err as Error)?.message ?? String(err);
    const status = err instanceof TdvError ? 502 : 500;
    // A failure after the headers went out (a damaged cache object found while streaming) is cut short: say why on the server.
    if (!(err instanceof TdvError) || res.headersSent || res.destroyed) opts.onError?.(`${req.method} ${req.url}: ${message}`);
    if (res.headersSent) res.destroy();
    else if (s3) sendS3Error(req, res, status, 'InternalError', message);
    else sendText(res, status, `error: ${message}`);
  }
}
