import fs from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { InterruptedError, isErrorCode, TdvError, UsageError } from '../errors.js';
import type { Guard } from '../workspace/guard.js';
import { parseJsonExact, parseJsonRecord, parseRecord, RecordError, separatorOf, stringifyJson, type TableFormat } from '../formats/table.js';

/**
 * The row engine of `tdv diff --rows`: two tables (CSV, TSV, JSON Lines) in,
 * rows added, removed and changed out, in bounded memory whatever their size.
 *
 * ```
 *  A ──scan──> 32-byte record per row ──┐   (key hash, row hash, offset, length, line)
 *  B ──scan──> 32-byte record per row ──┤   split into P partitions by key hash
 *                                       v
 *        partition p: A's records in an open-addressing table by key hash,
 *        B's looked up: same row hash = unchanged (counted, never decoded);
 *        other = a candidate, whose rows are read back by offset, decoded and
 *        compared cell by cell; details spooled as JSON Lines (added/removed/changed)
 * ```
 *
 * Only the records are kept, never the rows: 32 bytes a row, so P is 1 (all
 * in memory, no temp file) until the records of both files outgrow the memory
 * budget; then each side's records go to P files under `tmpDir` and one
 * partition pair at a time is joined. The rows themselves are read twice
 * only for the rows that differ.
 *
 * The scan is byte-level: a row without a quote is found with indexOf and
 * hashed in one loop over its bytes (two 32-bit lanes, FNV-1a and a
 * Murmur-style multiply, so 64 bits); only rows holding a quote are parsed
 * field by field. Unchanged rows are recognised by their 64-bit hash (when
 * both headers are the same, of their raw bytes; otherwise of the cells of the
 * columns both have); a row whose bytes differ but whose cells do not
 * (quoting) is counted unchanged after the cell comparison.
 */

export interface RowSource {
  /** For messages: the file and where it comes from. */
  readonly label: string;
  readonly size: number;
  /** The open file, when it is one (a worker thread of this process can read it too). */
  readonly fd?: number;
  /** Reads up to `len` bytes at `pos` into `buf[off...]`; returns how many (0 at the end). */
  read(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  readSync(buf: Buffer, off: number, len: number, pos: number): number;
  close(): void;
}

/** A source over an open file descriptor (closed by `close`). */
export function fdSource(label: string, fd: number, size: number): RowSource {
  return {
    label,
    size,
    fd,
    read: (buf, off, len, pos) => new Promise((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)))),
    readSync: (buf, off, len, pos) => fs.readSync(fd, buf, off, len, pos),
    close: () => fs.closeSync(fd),
  };
}

/** A source over bytes in memory (a Git blob). */
export function bufferSource(label: string, bytes: Buffer): RowSource {
  const readSync = (buf: Buffer, off: number, len: number, pos: number) => (pos >= bytes.length ? 0 : bytes.copy(buf, off, pos, Math.min(bytes.length, pos + len)));
  return { label, size: bytes.length, read: async (...a) => readSync(...a), readSync, close: () => {} };
}

export interface RowDiffOptions {
  format: TableFormat;
  /** Key columns; empty: rows are compared whole, as a multiset. */
  key: readonly string[];
  /** A directory of its own for partitions and spools, through a guard (the caller makes it and removes it). */
  tmp: { guard: Guard; rel: string };
  /** Bytes the join may hold at once (default 128 MiB; TDV_ROWS_MEMORY in the porcelain). */
  memory?: number;
  /** The longest row accepted, in bytes (default 16 MiB). */
  maxRow?: number;
  /** Scan A in a worker thread while B is scanned here when both files are at least this large (default 16 MiB). */
  workerMin?: number;
  /** The row hash's second-lane seed (default: random, per diff; see Plan.seed). */
  seed?: number;
  signal?: AbortSignal;
}

export interface RowSummary {
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  /** Rows whose key an earlier row of the same side already had (keyed diffs only). */
  duplicateKeys: { a: number; b: number };
}

export interface RowColumns {
  a: string[];
  b: string[];
  added: string[];
  removed: string[];
}

export interface RowDiffOutcome {
  columns: RowColumns;
  summary: RowSummary;
  /** How many partitions the join used (1: all in memory). */
  partitions: number;
  /** JSON Lines files of the details: AddedRow, RemovedRow, ChangedRow. */
  spools: { added: string; removed: string; changed: string };
}

/** A row only one side has. `line` is its first line in its file (1 is the header of a CSV). */
export interface RowDetail {
  line: number;
  key?: Record<string, unknown>;
  row: Record<string, unknown>;
}

/** A row both sides have under one key, with different cells. */
export interface ChangedRow {
  key: Record<string, unknown>;
  lines: { a: number; b: number };
  /** The cells that differ, by column: `null` for a JSON key absent on that side. */
  cells: Record<string, { old: unknown; new: unknown }>;
}

const REC = 8; // u32 per record: khi, klo, rhi, rlo, offLo, offHi, len, line
const CHUNK = 4 << 20;
/** Records buffered per partition before a write: 256 KiB, less when there are many partitions (at most 16 MiB a side in all). */
const FLUSH_RECORDS = 8192;
const FLUSH_TOTAL = 16 << 20;

/** A scanned side: its header and where its records went. */
interface Side {
  src: RowSource;
  name: 'a' | 'b';
  columns: string[];
  /** Byte offset of the first data row, and its line number. */
  dataStart: number;
  dataLine: number;
  parts: Parts;
}

/** Each partition's records: in memory (P = 1) or a file per partition. */
class Parts {
  private readonly mem: Uint32Array[][];
  private readonly bufs: Uint32Array[];
  private readonly fill: number[];
  private readonly files: (number | undefined)[];
  constructor(
    readonly n: number,
    private readonly tmp: { guard: Guard; rel: string },
    private readonly tag: string,
  ) {
    this.mem = Array.from({ length: n }, () => []);
    const per = Math.max(64, Math.min(FLUSH_RECORDS, Math.floor(FLUSH_TOTAL / (n * REC * 4))));
    this.bufs = Array.from({ length: n }, () => new Uint32Array(per * REC));
    this.fill = new Array<number>(n).fill(0);
    this.files = new Array(n).fill(undefined);
  }

