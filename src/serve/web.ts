import fs from 'node:fs';
import type http from 'node:http';
import { fileURLToPath } from 'node:url';
import type { ServeContext } from './context.js';

/**
 * The web view: one page at `/`, its script and style under `/-/assets/`,
 * and the JSON API it reads under `/-/api/` (web/api.ts). Nothing comes from
 * a CDN. The page renders every repository string as text (no innerHTML),
 * and the Content-Security-Policy allows scripts from this server only.
 */

/** The assets `npm run build` makes (scripts/bundle.mjs): name -> content type. */
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

// Inline styles set through the CSSOM (uPlot sizes its canvas so) are not governed by style-src.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tdv</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/-/assets/app.css">
<script defer src="/-/assets/app.js"></script>
</head>
<body><noscript>The tdv web view needs JavaScript.</noscript></body>
</html>
`;

/**
 * Where the built assets are. Bundled, this module is a chunk in dist/bundle/
 * (assets in dist/bundle/web/ beside it); compiled by tsc it is
 * dist/serve/web.js; run from source (vitest) it is src/serve/web.ts.
 */
function assetDir(): string | undefined {
  for (const rel of ['./web/', '../bundle/web/', '../../dist/bundle/web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (fs.existsSync(`${dir}app.js`)) return dir;
  }
  return undefined;
}

let assets: Map<string, Buffer> | undefined;

/** The assets, read once (they are a few hundred kilobytes and never change while serving). */
function loadAssets(): Map<string, Buffer> {
  if (assets) return assets;
  const dir = assetDir();
  const m = new Map<string, Buffer>();
  if (dir) for (const name of Object.keys(ASSETS)) m.set(name, fs.readFileSync(dir + name));
  return (assets = m);
}

function send(res: http.ServerResponse, req: http.IncomingMessage, status: number, type: string, body: Buffer | string, extra: Record<string, string> = {}): void {
  const buf = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': String(buf.length), 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer', ...extra });
  res.end(req.method === 'HEAD' ? undefined : buf);
}

function sendJson(res: http.ServerResponse, req: http.IncomingMessage, status: number, body: unknown): void {
  send(res, req, status, 'application/json; charset=utf-8', `${JSON.stringify(body)}\n`, { 'Cache-Control': 'no-store' });
}

/** The web view at `/` and its assets and JSON API under `/-/`. True when it answered the request. */
export async function handleWeb(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const p = url.pathname;
  const isApi = p.startsWith('/-/api/');
  if (p !== '/' && !isApi && !p.startsWith('/-/assets/')) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const body = { error: { code: 'METHOD_NOT_ALLOWED', message: 'tdv serve is read-only: GET and HEAD only' } };
    sendJson(res, req, 405, body);
    return true;
  }
  if (p === '/') {
    send(res, req, 200, 'text/html; charset=utf-8', PAGE, { 'Content-Security-Policy': CSP, 'Cache-Control': 'no-cache' });
    return true;
  }
  if (isApi) {
    const { api } = await import('./web/api.js');
    const answer = await api(ctx, p.slice('/-/api/'.length), url.searchParams);
    sendJson(res, req, answer.status, answer.body);
    return true;
  }
  const name = p.slice('/-/assets/'.length);
  const type = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  const body = type === undefined ? undefined : loadAssets().get(name);
  if (type === undefined || body === undefined) {
    const why = type === undefined ? 'no such asset' : 'the web view was not built (run `npm run build`)';
    send(res, req, 404, 'text/plain; charset=utf-8', `${why}\n`);
    return true;
  }
  send(res, req, 200, type, body, { 'Cache-Control': 'no-cache' });
  return true;
}
