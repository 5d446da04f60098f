import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { compareCodePoints } from '../formats/manifest.js';
import type { Snapshot, SnapshotEntry } from '../repo/lib/snapshot.js';
import type { ServeContext } from './context.js';
import { continuationToken, type ListItem, type ListPage, page, rollup, sortItems, tokenKey } from './listing.js';
import { entrySize, etagOf, lastModified, plausibleKey, resolveKey, revPath, sendFile } from './object.js';

/**
 * The read side of the S3 API over the repository's history: one bucket,
 * whose keys are `<rev>/<path>`. ListBuckets, HeadBucket, GetBucketLocation,
 * ListObjects (v1 and v2), HeadObject and GetObject; every write answers
 * AccessDenied. Listing with delimiter `/` at the top gives the branches and
 * tags; any revision (an id, `main~1`, `@2016-07-31`) works in a prefix or key.
 */

const NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>';
const MAX_KEYS = 1000;

/** An S3 request after routing: the bucket it names and the key ('' for the bucket itself). */
export interface S3Request {
  bucket: string | undefined;
  key: string;
}

const XML_SPECIAL = /[&<>"']/;

export function xmlEscape(s: string): string {
  // Most keys need no escaping: test first (a listing escapes a thousand keys a page).
  return XML_SPECIAL.test(s) ? s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!) : s;
}

function requestId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