  push(khi: number, klo: number, rhi: number, rlo: number, off: number, len: number, line: number): void {
    const p = this.n === 1 ? 0 : khi % this.n;
    const b = this.bufs[p]!;
    let f = this.fill[p]!;
    b[f] = khi;
    b[f + 1] = klo;
    b[f + 2] = rhi;
    b[f + 3] = rlo;
    b[f + 4] = off >>> 0;
    b[f + 5] = Math.floor(off / 4294967296);
    b[f + 6] = len;
    b[f + 7] = line;
    f += REC;
    if (f === b.length) {
      this.flush(p, f);
      f = 0;
    }
    this.fill[p] = f;
  }

  private flush(p: number, f: number): void {
    const b = this.bufs[p]!;
    if (this.n === 1) {
      this.mem[p]!.push(b.slice(0, f));
      return;
    }
    let fd = this.files[p];
    if (fd === undefined) this.files[p] = fd = this.tmp.guard.openForWrite(`${this.tmp.rel}/${this.tag}${p}`);
    fs.writeSync(fd, new Uint8Array(b.buffer, b.byteOffset, f * 4));
  }

  finish(): void {
    for (let p = 0; p < this.n; p++) {
      if (this.fill[p]! > 0) this.flush(p, this.fill[p]!);
      this.fill[p] = 0;
      const fd = this.files[p];
      if (fd !== undefined) fs.closeSync(fd);
      this.files[p] = undefined;
    }
  }

