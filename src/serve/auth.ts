import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';

/**
 * Who may read through `tdv serve`. On loopback without `--token` anyone on
 * this machine may (as with `jupyter notebook --NotebookApp.token=''`); with a
 * token every request presents it: `Authorization: Bearer`, `?token=` (which
 * sets a cookie so a browser's later requests carry it), the cookie, or an
 * AWS Signature V4 whose secret access key is the token (any key id).
 */

/** A fresh token: 32 random bytes, base64url (43 characters). */
export function generateToken(): string {
  return randomBytes(32).toString('base64url');
}

/** Whether `host` (a --host value or a Host header's name) is this machine's loopback. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}

/** The host name of a Host header, without the port (`[::1]:80` gives `::1`). */
export function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/** Equal strings, compared in constant time (for the same length; a length is not a secret worth hiding). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The cookie a valid `?token=` sets: per port, since cookies ignore ports and two servers may run side by side. */
export function cookieName(port: number): string {
  return `tdv_token_${port}`;
}

/**
 * The cookie's value: derived from the token and the port, never the token
 * itself. Browsers send a host's cookies to every port of it, so any other
 * service on the same host name (a JupyterHub, another user's server) sees
 * this cookie; what it sees then opens this server's cookie check only, not
 * the Bearer header, the S3 secret, or a server on another port with the same token.
 */
export function cookieValue(token: string, port: number): string {
  return createHmac('sha256', token).update(`tdv serve cookie for port ${port}`).digest('base64url');
}

/** The outcome of checking a request: allowed (maybe with a cookie to set), or refused with a status and one line. */
export type AuthResult =
  { ok: true; setCookie?: string } | { ok: false; status: 401 | 403; code: 'AccessDenied' | 'SignatureDoesNotMatch' | 'RequestTimeTooSkewed' | 'InvalidArgument'; message: string };

/**
 * Checks a request against `token` (undefined: no token needed). `now` is
 * the clock (milliseconds), injected for tests of signature expiry;
 * `vhostBucket` the bucket a virtual-host-style request named in its Host.
 */
export function authorize(req: http.IncomingMessage, url: URL, token: string | undefined, port: number, now = Date.now(), vhostBucket?: string): AuthResult {
  if (token === undefined) return { ok: true };
  const auth = req.headers.authorization ?? '';
  if (auth.startsWith('AWS4-HMAC-SHA256 ') || url.searchParams.has('X-Amz-Signature')) return verifySigV4(req, url, token, now);
  if (/^AWS /.test(auth) || url.searchParams.has('AWSAccessKeyId')) return verifySigV2(req, url, token, now, vhostBucket);
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1];
  if (bearer !== undefined) return safeEqual(bearer, token) ? { ok: true } : denied('the bearer token is wrong');
  const q = url.searchParams.get('token');
  if (q !== null) {
    if (!safeEqual(q, token)) return denied('the token is wrong');
    return { ok: true, setCookie: `${cookieName(port)}=${cookieValue(token, port)}; Path=/; HttpOnly; SameSite=Strict` };
  }
  const cookie = readCookie(req.headers.cookie ?? '', cookieName(port));
  if (cookie !== undefined) return safeEqual(cookie, cookieValue(token, port)) ? { ok: true } : denied('the token cookie is wrong; open the URL with ?token= again');
  return {
    ok: false,
    status: 401,
    code: 'AccessDenied',
    message: 'this server needs its token: send "Authorization: Bearer TOKEN", add ?token=TOKEN, or sign S3 requests with the token as the secret access key',
  };
}

function denied(message: string): AuthResult {
  return { ok: false, status: 403, code: 'AccessDenied', message };
}

function readCookie(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** How far a signed request's time may be from ours (S3 allows 15 minutes). */
const MAX_SKEW_MS = 15 * 60 * 1000;
/** The longest a presigned URL may live (S3: 7 days). */
const MAX_EXPIRES_S = 7 * 24 * 3600;

/** `20130524T000000Z` as milliseconds since the epoch, or NaN. */
function amzTime(s: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s);
  return m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) : NaN;
}

/**
 * Verifies an AWS Signature Version 4 (header or presigned query string)
 * made with `secret`: rebuilds the canonical request from what arrived,
 * signs it, and compares in constant time. The key id is not checked (any
 * works); the scope's service must be `s3`, its date the request's.
 */
