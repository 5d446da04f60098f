import type { Command, OptionValues } from '@commander-js/extra-typings';
import { TdvError } from '../errors.js';
import { maskUrl } from '../formats/config.js';
import { quotePath, shellWord } from '../formats/paths.js';
import type { TransferResult } from '../repo/push.js';
import type { HistoryScope } from '../repo/lib/revision.js';
import { formatBytes, type Output, plural } from '../ui/output.js';
import type { ProgressBar } from '../ui/progress.js';
import { parseJobs, parseLimitRate } from './context.js';

const LIST_MAX = 20;

/** The arguments and options push, fetch and pull share. */
export function transferOptions<Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<[], Opts, Globals>) {
  return cmd
    .argument('[targets...]', 'pointer files, tracked paths, files inside tracked directories, or stage names (default: all)')
    .option('-r, --remote <name>', 'remote to use (default: core.remote)')
    .option('-j, --jobs <n>', "parallel transfers (default: the remote's `jobs`, else 4 x cores for S3)", parseJobs)
    .option('--limit-rate <rate>', "at most this many bytes per second with the remote, e.g. 500k or 4M (default: the remote's `limit_rate`)", parseLimitRate)
    .option('--with-deps', 'with stage targets (or outputs of a stage): also the outputs of the stages upstream of them')
    .option('--run-cache', 'also transfer the run-cache, so `tdv repro` elsewhere restores instead of rerunning')
    .option('--json', 'print one JSON object: transferred, skipped, failed, bytes, failures');
}

/** The flags that name history: `--rev` (once, or repeatable) and `allHistoryOptions`'s. */
export type HistoryFlags = Pick<HistoryScope, 'allBranches' | 'allTags' | 'allCommits'> & { rev?: string | string[] };

/** `--all-branches`, `--all-tags`, `--all-commits`: data beyond the workspace (push, fetch, pull). */
export function allHistoryOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>, verb: string) {
  return cmd
    .option('--all-branches', `also ${verb} the data of every local branch's tip`)
    .option('--all-tags', `also ${verb} the data of every tag`)
    .option('--all-commits', `also ${verb} the data of every commit reachable from a branch, tag or HEAD`);
}

/** The history scope of the flags; `workspace`: whether the workspace's data is part of it. */
export function scopeOf(opts: HistoryFlags, workspace: boolean): HistoryScope | undefined {
  const revs = opts.rev === undefined ? [] : Array.isArray(opts.rev) ? opts.rev : [opts.rev];
  const scope: HistoryScope = { workspace, revs, allBranches: opts.allBranches, allTags: opts.allTags, allCommits: opts.allCommits };
  return revs.length || opts.allBranches || opts.allTags || opts.allCommits ? scope : undefined;
}

/** Collects a repeatable option's values. */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/**
 * A progress bar when a person is watching stderr (see `progressMode`:
 * never with --json or -q, when piped or in CI unless TDV_PROGRESS=1);
 * undefined otherwise, so the command reports to nobody at no cost.
 */
export async function progressFor(out: Output, label: string, unit = 'objects'): Promise<ProgressBar | undefined> {
  const { progressMode, progressBar } = await import('../ui/progress.js');
  const mode = progressMode({ isTTY: out.isTTY, quiet: out.quiet, json: out.json, env: out.env });
  // A checkout phase (pull, checkout --pull) writes files.
  return mode === undefined ? undefined : progressBar(label, out.stderrStream, { unit, units: { checkout: 'files' }, mode });
}

/** The `--json` document of a transfer. */
export function transferJson(res: TransferResult): Record<string, unknown> {
  return {
    remote: res.remote,
    transferred: res.transferred,
    skipped: res.skipped,
    failed: res.failed.length,
    bytes: res.bytes,
    ...(res.sent !== undefined ? { sent: res.sent } : {}),
    ...(res.received !== undefined ? { received: res.received } : {}),
    failures: res.failed,
    ...(res.heldBack ? { heldBack: res.heldBack } : {}),
    ...(res.runs !== undefined ? { runs: res.runs } : {}),
    ...(res.imports ? { imports: res.imports.map((i) => ({ url: maskUrl(i.url), ...transferJson(i) })) } : {}),
  };
}

