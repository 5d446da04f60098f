import fs from 'node:fs';
import { TdvError, UsageError } from '../errors.js';
import { bufferSource, type ChangedRow, diffRows as diffTables, fdSource, readSpool, type RowColumns, type RowDetail, type RowSource, type RowSummary } from '../cache/rows.js';
import { assertObjectFile } from '../cache/store.js';
import { quotePath, shellWord } from '../formats/paths.js';
import { TABLE_FORMATS, type TableFormat, tableFormatOf } from '../formats/table.js';
import { processGone, tmpSuffix } from '../util/fs.js';
import type { Repo } from './repo.js';
import type { DiffSide } from './diff.js';

/**
 * `tdv diff --rows`: one table (CSV, TSV, JSON Lines) compared row by row
 * between two revisions, or a revision and the workspace. Each side's bytes
 * come from the workspace file, or from the revision: a tracked file's cache
 * object (a file inside a tracked directory through its manifest) or a Git
 * blob. The engine (cache/rows.ts) streams both in bounded memory; the rows
 * that differ are spooled under `.tdv/tmp` and read back by the caller, who
 * must `close()` the result (which removes them).
 */

export interface DiffRowsOptions {
  /** Default HEAD. */
  a?: string;
  /** Default: the workspace. */
  b?: string;
  /** The table: an absolute path. */
  path: string;
  /** Key columns (empty: whole rows, compared as a multiset). */
  key?: string[];
  /** Default: from the extension. */
  format?: TableFormat;
  signal?: AbortSignal;
}

export interface DiffRowsResult {
  /** Repo-relative POSIX path. */
  path: string;
  format: TableFormat;
  key: string[];
  a: DiffSide;
  b: DiffSide;
  columns: RowColumns;
  summary: RowSummary;
  /** The details, read back from the spool in file order (per partition when the files outgrew the memory budget). */
  added(): AsyncGenerator<RowDetail>;
  removed(): AsyncGenerator<RowDetail>;
  changed(): AsyncGenerator<ChangedRow>;
  /** Removes the spooled details. */
  close(): void;
}

/**
 * Internal knobs, for tests: TDV_ROWS_MEMORY, the join's memory budget in
 * bytes (default 128 MiB); TDV_ROWS_WORKER_MIN, the size both files must have
 * for side A to be scanned in a worker thread (default 16 MiB).
 */
function envBytes(name: string): number | undefined {
  const v = Number(process.env[name]);
  return Number.isSafeInteger(v) && v > 0 ? v : undefined;
}

export async function diffRows(repo: Repo, opts: DiffRowsOptions): Promise<DiffRowsResult> {
  const rel = repo.rel(opts.path);
  if (rel === '.' || rel.startsWith('../')) throw new UsageError(`${opts.path} is not a file inside the repository (${repo.root})`);
  const key = [...new Set(opts.key ?? [])];
  const aRev = opts.a ?? 'HEAD';
  const sources: RowSource[] = [];
  const closers: (() => Promise<void>)[] = [];
  const tmpRel = `tmp/rows.${tmpSuffix()}`;
  let tmp: string | undefined;
  try {
    const a = await openSide(repo, rel, aRev, closers);
    sources.push(a.src);
    const b = opts.b === undefined ? openWorkspace(repo, rel) : await openSide(repo, rel, opts.b, closers);
    sources.push(b.src);
    // After opening both: a directory or a missing file says so before "what format is this".
    const format = opts.format ?? tableFormatOf(rel);
    if (!format) throw new UsageError(`cannot tell the format of ${quotePath(rel)} from its name; pass --format ${TABLE_FORMATS.join('|')}`);
    removeStale(repo);
    tmp = repo.own.mkdirp(tmpRel);
    const out = await diffTables(a.src, b.src, {
      format,
      key,
      tmp: { guard: repo.own, rel: tmpRel },
      memory: envBytes('TDV_ROWS_MEMORY'),
      workerMin: envBytes('TDV_ROWS_WORKER_MIN'),
      signal: opts.signal,
    });
    let closed = false;
    return {
      path: rel,
      format,
      key,
      a: a.side,
      b: b.side,
      columns: out.columns,
      summary: out.summary,
      added: () => readSpool<RowDetail>(out.spools.added),
      removed: () => readSpool<RowDetail>(out.spools.removed),
      changed: () => readSpool<ChangedRow>(out.spools.changed),
      close: () => {
        if (closed) return;
        closed = true;
        repo.own.remove(tmpRel);
      },
    };
  } catch (err) {
    if (tmp !== undefined) repo.own.remove(tmpRel);
    throw err;
  } finally {
    for (const s of sources) s.close();
    for (const c of closers) await c();
  }
}

