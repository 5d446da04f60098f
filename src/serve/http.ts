import type http from 'node:http';
import type { SnapshotEntry } from '../repo/lib/snapshot.js';
import type { ServeContext } from './context.js';
import { entrySize, plausibleKey, resolveKey, sendFile } from './object.js';
import { xmlEscape } from './s3.js';

/**
 * Plain HTTP over the history: `GET /<rev>/<path>` gives a file (with Range)
 * or a directory's listing, JSON by default and HTML when the client prefers
 * it, so `pandas.read_csv("http://127.0.0.1:8765/@2016-07-31/data/trips.csv")`,
 * curl, fsspec's HTTPFileSystem and a browser all read any revision.
 */

/** A one-line plain-text answer. */
export function sendText(res: http.ServerResponse, status: number, line: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${line.replace(/\s*\n\s*/g, ' ')}\n`;
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** The quality a client's Accept header gives a media type (exact, `type/*`, `*\/*`). */
function quality(accept: string, type: string): number {
  const [major] = type.split('/');
  let best = -1;
  let q = 0;
  for (const part of accept.split(',')) {
    const [range, ...params] = part.trim().toLowerCase().split(';');
    const r = range!.trim();
    const spec = r === type ? 3 : r === `${major}/*` ? 2 : r === '*/*' ? 1 : 0;
    if (spec === 0 || spec < best) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const val = qp ? Number(qp.slice(2)) : 1;
    if (spec > best) {
      best = spec;
      q = Number.isFinite(val) ? val : 0;
    }
  }
  return q;
}

/** Whether the client prefers HTML to JSON (a browser); curl, fsspec and scripts get JSON. */
export function prefersHtml(accept: string | undefined): boolean {
  if (!accept) return false;
  return quality(accept, 'text/html') > quality(accept, 'application/json');
}

/** `/a%20b/c` to `a b/c`; undefined when the encoding is malformed. */
function decodePath(pathname: string): string | undefined {
  try {
    return pathname
      .slice(1)
      .split('/')
      .map((s) => decodeURIComponent(s))
      .join('/');
  } catch {
    return undefined;
  }
}

/** A path as a URL path: each segment percent-encoded. */
export function encodePath(p: string): string {
  return p
    .split('/')
    .map((s) => encodeURIComponent(s))
    .join('/');
}

/** Answers `GET`/`HEAD /<rev>/<path>` (`rawPath`: the path as sent, not normalised). */
export async function handleHttp(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse, rawPath: string): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    res.setHeader('Connection', 'close');
    return sendText(res, req.method === 'OPTIONS' ? 405 : 403, `${req.method} is not allowed: tdv serve is read-only`);
  }
  const key = decodePath(rawPath);
  if (key === undefined) return sendText(res, 400, 'the URL path is not valid percent-encoded UTF-8');
  const notFound = () =>
    sendText(res, 404, `not found: /${key.length > 200 ? `${key.slice(0, 200)}...` : key} (paths are /<revision>/<path>: a branch, tag, commit id or @YYYY-MM-DD, then a file or directory of it)`);
  if (!plausibleKey(key, true)) return notFound();
  const r = await resolveKey(ctx, key.endsWith('/') ? key.slice(0, -1) : key);
  if (!r) return notFound();
  if (r.entry.kind === 'file') {
    if (key.endsWith('/')) return notFound();
    return sendFile(req, res, r.snap, r.entry, (status, _code, message) => sendText(res, status, message));
  }
  const entries = (await r.snap.list(r.path))!;
  const base = `/${encodePath(r.rev)}/`;
  const link = (e: SnapshotEntry) => `${base}${encodePath(e.path)}${e.kind === 'dir' ? '/' : ''}`;
  const name = (e: SnapshotEntry) => e.path.slice(e.path.lastIndexOf('/') + 1);
  let body: string;
  if (prefersHtml(req.headers.accept)) {
    const title = `${r.rev}/${r.path}`;
    const up = r.path === '' ? '' : `<li><a href="${xmlEscape(r.path.includes('/') ? `${base}${encodePath(r.path.slice(0, r.path.lastIndexOf('/')))}/` : base)}">../</a></li>`;
    const rows = entries
      .map(
        (e) => `<li><a href="${xmlEscape(link(e))}">${xmlEscape(name(e))}${e.kind === 'dir' ? '/' : ''}</a>${e.kind === 'file' ? ` <small>${entrySize(r.snap, e)} B, ${e.source}</small>` : ''}</li>`,
      )
      .join('\n');
    body = `<!doctype html>\n<html><head><meta charset="utf-8"><title>${xmlEscape(title)}</title></head><body><h1>${xmlEscape(title)}</h1>\n<p>commit ${r.snap.commit}</p>\n<ul>\n${up}${rows}\n</ul></body></html>\n`;
    res.setHeader('Content-Type', 'text/html; charset=utf-8');
    res.setHeader('Content-Security-Policy', "default-src 'none'");
  } else {
    // Absolute URLs in the listing: fsspec's HTTPFileSystem.ls finds links in any text, so it lists JSON too.
    const origin = `http://${req.headers.host ?? 'localhost'}`;
    body = `${JSON.stringify({
      rev: r.rev,
      commit: r.snap.commit,
      path: r.path,
      entries: entries.map((e) => ({
        name: name(e),
        path: e.path,
        kind: e.kind,
        size: e.kind === 'file' ? entrySize(r.snap, e) : (e.size ?? null),
        source: e.source,
        ...(e.oid && e.kind === 'file' ? { sha256: e.oid } : {}),
        url: `${origin}${link(e)}`,
      })),
    })}\n`;
    res.setHeader('Content-Type', 'application/json');
  }
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Vary', 'Accept');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.statusCode = 200;
  res.end(req.method === 'HEAD' ? undefined : body);
}