export function verifySigV4(req: Pick<http.IncomingMessage, 'method' | 'url' | 'rawHeaders' | 'headers'>, url: URL, secret: string, now = Date.now()): AuthResult {
  const presigned = url.searchParams.has('X-Amz-Signature');
  let credential: string;
  let signedHeaders: string;
  let signature: string;
  let amzDate: string;
  let payloadHash: string;
  if (presigned) {
    const p = url.searchParams;
    if (p.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return bad('X-Amz-Algorithm must be AWS4-HMAC-SHA256');
    credential = p.get('X-Amz-Credential') ?? '';
    signedHeaders = p.get('X-Amz-SignedHeaders') ?? '';
    signature = p.get('X-Amz-Signature') ?? '';
    amzDate = p.get('X-Amz-Date') ?? '';
    payloadHash = 'UNSIGNED-PAYLOAD';
    const expires = Number(p.get('X-Amz-Expires') ?? '');
    if (!/^\d{1,7}$/.test(p.get('X-Amz-Expires') ?? '') || expires > MAX_EXPIRES_S) return bad('X-Amz-Expires must be a number of seconds up to 604800');
    const t = amzTime(amzDate);
    if (Number.isNaN(t)) return bad('X-Amz-Date is not a time like 20130524T000000Z');
    if (now > t + expires * 1000) return { ok: false, status: 403, code: 'AccessDenied', message: 'Request has expired' };
    if (t - now > MAX_SKEW_MS) return { ok: false, status: 403, code: 'RequestTimeTooSkewed', message: 'the presigned URL was made in the future: check the clocks' };
  } else {
    const auth = String(req.headers.authorization);
    const fields = new Map<string, string>();
    for (const part of auth.slice('AWS4-HMAC-SHA256 '.length).split(',')) {
      const eq = part.indexOf('=');
      if (eq !== -1) fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    credential = fields.get('Credential') ?? '';
    signedHeaders = fields.get('SignedHeaders') ?? '';
    signature = fields.get('Signature') ?? '';
    amzDate = headerValue(req, 'x-amz-date') ?? '';
    payloadHash = headerValue(req, 'x-amz-content-sha256') ?? createHash('sha256').update('').digest('hex');
    const t = amzTime(amzDate);
    if (Number.isNaN(t)) return bad('the x-amz-date header is missing or not a time like 20130524T000000Z');
    if (Math.abs(now - t) > MAX_SKEW_MS) return { ok: false, status: 403, code: 'RequestTimeTooSkewed', message: 'The difference between the request time and the current time is too large.' };
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[4] !== 'aws4_request' || scope[3] !== 's3') return bad('the credential scope must be KEYID/DATE/REGION/s3/aws4_request');
  const [, day, region, service] = scope as [string, string, string, string, string];
  if (day !== amzDate.slice(0, 8)) return bad("the credential scope's date is not the request's date");
  const names = signedHeaders.split(';');
  if (!names.includes('host') || names.some((n) => n === '' || n !== n.toLowerCase())) return bad('SignedHeaders must list host, in lower case');
  const canonical = canonicalRequest(req, names, payloadHash, presigned);
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, `${day}/${region}/${service}/aws4_request`, sha256hex(canonical)].join('\n');
  let key = hmac(`AWS4${secret}`, day);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const expected = createHmac('sha256', key).update(stringToSign).digest('hex');
  if (!safeEqual(signature.toLowerCase(), expected)) {
    return { ok: false, status: 403, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.' };
  }
  return { ok: true };
}

function bad(message: string): AuthResult {
  return { ok: false, status: 403, code: 'AccessDenied', message };
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function sha256hex(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

/** A header's values as sent (repeated headers joined by commas), or undefined. */
function headerValue(req: Pick<http.IncomingMessage, 'rawHeaders'>, name: string): string | undefined {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === name) values.push(req.rawHeaders[i + 1]!.trim().replace(/\s+/g, ' '));
  }
  return values.length ? values.join(',') : undefined;
}

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - . _ ~ (and `/` in paths). */
export function uriEncode(s: string, keepSlash: boolean): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(keepSlash ? /%2F/g : /(?!)/g, '/');
}

function decodeLenient(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The SigV4 canonical request. S3 signs the path as sent, each segment
 * URI-encoded once: decoding what arrived and encoding it again gives that
 * whether the client encoded `@` or `=` or left them bare.
 */
export function canonicalRequest(req: Pick<http.IncomingMessage, 'method' | 'url' | 'rawHeaders'>, signedHeaders: string[], payloadHash: string, presigned: boolean): string {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  const rawPath = (q === -1 ? raw : raw.slice(0, q)).replace(/^[a-z]+:\/\/[^/]*/i, '') || '/';
  const canonicalPath = rawPath
    .split('/')
    .map((seg) => uriEncode(decodeLenient(seg), false))
    .join('/');
  const params: [string, string][] = [];
  const rawQuery = q === -1 ? '' : raw.slice(q + 1);
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = decodeLenient(eq === -1 ? part : part.slice(0, eq));
    const v = decodeLenient(eq === -1 ? '' : part.slice(eq + 1));
    if (presigned && k === 'X-Amz-Signature') continue;
    params.push([uriEncode(k, false), uriEncode(v, false)]);
  }
  params.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  const headers = signedHeaders.map((n) => `${n}:${headerValue(req, n) ?? ''}\n`).join('');
  return [req.method ?? 'GET', canonicalPath, params.map(([k, v]) => `${k}=${v}`).join('&'), headers, signedHeaders.join(';'), payloadHash].join('\n');
}

/** The query parameters Signature Version 2 signs, as sub-resources of the canonical resource. */
const V2_SUBRESOURCES = new Set([
  'acl',
  'cors',
  'delete',
  'lifecycle',
  'location',
  'logging',
  'notification',
  'partNumber',
  'policy',
  'requestPayment',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
]);

/**
 * Verifies an AWS Signature Version 2 (`Authorization: AWS KEYID:SIG`, or a
 * presigned URL's `AWSAccessKeyId`, `Expires`, `Signature`): still what
 * boto3 before 1.28 makes with `generate_presigned_url` unless told
 * `signature_version='s3v4'`. HMAC-SHA1 over the verb, Content-MD5,
 * Content-Type, the date (or Expires), the x-amz- headers and the resource
 * as sent.
 */
export function verifySigV2(req: Pick<http.IncomingMessage, 'method' | 'url' | 'rawHeaders' | 'headers'>, url: URL, secret: string, now = Date.now(), vhostBucket?: string): AuthResult {
  const q = url.searchParams;
  const presigned = q.has('AWSAccessKeyId');
  let signature: string;
  let dateLine: string;
  if (presigned) {
    signature = q.get('Signature') ?? '';
    dateLine = q.get('Expires') ?? '';
    if (!/^\d{1,12}$/.test(dateLine)) return bad('Expires must be a time in seconds since the epoch');
    if (now > Number(dateLine) * 1000) return { ok: false, status: 403, code: 'AccessDenied', message: 'Request has expired' };
  } else {
    signature = /^AWS [^:]*:(.*)$/.exec(String(req.headers.authorization))?.[1]?.trim() ?? '';
    const amzDate = headerValue(req, 'x-amz-date');
    const date = amzDate ?? headerValue(req, 'date');
    const t = date === undefined ? NaN : Date.parse(date);
    if (Number.isNaN(t)) return bad('a Date or x-amz-date header is required');
    if (Math.abs(now - t) > MAX_SKEW_MS) return { ok: false, status: 403, code: 'RequestTimeTooSkewed', message: 'The difference between the request time and the current time is too large.' };
    dateLine = amzDate === undefined ? (date ?? '') : '';
  }
  const amz = new Map<string, string>();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name.startsWith('x-amz-')) amz.set(name, [amz.get(name), req.rawHeaders[i + 1]!.trim()].filter((v) => v !== undefined).join(','));
  }
  const raw = req.url ?? '/';
  const qi = raw.indexOf('?');
  const rawPath = (qi === -1 ? raw : raw.slice(0, qi)).replace(/^[a-z]+:\/\/[^/]*/i, '') || '/';
  const subs = [...q]
    .filter(([k]) => V2_SUBRESOURCES.has(k))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => (v === '' ? k : `${k}=${v}`));
  const resource = `${vhostBucket === undefined ? '' : `/${vhostBucket}`}${rawPath}${subs.length ? `?${subs.join('&')}` : ''}`;
  const stringToSign = [
    req.method ?? 'GET',
    headerValue(req, 'content-md5') ?? '',
    headerValue(req, 'content-type') ?? '',
    dateLine,
    ...[...amz].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}:${v}`),
    resource,
  ].join('\n');
  const expected = createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64');
  if (!safeEqual(signature, expected)) {
    return { ok: false, status: 403, code: 'SignatureDoesNotMatch', message: 'The request signature we calculated does not match the signature you provided. Check your key and signing method.' };
  }
  return { ok: true };
}
