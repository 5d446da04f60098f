/**
 * Independent re-statements of tdv's on-disk formats (spec §3–§4), for
 * integration tests: computed here from first principles, never by calling
 * tdv's own code, so a test fails when the implementation drifts from the spec.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';
import { expect, onTestFinished } from 'vitest';
import { git, makeRepo, snapshot, tdv, tmpDir, write } from './repo.js';

export function sha(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Absolute path of a cache object: `.tdv/cache/files/sha256/<2>/<62>[.dir]`. */
export function objPath(root: string, oid: string): string {
  return path.join(root, '.tdv', 'cache', 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
}

export interface FileSpec {
  relpath: string;
  content: string;
  isexec?: boolean;
}

/** The canonical manifest bytes of a directory and its `<hex>.dir` id. */
export function manifest(files: FileSpec[]): { text: string; oid: string; size: number } {
  const sorted = [...files].sort((a, b) => (a.relpath < b.relpath ? -1 : a.relpath > b.relpath ? 1 : 0));
  const text = `[${sorted
    .map((f) =>
      JSON.stringify(
        f.isexec
          ? { relpath: f.relpath, sha256: sha(f.content), size: Buffer.byteLength(f.content), isexec: true }
          : { relpath: f.relpath, sha256: sha(f.content), size: Buffer.byteLength(f.content) },
      ),
    )
    .join(',')}]`;
  return { text, oid: `${sha(text)}.dir`, size: files.reduce((n, f) => n + Buffer.byteLength(f.content), 0) };
}

/** The exact pointer text the spec shows for a single file. */
export function filePointer(name: string, content: string, isexec = false): string {
  return `outs:\n- path: ${name}\n  sha256: ${sha(content)}\n  size: ${Buffer.byteLength(content)}\n${isexec ? '  isexec: true\n' : ''}`;
}

/** The exact pointer text for a directory. */
export function dirPointer(name: string, files: FileSpec[]): string {
  const m = manifest(files);
  return `outs:\n- path: ${name}\n  sha256: ${m.oid}\n  size: ${m.size}\n  nfiles: ${files.length}\n`;
}

/** Every object id in the repo's cache. */
export function cacheObjects(root: string): string[] {
  return storeObjects(path.join(root, '.tdv', 'cache'));
}

/**
 * Every object id in a local remote, in either layout: plain files
 * (`files/sha256/...`, as the cache) and the objects (small files, manifests,
 * large files' recipes; not chunks) its pack indexes name.
 */
export function remoteObjects(remote: string): string[] {
  return [...new Set([...storeObjects(remote), ...packedObjects(remote).keys()])].sort();
}

/** Where each packed object of a local remote is: its pack file and the payload's offset and length. */
export function packedObjects(remote: string): Map<string, { pack: string; offset: number; length: number; kind: string; codec: string }> {
  const out = new Map<string, { pack: string; offset: number; length: number; kind: string; codec: string }>();
  const dir = path.join(remote, 'index');
  if (!fs.existsSync(dir)) return out;
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.endsWith('.json.gz')) continue;
    const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(dir, name))).toString()) as { packs: string[]; blobs: [string, string, number, number, number, number, string][] };
    for (const [id, kind, p, offset, length, , codec] of doc.blobs) {
      if (kind === 'c') continue;
      out.set(id, { pack: path.join(remote, 'packs', `${doc.packs[p]}.pack`), offset, length, kind, codec });
    }
  }
  return out;
}

/** Bytes of every pack and index on a local remote: what a first push to it sent. */
export function packedBytes(remote: string): number {
  let n = 0;
  for (const d of ['packs', 'index']) {
    const dir = path.join(remote, d);
    if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir)) n += fs.statSync(path.join(dir, f)).size;
  }
  return n;
}

/**
 * Damages one object on a local remote, in either layout: the plain file's
 * content is replaced by `bytes`, or one byte of its packed payload is
 * flipped (the pack keeps its size, so only hashing finds it).
 */
