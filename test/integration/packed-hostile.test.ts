import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { git, tdv, tdvBin, write } from '../helpers/repo.js';
import { damageRemoteObject, expectOneLineError, newDir, sampleRepo, sha } from '../helpers/expect.js';
import { LocalRemote } from '../../src/remote/local.js';
import { PackedRemote } from '../../src/remote/packed.js';
import { ObjectStore } from '../../src/cache/store.js';
import { DEFAULT_COMPRESSION } from '../../src/remote/transfer/codec.js';
import { encodeIndex, encodeRecipe, PackBuilder } from '../../src/remote/transfer/pack.js';

/**
 * A hostile packed remote (README "Remote layout") against the real bin/tdv:
 * what it may make tdv allocate, and how its damage is reported.
 */
async function clone(dir: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', dir, to);
  return to;
}

/** Writes `json` gzipped as an index under its own name (so its name checks out). */
function plantIndex(remote: string, json: string): string {
  const gz = zlib.gzipSync(json, { level: 9 });
  const name = createHash('sha256').update(gz).digest('hex');
  fs.writeFileSync(path.join(remote, 'index', `${name}.json.gz`), gz);
  return name;
}

describe('hostile packed remote', () => {
  it('an index that gunzips to far more than an index of its size can hold (a gzip bomb) is refused unparsed, in one line', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    // 1,000 copies of one row compress about 200:1; a real index (hex ids) about 2:1.
    const row = `["${'a'.repeat(64)}","o",0,8,0,0,"n"]`;
    const name = plantIndex(remote, `{"format":"tdv-index","version":1,"written":1,"packs":["${'b'.repeat(64)}"],"blobs":[${Array(200_000).fill(row).join(',')}]}`);
    expect(fs.statSync(path.join(remote, 'index', `${name}.json.gz`)).size).toBeLessThan(100_000);
    const b = await clone(dir);
    const r = await tdv(b, 'pull');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `index/${name}.json.gz is damaged`, 'more than');
  });
});

