import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { execa } from 'execa';
import { beforeAll, expect, it } from 'vitest';
import { cacheObjects, damageRemoteObject, objPath, packedObjects, sha } from '../helpers/expect.js';
import { describeNeeding } from '../helpers/needs.js';
import { makeRepo, tdvBin, tmpDir, write } from '../helpers/repo.js';

/**
 * scripts/recover-remote.py (README: "Remote layout"): a remote written by the
 * real bin/tdv, in the packed layout with plain objects from before, gives
 * back every object byte for byte without tdv, from its indexes or, with the
 * indexes gone, from the packs' record headers. Python's standard library and
 * the zstd command only.
 */

const PY = '/usr/bin/python3';
const SCRIPT = path.resolve(import.meta.dirname, '../../scripts/recover-remote.py');
const missing = !fs.existsSync(PY)
  ? `${PY} is not installed (apt-get install python3)`
  : spawnSync('zstd', ['--version']).status !== 0
    ? 'the zstd command is not installed (apt-get install zstd)'
    : undefined;

/** A CSV of `rows` rows from `from` on: text that compresses well. */
function csv(from: number, rows: number): string {
  const out: string[] = [];
  for (let i = from; i < from + rows; i++) out.push(`${i},${(i * 7919) % 10007},zone-${i % 97},${(i % 1000) / 10},note ${'x'.repeat(i % 13)}\n`);
  return out.join('');
}

let repo: string;
let remote: string;
let v1: string;
let v2: string;
let piece: string;

