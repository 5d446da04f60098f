#!/usr/bin/env node
/**
 * A local S3 server (s3rver) for the S3 remote tests, with the bucket `tdv-test`.
 *
 *   node --openssl-legacy-provider test/helpers/s3-server.mjs [--port N] [--dir DIR] [--exit-with-stdin]
 *
 * Listens on 127.0.0.1 (port 0 or none: a free port), then prints `READY <port>`
 * on stdout. Data goes to DIR, or to a temporary directory removed on exit.
 * With --exit-with-stdin it stops when its stdin closes, so a parent that dies
 * without cleaning up (a killed test run) does not leave it behind.
 * On a failure to start it prints `ERROR <reason>` on stderr and exits 1.
 *
 * s3rver needs the legacy OpenSSL provider on Node >= 17: it encrypts
 * ListObjectsV2 continuation tokens with DES, which OpenSSL 3 only has there.
 * Without it the first listing page works and the second fails, so this
 * script refuses to start instead.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function fail(reason) {
  process.stderr.write(`ERROR ${String(reason).split('\n')[0]}\n`);
  process.exit(1);
}

try {
  crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
} catch {
  fail('DES is unavailable, so s3rver cannot page listings: run node with --openssl-legacy-provider');
}

const port = Number(arg('--port') ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad --port ${arg('--port')}`);
let dir = arg('--dir');
let ownDir = false;
if (!dir) {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-s3rver-'));
  ownDir = true;
}

// Before READY any failure is fatal. After it, S3 does not go away because one request
// went wrong (a client cut off mid-response, a stream error inside s3rver): the error is
// logged on stderr (.ci/run prints it) and the server goes on, so one bad request cannot
// turn every later S3 test into ECONNREFUSED. Stored objects are still checked by the tests.
let ready = false;
const onUncaught = (kind) => (err) => {
  if (!ready) fail(err?.message ?? err);
  process.stderr.write(`s3-server: ${kind} (server kept running): ${err?.stack ?? err}\n`);
};
process.on('uncaughtException', onUncaught('uncaught exception'));
process.on('unhandledRejection', onUncaught('unhandled rejection'));

let S3rver;
try {
  S3rver = require('s3rver');
} catch (err) {
  fail(`cannot load s3rver: ${err.message}`);
}

const server = new S3rver({
  port,
  address: '127.0.0.1',
  directory: dir,
  silent: true,
  configureBuckets: [{ name: 'tdv-test' }],
});

/**
 * S3 stores an upload whole or not at all, and refuses one whose Content-MD5
 * does not match the bytes that arrived (BadDigest). s3rver does neither: it
 * writes a PUT's body to the object's file as it arrives, so a dropped or
 * truncated upload leaves a partial object that listings show, and it never
 * checks Content-MD5. So every PUT body is received in full here first and
 * checked, and only then handed to s3rver; and AbortMultipartUpload is
 * answered. The fault-injection tests then see what S3 would do.
 */
server.middleware.unshift(async (ctx, next) => {
  if (ctx.method === 'DELETE' && ctx.query.uploadId !== undefined) {
    // AbortMultipartUpload, which s3rver lacks (405): the AWS SDK's Upload aborts after a
    // failed part and then reports the failed abort instead of what went wrong.
    const bucket = ctx.path.split('/')[1];
    const id = String(ctx.query.uploadId);
    if (/^[0-9a-f]+$/.test(id)) fs.rmSync(path.join(server.store.getResourcePath(bucket, undefined, 'uploads'), id), { recursive: true, force: true });
    ctx.status = 204;
    return;
  }
  if (ctx.method !== 'PUT') return next();
  const body = await new Promise((resolve) => {
    const chunks = [];
    ctx.req.on('data', (c) => chunks.push(c));
    ctx.req.on('end', () => resolve(Buffer.concat(chunks)));
    ctx.req.on('error', () => resolve(undefined));
    ctx.req.on('close', () => resolve(undefined)); // after 'end' this changes nothing
  });
  const refuse = (code, message) => {
    ctx.status = 400;
    ctx.type = 'application/xml';
    ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  };
  if (body === undefined) return; // the client went away mid-body: nothing is stored
  const declared = ctx.get('content-length');
  if (declared !== '' && Number(declared) !== body.length) return refuse('IncompleteBody', 'You did not provide the number of bytes specified by the Content-Length HTTP header.');
  const md5 = ctx.get('content-md5');
  if (md5 && crypto.createHash('md5').update(body).digest('base64') !== md5) return refuse('BadDigest', 'The Content-MD5 you specified did not match what we received.');
  ctx.req = Readable.from(body.length ? [body] : [], { objectMode: false });
  return next();
});

/**
 * s3rver writes an object in place, so two writes of one key at once (a
 * CompleteMultipartUpload the client timed out on and retried while the first
 * was still concatenating the parts) can leave it partial. S3 replaces objects
 * atomically: write under a temporary key outside any prefix, then rename.
 */
const store = server.store;
const putInPlace = store.putObject.bind(store);
store.putObject = async (object) => {
  const tmpKey = `.tdv-test-tmp/${crypto.randomBytes(8).toString('hex')}`;
  const tmp = Object.assign(Object.create(Object.getPrototypeOf(object)), object, { key: tmpKey });
  const result = await putInPlace(tmp);
  for (const resource of ['metadata.json', 'object.md5', 'object']) {
    const to = store.getResourcePath(object.bucket, object.key, resource);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.renameSync(store.getResourcePath(object.bucket, tmpKey, resource), to);
  }
  return result;
};

/**
 * s3rver's putPart answers once the part's bytes went through its hashing
 * stream, before its file write has finished, and writes the part file in
 * place. So a CompleteMultipartUpload can concatenate a part that is still
 * being written, and a part retried while its first attempt is still being
 * written interleaves two writes in one file: both store a wrong object (seen
 * under load in CI). Parts are written here in full, to a temporary name, and
 * renamed into place before the answer.
 */
store.putPart = async (bucket, uploadId, partNumber, content) => {
  const chunks = [];
  for await (const c of content) chunks.push(Buffer.from(c));
  const body = Buffer.concat(chunks);
  const md5 = crypto.createHash('md5').update(body).digest('hex');
  const partPath = path.join(store.getResourcePath(bucket, undefined, 'uploads'), uploadId, String(partNumber));
  fs.mkdirSync(path.dirname(partPath), { recursive: true });
  for (const [to, data] of [
    [partPath, body],
    [`${partPath}.md5`, md5],
  ]) {
    const tmp = `${to}.${crypto.randomBytes(6).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, to);
  }
  return { size: body.length, md5 };
};

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  try {
    await server.close();
  } catch {
    // not running
  }
  if (ownDir) fs.rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}

process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));
if (process.argv.includes('--exit-with-stdin')) {
  process.stdin.on('end', () => void stop(0));
  process.stdin.on('error', () => void stop(0));
  process.stdin.resume();
}

const addr = await server.run();
ready = true;
process.stdout.write(`READY ${addr.port}\n`);
