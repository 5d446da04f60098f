import fs from 'node:fs';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { shortOid } from '../../formats/oid.js';
import type { DiffEntry, DiffResult, FileVersion } from '../../repo/diff.js';
import { formatBytes, type Output, plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';
import { shellWord } from '../../formats/paths.js';
import { InterruptedError, UsageError } from '../../errors.js';
import { stopOnSignals } from '../signals.js';
import { stringifyJson, TABLE_FORMATS, type TableFormat } from '../../formats/table.js';
import type { DiffRowsOptions, DiffRowsResult } from '../../repo/diff-rows.js';
import type { ChangedRow, RowDetail } from '../../cache/rows.js';
import type { Repo } from '../../repo/repo.js';
import type { Writable } from 'node:stream';

export function registerDiff(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('diff')
    .description('list data files added, modified and deleted between two revisions, or a revision and the workspace')
    .argument('[args...]', 'up to two revisions A and B (default: HEAD and the workspace), then targets; put -- before targets that could be read as revisions')
    .option('--json', 'print one JSON object (schema in README)')
    .option('--rows', 'compare one table (CSV, TSV, JSON Lines) row by row: rows added, removed and changed, with the changed cells')
    .option('--key <cols>', 'with --rows: the key column(s), repeatable or comma-separated (default: whole rows)', collectKeys)
    .option('--format <fmt>', 'with --rows: csv, tsv or jsonl (default: from the extension)', parseFormat)
    .option('--limit <n>', 'with --rows: rows of each kind printed (default 100; 0: all); --json prints all', parseLimit)
    .addHelpText(
      'after',
      examples(
        'tdv diff                       # HEAD against the workspace',
        'tdv diff v1 v2                 # two revisions, nothing checked out',
        'tdv diff HEAD~1 data/trips',
        'tdv diff main -- data           # -- when a name could be a revision too',
        'tdv diff v1 v2 --json',
        'tdv diff --rows data/trips.csv --key id       # HEAD against the workspace, by rows',
        'tdv diff --rows v1 v2 data/trips.csv --key day,station --json',
      ),
    );
  ctx.action(cmd, async ({ out, repo, args: [args], opts, resolve, show }) => {
    const { diff, splitDiffArgs } = await import('../../repo/diff.js');
    const split = splitDiffArgs(repo, args, separatorIndex(cmd, args), (a) => fs.existsSync(resolve(a)));
    if (!opts.rows) {
      const stray = (['key', 'format', 'limit'] as const).find((o) => opts[o] !== undefined);
      if (stray) throw new UsageError(`--${stray} goes with --rows (a diff of one table by rows)`);
    } else {
      if (split.targets.length !== 1) throw new UsageError(`--rows compares one table: name one CSV, TSV or JSON Lines file (got ${split.targets.length})`);
      await rowsDiff(out, repo, ctx.io.stdout, { a: split.a, b: split.b, path: resolve(split.targets[0]!), key: opts.key ?? [], format: opts.format }, opts.limit ?? 100);
      return;
    }
    const res = await diff(repo, { a: split.a, b: split.b, targets: resolve(split.targets) });
    show(res, render);
  });
}

/** How many of the command's arguments came before a `--`, if one was given (commander drops it). */
function separatorIndex(cmd: CommandUnknownOpts, args: readonly string[]): number | undefined {
  const raw = (cmd.parent as (CommandUnknownOpts & { rawArgs?: string[] }) | null)?.rawArgs ?? [];
  const at = raw.indexOf('--');
  if (at === -1) return undefined;
  return args.length - (raw.length - at - 1);
}

function version(v: FileVersion | undefined): string {
  if (v?.blocker) {
    const b = v.blocker;
    const where = b.kind === 'symlink' ? `a symlink to ${q(b.target ?? '?')}${b.dangling ? ', which does not exist' : ''}` : 'not a regular file or directory';
    return `${where}; \`tdv checkout --force ${shellWord(b.path)}\` puts the data back`;
  }
  return v ? `${formatBytes(v.size)}, ${shortOid(v.hash)}${v.isexec ? ', executable' : ''}` : '';
}

function line(c: DiffEntry): string {
  if (c.status === 'added') return `(${version(c.new)})`;
  if (c.status === 'deleted') return `(${version(c.old)})`;
  return `(${version(c.old)} -> ${version(c.new)})`;
}

function render(res: DiffResult, out: Output): void {
  const p = out.paint;
  const colour = { added: p.green, modified: p.yellow, deleted: p.red };
  for (const c of res.changes) out.info(`${colour[c.status](`${c.status}:`.padEnd(10))} ${q(c.path)}  ${p.dim(line(c))}`);
  const a = res.a.rev === undefined ? 'the workspace' : q(res.a.rev);
  const b = res.b.rev === undefined ? 'the workspace' : q(res.b.rev);
  const s = res.summary;
  if (res.changes.length === 0) out.info(`No data changed between ${a} and ${b}.`);
  else out.info(`${plural(res.changes.length, 'file')} changed between ${a} and ${b}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted.`);
}

function collectKeys(v: string, prev: string[] | undefined): string[] {
  const cols = v.split(',').map((c) => c.trim());
  if (cols.some((c) => c === '')) throw new UsageError(`--key ${JSON.stringify(v)} names an empty column`);
  return [...(prev ?? []), ...cols];
}

function parseFormat(v: string): TableFormat {
  if (!(TABLE_FORMATS as readonly string[]).includes(v)) throw new UsageError(`--format must be one of ${TABLE_FORMATS.join(', ')}, not ${JSON.stringify(v)}`);
  return v as TableFormat;
}

function parseLimit(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new UsageError(`--limit takes a number of rows (0: all), not ${JSON.stringify(v)}`);
  return n;
}

/**
 * `tdv diff --rows`: the summary, then the rows. The details are streamed from
 * the engine's spool (a diff of millions of rows is never held in memory), so
 * `--json` writes its document piece by piece instead of through `out.data`.
 * Ctrl-C stops the scan and removes its temp files.
 */
async function rowsDiff(out: Output, repo: Repo, stdout: Writable, opts: Omit<DiffRowsOptions, 'signal'>, limit: number): Promise<void> {
  const { diffRows } = await import('../../repo/diff-rows.js');
  const stop = stopOnSignals();
  let res: DiffRowsResult | undefined;
  try {
    res = await diffRows(repo, { ...opts, signal: stop.signal });
  } catch (err) {
    const by = stop.stoppedBy();
    if (err instanceof InterruptedError && by) throw new InterruptedError(err.message, by);
    throw err;
  } finally {
    if (!res) stop.release();
  }
  try {
    const w = writer(stdout, stop.signal);
    if (out.json) await writeJson(w, res);
    else if (!out.quiet) await renderRows(w, out, res, limit);
  } finally {
    res.close();
    stop.release();
  }
  const by = stop.stoppedBy();
  if (by) throw new InterruptedError('interrupted', by);
}

/** Writes to stdout honouring back-pressure; stops quietly when the reader went away or a signal came. */
function writer(stdout: Writable, signal: AbortSignal): (s: string) => Promise<boolean> {
  return async (s) => {
    if (signal.aborted || stdout.destroyed || stdout.writableEnded) return false;
    if (!stdout.write(s)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          stdout.off('drain', done);
          stdout.off('close', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        stdout.on('drain', done);
        stdout.on('close', done);
        signal.addEventListener('abort', done);
      });
    }
    return !signal.aborted && !stdout.destroyed;
  };
}