async function ok(args: string[]): Promise<string> {
  const r = await tdvBin(repo, args);
  expect(r.code, `tdv ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

async function recover(args: string[]) {
  const r = await execa(PY, [SCRIPT, ...args], { reject: false });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** Every object's bytes came back under its id, nothing else (no temp file) is in `out`. */
function expectAllRecovered(out: string, except: string[] = []): void {
  const want = cacheObjects(repo).filter((o) => !except.includes(o));
  expect(fs.readdirSync(out).sort()).toEqual(want);
  for (const oid of want) expect(fs.readFileSync(path.join(out, oid)).equals(fs.readFileSync(objPath(repo, oid))), oid).toBe(true);
}

/**
 * The small file whose bytes are a chunk of the CSV: tdv stores it again as
 * an object, so an index entry names it (empty: nothing stored only as a chunk).
 */
const chunkOnly = (): string[] => (packedObjects(remote).has(piece) ? [] : [piece]);

/** A copy of the remote to damage or strip. */
function copyOfRemote(): string {
  const copy = path.join(fs.realpathSync(tmpDir()), 'remote');
  fs.cpSync(remote, copy, { recursive: true });
  return copy;
}

beforeAll(async () => {
  if (missing) return;
  repo = await makeRepo();
  remote = fs.realpathSync(tmpDir());
  await ok(['remote', 'add', '-d', 'r', remote]);
  // A plain object from before the packed layout...
  await ok(['remote', 'modify', 'r', 'layout', 'plain']);
  write(repo, 'data/old.txt', 'pushed in the plain layout\n');
  await ok(['add', 'data/old.txt']);
  await ok(['push', '-q']);
  // ...then everything else packed: small files, a directory, a large CSV (compressed chunks) and random bytes (raw chunks).
  await ok(['remote', 'modify', 'r', 'layout', 'packed']);
  write(repo, 'data/small.txt', 'hello\n');
  write(repo, 'data/empty.txt', '');
  write(repo, 'data/dir/a.csv', csv(0, 100));
  write(repo, 'data/dir/sub/b c.json', JSON.stringify({ rows: csv(5, 50).split('\n') }));
  write(repo, 'data/dir/noise.bin', randomBytes(70_000));
  write(repo, 'data/dir/run.sh', '#!/bin/sh\necho hi\n');
  fs.chmodSync(path.join(repo, 'data/dir/run.sh'), 0o755);
  write(repo, 'data/big.bin', randomBytes(5 << 20));
  const first = csv(0, 130_000);
  expect(first.length).toBeGreaterThan(4 << 20);
  write(repo, 'data/big.csv', first);
  v1 = sha(first);
  await ok(['add', 'data/small.txt', 'data/empty.txt', 'data/dir', 'data/big.bin', 'data/big.csv']);
  await ok(['push', '-q']);
  // A small file identical to the CSV's third chunk (its recipe, as the cache keeps it, says where that is).
  const recipe = JSON.parse(fs.readFileSync(path.join(repo, '.tdv', 'cache', 'recipes', v1.slice(0, 2), v1.slice(2)), 'utf8')) as { chunks: [string, number][] };
  const start = recipe.chunks[0]![1] + recipe.chunks[1]![1];
  const bytes = Buffer.from(first).subarray(start, start + recipe.chunks[2]![1]);
  piece = sha(bytes);
  expect(piece).toBe(recipe.chunks[2]![0]);
  write(repo, 'data/piece.csv', bytes);
  await ok(['add', 'data/piece.csv']);
  await ok(['push', '-q']);
  // A second version: only its new chunks are sent, and its recipe names chunks of the first.
  const second = first + csv(130_000, 2_000);
  write(repo, 'data/big.csv', second);
  v2 = sha(second);
  await ok(['add', 'data/big.csv']);
  await ok(['push', '-q']);
}, 120_000);

describeNeeding('python3 and zstd', missing, 'scripts/recover-remote.py on a remote pushed by bin/tdv', () => {
  it('the remote holds what the script must handle: plain objects, several indexes, compressed and raw chunks, recipes', () => {
    expect(fs.existsSync(path.join(remote, 'files', 'sha256', sha('pushed in the plain layout\n').slice(0, 2)))).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(remote, 'tdv-remote.json'), 'utf8'))).toMatchObject({ format: 'tdv-remote', layout: 2 });
    const kinds = new Set<string>();
    const indexes = fs.readdirSync(path.join(remote, 'index'));
    expect(indexes.length).toBeGreaterThan(1);
    for (const name of indexes) {
      const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(remote, 'index', name))).toString()) as { blobs: unknown[][] };
      for (const b of doc.blobs) kinds.add(`${String(b[1])}${String(b[6])}`);
    }
    expect([...kinds].sort()).toEqual(expect.arrayContaining(['cn', 'cz', 'on', 'oz', 'rz']));
    expect(packedObjects(remote).get(v1)?.kind).toBe('r');
    expect(packedObjects(remote).get(v2)?.kind).toBe('r');
  });

  it('from the indexes: every object, both versions of the large file, byte-identical', async () => {
    const out = path.join(fs.realpathSync(tmpDir()), 'out');
    const r = await recover([remote, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    // Pushed after the CSV, whose chunk holds the same bytes: stored as an object too.
    expect(chunkOnly()).toEqual([]);
    expect(packedObjects(remote).get(piece)?.kind).toBe('o');
    expect(r.stdout).toBe(`recovered ${cacheObjects(repo).length} objects into ${out}`);
    expectAllRecovered(out, []);
    expect(fs.readdirSync(out)).toEqual(expect.arrayContaining([v1, v2]));
  });

  it('--chunks: also every chunk', async () => {
    for (const mode of [[], ['--scan-packs']]) {
      const out = path.join(fs.realpathSync(tmpDir()), 'out');
      const r = await recover([...mode, '--chunks', remote, out]);
      expect(r.code, r.stderr).toBe(0);
      const got = fs.readdirSync(out);
      expect(got).toEqual(expect.arrayContaining(cacheObjects(repo)));
      expect(got.length).toBeGreaterThan(cacheObjects(repo).length + 30); // the chunks of two 5 MiB files
      for (const name of got) expect(sha(fs.readFileSync(path.join(out, name))), name).toBe(name.slice(0, 64));
      expect(fs.readFileSync(path.join(out, piece)).equals(fs.readFileSync(objPath(repo, piece)))).toBe(true);
    }
  });

  it('--scan-packs: the same with every index deleted', async () => {
    const copy = copyOfRemote();
    fs.rmSync(path.join(copy, 'index'), { recursive: true });
    const out = path.join(fs.realpathSync(tmpDir()), 'out');
    const r = await recover(['--scan-packs', copy, out]);
    expect(r.code, r.stderr).toBe(0);
    expectAllRecovered(out, chunkOnly());
    // Without --scan-packs, only the plain object is left to find.
    const out2 = path.join(fs.realpathSync(tmpDir()), 'out');
    expect((await recover([copy, out2])).code).toBe(0);
    expect(fs.readdirSync(out2)).toEqual([sha('pushed in the plain layout\n')]);
  });

  it('a damaged blob or chunk: the objects it belongs to are named and not written, all others are recovered', async () => {
    const copy = copyOfRemote();
    const small = sha('hello\n');
    damageRemoteObject(copy, small);
    // The first chunk of the large CSV, which both versions share (its recipe, as the cache keeps it).
    const recipe = JSON.parse(fs.readFileSync(path.join(repo, '.tdv', 'cache', 'recipes', v1.slice(0, 2), v1.slice(2)), 'utf8')) as { chunks: [string, number][] };
    const chunk = recipe.chunks[0]![0];
    let damaged = false;
    for (const name of fs.readdirSync(path.join(copy, 'index'))) {
      const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(copy, 'index', name))).toString()) as { packs: string[]; blobs: [string, string, number, number, number][] };
      for (const [id, , p, offset, length] of doc.blobs) {
        if (id !== chunk || damaged) continue;
        const pack = path.join(copy, 'packs', `${doc.packs[p]}.pack`);
        const buf = fs.readFileSync(pack);
        const at = offset + Math.floor(length / 2);
        buf[at] = buf[at]! ^ 0xff;
        fs.writeFileSync(pack, buf);
        damaged = true;
      }
    }
    expect(damaged).toBe(true);
    for (const mode of [[], ['--scan-packs']]) {
      const out = path.join(fs.realpathSync(tmpDir()), 'out');
      const r = await recover([...mode, copy, out]);
      expect(r.code, mode.join(' ')).toBe(1);
      expect(r.stderr.trim().split('\n').sort()).toEqual([v1, v2, small].sort().map((o) => `${o}: not recovered: no copy on the remote hashes to it`));
      expectAllRecovered(out, [v1, v2, small, ...chunkOnly()]);
    }
  });

  // Last: it changes the remote the other tests read.
  it('after `tdv push --repair`, the good copies are found beside the damaged ones, in both modes', async () => {
    const small = sha('hello\n');
    damageRemoteObject(remote, small);
    damageRemoteObject(remote, v2); // its recipe (v1 is no longer in a pointer: --repair would not send it)
    expect((await tdvBin(repo, ['pull', '-q'])).code).toBe(0); // nothing missing locally: pull reads nothing
    await ok(['push', '-q', '--repair']);
    for (const mode of [[], ['--scan-packs']]) {
      const out = path.join(fs.realpathSync(tmpDir()), 'out');
      const r = await recover([...mode, remote, out]);
      expect(r.code, `${mode.join(' ')}: ${r.stderr}`).toBe(0);
      expectAllRecovered(out, chunkOnly());
    }
  });
});