describe('hostile packed remote: memory', () => {
  it('many indexes naming the same blob cost memory for one, not for all of them at once', { timeout: 120_000 }, async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    // 12 indexes of 100,000 rows each, all one id (random numbers, so they gzip like real
    // indexes): 1.2 million entries. Held all at once they need about 400 MB of heap.
    for (let k = 0; k < 12; k++) {
      const rows: string[] = [];
      for (let i = 0; i < 100_000; i++) {
        const n = randomInt(1e6, 6e7);
        rows.push(`["${'a'.repeat(64)}","o",0,${randomInt(8, 1e9)},${n},${n + randomInt(0, 1e6)},"z"]`);
      }
      plantIndex(remote, `{"format":"tdv-index","version":1,"written":${k},"packs":["${'b'.repeat(64)}"],"blobs":[${rows.join(',')}]}`);
    }
    const b = await clone(dir);
    const r = await tdvBin(b, ['pull'], { NODE_OPTIONS: '--max-old-space-size=200', PATH: process.env.PATH ?? '' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('packed remote read while another process writes it', () => {
  it('an index that vanishes between the listing and its read (a push replacing its checkpoint) makes the reader list again, not fail', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    const raw = new LocalRemote('store', remote);
    // The first listing names an index that is deleted before it is read, as a concurrent push does.
    const gone = `index/${'c'.repeat(64)}.json.gz`;
    let listings = 0;
    const racing = new Proxy(raw, {
      get(t, p, r) {
        if (p === 'listKeys')
          return async (d: string, max?: number) => {
            const keys = await t.listKeys(d, max);
            return d === 'index' && listings++ === 0 ? [...keys, { key: gone, size: 100 }] : keys;
          };
        const v = Reflect.get(t, p, r) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const store = new ObjectStore(path.join(dir, '.tdv', 'cache'), path.join(dir, '.tdv', 'tmp'));
    const packed = new PackedRemote(racing, { layout: undefined, chunking: true, compression: DEFAULT_COMPRESSION }, store, 2);
    expect(await packed.has(sha('weights'))).toBe(true);
    expect(listings).toBe(2);
  });
});

describe('a pack an index names is gone or not a file', () => {
  it('the error says `tdv push --repair` (plain `tdv push` sees the index and sends nothing), and that advice works', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    const packs = fs.readdirSync(path.join(remote, 'packs'));
    // The pack holding model.bin's object.
    const holder = packs.find((p) => fs.readFileSync(path.join(remote, 'packs', p)).includes(sha('weights')))!;
    fs.rmSync(path.join(remote, 'packs', holder));
    const b = await clone(dir);
    let r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`packs/${holder} is missing, though an index names it`);
    expect(r.stderr).toContain('`tdv push --repair');
    expect(r.stderr).not.toContain('`tdv push` it');
    // Plain push trusts the index: nothing to send.
    expect((await tdvBin(dir, ['push'], { PATH: process.env.PATH ?? '' })).stdout).toMatch(/up to date/);
    // Not a file (a directory where the pack was): the same advice.
    fs.mkdirSync(path.join(remote, 'packs', holder));
    r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is a directory, not a regular file');
    expect(r.stderr).toContain('`tdv push --repair');
    fs.rmdirSync(path.join(remote, 'packs', holder));
    // The advice works.
    expect((await tdvBin(dir, ['push', '--repair'], { PATH: process.env.PATH ?? '' })).code).toBe(0);
    r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.stderr).toBe('');
    expect(fs.readFileSync(path.join(b, 'model.bin'), 'utf8')).toBe('weights');
  });
});

describe('an upload whose packs finish out of order', () => {
  it('no index names a recipe before every pack holding its chunks is uploaded: a failed earlier pack leaves the file absent, so the next push sends it', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    // Random bytes: two packs of chunks, the second (smaller, with the recipe) uploads faster.
    const big = randomBytes(6 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    const oid = createHash('sha256').update(big).digest('hex');
    const raw = new LocalRemote('store', remote);
    let packs = 0;
    let indexWritten: () => void = () => undefined;
    const indexed = new Promise<void>((r) => (indexWritten = r));
    let secondDone: () => void = () => undefined;
    const second = new Promise<void>((r) => (secondDone = r));
    const flaky = new Proxy(raw, {
      get(t, p, r) {
        if (p === 'putKey')
          return async (key: string, from: Parameters<LocalRemote['putKey']>[1], onBytes?: (n: number) => void) => {
            if (key.startsWith('index/')) indexWritten();
            if (!key.startsWith('packs/')) return t.putKey(key, from, onBytes);
            const n = ++packs;
            if (n === 1) {
              // The first pack is slow, then its connection drops: after the second is up,
              // and after an index was written or half a second passed.
              await second;
              await Promise.race([indexed, new Promise((res) => setTimeout(res, 500))]);
              throw new Error('connection reset');
            }
            await t.putKey(key, from, onBytes);
            if (n === 2) secondDone();
          };
        const v = Reflect.get(t, p, r) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
    const store = new ObjectStore(path.join(dir, '.tdv', 'cache'), path.join(dir, '.tdv', 'tmp'));
    const settings = { layout: undefined, chunking: true, compression: DEFAULT_COMPRESSION };
    await expect(new PackedRemote(flaky, settings, store, 2).putMany([{ oid, from: store.pathOf(oid) }])).rejects.toThrow('connection reset');
    expect(packs).toBe(2);
    // A reader (or the next push) must not believe the remote has the file.
    const fresh = new PackedRemote(new LocalRemote('store', remote), settings, store, 2);
    expect(await fresh.has(oid)).toBe(false);
    expect(await fresh.putMany([{ oid, from: store.pathOf(oid) }])).toEqual(new Map());
    const body = await new PackedRemote(new LocalRemote('store', remote), settings, new ObjectStore(path.join(newDir(), 'c'), path.join(newDir(), 't')), 2).get(oid);
    const parts: Buffer[] = [];
    for await (const b of body) parts.push(Buffer.from(b));
    expect(createHash('sha256').update(Buffer.concat(parts)).digest('hex')).toBe(oid);
  });
});

describe('a resumed pull of a large chunked file', () => {
  it('removes the chunks a killed run kept once the file is in the cache, as well as its own', async () => {
    const { dir } = await sampleRepo({ commit: true });
    const big = randomBytes(18 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    expect((await tdv(dir, 'push')).code).toBe(0);
    const oid = createHash('sha256').update(big).digest('hex');
    const recipe = JSON.parse(fs.readFileSync(path.join(dir, '.tdv', 'cache', 'recipes', oid.slice(0, 2), oid.slice(2)), 'utf8')) as { chunks: [string, number][] };
    const b = await clone(dir);
    // What a pull killed midway leaves: its first chunks, verified, in .tdv/tmp/chunks.
    let offset = 0;
    for (const [c, size] of recipe.chunks.slice(0, 5)) {
      fs.mkdirSync(path.join(b, '.tdv', 'tmp', 'chunks', c.slice(0, 2)), { recursive: true });
      fs.writeFileSync(path.join(b, '.tdv', 'tmp', 'chunks', c.slice(0, 2), c.slice(2)), big.subarray(offset, offset + size));
      offset += size;
    }
    const r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.stderr).toBe('');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(b, 'big.bin')))
        .digest('hex'),
    ).toBe(oid);
    const left: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.existsSync(d) ? fs.readdirSync(d, { withFileTypes: true }) : []) {
        if (e.isDirectory()) walk(path.join(d, e.name));
        else left.push(e.name);
      }
    };
    walk(path.join(b, '.tdv', 'tmp', 'chunks'));
    expect(left).toEqual([]);
  });
});

describe('a damaged layout record', () => {
  it('says to delete tdv-remote.json (push --repair refuses it too), and that advice works', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    const rec = path.join(remote, 'tdv-remote.json');
    fs.chmodSync(rec, 0o644);
    for (const bad of ['{"format":"tdv-remote","layout":-1}', 'x'.repeat(5000)]) {
      fs.writeFileSync(rec, bad);
      const b = await clone(dir);
      const r = await tdv(b, 'pull');
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, 'tdv-remote.json is damaged', 'Delete tdv-remote.json on the remote');
      expect(r.stderr).not.toContain('--repair');
    }
    fs.rmSync(rec);
    const b = await clone(dir);
    expect((await tdv(b, 'pull')).code).toBe(0);
    expect(fs.readFileSync(path.join(b, 'model.bin'), 'utf8')).toBe('weights');
    write(dir, 'more.txt', 'more');
    expect((await tdv(dir, 'add', 'more.txt')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(rec, 'utf8'))).toMatchObject({ format: 'tdv-remote', layout: 2 });
  });
});