  /** Partition p's records. */
  load(p: number): Uint32Array {
    if (this.n === 1) {
      const chunks = this.mem[0]!;
      this.mem[0] = [];
      if (chunks.length === 1) return chunks[0]!;
      const out = new Uint32Array(chunks.reduce((s, c) => s + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return out;
    }
    const rel = `${this.tmp.rel}/${this.tag}${p}`;
    const file = this.tmp.guard.resolve(rel, 'read');
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Uint32Array(0);
      throw err;
    }
    try {
      const size = fs.fstatSync(fd).size;
      // One buffer for every partition: a fresh 30 MB array each time left the old ones to a
      // lazy GC, and the peak memory at 1 GiB files was 441 MB instead of about 250.
      if (this.reuse.byteLength < size) this.reuse = new Uint32Array(Math.ceil((size * 1.25) / 4));
      const view = new Uint8Array(this.reuse.buffer, 0, size);
      let got = 0;
      while (got < size) {
        const n = fs.readSync(fd, view, got, size - got, got);
        if (n === 0) break;
        got += n;
      }
      return this.reuse.subarray(0, got / 4);
    } finally {
      fs.closeSync(fd);
      this.tmp.guard.removeQuiet(rel);
    }
  }

  private reuse = new Uint32Array(0);

  close(): void {
    for (const fd of this.files) if (fd !== undefined) fs.closeSync(fd);
  }

  /** The in-memory records (P = 1), to hand from a worker thread to this one. */
  takeMem(): Uint32Array[] {
    const m = this.mem[0] ?? [];
    this.mem[0] = [];
    return m;
  }

  putMem(chunks: Uint32Array[]): void {
    if (this.n === 1) this.mem[0] = chunks;
  }
}

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The format error of a file, one line, with the fix. */
function bad(src: RowSource, line: number, detail: string, fix: string): TdvError {
  return new TdvError('BAD_FORMAT', `${src.label}, line ${line}: ${detail}; ${fix}`, { data: { file: src.label, line } });
}

const CSV_FIX = 'fix the file or name its format with --format';

/**
 * Reads the header record of a delimited file: its cells, and where the
 * data starts. The header may not be longer than maxRow either.
 */
function readHeader(src: RowSource, format: TableFormat, maxRow: number): { columns: string[]; dataStart: number; dataLine: number } {
  if (format === 'jsonl') return { columns: [], dataStart: 0, dataLine: 1 };
  // Read 64 KiB, then more only if the header is longer (a header with a huge quoted field).
  let buf = Buffer.alloc(0);
  let got = 0;
  let end = -1;
  let lines = 1;
  for (let want = Math.min(src.size, 1 << 16); ; want = Math.min(src.size, maxRow + 2, want * 8)) {
    if (buf.length < want) {
      const more = Buffer.allocUnsafe(want);
      buf.copy(more, 0, 0, got);
      buf = more;
    }
    while (got < want) {
      const n = src.readSync(buf, got, want - got, got);
      if (n === 0) break;
      got += n;
    }
    // The header's end: the first line break outside quotes.
    let inQ = false;
    lines = 1;
    for (let i = 0; i < got; i++) {
      const c = buf[i]!;
      if (c === 34) inQ = !inQ;
      else if (c === 10) {
        if (!inQ) {
          end = i;
          break;
        }
        lines++;
      }
    }
    if (end !== -1 || got < want || want >= Math.min(src.size, maxRow + 2)) break;
  }
  if (got === 0) throw bad(src, 1, 'the file is empty, and a CSV or TSV file needs a header row naming its columns', 'add the header row');
  if (buf.subarray(0, got).indexOf(0) !== -1) throw notText(src);
  if (end === -1) {
    if (got >= maxRow) throw bad(src, 1, `the header row is longer than ${maxRow} bytes`, 'is this really a CSV file?');
    end = got;
  }
  const ce = end > 0 && buf[end - 1] === 13 ? end - 1 : end;
  if (!isUtf8(buf.subarray(0, ce))) throw bad(src, 1, 'the header is not valid UTF-8', 'convert the file to UTF-8 (iconv -f LATIN1 -t UTF-8)');
  let columns: string[];
  try {
    // A UTF-8 byte order mark (Excel writes one) is not part of the first column's name.
    const bom = ce >= 3 && buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
    columns = parseRecord(buf, bom, ce, separatorOf(format));
  } catch (err) {
    if (err instanceof RecordError) throw bad(src, 1, `the header ${err.message}`, CSV_FIX);
    throw err;
  }
  const seen = new Set<string>();
  for (const c of columns) {
    if (seen.has(c)) throw bad(src, 1, `the header names column ${JSON.stringify(c)} twice`, 'give every column its own name');
    seen.add(c);
  }
  return { columns, dataStart: Math.min(end + 1, got), dataLine: lines + 1 };
}

function notText(src: RowSource): TdvError {
  return new TdvError('BAD_FORMAT', `${src.label} is a binary file (it holds NUL bytes), not a CSV, TSV or JSON Lines table; diff it without --rows`, { data: { file: src.label } });
}

/**
 * How many records to expect: the densest of 16 windows of 64 KiB spread
 * evenly over the data (the first one at its start), so the estimate errs on
 * the side of more partitions. Only the first MiB was read before, and a file
 * whose first rows were long (one 1.1 MiB row, then 3 million rows of 9
 * bytes) was thought to hold a thousand rows: one partition, all 6 million
 * records in memory, 565 MB at a budget of 8 MB (165 MB for the same rows
 * without the long one). A file can still hide dense rows between the
 * windows; the windows cost one MiB of reads like the old single sample.
 */
function estimateRows(src: RowSource, from: number): number {
  const total = src.size - from;
  if (total <= 0) return 0;
  const W = 1 << 16;
  const windows = total <= 16 * W ? 1 : 16;
  const len = Math.min(windows === 1 ? total : W, total);
  const buf = Buffer.allocUnsafe(len);
  let densest = 0; // rows per byte
  for (let w = 0; w < windows; w++) {
    const at = from + (windows === 1 ? 0 : Math.floor(((total - len) * w) / (windows - 1)));
    let n = 0;
    while (n < len) {
      const got = src.readSync(buf, n, len - n, at + n);
      if (got === 0) break;
      n += got;
    }
    let lines = 0;
    for (let i = buf.indexOf(10, 0); i !== -1 && i < n; i = buf.indexOf(10, i + 1)) lines++;
    if (n > 0) densest = Math.max(densest, Math.max(1, lines) / n);
  }
  return Math.ceil(total * densest);
}

/** How the rows of one side are hashed. */
export interface Plan {
  format: TableFormat;
  sep: number;
  /** Per side: indices of the key columns, and of the columns hashed for the row (undefined: raw bytes). */
  keyIdx: { a: number[]; b: number[] };
  rowIdx: { a: number[] | undefined; b: number[] | undefined };
  keyless: boolean;
  ncols: { a: number; b: number };
  maxRow: number;
  /**
   * Mixed into the second lane of every row hash. The hash is not
   * cryptographic and its steps can be inverted, so with a fixed seed two
   * different rows with one hash can be computed offline (a birthday search of
   * about 2^32 steps, minutes in C) and a changed row planted as unchanged.
   * With a seed drawn per diff, such a pair made in advance collides with a
   * chance of about 2^-32. Only lane 2: lane 1 picks the partition without a
   * key, so the listing order stays the same from run to run.
   */
  seed: number;
}

/**
 * Compares two tables row by row. `a` and `b` are opened by the caller and
 * closed by it.
 */
export async function diffRows(a: RowSource, b: RowSource, opts: RowDiffOptions): Promise<RowDiffOutcome> {
  const maxRow = opts.maxRow ?? 16 << 20;
  const memory = opts.memory ?? 128 << 20;
  const { format } = opts;
  const ha = readHeader(a, format, maxRow);
  const hb = readHeader(b, format, maxRow);
  const keyless = opts.key.length === 0;
  const seed = opts.seed ?? randomBytes(4).readUInt32LE(0);
  let plan: Plan | undefined;
  if (format !== 'jsonl') {
    for (const [src, h] of [
      [a, ha],
      [b, hb],
    ] as const) {
      const missing = opts.key.filter((k) => !h.columns.includes(k));
      if (missing.length)
        throw new UsageError(
          `${src.label} has no column ${missing.map((k) => JSON.stringify(k)).join(', ')}; its columns are ${h.columns.map((k) => JSON.stringify(k)).join(', ')}: pick --key from those`,
        );
    }
    const same = ha.columns.length === hb.columns.length && ha.columns.every((c, i) => hb.columns[i] === c);
    const common = ha.columns.filter((c) => hb.columns.includes(c));
    plan = {
      format,
      sep: separatorOf(format),
      keyIdx: { a: opts.key.map((k) => ha.columns.indexOf(k)), b: opts.key.map((k) => hb.columns.indexOf(k)) },
      // Whole-row diffs hash cells (so quoting does not matter); keyed ones with one header, raw bytes.
      rowIdx: same && !keyless ? { a: undefined, b: undefined } : { a: common.map((c) => ha.columns.indexOf(c)), b: common.map((c) => hb.columns.indexOf(c)) },
      keyless,
      ncols: { a: ha.columns.length, b: hb.columns.length },
      maxRow,
      seed,
    };
  }
  const rows = estimateRows(a, ha.dataStart) + estimateRows(b, hb.dataStart);
  // One partition pair's records (32 B a row) within `memory` three times over: as loaded,
  // as grouped for the join (scatter), and the join's small tables and arrays.
  const nparts = Math.max(1, Math.min(4096, Math.ceil((rows * REC * 4 * 3) / memory)));
  const sides: Side[] = [
    { src: a, name: 'a', columns: ha.columns, dataStart: ha.dataStart, dataLine: ha.dataLine, parts: new Parts(nparts, opts.tmp, 'a.') },
    { src: b, name: 'b', columns: hb.columns, dataStart: hb.dataStart, dataLine: hb.dataLine, parts: new Parts(nparts, opts.tmp, 'b.') },
  ];
  try {
    const jsonCols = { a: new Set<string>(), b: new Set<string>() };
    const workerMin = opts.workerMin ?? 16 << 20;
    if (plan && a.fd !== undefined && a.size >= workerMin && b.size >= workerMin && fs.existsSync(SCAN_WORKER)) {
      // Two cores: A in a worker thread, B here, at once (the scan is CPU-bound: 1 GiB took 9 s of the 25).
      const job: ScanJob = {
        fd: a.fd,
        label: a.label,
        size: a.size,
        name: 'a',
        columns: ha.columns,
        dataStart: ha.dataStart,
        dataLine: ha.dataLine,
        nparts,
        tmpRoot: opts.tmp.guard.root,
        tmpRel: opts.tmp.rel,
        plan,
      };
      const stop = new AbortController();
      const onAbort = () => stop.abort();
      opts.signal?.addEventListener('abort', onAbort);
      const inWorker = scanInWorker(job, stop.signal).then((chunks) => sides[0]!.parts.putMem(chunks));
      // Both settle before either error is thrown: the worker must not write on after a failure here.
      const [wa, wb] = await Promise.allSettled([
        inWorker,
        (async () => {
          try {
            await scanDelimited(sides[1]!, plan!, opts.signal);
          } catch (err) {
            stop.abort(); // B is bad: A's scan is of no use
            throw err;
          } finally {
            sides[1]!.parts.finish();
          }
        })(),
      ]);
      opts.signal?.removeEventListener('abort', onAbort);
      if (wb.status === 'rejected') throw wb.reason;
      if (wa.status === 'rejected') throw wa.reason;
    } else {
      for (const s of sides) {
        if (plan) await scanDelimited(s, plan, opts.signal);
        else await scanJson(s, opts.key, jsonCols[s.name], maxRow, seed, opts.signal);
        s.parts.finish();
      }
    }
    if (!plan) {
      sides[0]!.columns = [...jsonCols.a];
      sides[1]!.columns = [...jsonCols.b];
    }
    const columns: RowColumns = {
      a: sides[0]!.columns,
      b: sides[1]!.columns,
      added: sides[1]!.columns.filter((c) => !sides[0]!.columns.includes(c)),
      removed: sides[0]!.columns.filter((c) => !sides[1]!.columns.includes(c)),
    };
    const summary = await join(sides[0]!, sides[1]!, nparts, opts, columns);
    return {
      columns,
      summary,
      partitions: nparts,
      spools: { added: spoolPath(opts.tmp, 'added'), removed: spoolPath(opts.tmp, 'removed'), changed: spoolPath(opts.tmp, 'changed') },
    };
  } finally {
    for (const s of sides) s.parts.close();
  }
}

const SCAN_WORKER = new URL('./rows-worker.js', import.meta.url);

/** What a worker thread needs to scan one side (see rows-worker.ts): plain data. */
export interface ScanJob {
  fd: number;
  label: string;
  size: number;
  name: 'a' | 'b';
  columns: string[];
  dataStart: number;
  dataLine: number;
  nparts: number;
  tmpRoot: string;
  tmpRel: string;
  plan: Plan;
}

/** Scans a side in this thread (the worker's body): its in-memory records when P = 1. */
export async function runScanJob(job: ScanJob): Promise<Uint32Array[]> {
  const { Guard } = await import('../workspace/guard.js');
  const src: RowSource = { ...fdSource(job.label, job.fd, job.size), close: () => {} };
  const parts = new Parts(job.nparts, { guard: new Guard(job.tmpRoot), rel: job.tmpRel }, `${job.name}.`);
  try {
    await scanDelimited({ src, name: job.name, columns: job.columns, dataStart: job.dataStart, dataLine: job.dataLine, parts }, job.plan, undefined);
    parts.finish();
  } finally {
    parts.close();
  }
  return parts.takeMem();
}

/** Runs a ScanJob in a worker thread; an abort terminates it (the caller removes what it wrote). */
async function scanInWorker(job: ScanJob, signal: AbortSignal | undefined): Promise<Uint32Array[]> {
  const { Worker } = await import('node:worker_threads');
  const w = new Worker(SCAN_WORKER, { workerData: job });
  return new Promise<Uint32Array[]>((resolve, reject) => {
    const onAbort = () => void w.terminate();
    signal?.addEventListener('abort', onAbort);
    let settled = false;
    const settle = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    w.once('message', (m: { chunks?: Uint32Array[]; error?: { code?: string; message: string; data?: Record<string, unknown> } }) => {
      if (m.chunks) settle(() => resolve(m.chunks!));
      else {
        const e = m.error!;
        settle(() =>
          reject(e.code && isErrorCode(e.code) ? new TdvError(e.code, e.message, e.data ? { data: e.data } : {}) : new TdvError('WORKER_FAILED', `the row scan of ${job.label} failed: ${e.message}`)),
        );
      }
    });
    w.once('error', (err) => settle(() => reject(new TdvError('WORKER_FAILED', `the row scan of ${job.label} failed: ${err.message}`))));
    w.once('exit', () =>
      settle(() => reject(signal?.aborted ? new InterruptedError('interrupted; nothing was left behind') : new TdvError('WORKER_FAILED', `the row scan of ${job.label} stopped without a result`))),
    );
  });
}

/** Fails with the line of the first invalid UTF-8 in `buf[from, to)`, whose first line is `line`. */
function utf8Error(src: RowSource, buf: Buffer, from: number, to: number, line: number): TdvError {
  let p = from;
  while (p < to) {
    let nl = buf.indexOf(10, p);
    if (nl === -1 || nl >= to) nl = to;
    if (!isUtf8(buf.subarray(p, nl))) break;
    line++;
    p = nl + 1;
  }
  return bad(src, line, 'the text is not valid UTF-8', 'convert the file to UTF-8 (iconv -f LATIN1 -t UTF-8 FILE)');
}

/**
 * Reads a side in chunks, handing `rows` the complete region `[p, end)`
 * (ending after a line break, or at the end of the file): it returns how far
 * it got (a row cut by the region's end is left for the next round, with more
 * bytes). A row that does not fit `maxRow` is an error.
 */
async function chunks(
  s: Side,
  maxRow: number,
  signal: AbortSignal | undefined,
  rows: (buf: Buffer, p: number, end: number, base: number, eof: boolean) => number,
  lineAt: () => number,
): Promise<void> {
  const { src } = s;
  const buf = Buffer.allocUnsafe(Math.min(maxRow + CHUNK, Math.max(1024, src.size - s.dataStart + 1)));
  let base = s.dataStart; // file offset of buf[0]
  let filled = 0;
  let p = 0;
  let eof = false;
  for (;;) {
    if (p > 0) {
      buf.copy(buf, 0, p, filled);
      filled -= p;
      base += p;
      p = 0;
    }
    if (!eof) {
      const n = filled < buf.length ? await src.read(buf, filled, buf.length - filled, base + filled) : 0;
      if (n === 0 && filled < buf.length) eof = true;
      filled += n;
    }
    if (signal?.aborted) throw new InterruptedError('interrupted; nothing was left behind');
    if (filled === 0) return;
    const end = eof ? filled : buf.lastIndexOf(10, filled - 1) + 1;
    if (end > 0) {
      const region = buf.subarray(0, end);
      if (region.indexOf(0) !== -1) throw notText(src);
      if (!isUtf8(region)) throw utf8Error(src, buf, 0, end, lineAt());
      p = rows(buf, 0, end, base, eof);
    }
    if (eof && p >= filled) return;
    if (p === 0 && (filled === buf.length || eof)) {
      if (eof) throw bad(src, lineAt(), 'a quoted field is never closed (a lone " opens it)', CSV_FIX);
      throw bad(src, lineAt(), `the row is longer than ${maxRow} bytes (the longest tdv diff --rows reads)`, 'is this really a table? check its line breaks');
    }
  }
}

/** Scans a CSV or TSV side into records. */
async function scanDelimited(s: Side, plan: Plan, signal: AbortSignal | undefined): Promise<void> {
  const { sep, maxRow } = plan;
  const keyIdx = plan.keyIdx[s.name];
  const rowIdx = plan.rowIdx[s.name];
  const ncols = plan.ncols[s.name];
  const raw = rowIdx === undefined;
  const keyless = plan.keyless;
  const parts = s.parts;
  const starts = new Int32Array(ncols + 1);
  const ends = new Int32Array(ncols + 1);
  let scratch = Buffer.allocUnsafe(1 << 16);
  let line = s.dataLine;
  const src = s.src;

  /** Hash of fields `idx` of the row whose fields are `[starts, ends)` of `b`: two lanes, 0xFF between fields (never in UTF-8). */
  let f1 = 0;
  let f2 = 0;
  const LANE2 = 0x9747b28c | 0;
  const ROW2 = (LANE2 ^ plan.seed) | 0; // a row's second lane starts from the seed, a key's does not
  const hashFields = (b: Buffer, idx: readonly number[], h2 = LANE2) => {
    let h1 = 0x811c9dc5 | 0;
    for (let k = 0; k < idx.length; k++) {
      const f = idx[k]!;
      for (let i = starts[f]!, e = ends[f]!; i < e; i++) {
        const c = b[i]!;
        h1 = Math.imul(h1 ^ c, 16777619);
        h2 = Math.imul(h2 ^ c, 0x5bd1e995);
        h2 ^= h2 >>> 15;
      }
      h1 = Math.imul(h1 ^ 0xff, 16777619);
      h2 = Math.imul(h2 ^ 0xff, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
    f1 = fmix(h1);
    f2 = fmix(h2 ^ Math.imul(idx.length, 0x27d4eb2d));
  };

  await chunks(
    s,
    maxRow,
    signal,
    (buf, p, end, base, eof) => {
      while (p < end) {
        let rowEnd = 0; // content end (no line break)
        let next = 0;
        let nf = 0;
        let rh1 = 0;
        let rh2 = 0;
        let lines = 1;
        let fb: Buffer = buf; // the buffer the field ranges point into
        // One loop over the row: its end, its raw hash, its field boundaries; at a quote,
        // the row is parsed again field by field below. (Buffer.indexOf per row cost more
        // than the whole loop: about 150 ns a call, measured on 1M rows of 50 bytes.)
        let h1 = 0x811c9dc5 | 0;
        let h2 = ROW2;
        let quoted = false;
        let i = p;
        starts[0] = p;
        for (; i < end; i++) {
          const c = buf[i]!;
          if (c === 10) break;
          if (c === 34) {
            quoted = true;
            break;
          }
          if (c === sep) {
            if (nf < ncols) {
              ends[nf] = i;
              starts[nf + 1] = i + 1;
            }
            nf++;
          } else if (c === 13 && i + 1 < end && buf[i + 1] === 10) continue; // CRLF: the row ends here
          h1 = Math.imul(h1 ^ c, 16777619);
          h2 = Math.imul(h2 ^ c, 0x5bd1e995);
          h2 ^= h2 >>> 15;
        }
        if (!quoted) {
          rowEnd = i > p && buf[i - 1] === 13 ? i - 1 : i;
          next = i + 1;
          if (rowEnd === p) {
            // A blank line: not a row.
            line++;
            p = next;
            continue;
          }
          if (nf < ncols) ends[nf] = rowEnd;
          nf++;
          rh1 = fmix(h1);
          rh2 = fmix(h2);
        } else {
          // A row with a quote: field by field, unescaped into scratch.
          if (scratch.length < end - p) scratch = Buffer.allocUnsafe(Math.max(end - p, scratch.length * 2));
          i = p;
          let o = 0;
          nf = 0;
          for (;;) {
            const fs0 = o;
            if (i < end && buf[i] === 34) {
              i++;
              for (;;) {
                if (i >= end) {
                  if (!eof) return p; // cut by the region's end: read more
                  throw bad(src, line, 'a quoted field is never closed (a lone " opens it)', CSV_FIX);
                }
                const c = buf[i]!;
                if (c === 34) {
                  if (i + 1 < end && buf[i + 1] === 34) {
                    scratch[o++] = 34;
                    i += 2;
                    continue;
                  }
                  if (i + 1 >= end && !eof) return p;
                  i++;
                  break;
                }
                if (c === 10) lines++;
                scratch[o++] = c;
                i++;
              }
              if (i < end && buf[i] === 13 && (i + 1 >= end || buf[i + 1] === 10)) i++; // CRLF
              const c = i < end ? buf[i]! : 10;
              if (c !== sep && c !== 10) throw bad(src, line, 'text after a closing quote (a quote inside a quoted field is written "")', CSV_FIX);
            } else {
              while (i < end) {
                const c = buf[i]!;
                if (c === sep || c === 10) break;
                scratch[o++] = c;
                i++;
              }
              if (o > fs0 && scratch[o - 1] === 13 && (i >= end || buf[i] === 10)) o--; // CRLF
            }
            if (nf < ncols) {
              starts[nf] = fs0;
              ends[nf] = o;
            }
            nf++;
            if (i >= end || buf[i] === 10) break;
            i++; // separator
          }
          next = i + 1;
          rowEnd = i > p && buf[i - 1] === 13 ? i - 1 : i;
          fb = scratch;
          // Hashed by its unescaped cells (not comparable with an unquoted row's raw bytes:
          // a row quoted on one side only is a candidate, settled by the cell comparison).
          hashFields(scratch, allIdx(ncols), ROW2);
          rh1 = f1;
          rh2 = f2 ^ 0x5a5a5a5a;
        }
        if (nf !== ncols) {
          throw bad(src, line, `the row has ${nf} field${nf === 1 ? '' : 's'}, the header ${ncols}`, `quote fields that hold ${sep === 9 ? 'a tab' : 'a comma'}, or fix the row`);
        }
        if (rowEnd - p > maxRow) throw bad(src, line, `the row is longer than ${maxRow} bytes`, 'is this really a table? check its line breaks');
        if (!raw) {
          hashFields(fb, rowIdx, ROW2);
          rh1 = f1;
          rh2 = f2;
        }
        if (keyless) {
          parts.push(rh1, rh2, rh1, rh2, base + p, rowEnd - p, line);
        } else {
          hashFields(fb, keyIdx);
          parts.push(f1, f2, rh1, rh2, base + p, rowEnd - p, line);
        }
        line += lines;
        p = next;
      }
      return p;
    },
    () => line,
  );
}

const ALL = new Map<number, number[]>();
function allIdx(n: number): number[] {
  let a = ALL.get(n);
  if (!a) ALL.set(n, (a = Array.from({ length: n }, (_, i) => i)));
  return a;
}

/** Two-lane hash of a string's UTF-16 units. */
function hashString(s: string, seed = 0): [number, number] {
  let h1 = 0x811c9dc5 | 0;
  let h2 = (0x9747b28c ^ seed) | 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 16777619);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  return [fmix(h1), fmix(h2)];
}

/** A JSON value in a canonical form: objects with sorted keys. */
function canonical(v: unknown): string {
  if (typeof v === 'bigint') return v.toString(); // an integer beyond 2^53, exact (see parseJsonExact)
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
}

/** Scans a JSON Lines side: one object a line; its columns are the keys its rows use. */
async function scanJson(s: Side, key: readonly string[], cols: Set<string>, maxRow: number, seed: number, signal: AbortSignal | undefined): Promise<void> {
  let line = 1;
  const src = s.src;
  await chunks(
    s,
    maxRow,
    signal,
    (buf, p, end, base) => {
      while (p < end) {
        let nl = buf.indexOf(10, p);
        if (nl === -1 || nl >= end) nl = end;
        // A UTF-8 byte order mark (Windows tools write one) is not part of the first row.
        if (base + p === 0 && nl - p >= 3 && buf[p] === 0xef && buf[p + 1] === 0xbb && buf[p + 2] === 0xbf) p += 3;
        const rowEnd = nl > p && buf[nl - 1] === 13 ? nl - 1 : nl;
        const text = buf.toString('utf8', p, rowEnd);
        if (text.trim() !== '') {
          let o: Record<string, unknown>;
          try {
            o = parseJsonRecord(text);
          } catch (err) {
            if (err instanceof RecordError) throw bad(src, line, err.message, 'fix the line (JSON Lines is one JSON object a line)');
            throw err;
          }
          for (const k in o) cols.add(k);
          const [r1, r2] = hashString(canonical(o), seed);
          if (key.length === 0) s.parts.push(r1, r2, r1, r2, base + p, rowEnd - p, line);
          else {
            const missing = key.find((k) => !Object.hasOwn(o, k));
            if (missing !== undefined) throw bad(src, line, `the row has no key ${JSON.stringify(missing)}`, 'give every row the --key columns, or pick others');
            const [k1, k2] = hashString(JSON.stringify(key.map((k) => canonical(o[k]))));
            s.parts.push(k1, k2, r1, r2, base + p, rowEnd - p, line);
          }
        }
        line++;
        p = nl + 1;
      }
      return p;
    },
    () => line,
  );
}

/** Writes JSON Lines to a spool file, 1 MiB at a time. */
class Spool {
  private fd: number;
  private pending: string[] = [];
  private size = 0;
  count = 0;
  constructor(tmp: { guard: Guard; rel: string }, name: string) {
    this.fd = tmp.guard.openForWrite(`${tmp.rel}/${name}.jsonl`);
  }
  add(v: unknown): void {
    const s = `${stringifyJson(v)}\n`;
    this.pending.push(s);
    this.size += s.length;
    this.count++;
    if (this.size >= 1 << 20) this.flush();
  }
  flush(): void {
    if (this.pending.length) fs.writeSync(this.fd, this.pending.join(''));
    this.pending = [];
    this.size = 0;
  }
  close(): void {
    this.flush();
    fs.closeSync(this.fd);
  }
}

/**
 * `o[k] = v` as an own property whatever the name: a column named `__proto__`
 * (a CSV header or a JSON key like any other) would set the prototype instead,
 * its cells would vanish, and a changed cell there would count as unchanged.
 */
function setOwn(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
}

/** Reads rows back by offset, decoded to cells by column name. */
class RowReader {
  private buf = Buffer.allocUnsafe(1 << 16);
  constructor(
    private readonly s: Side,
    private readonly format: TableFormat,
  ) {}

  cells(recs: Uint32Array, i: number): Record<string, unknown> {
    const off = recs[i * REC + 4]! + recs[i * REC + 5]! * 4294967296;
    const len = recs[i * REC + 6]!;
    if (this.buf.length < len) this.buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const n = this.s.src.readSync(this.buf, got, len - got, off + got);
      if (n === 0) throw new TdvError('IO_ERROR', `${this.s.src.label} changed while it was read (it is shorter now); run the diff again`);
      got += n;
    }
    const out: Record<string, unknown> = {};
    if (this.format === 'jsonl') return parseJsonRecord(this.buf.toString('utf8', 0, len));
    const cells = parseRecord(this.buf, 0, len, separatorOf(this.format));
    const cols = this.s.columns;
    for (let c = 0; c < cols.length; c++) setOwn(out, cols[c]!, cells[c] ?? '');
    return out;
  }
}

/**
 * Joins the partitions pair by pair. Within one, A's records go into an
 * open-addressing table on the key hash (rows with one key chained, in file
 * order); each B record takes the first unmatched A record of its key.
 */
async function join(a: Side, b: Side, nparts: number, opts: RowDiffOptions, columns: RowColumns): Promise<RowSummary> {
  const summary: RowSummary = { added: 0, removed: 0, changed: 0, unchanged: 0, duplicateKeys: { a: 0, b: 0 } };
  const spools = { added: new Spool(opts.tmp, 'added'), removed: new Spool(opts.tmp, 'removed'), changed: new Spool(opts.tmp, 'changed') };
  const ra = new RowReader(a, opts.format);
  const rb = new RowReader(b, opts.format);
  const keyless = opts.key.length === 0;
  const common = opts.format === 'jsonl' ? undefined : columns.a.filter((c) => columns.b.includes(c));
  const keyOf = (row: Record<string, unknown>) => Object.fromEntries(opts.key.map((k) => [k, Object.hasOwn(row, k) ? row[k] : null]));
  const same = (x: unknown, y: unknown) => x === y || (typeof x === 'object' && typeof y === 'object' && x !== null && y !== null && canonical(x) === canonical(y));
  // Reused from partition to partition (see Parts.load).
  const mem = {
    slots: new Int32Array(0),
    next: new Int32Array(0),
    tail: new Int32Array(0),
    matched: new Uint8Array(0),
    sa: new Uint32Array(0),
    sb: new Uint32Array(0),
    startsA: new Int32Array(0),
    startsB: new Int32Array(0),
  };
  try {
    for (let p = 0; p < nparts; p++) {
      if (opts.signal?.aborted) throw new InterruptedError('interrupted; nothing was left behind');
      const A0 = a.parts.load(p);
      const B0 = b.parts.load(p);
      const nA = A0.length / REC;
      const nB = B0.length / REC;
      // Sub-buckets by the key hash's top bits, each with a table that stays in the CPU's
      // cache (about 16,000 records): a table of a whole partition missed the cache at every
      // probe, and the join took 1.9 s of 5 for two 256 MiB files (a radix-partitioned join).
      const bits = Math.min(12, Math.max(0, Math.ceil(Math.log2((nA + nB) / 16384))));
      const K = 1 << bits;
      const A = bits === 0 ? A0 : scatter(A0, nA, bits, (mem.sa = grow(mem.sa, A0.length)), (mem.startsA = growI(mem.startsA, K + 1)));
      const B = bits === 0 ? B0 : scatter(B0, nB, bits, (mem.sb = grow(mem.sb, B0.length)), (mem.startsB = growI(mem.startsB, K + 1)));
      if (bits === 0) {
        mem.startsA = growI(mem.startsA, 2);
        mem.startsB = growI(mem.startsB, 2);
        mem.startsA[0] = mem.startsB[0] = 0;
        mem.startsA[1] = nA;
        mem.startsB[1] = nB;
      }
      if (mem.next.length < nA) mem.next = new Int32Array(Math.ceil(nA * 1.25));
      if (mem.tail.length < nA) mem.tail = new Int32Array(Math.ceil(nA * 1.25));
      if (mem.matched.length < nA) mem.matched = new Uint8Array(Math.ceil(nA * 1.25));
      const next = mem.next.subarray(0, nA).fill(-1);
      const tail = mem.tail.subarray(0, nA);
      const matched = mem.matched.subarray(0, nA).fill(0);
      const added: number[] = [];
      const candidates: number[] = []; // pairs (a, b)
      const removed: number[] = [];
      for (let k = 0; k < K; k++) {
        const aS = mem.startsA[k]!;
        const aE = mem.startsA[k + 1]!;
        const bS = mem.startsB[k]!;
        const bE = mem.startsB[k + 1]!;
        // One open-addressing table for both sides, a slot = [A's first unmatched record, -1 (empty)
        // or -2 (none left), khi, klo, B seen]: one cache line per probe (the records themselves are not touched), and B's
        // duplicate keys found on the way. Rows of A with one key are chained in file order.
        let cap = 16;
        while (cap < (aE - aS + bE - bS) * 2) cap *= 2;
        const mask = cap - 1;
        if (mem.slots.length < cap * 4) mem.slots = new Int32Array(cap * 4);
        const slots = mem.slots.subarray(0, cap * 4).fill(-1);
        for (let i = aS; i < aE; i++) {
          const khi = A[i * REC]! | 0;
          const klo = A[i * REC + 1]! | 0;
          let s = (klo & mask) * 4;
          for (;;) {
            const j = slots[s]!;
            if (j === -1) {
              slots[s] = i;
              slots[s + 1] = khi;
              slots[s + 2] = klo;
              tail[i] = i;
              break;
            }
            if (slots[s + 1] === khi && slots[s + 2] === klo) {
              next[tail[j]!] = i;
              tail[j] = i;
              if (!keyless) summary.duplicateKeys.a++;
              break;
            }
            s = (s + 4) & (mask * 4 + 3);
          }
        }
        for (let j = bS; j < bE; j++) {
          const khi = B[j * REC]! | 0;
          const klo = B[j * REC + 1]! | 0;
          let s = (klo & mask) * 4;
          let i = -1;
          for (;;) {
            const h = slots[s]!;
            if (h === -1) {
              // Empty: a key A does not have; remembered for B's duplicates.
              slots[s] = -2;
              slots[s + 1] = khi;
              slots[s + 2] = klo;
              slots[s + 3] = 1;
              break;
            }
            if (slots[s + 1] === khi && slots[s + 2] === klo) {
              if (slots[s + 3] === 1 && !keyless) summary.duplicateKeys.b++;
              slots[s + 3] = 1;
              // The slot points at the first unmatched row of A's chain (B takes them in file
              // order, so the matched ones are always a prefix): walking the chain from its
              // start each time took 32 s for 100,000 rows with one key (quadratic).
              if (h >= 0) {
                i = h;
                const nx = next[h]!;
                slots[s] = nx >= 0 ? nx : -2;
              }
              break;
            }
            s = (s + 4) & (mask * 4 + 3);
          }
          if (i === -1) {
            added.push(j);
            continue;
          }
          matched[i] = 1;
          if (A[i * REC + 2] === B[j * REC + 2] && A[i * REC + 3] === B[j * REC + 3]) summary.unchanged++;
          else candidates.push(i, j);
        }
        for (let i = aS; i < aE; i++) if (!matched[i]) removed.push(i);
      }
      // In file order within the partition (with one partition, in file order).
      const lineA = (i: number) => A[i * REC + 7]!;
      const lineB = (j: number) => B[j * REC + 7]!;
      const changed: { i: number; j: number }[] = [];
      for (let c = 0; c < candidates.length; c += 2) changed.push({ i: candidates[c]!, j: candidates[c + 1]! });
      changed.sort((x, y) => lineB(x.j) - lineB(y.j));
      for (const { i, j } of changed) {
        const ca = ra.cells(A, i);
        const cb = rb.cells(B, j);
        const ka = keyOf(ca);
        if (!keyless && !opts.key.every((k) => same(ka[k], cb[k]))) {
          // Two keys with one 64-bit hash: not the same row after all.
          removed.push(i);
          added.push(j);
          continue;
        }
        const cells: ChangedRow['cells'] = {};
        let n = 0;
        for (const col of common ?? [...new Set([...Object.keys(ca), ...Object.keys(cb)])]) {
          const x = Object.hasOwn(ca, col) ? ca[col] : null;
          const y = Object.hasOwn(cb, col) ? cb[col] : null;
          if (!same(x, y) || (common === undefined && Object.hasOwn(ca, col) !== Object.hasOwn(cb, col))) {
            setOwn(cells, col, { old: x, new: y });
            n++;
          }
        }
        if (n === 0) summary.unchanged++;
        else {
          spools.changed.add({ key: ka, lines: { a: lineA(i), b: lineB(j) }, cells } satisfies ChangedRow);
          summary.changed++;
        }
      }
      added.sort((x, y) => lineB(x) - lineB(y));
      removed.sort((x, y) => lineA(x) - lineA(y));
      for (const j of added) {
        const row = rb.cells(B, j);
        spools.added.add({ line: lineB(j), ...(keyless ? {} : { key: keyOf(row) }), row } satisfies RowDetail);
      }
      for (const i of removed) {
        const row = ra.cells(A, i);
        spools.removed.add({ line: lineA(i), ...(keyless ? {} : { key: keyOf(row) }), row } satisfies RowDetail);
      }
      summary.added += added.length;
      summary.removed += removed.length;
      // Let a Ctrl-C through between partitions.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    for (const s of Object.values(spools)) s.close();
  }
  return summary;
}

function grow(a: Uint32Array<ArrayBuffer>, n: number): Uint32Array<ArrayBuffer> {
  return a.length >= n ? a : new Uint32Array(Math.ceil(n * 1.25));
}

function growI(a: Int32Array<ArrayBuffer>, n: number): Int32Array<ArrayBuffer> {
  return a.length >= n ? a : new Int32Array(n);
}

/**
 * Copies `n` records into `out` grouped by the top `bits` bits of their key
 * hash's low word (a counting sort, stable: file order is kept within a
 * group); `starts[g]` is where group g begins, in records.
 */
function scatter(src: Uint32Array, n: number, bits: number, out: Uint32Array, starts: Int32Array): Uint32Array {
  const shift = 32 - bits;
  const K = 1 << bits;
  starts.fill(0, 0, K + 1);
  for (let i = 0; i < n; i++) starts[(src[i * REC + 1]! >>> shift) + 1]!++;
  for (let g = 0; g < K; g++) starts[g + 1]! += starts[g]!;
  const pos = starts.slice(0, K);
  for (let i = 0; i < n; i++) {
    const at = i * REC;
    const o = pos[src[at + 1]! >>> shift]!++ * REC;
    out[o] = src[at]!;
    out[o + 1] = src[at + 1]!;
    out[o + 2] = src[at + 2]!;
    out[o + 3] = src[at + 3]!;
    out[o + 4] = src[at + 4]!;
    out[o + 5] = src[at + 5]!;
    out[o + 6] = src[at + 6]!;
    out[o + 7] = src[at + 7]!;
  }
  return out;
}

function spoolPath(tmp: { guard: Guard; rel: string }, name: string): string {
  return tmp.guard.resolve(`${tmp.rel}/${name}.jsonl`, 'read');
}

/** Reads a spool file back, one detail at a time. */
export async function* readSpool<T>(file: string): AsyncGenerator<T> {
  const { createInterface } = await import('node:readline');
  const rl = createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  try {
    for await (const line of rl) if (line !== '') yield parseJsonExact(line) as T;
  } finally {
    rl.close();
  }
}