/** How a transfer's lines and error speak: "Pushed ... to", and the command that retries it. */
export interface TransferVerb {
  done: string;
  prep: string;
  /** The command to run again to retry what failed. */
  again: string;
  /** Said before "run ... again": what happened besides the failures ("the rest was checked out; "). */
  after?: string;
  /** Said after the retry hint ("; `tdv repro train` rebuilds ..."). */
  also?: string;
}

/**
 * Prints the per-object failures (stderr) and the one-line summary (not with
 * `--json`, whose document the caller prints); throws (exit 1)
 * when any object failed, after everything else was reported.
 */
export function renderTransfer(out: Output, res: TransferResult, verb: TransferVerb): void {
  printTransfer(out, res, verb);
  const err = transferError(res, verb);
  if (err) throw err;
}

/** The per-object failures (stderr) and the one-line summary of a transfer. */
export function printTransfer(out: Output, res: TransferResult, verb: TransferVerb): void {
  for (const f of res.failed.slice(0, LIST_MAX)) out.warn(`${quotePath(f.path)} (${f.oid.slice(0, 12)}): ${f.error}`);
  if (res.failed.length > LIST_MAX) out.warn(`... and ${res.failed.length - LIST_MAX} more failures (see --json for all)`);
  for (const h of res.heldBack ?? []) {
    out.warn(
      `the manifest of ${quotePath(h.path)} was not pushed: ${h.missing} of its files ${h.missing === 1 ? 'is' : 'are'} not on the remote yet, so others cannot pull ${quotePath(h.path)} until you run \`tdv push ${shellWord(h.path)}\``,
    );
  }
  if (res.runs) out.info(`${plural(res.runs, 'run record')} of the run-cache ${verb.done === 'Pushed' ? 'pushed' : 'fetched'}.`);
  for (const i of res.imports ?? []) {
    for (const f of i.failed.slice(0, LIST_MAX)) out.warn(`${quotePath(f.path)} (${f.oid.slice(0, 12)}): ${f.error}`);
    const from = `remote "${i.remote}" of ${maskUrl(i.url)} (imported data)`;
    out.info(`${verb.done} ${plural(i.transferred, 'object')} (${formatBytes(i.bytes)}) ${verb.prep} ${from}${i.skipped > 0 ? `; ${i.skipped} already there` : ''}.`);
  }
  // Only imports were selected: this repository's remote was not used.
  if (res.imports && res.transferred + res.skipped + res.failed.length === 0) return;
  const there = res.skipped > 0 ? `; ${res.skipped} already there` : '';
  if (res.transferred === 0 && res.failed.length === 0) out.info(`Everything is up to date with remote "${res.remote}" (${plural(res.skipped, 'object')}).`);
  else {
    // Packed: compressed, and only the chunks the remote lacked, so a new version of a large file says what it cost.
    const sent =
      res.sent !== undefined && res.sent < res.bytes ? `; ${formatBytes(res.sent)} sent` : res.received !== undefined && res.received < res.bytes ? `; ${formatBytes(res.received)} received` : '';
    out.info(`${verb.done} ${plural(res.transferred, 'object')} (${formatBytes(res.bytes)}${sent}) ${verb.prep} remote "${res.remote}"${there}.`);
  }
}

/** The error of a transfer where any object failed (exit 1), naming the first and the retry. */
export function transferError(res: TransferResult, verb: TransferVerb): TdvError | undefined {
  const failed = [...res.failed, ...(res.imports ?? []).flatMap((i) => i.failed)];
  if (failed.length === 0) return undefined;
  return new TdvError(
    'TRANSFER_FAILED',
    `${plural(failed.length, 'object')} failed (first: ${quotePath(failed[0]!.path)}: ${failed[0]!.error}); ${verb.after ?? ''}run \`${verb.again}\` again to retry what is missing${verb.also ?? ''}`,
  );
}