type Write = (s: string) => Promise<boolean>;

/**
 * The `--json` document, written as it is read from the spool: the header
 * fields, then the arrays `added`, `removed` and `changed` (schema in README).
 */
async function writeJson(w: Write, res: DiffRowsResult): Promise<void> {
  const head = { path: res.path, format: res.format, key: res.key, a: res.a, b: res.b, columns: res.columns, summary: res.summary };
  const text = JSON.stringify(head, null, 2);
  if (!(await w(`${text.slice(0, -2)},\n`))) return;
  const arrays: [string, () => AsyncGenerator<unknown>][] = [
    ['added', res.added],
    ['removed', res.removed],
    ['changed', res.changed],
  ];
  for (const [k, [name, rows]] of arrays.entries()) {
    if (!(await w(`  "${name}": [`))) return;
    let first = true;
    for await (const r of rows()) {
      if (!(await w(`${first ? '\n' : ',\n'}    ${stringifyJson(r)}`))) return;
      first = false;
    }
    if (!(await w(`${first ? '' : '\n  '}]${k === arrays.length - 1 ? '\n' : ',\n'}`))) return;
  }
  await w('}\n');
}

/** A cell for people: bare when plain, quoted (JSON) when empty, padded or holding separators or control characters. */
function cell(v: unknown): string {
  if (typeof v === 'string' && v !== '' && /^[^\s,=:"'\\\x00-\x1f\x7f]+(?: [^\s,=:"'\\\x00-\x1f\x7f]+)*$/.test(v)) return v;
  return stringifyJson(v);
}

function cells(o: Record<string, unknown>): string {
  return Object.entries(o)
    .map(([k, v]) => `${cell(k)}=${cell(v)}`)
    .join(', ');
}

async function renderRows(w: Write, out: Output, res: DiffRowsResult, limit: number): Promise<void> {
  const p = out.paint;
  const s = res.summary;
  const a = res.a.rev === undefined ? 'the workspace' : q(res.a.rev);
  const b = res.b.rev === undefined ? 'the workspace' : q(res.b.rev);
  const by = res.key.length ? `by ${res.key.join(', ')}` : 'by whole rows';
  const line = (t: string) => w(`${t}\n`);
  await line(`Rows of ${q(res.path)} between ${a} and ${b} (${by}): ${s.added} added, ${s.removed} removed, ${s.changed} changed, ${s.unchanged} unchanged.`);
  const c = res.columns;
  if (c.added.length || c.removed.length) {
    const parts = [c.added.length ? `added ${c.added.map(cell).join(', ')}` : '', c.removed.length ? `removed ${c.removed.map(cell).join(', ')}` : ''].filter(Boolean);
    await line(`Columns ${parts.join('; ')} (cells are compared by column name).`);
  }
  const d = s.duplicateKeys;
  if (d.a || d.b) {
    const where = [d.a ? `${d.a} in ${a}` : '', d.b ? `${d.b} in ${b}` : ''].filter(Boolean).join(', ');
    await line(`Duplicate keys (rows whose key an earlier row of the same file has): ${where}; such rows are paired in file order.`);
  }
  const sections: [string, number, (r: never) => string, () => AsyncGenerator<unknown>][] = [
    ['added', s.added, (r: RowDetail) => `${p.green('+')} line ${r.line}: ${cells(r.row)}`, res.added],
    ['removed', s.removed, (r: RowDetail) => `${p.red('-')} line ${r.line}: ${cells(r.row)}`, res.removed],
    [
      'changed',
      s.changed,
      (r: ChangedRow) =>
        `${p.yellow('~')} ${cells(r.key)} (line ${r.lines.a} -> ${r.lines.b}): ${Object.entries(r.cells)
          .map(([k, v]) => `${cell(k)}: ${cell(v.old)} -> ${cell(v.new)}`)
          .join('; ')}`,
      res.changed,
    ],
  ];
  for (const [name, count, show, rows] of sections) {
    if (count === 0) continue;
    if (!(await w(`\n${name}:\n`))) return;
    let n = 0;
    for await (const r of rows()) {
      if (limit > 0 && n >= limit) break;
      if (!(await line(`  ${show(r as never)}`))) return;
      n++;
    }
    if (count > n) await line(`  ... ${count - n} more; --limit 0 or --json for all`);
  }
}