/** The workspace's file, read through the guard: never through a symlink, only a regular file. */
function openWorkspace(repo: Repo, rel: string): { src: RowSource; side: DiffSide } {
  const shown = quotePath(rel);
  const abs = repo.guard.resolve(rel, 'read');
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st)
    throw new TdvError(
      'NOT_FOUND',
      `${shown} does not exist in the workspace; \`tdv checkout ${shellWord(rel)}\` puts it back, or compare two revisions: \`tdv diff --rows HEAD~1 HEAD ${shellWord(rel)}\``,
    );
  if (st.isDirectory()) throw new TdvError('NOT_A_FILE', `${shown} is a directory; name one CSV, TSV or JSON Lines file inside it`);
  if (!st.isFile()) throw new TdvError('NOT_A_FILE', `${shown} is not a regular file; name a CSV, TSV or JSON Lines file`);
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw new TdvError('UNSAFE_PATH', `${shown} is a symlink; tdv does not follow symlinks. Name the real file instead`);
    throw new TdvError('UNREADABLE', `${shown} cannot be read (${code ?? String(err)}); check its permissions`);
  }
  const fst = fs.fstatSync(fd);
  if (!fst.isFile()) {
    fs.closeSync(fd);
    throw new TdvError('NOT_A_FILE', `${shown} is not a regular file; name a CSV, TSV or JSON Lines file`);
  }
  return { src: fdSource(`${shown} in the workspace`, fd, fst.size), side: {} };
}

/** The file at a revision: the cache object a pointer (or a directory's manifest) records, or a Git blob. */
async function openSide(repo: Repo, rel: string, rev: string, closers: (() => Promise<void>)[]): Promise<{ src: RowSource; side: DiffSide }> {
  const { openLocalSnapshot } = await import('./lib/local-source.js');
  const { snap, close } = await openLocalSnapshot(repo, rev, undefined, 'diff --rows');
  closers.push(close);
  const shown = quotePath(rel);
  const side: DiffSide = { rev, commit: snap.commit };
  const label = `${shown} at ${rev}`;
  let at: Awaited<ReturnType<typeof snap.stat>>;
  try {
    at = await snap.stat(rel);
  } catch (err) {
    // The manifest of the directory holding the file is missing, and the snapshot went to fetch
    // it from a remote there is none of: "no remote configured" did not say what was missing.
    if (err instanceof TdvError && err.code === 'NO_REMOTE') {
      throw new TdvError('MISSING_OBJECTS', `the directory manifest that lists ${label} is not in the cache; run \`tdv fetch --rev ${shellWord(rev)} ${shellWord(rel)}\` first`, {
        data: { paths: [rel] },
      });
    }
    throw err;
  }
  if (!at) throw new TdvError('NOT_FOUND', `${shown} does not exist at ${rev} (${snap.commit.slice(0, 12)}); check the path, or name another revision`);
  if (at.kind === 'dir') throw new TdvError('NOT_A_FILE', `${shown} is a directory at ${rev}; name one CSV, TSV or JSON Lines file inside it`);
  if (at.source === 'git') return { src: bufferSource(label, await snap.read(at)), side };
  const oid = at.oid!;
  if (!repo.store.has(oid)) {
    throw new TdvError('MISSING_OBJECTS', `the data of ${label} is not in the cache; run \`tdv fetch --rev ${shellWord(rev)} ${shellWord(rel)}\` first`, {
      data: { paths: [rel], oid },
    });
  }
  const file = repo.store.pathOf(oid);
  assertObjectFile(file);
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  const size = fs.fstatSync(fd).size;
  if (size !== at.size) {
    fs.closeSync(fd);
    throw new TdvError('DAMAGED_OBJECT', `the cache object of ${label} is ${size} bytes, not the ${at.size} recorded; run \`tdv fsck\``);
  }
  return { src: fdSource(label, fd, size), side };
}

/**
 * Removes the temp directories of `diff --rows` runs whose process is gone (a
 * kill -9, a power cut): Ctrl-C cleans up after itself, those cannot. The
 * name carries the pid (`rows.<pid>.<tag>`, see tmpSuffix).
 */
function removeStale(repo: Repo): void {
  let names: string[];
  try {
    names = fs.readdirSync(repo.own.resolve('tmp', 'inspect'));
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^rows\.(\d+)\.[0-9a-f]+$/.exec(n);
    if (m && processGone(Number(m[1]))) repo.own.remove(`tmp/${n}`);
  }
}