export function damageRemoteObject(remote: string, oid: string, bytes = 'tampered'): void {
  const plain = path.join(remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
  if (fs.existsSync(plain)) {
    fs.chmodSync(plain, 0o644);
    fs.writeFileSync(plain, bytes);
    return;
  }
  const at = packedObjects(remote).get(oid);
  if (!at) throw new Error(`object ${oid} is not on remote ${remote}`);
  const buf = fs.readFileSync(at.pack);
  const i = at.offset + Math.floor(at.length / 2);
  buf[i] = buf[i]! ^ 0xff;
  fs.chmodSync(at.pack, 0o644);
  fs.writeFileSync(at.pack, buf);
}

/** Object ids under `<root>/files/sha256/`, sorted; stray files in the prefix level are not objects. */
function storeObjects(root: string): string[] {
  const base = path.join(root, 'files', 'sha256');
  if (!fs.existsSync(base)) return [];
  const out: string[] = [];
  for (const p of fs.readdirSync(base)) {
    if (!fs.statSync(path.join(base, p)).isDirectory()) continue;
    for (const rest of fs.readdirSync(path.join(base, p))) out.push(p + rest);
  }
  return out.sort();
}

export function setConfig(root: string, yaml: string): void {
  fs.writeFileSync(path.join(root, '.tdv', 'config.yaml'), yaml);
}

export function mode(root: string, rel: string): number {
  return fs.statSync(path.join(root, rel)).mode & 0o777;
}

/** True when no write bit is set (tests run as root, so access(W_OK) cannot tell). */
export function isReadOnly(file: string): boolean {
  return (fs.statSync(file).mode & 0o222) === 0;
}

/** One line, ends in a newline, starts with "error:" and mentions every `needle`. */
export function expectOneLineError(stderr: string, ...needles: (string | RegExp)[]): void {
  expect(stderr).toMatch(/^error: [^\n]+\n$/);
  for (const n of needles) {
    if (typeof n === 'string') expect(stderr).toContain(n);
    else expect(stderr).toMatch(n);
  }
}

/**
 * Snapshot of a repo for "nothing was written" checks, leaving out the
 * stat cache, which read-only commands may refresh by design.
 */
export function state(root: string): Record<string, string> {
  const s = snapshot(root);
  for (const k of Object.keys(s)) if (k.startsWith('.tdv/tmp/statcache-')) delete s[k];
  return s;
}

/** Mtime (ns) of a file, to prove it was not rewritten. */
export function mtimeNs(file: string): bigint {
  return fs.statSync(file, { bigint: true }).mtimeNs;
}

/** `makeRepo`, removed again when the current test finishes. */
export async function newRepo(opts: { init?: boolean } = {}): Promise<string> {
  const dir = await makeRepo(opts);
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A plain temporary directory (no Git), removed when the current test finishes. */
export function newDir(): string {
  const dir = fs.realpathSync(tmpDir());
  onTestFinished(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A new tdv repo holding `files`, with `add` run on the given paths (and `config` written first). */
export async function repoWith(files: Record<string, string>, add: string[], config?: string): Promise<string> {
  const dir = await newRepo();
  if (config) setConfig(dir, config);
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  const r = await tdv(dir, 'add', ...add);
  if (r.code !== 0) throw new Error(r.stderr);
  return dir;
}

/** The small dataset the transfer and fsck tests share: three files under data/ (plus model.bin, "weights"). */
export const SAMPLE_DATA = { 'data/a.csv': 'a,1\n', 'data/b.csv': 'b,2\n', 'data/sub/c.csv': 'c,3\n' };
/** The manifest of SAMPLE_DATA's data/. */
export const SAMPLE_DIR = manifest(Object.entries(SAMPLE_DATA).map(([k, v]) => ({ relpath: k.slice(5), content: v })));

/** A repo with `data/` (SAMPLE_DATA) and `model.bin` tracked, a local default remote "store", and with `commit` everything committed. */
export async function sampleRepo(opts: { commit?: boolean; layout?: 'plain' | 'packed' } = {}): Promise<{ dir: string; remote: string }> {
  const dir = await newRepo();
  const remote = newDir();
  // `layout: plain` for tests that look at or plant objects under files/sha256 on the remote.
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n${opts.layout ? `    layout: ${opts.layout}\n` : ''}`);
  for (const [rel, c] of Object.entries(SAMPLE_DATA)) write(dir, rel, c);
  write(dir, 'model.bin', 'weights');
  const r = await tdv(dir, 'add', 'data', 'model.bin');
  expect(r.code, r.stderr).toBe(0);
  if (opts.commit) {
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
  }
  return { dir, remote };
}
