import http from 'node:http';
import type { Repo } from '../repo/repo.js';
import { localSource, resolveRev, Snapshot } from '../repo/lib/snapshot.js';
import type { ServeContext } from './context.js';

export interface ServeOptions {
  host: string;
  port: number;
  /** Required by every request when set (and always set off loopback). */
  token?: string;
  remote?: string;
  bucket?: string;
}

export interface Served {
  /** `http://host:port` */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A read-only server over the repository's history: the S3 API (s3.ts), files
 * and listings over plain HTTP (http.ts) and the web view (web.ts). It never
 * writes to the workspace, the index or HEAD; objects fetched on demand go to
 * the cache.
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
      if (!s) {
        s = Snapshot.open(source, rev, commit);
        s.catch(() => snapshots.delete(commit));
        snapshots.set(commit, s);
      }
      return s;
    },
  };
  const server = http.createServer((req, res) => {
    void route(ctx, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
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

async function route(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/' || url.pathname.startsWith('/-/')) {
      const { handleWeb } = await import('./web.js');
      if (await handleWeb(ctx, req, res)) return;
    }
    res.statusCode = 404;
    res.end('not found\n');
  } catch (err) {
    if (!res.headersSent) res.statusCode = 500;
    res.end(`${(err as Error).message}\n`);
  }
}
