// Measures the choices of the packed remote layout (issue 14) and prints tables:
// the average chunk size (bytes a second version costs, chunk counts, speed),
// the threshold above which files are chunked, and the zstd levels.
//
//   npm run build && node scripts/measure-chunking.mjs [--mb 200] [--random-mb 1024] [--quick]
//
// Runs from dist/ (the compiled modules). Data is synthetic and deterministic
// (a seeded PRNG), generated in memory; the 1 GiB random file for the file
// reader's speed goes to /dev/shm (or the OS temp dir) and is removed after.
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

const dist = new URL('../dist/remote/transfer/', import.meta.url);
const { chunkBuffer, chunkFile, nextCut, DEFAULT_CHUNK_PARAMS, CHUNK_THRESHOLD } = await import(new URL('chunker.js', dist).href);
const codec = await import(new URL('codec.js', dist).href);
await codec.loadCodec();

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const quick = args.includes('--quick');
const CSV_MB = opt('mb', quick ? 32 : 200);
const RANDOM_MB = opt('random-mb', quick ? 128 : 1024);
const MiB = 1 << 20;

// ---------------------------------------------------------------- data

/** mulberry32: a small seeded PRNG. */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SYL = ['ka', 'lo', 'mi', 'ne', 'ra', 'to', 'su', 'vi', 'an', 'el', 'or', 'ul', 'be', 'do', 'fi', 'gu', 'ha', 'jo', 'ze', 'qu'];
const CATS = [
  'electronics',
  'books',
  'garden',
  'toys',
  'grocery',
  'sports',
  'beauty',
  'automotive',
  'music',
  'office',
  'pets',
  'baby',
  'health',
  'tools',
  'outdoors',
  'jewelry',
  'shoes',
  'movies',
  'games',
  'crafts',
];

/** CSV rows `id,name,value,score,date,category` with realistic variety (names, skewed categories, floats, dates). */
function csvRows(rand, firstId, n) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const id = firstId + i;
    let name = '';
    const syl = 2 + Math.floor(rand() * 3);
    for (let k = 0; k < syl; k++) name += SYL[Math.floor(rand() * SYL.length)];
    name = name[0].toUpperCase() + name.slice(1) + ' ' + SYL[Math.floor(rand() * SYL.length)].toUpperCase() + '.';
    const value = (rand() * 10000 - 2000).toFixed(2 + Math.floor(rand() * 3));
    const score = Math.floor(rand() * rand() * 101);
    const day = Math.floor(rand() * 3650);
    const date = new Date(Date.UTC(2015, 0, 1) + day * 86400000).toISOString().slice(0, 10);
    const cat = CATS[Math.floor(rand() * rand() * CATS.length)];
    out.push(`${id},${name},${value},${score},${date},${cat}\n`);
  }
  return Buffer.from(out.join(''));
}

function csvOfSize(bytes, seed) {
  const rand = rng(seed);
  const parts = [Buffer.from('id,name,value,score,date,category\n')];
  let size = parts[0].length;
  let id = 1;
  while (size < bytes) {
    const b = csvRows(rand, id, 10000);
    id += 10000;
    parts.push(b);
    size += b.length;
  }
  return { buf: Buffer.concat(parts), rows: id - 1, rand };
}

/** JSON lines: nested records, the shape of an API dump. */
function jsonLines(bytes, seed) {
  const rand = rng(seed);
  const out = [];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line =
      JSON.stringify({
        id: i,
        user: { name: SYL[Math.floor(rand() * 20)] + SYL[Math.floor(rand() * 20)], age: 18 + Math.floor(rand() * 60), tags: CATS.filter(() => rand() < 0.1) },
        event: ['click', 'view', 'purchase', 'signup'][Math.floor(rand() * 4)],
        ts: 1700000000000 + Math.floor(rand() * 1e10),
        amount: Math.round(rand() * 100000) / 100,
        ok: rand() < 0.9,
      }) + '\n';
    out.push(line);
    size += line.length;
  }
  return Buffer.from(out.join(''));
}

function table(title, head, rows) {
  console.log(`\n${title}`);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => '| ' + r.map((c, i) => String(c).padStart(w[i])).join(' | ') + ' |';
  console.log(line(head));
  console.log('|' + w.map((n) => '-'.repeat(n + 2)).join('|') + '|');
  for (const r of rows) console.log(line(r));
}

const mb = (n) => (n / 1e6).toFixed(2);
/** The fastest of `n` runs of f, in ms (the machine may be shared: the best run is the least disturbed). */
function bestMs(f, n = 3) {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}
const speed = (bytes, ms) => ((bytes / 1e6 / ms) * 1000).toFixed(0);

// ---------------------------------------------------------------- versions