/** S3's error document, on one line. */
export function sendS3Error(req: http.IncomingMessage, res: http.ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const id = requestId();
  const fields = Object.entries(extra)
    .map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`)
    .join('');
  const body = `${XML_HEAD}<Error><Code>${code}</Code><Message>${xmlEscape(message.replace(/\s*\n\s*/g, ' '))}</Message>${fields}<RequestId>${id}</RequestId></Error>\n`;
  res.statusCode = status;
  res.setHeader('x-amz-request-id', id);
  res.setHeader('Content-Type', 'application/xml');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendXml(res: http.ServerResponse, xml: string, head = false): void {
  const body = `${XML_HEAD}${xml}\n`;
  res.statusCode = 200;
  res.setHeader('x-amz-request-id', requestId());
  res.setHeader('Content-Type', 'application/xml');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(head ? undefined : body);
}

/** Bucket-level sub-resources S3 has and this server does not (answered NotImplemented). */
const UNSUPPORTED = [
  'acl',
  'policy',
  'policyStatus',
  'cors',
  'lifecycle',
  'website',
  'logging',
  'notification',
  'replication',
  'tagging',
  'encryption',
  'object-lock',
  'ownershipControls',
  'publicAccessBlock',
  'accelerate',
  'requestPayment',
  'analytics',
  'inventory',
  'metrics',
  'intelligent-tiering',
  'torrent',
  'attributes',
  'retention',
  'legal-hold',
  'select',
  'restore',
];

/** Answers one S3 request (authorization already checked). */
export async function handleS3(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse, url: URL, s3: S3Request): Promise<void> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && method !== 'HEAD') {
    res.setHeader('Connection', 'close');
    return sendS3Error(req, res, 403, 'AccessDenied', 'tdv serve is read-only: writes are not allowed');
  }
  if (s3.bucket === undefined) return listBuckets(ctx, res, method === 'HEAD');
  if (s3.bucket !== ctx.bucket) return sendS3Error(req, res, 404, 'NoSuchBucket', 'The specified bucket does not exist', { BucketName: s3.bucket });
  const q = url.searchParams;
  const sub = UNSUPPORTED.find((s) => q.has(s)) ?? (q.has('versions') ? 'versions' : q.has('uploads') ? 'uploads' : q.has('versioning') ? 'versioning' : undefined);
  if (s3.key === '') {
    if (method === 'HEAD') {
      res.setHeader('x-amz-bucket-region', 'us-east-1');
      res.statusCode = 200;
      res.end();
      return;
    }
    if (q.has('location')) return sendXml(res, `<LocationConstraint xmlns="${NS}"/>`);
    if (sub === 'versioning') return sendXml(res, `<VersioningConfiguration xmlns="${NS}"/>`);
    if (sub === 'uploads') return sendXml(res, `<ListMultipartUploadsResult xmlns="${NS}"><Bucket>${xmlEscape(ctx.bucket)}</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`);
    if (sub) return sendS3Error(req, res, 501, 'NotImplemented', `tdv serve does not implement ?${sub}`);
    return listObjects(ctx, req, res, q);
  }
  if (sub) return sendS3Error(req, res, 501, 'NotImplemented', `tdv serve does not implement ?${sub}`);
  return getObject(ctx, req, res, s3.key, url);
}

function listBuckets(ctx: ServeContext, res: http.ServerResponse, head: boolean): void {
  const { history } = ctx.source;
  const created = history.hasCommits() ? new Date(history.commit(history.resolve('HEAD')).committer.time * 1000) : new Date(0);
  sendXml(
    res,
    `<ListAllMyBucketsResult xmlns="${NS}"><Owner><ID>tdv</ID><DisplayName>tdv</DisplayName></Owner><Buckets><Bucket><Name>${xmlEscape(ctx.bucket)}</Name><CreationDate>${created.toISOString()}</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>`,
    head,
  );
}

async function getObject(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse, key: string, url: URL): Promise<void> {
  const noKey = () => sendS3Error(req, res, 404, 'NoSuchKey', 'The specified key does not exist.', { Key: key });
  if (!plausibleKey(key)) return noKey();
  const r = await resolveKey(ctx, key);
  if (!r || r.entry.kind !== 'file') return noKey();
  const send = (status: number, code: string, message: string) => sendS3Error(req, res, status, code, message, status === 416 ? {} : { Key: key });
  await sendFile(req, res, r.snap, r.entry, send, { 'x-amz-request-id': requestId() }, responseOverrides(url.searchParams));
}

/** GetObject's `response-*` parameters (a presigned download link naming its file, say): the headers they set. */
const OVERRIDES: Record<string, string> = {
  'response-content-type': 'Content-Type',
  'response-content-disposition': 'Content-Disposition',
  'response-content-language': 'Content-Language',
  'response-content-encoding': 'Content-Encoding',
  'response-cache-control': 'Cache-Control',
  'response-expires': 'Expires',
};

function responseOverrides(q: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [param, header] of Object.entries(OVERRIDES)) {
    const v = q.get(param);
    // What a header value cannot hold (control characters, code points above U+00FF) makes it ignored.
    if (v === null || /[^\t\x20-\x7e\x80-\xff]/.test(v)) continue;
    if (header === 'Content-Type' && runnableType(v)) continue;
    out[header] = v;
  }
  return out;
}

/**
 * Whether a browser would run or apply a response of this type when a page
 * includes it (`<script src>`, `<link rel=stylesheet>`): a JavaScript MIME
 * type (WHATWG's list), `module`, or CSS. Served files are otherwise
 * `nosniff` with a type by extension no browser executes; taking such a type
 * from the URL would let any web page include a repository file (a config.js
 * with a key) as a script of its own and read what it defines.
 */
export function runnableType(value: string): boolean {
  const essence = value.split(';')[0]!.trim().toLowerCase();
  return /^(?:(?:application|text)\/(?:x-)?(?:ecmascript|javascript)|text\/(?:javascript1\.[0-5]|jscript|livescript|css)|module)$/.test(essence);
}

/** What a listed object carries: its entry and the snapshot it is from (for size and time). */
interface Listed {
  snap: Snapshot;
  entry: SnapshotEntry;
}

function parseMaxKeys(v: string | null): number | undefined {
  if (v === null) return MAX_KEYS;
  if (!/^\d{1,9}$/.test(v)) return undefined;
  return Math.min(Number(v), MAX_KEYS);
}

/** ListObjects (v1) and ListObjectsV2 (`list-type=2`). */
async function listObjects(ctx: ServeContext, req: http.IncomingMessage, res: http.ServerResponse, q: URLSearchParams): Promise<void> {
  const v2 = q.get('list-type') === '2';
  const prefix = q.get('prefix') ?? '';
  const delimiter = q.get('delimiter') ?? '';
  const maxKeys = parseMaxKeys(q.get('max-keys'));
  if (maxKeys === undefined) return sendS3Error(req, res, 400, 'InvalidArgument', 'max-keys must be a whole number from 0 to 1000', { ArgumentName: 'max-keys' });
  const encodingType = q.get('encoding-type');
  if (encodingType !== null && encodingType !== 'url') return sendS3Error(req, res, 400, 'InvalidArgument', 'Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type' });
  let after: string;
  const token = q.get('continuation-token');
  const startAfter = q.get('start-after') ?? '';
  const marker = q.get('marker') ?? '';
  if (v2 && token !== null) {
    const k = tokenKey(token);
    if (k === undefined) return sendS3Error(req, res, 400, 'InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
    after = k;
  } else after = v2 ? startAfter : marker;
  const result = await listPage(ctx, { prefix, delimiter, after, maxKeys });
  const enc = encodingType === 'url' ? (s: string) => encodeURIComponent(s).replace(/%2F/g, '/') : (s: string) => s;
  const x = (s: string) => xmlEscape(enc(s));
  const contents: string[] = [];
  const prefixes: string[] = [];
  // One revision's time, formatted once per page, not once per key.
  const times = new Map<Snapshot, string>();
  for (const it of result.items) {
    if (it.prefix) {
      prefixes.push(`<CommonPrefixes><Prefix>${x(it.key)}</Prefix></CommonPrefixes>`);
      continue;
    }
    const { snap, entry } = it.value!;
    let time = times.get(snap);
    if (time === undefined) times.set(snap, (time = lastModified(snap).toISOString()));
    contents.push(
      `<Contents><Key>${x(it.key)}</Key><LastModified>${time}</LastModified><ETag>${xmlEscape(etagOf(entry))}</ETag><Size>${entrySize(snap, entry)}</Size><StorageClass>STANDARD</StorageClass>${v2 ? '' : '<Owner><ID>tdv</ID><DisplayName>tdv</DisplayName></Owner>'}</Contents>`,
    );
  }
  const last = result.items.at(-1)?.key;
  let head = `<ListBucketResult xmlns="${NS}"><Name>${xmlEscape(ctx.bucket)}</Name><Prefix>${x(prefix)}</Prefix>`;
  if (v2) {
    if (token !== null) head += `<ContinuationToken>${xmlEscape(token)}</ContinuationToken>`;
    if (startAfter !== '') head += `<StartAfter>${x(startAfter)}</StartAfter>`;
    head += `<KeyCount>${result.items.length}</KeyCount>`;
  } else {
    head += `<Marker>${x(marker)}</Marker>`;
  }
  head += `<MaxKeys>${maxKeys}</MaxKeys>`;
  if (delimiter !== '') head += `<Delimiter>${x(delimiter)}</Delimiter>`;
  if (encodingType) head += `<EncodingType>url</EncodingType>`;
  head += `<IsTruncated>${result.truncated}</IsTruncated>`;
  if (result.truncated && last !== undefined) {
    // v1 gives NextMarker only with a delimiter (clients use the last key otherwise); giving it always is allowed and simpler.
    head += v2 ? `<NextContinuationToken>${continuationToken(last)}</NextContinuationToken>` : `<NextMarker>${x(last)}</NextMarker>`;
  }
  sendXml(res, `${head}${contents.join('')}${prefixes.join('')}</ListBucketResult>`);
}

/**
 * One page of the bucket's keys. A prefix that starts with `<rev>/` lists
 * that revision only (any revision syntax); otherwise the branches and tags
 * whose `<name>/` matches the prefix are listed, one after the other in key
 * order.
 */
export async function listPage(ctx: ServeContext, query: { prefix: string; delimiter: string; after: string; maxKeys: number }): Promise<ListPage<Listed>> {
  const { prefix, delimiter, after, maxKeys } = query;
  if (maxKeys === 0) return { items: [], truncated: false };
  const split = prefix.includes('/') && plausiblePrefix(prefix) ? revPath(ctx, prefix) : undefined;
  const source = split && prefix.startsWith(`${split.rev}/`) ? revItems(ctx, split.rev, split.commit, split.path, delimiter, after) : refItems(ctx, prefix, delimiter, after);
  return page(rollup(source, prefix, delimiter), after, maxKeys);
}

/** A prefix whose revision part could name something (the rest may end anywhere). */
function plausiblePrefix(prefix: string): boolean {
  const dir = prefix.slice(0, prefix.lastIndexOf('/'));
  return dir === '' || plausibleKey(dir);
}

/** The keys of one revision under `<rev>/<pathPrefix>`, sorted; with delimiter `/`, one directory's children, already rolled up. */
async function* revItems(ctx: ServeContext, rev: string, commit: string, pathPrefix: string, delimiter: string, after: string): AsyncGenerator<ListItem<Listed>> {
  const snap = await ctx.snapshot(commit);
  const slash = pathPrefix.lastIndexOf('/');
  const dir = slash === -1 ? '' : pathPrefix.slice(0, slash);
  const entries = await snap.list(dir, { recursive: delimiter !== '/' });
  if (!entries) return;
  if (delimiter === '/') {
    const items: ListItem<Listed>[] = [];
    for (const e of entries) {
      if (!e.path.startsWith(pathPrefix)) continue;
      items.push(e.kind === 'dir' ? { key: `${rev}/${e.path}/`, prefix: true } : { key: `${rev}/${e.path}`, value: { snap, entry: e } });
    }
    yield* sortItems(items);
    return;
  }
  // Entries are in key order: start at the first one after the page marker (a binary search; pages of a big directory would otherwise rescan it from the top).
  let lo = 0;
  if (after.startsWith(`${rev}/`)) {
    const afterPath = after.slice(rev.length + 1);
    let hi = entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareCodePoints(entries[mid]!.path, afterPath) <= 0) lo = mid + 1;
      else hi = mid;
    }
  }
  for (let i = lo; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.path.startsWith(pathPrefix)) yield { key: `${rev}/${e.path}`, value: { snap, entry: e } };
  }
}

/**
 * The keys of every branch and tag whose `<name>/` starts with `prefix`, in
 * key order. With delimiter `/` each ref is one common prefix and no
 * snapshot is read; otherwise a ref's files are read only when the page
 * reaches it.
 */
async function* refItems(ctx: ServeContext, prefix: string, delimiter: string, after: string): AsyncGenerator<ListItem<Listed>> {
  const { history } = ctx.source;
  const names = new Map<string, string>();
  for (const t of [...history.tips('refs/heads/'), ...history.tips('refs/tags/')]) {
    const name = t.name.replace(/^refs\/(heads|tags)\//, '');
    // A name both a tag and a branch: the tag wins, as in `git rev-parse`.
    if (!names.has(name) || t.name.startsWith('refs/tags/')) names.set(name, t.oid);
  }
  const refs = sortItems([...names].filter(([n]) => `${n}/`.startsWith(prefix) && plausibleKey(n)).map(([n, oid]) => ({ key: `${n}/`, value: oid })));
  let taken: string | undefined;
  for (const r of refs) {
    // `v1/` shadows a branch `v1/fix`: keys under it belong to the tag (as splitRevPath resolves them).
    if (taken !== undefined && r.key.startsWith(taken)) continue;
    taken = r.key;
    const cut = delimiter === '' ? -1 : r.key.indexOf(delimiter, prefix.length);
    if (cut !== -1) {
      yield { key: r.key.slice(0, cut + delimiter.length), prefix: true };
      continue;
    }
    // Every key of this ref sorts before `after`: skip it unread.
    if (after !== '' && compareCodePoints(r.key, after) < 0 && !after.startsWith(r.key)) continue;
    const name = r.key.slice(0, -1);
    const snap = await ctx.snapshot(r.value!);
    for (const e of (await snap.list('', { recursive: true }))!) yield { key: `${name}/${e.path}`, value: { snap, entry: e } };
  }
}