describe('a damaged index', () => {
  it('says to delete it, then push --repair (every command, push --repair too, reads every index first), and that advice works', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    expect((await tdv(dir, 'push')).code).toBe(0);
    const [first] = fs.readdirSync(path.join(remote, 'index'));
    const file = path.join(remote, 'index', first!);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'garbage');
    let r = await tdv(dir, 'push', '--repair');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `index/${first!} is damaged`, 'Delete it on the remote, then run `tdv push --repair -r store`');
    fs.rmSync(file);
    expect((await tdv(dir, 'push', '--repair')).code).toBe(0);
    const b = await clone(dir);
    r = await tdv(b, 'pull');
    expect(r.stderr).toBe('');
    expect(fs.readFileSync(path.join(b, 'model.bin'), 'utf8')).toBe('weights');
  });
});

describe('push --repair after the chunking setting changed', () => {
  it('a large file stored whole (chunking off) and damaged is repaired by a push that chunks it: the new recipe is read, not the damaged object', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), '    chunking: false\n');
    const big = randomBytes(5 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    expect((await tdv(dir, 'push')).code).toBe(0);
    const oid = createHash('sha256').update(big).digest('hex');
    damageRemoteObject(remote, oid);
    // Chunking back on (the default), and the repair the pull's error asks for.
    fs.writeFileSync(path.join(dir, '.tdv', 'config.yaml'), fs.readFileSync(path.join(dir, '.tdv', 'config.yaml'), 'utf8').replace('    chunking: false\n', ''));
    await git(dir, 'commit', '-qam', 'chunking on');
    const b = await clone(dir);
    let r = await tdv(b, 'pull');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('tdv push --repair');
    expect((await tdv(dir, 'push', '--repair', 'big.bin')).code).toBe(0);
    r = await tdv(b, 'pull');
    expect(r.stderr).toBe('');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(b, 'big.bin')))
        .digest('hex'),
    ).toBe(oid);
  });
});