const t0 = performance.now();
const { buf: v1, rows, rand } = csvOfSize(CSV_MB * 1e6, 42);
// v2a: 1% more rows appended. v2b: 1,000 rows inserted at the middle row boundary.
const appended = Buffer.concat([v1, csvRows(rand, rows + 1, Math.ceil(rows / 100))]);
const mid = v1.indexOf(10, v1.length >> 1) + 1;
const inserted = Buffer.concat([v1.subarray(0, mid), csvRows(rng(7), rows + 1e7, 1000), v1.subarray(mid)]);
console.log(
  `CSV v1: ${mb(v1.length)} MB, ${rows} rows (generated in ${((performance.now() - t0) / 1000).toFixed(1)} s); v2 appended +${mb(appended.length - v1.length)} MB; v2 inserted +${mb(inserted.length - v1.length)} MB`,
);

const SIZES = [
  { name: '64 KiB', p: { min: 16 << 10, avg: 64 << 10, max: 256 << 10 } },
  { name: '256 KiB', p: { min: 64 << 10, avg: 256 << 10, max: 1 << 20 } },
  { name: '1 MiB', p: { min: 256 << 10, avg: 1 << 20, max: 4 << 20 } },
];

/** Bytes and zstd-3 bytes of the chunks of `v2` not among those of v1. */
function fresh(known, chunks) {
  let raw = 0;
  let z = 0;
  let n = 0;
  const seen = new Set(known);
  for (const c of chunks) {
    if (seen.has(c.sha256)) continue;
    seen.add(c.sha256);
    n++;
    raw += c.size;
    z += codec.encode(c.data, { mode: 'auto', level: 3 }).bytes.length;
  }
  return { n, raw, z };
}

// Warm up the JIT (the first size measured would otherwise pay for it).
for (const { p } of SIZES) chunkBuffer(v1.subarray(0, 16 * MiB), p).forEach((c, i) => i < 8 && codec.encode(c.data, { mode: 'auto', level: 3 }));

const rowsAvg = [];
for (const { name, p } of SIZES) {
  const cutMs = bestMs(() => {
    for (let s = 0; s < v1.length;) s = nextCut(v1, s, v1.length, p, true);
  });
  let c1;
  const allMs = bestMs(() => (c1 = chunkBuffer(v1, p)), 2);
  const known = new Set(c1.map((c) => c.sha256));
  // First push, compressed chunk by chunk (smaller chunks give zstd less context).
  let z1 = 0;
  const t = performance.now();
  for (const c of c1) z1 += codec.encode(c.data, { mode: 'auto', level: 3 }).bytes.length;
  const zMs = performance.now() - t;
  const a = fresh(known, chunkBuffer(appended, p));
  const ins = fresh(known, chunkBuffer(inserted, p));
  rowsAvg.push([
    name,
    c1.length,
    Math.round(v1.length / c1.length / 1024) + ' KiB',
    `${mb(a.raw)} (${(a.raw / appended.length).toFixed(4)})`,
    `${mb(a.z)} (${(a.z / appended.length).toFixed(4)})`,
    `${mb(ins.raw)} (${(ins.raw / inserted.length).toFixed(4)})`,
    `${mb(ins.z)} (${(ins.z / inserted.length).toFixed(4)})`,
    (z1 / v1.length).toFixed(3),
    speed(v1.length, cutMs),
    speed(v1.length, allMs),
    speed(v1.length, zMs),
  ]);
}
// Fixed-size blocks of 256 KiB, for comparison: an insertion shifts every block after it.
{
  const blocks = (b) => {
    const out = [];
    for (let o = 0; o < b.length; o += 256 << 10) out.push(b.subarray(o, o + (256 << 10)));
    return out.map((d) => ({ sha256: createHash('sha256').update(d).digest('hex'), size: d.length, data: d }));
  };
  const known = new Set(blocks(v1).map((c) => c.sha256));
  const a = fresh(known, blocks(appended));
  const ins = fresh(known, blocks(inserted));
  rowsAvg.push([
    'fixed 256K',
    blocks(v1).length,
    '256 KiB',
    `${mb(a.raw)} (${(a.raw / appended.length).toFixed(4)})`,
    '',
    `${mb(ins.raw)} (${(ins.raw / inserted.length).toFixed(4)})`,
    '',
    '',
    '',
    '',
    '',
  ]);
}
table(
  `Average chunk size (min = avg/4, max = avg*4; CSV ${mb(v1.length)} MB; new = bytes of v2's chunks not in v1 (fraction of v2); MB/s on this machine)`,
  ['avg', 'chunks v1', 'mean', 'append: new MB', 'append: zstd MB', 'insert: new MB', 'insert: zstd MB', 'v1 zstd ratio', 'cut MB/s', 'cut+sha MB/s', 'zstd-3 MB/s'],
  rowsAvg,
);

// ---------------------------------------------------------------- threshold

// A file below the threshold is sent whole (in a pack); at or above it, as chunks plus a chunk list.
// What a second version costs either way, for files of a few MiB (1% rows appended, one row edited mid-file).
const rowsThr = [];
for (const size of [0.5, 1, 2, 4, 8, 16]) {
  const { buf: f1, rows: r, rand: rr } = csvOfSize(size * MiB, 99 + size);
  const app = Buffer.concat([f1, csvRows(rr, r + 1, Math.ceil(r / 100))]);
  const m = f1.indexOf(10, f1.length >> 1) + 1;
  const edit = Buffer.concat([f1.subarray(0, m), Buffer.from('0,Edited ROW.,1.00,1,2020-01-01,books\n'), f1.subarray(f1.indexOf(10, m) + 1)]);
  const known = new Set(chunkBuffer(f1, DEFAULT_CHUNK_PARAMS).map((c) => c.sha256));
  const whole = (b) => codec.encode(b, { mode: 'auto', level: 3 }).bytes.length;
  const ca = chunkBuffer(app, DEFAULT_CHUNK_PARAMS);
  const a = fresh(known, ca);
  const e = fresh(known, chunkBuffer(edit, DEFAULT_CHUNK_PARAMS));
  rowsThr.push([`${size} MiB`, ca.length, mb(whole(app)), `${mb(a.z)} (${a.n})`, mb(whole(edit)), `${mb(e.z)} (${e.n})`]);
}
table(
  'Threshold: a second version sent whole vs as new chunks (zstd-3 MB; chunks sent), default chunk sizes',
  ['file', 'chunks', 'append: whole', 'append: chunks', 'edit: whole', 'edit: chunks'],
  rowsThr,
);

// ---------------------------------------------------------------- codec

const csvSample = v1.subarray(0, 32 * MiB);
const jsonSample = jsonLines(32 * MiB, 5);
const rowsZ = [];
for (const [kind, data] of [
  ['CSV', csvSample],
  ['JSON lines', jsonSample],
]) {
  const chunks = chunkBuffer(data, DEFAULT_CHUNK_PARAMS);
  for (const level of [1, 3, 6, 9]) {
    let frames;
    const cMs = bestMs(() => (frames = chunks.map((c) => codec.compress(c.data, level))), level >= 6 ? 1 : 3);
    const dMs = bestMs(() => frames.forEach((f, i) => codec.decompress(f, chunks[i].size)));
    const z = frames.reduce((n, f) => n + f.length, 0);
    rowsZ.push([kind, level, (z / data.length).toFixed(3), speed(data.length, cMs), speed(data.length, dMs)]);
  }
}
table('zstd (WebAssembly) per chunk of the default size, 32 MiB of each', ['data', 'level', 'ratio', 'compress MB/s', 'decompress MB/s'], rowsZ);

// The trial on data that does not compress: what 'auto' pays for the first chunk of a random file.
{
  const r = Buffer.allocUnsafe(DEFAULT_CHUNK_PARAMS.max);
  for (let i = 0; i < r.length; i += 4) r.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
  const rowsT = [];
  for (const size of [DEFAULT_CHUNK_PARAMS.avg, DEFAULT_CHUNK_PARAMS.max]) {
    const d = r.subarray(0, size);
    let codecName = '';
    const ms = bestMs(() => (codecName = codec.encode(d, { mode: 'auto', level: 3 }).codec), 20);
    rowsT.push([`${size >> 10} KiB`, codecName, ms.toFixed(2), speed(size, ms)]);
  }
  table('Trial cost on random bytes (auto mode: one chunk per incompressible file)', ['chunk', 'stored as', 'ms', 'MB/s'], rowsT);
}

// ---------------------------------------------------------------- file reader speed

{
  const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const file = path.join(dir, `measure-chunking-${process.pid}`);
  try {
    const fd = fs.openSync(file, 'w');
    const block = Buffer.allocUnsafe(16 * MiB);
    const rr = rng(1);
    for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((rr() * 2 ** 32) >>> 0, i);
    for (let i = 0; i < RANDOM_MB / 16; i++) {
      block.writeUInt32LE(i, 0); // blocks differ, so no chunk repeats
      for (let j = 0; j < 64; j++) block.writeUInt32LE((rr() * 2 ** 32) >>> 0, (j * 262147) % (block.length - 4));
      fs.writeSync(fd, block);
    }
    fs.closeSync(fd);
    const size = fs.statSync(file).size;
    const rowsR = [];
    for (let rep = 0; rep < 3; rep++) {
      let t = performance.now();
      let n = 0;
      for await (const c of chunkFile(file)) n += c.size > 0 ? 1 : 0;
      const fileMs = performance.now() - t;
      const buf = fs.readFileSync(file);
      t = performance.now();
      for (let s = 0; s < buf.length;) s = nextCut(buf, s, buf.length, DEFAULT_CHUNK_PARAMS, true);
      const cutMs = performance.now() - t;
      rowsR.push([rep + 1, n, speed(size, cutMs), speed(size, fileMs)]);
    }
    table(`Random bytes, ${mb(size)} MB in ${dir}, default chunk sizes`, ['run', 'chunks', 'cut only MB/s', 'chunkFile (read+cut+sha+copy) MB/s'], rowsR);
  } finally {
    fs.rmSync(file, { force: true });
  }
}
console.log(`\ndefaults: ${JSON.stringify(DEFAULT_CHUNK_PARAMS)}, threshold ${CHUNK_THRESHOLD >> 20} MiB`);