describe('a recipe naming a chunk no index holds', () => {
  it('is reported against the recipe pack, not the layout record, and nothing is written', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const big = randomBytes(5 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    expect((await tdv(dir, 'push')).code).toBe(0);
    // Every index rewritten without its chunk entries.
    for (const n of fs.readdirSync(path.join(remote, 'index'))) {
      const file = path.join(remote, 'index', n);
      const doc = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString()) as { blobs: unknown[][] };
      doc.blobs = doc.blobs.filter((x) => x[1] !== 'c');
      fs.rmSync(file);
      plantIndex(remote, JSON.stringify(doc));
    }
    const b = await clone(dir);
    const r = await tdv(b, 'pull');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/packs\/[0-9a-f]{64}\.pack is damaged: the recipe of [0-9a-f]{64} names chunk [0-9a-f]{64}, which no index of the remote holds/);
    expect(r.stderr).not.toContain('tdv-remote.json');
    expect(fs.existsSync(path.join(b, 'big.bin'))).toBe(false);
  });
});

describe('a pack shorter than its index says', () => {
  it('is reported as damaged with `tdv push --repair` (not "run tdv pull again"), small objects and chunks alike, and the repair works', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const big = randomBytes(5 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    expect((await tdv(dir, 'push')).code).toBe(0);
    for (const p of fs.readdirSync(path.join(remote, 'packs'))) {
      fs.chmodSync(path.join(remote, 'packs', p), 0o644);
      fs.truncateSync(path.join(remote, 'packs', p), 100);
    }
    const b = await clone(dir);
    let r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.code).toBe(1);
    for (const line of r.stderr
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('warning:'))) {
      expect(line).toMatch(/packs\/[0-9a-f]{64}\.pack is damaged: it ends before byte/);
      expect(line).toContain('`tdv push --repair');
    }
    expect(r.stderr).toContain('big.bin');
    expect(r.stderr).toContain('model.bin');
    expect((await tdvBin(dir, ['push', '--repair'], { PATH: process.env.PATH ?? '' })).code).toBe(0);
    r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.stderr).toBe('');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(b, 'big.bin')))
        .digest('hex'),
    ).toBe(createHash('sha256').update(big).digest('hex'));
  });
});

describe('a recipe naming the right chunks in the wrong order', () => {
  it('is refused against the recipe pack with `tdv push --repair` (not "delete files/sha256/..."), nothing is written, and the repair works', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const big = randomBytes(5 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    expect((await tdv(dir, 'push')).code).toBe(0);
    const oid = createHash('sha256').update(big).digest('hex');
    const recipe = JSON.parse(fs.readFileSync(path.join(dir, '.tdv', 'cache', 'recipes', oid.slice(0, 2), oid.slice(2)), 'utf8')) as { size: number; chunks: [string, number][] };
    expect(recipe.chunks.length).toBeGreaterThan(1);
    // A later index naming a new pack whose recipe has the first two chunks swapped: every chunk is genuine.
    const forged = encodeRecipe({ size: recipe.size, chunks: [recipe.chunks[1]!, recipe.chunks[0]!, ...recipe.chunks.slice(2)] });
    const pb = new PackBuilder();
    pb.add(oid, 'recipe', 'none', forged.length, forged, recipe.size);
    const bytes = Buffer.concat(pb.take());
    const { name, entries } = pb.finish();
    fs.writeFileSync(path.join(remote, 'packs', `${name}.pack`), bytes);
    const idx = JSON.parse(zlib.gunzipSync(encodeIndex(entries).bytes).toString()) as { written: number };
    // Later than the push's indexes (so it is the copy read), earlier than the repair's.
    idx.written =
      Math.max(...fs.readdirSync(path.join(remote, 'index')).map((n) => (JSON.parse(zlib.gunzipSync(fs.readFileSync(path.join(remote, 'index', n))).toString()) as { written: number }).written)) + 1;
    plantIndex(remote, JSON.stringify(idx));
    const b = await clone(dir);
    let r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`packs/${name}.pack is damaged: the recipe of ${oid} names chunks that make a file hashing to`);
    expect(r.stderr).toContain('`tdv push --repair');
    expect(r.stderr).not.toContain('files/sha256');
    expect(fs.existsSync(path.join(b, 'big.bin'))).toBe(false);
    expect((await tdvBin(dir, ['push', '--repair', 'big.bin'], { PATH: process.env.PATH ?? '' })).code).toBe(0);
    r = await tdvBin(b, ['pull'], { PATH: process.env.PATH ?? '' });
    expect(r.stderr).toBe('');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(b, 'big.bin')))
        .digest('hex'),
    ).toBe(oid);
  });
});
