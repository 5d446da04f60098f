import { UsageError } from '../../errors.js';
import type { CheckoutOptions } from '../../repo/checkout.js';
import { plural } from '../../ui/output.js';
import { type CliContext, examples, type FlagsOf, parseJobs, type Program } from '../context.js';
import { printTransfer, progressFor, transferError, transferJson } from '../transfer.js';
import { ofRevision, q, shs } from '../render.js';
import { checkedOutNote, notRestoredError, notRestoredFix, renderKept, renderNotRestored } from '../restore.js';

export function registerCheckout(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('checkout')
    .description('make workspace data match the pointers, restoring files from the cache')
    .argument('[targets...]', 'pointer files, tracked paths, files inside tracked directories, or stage names (default: all)')
    .option('-f, --force', 'overwrite or delete workspace changes that are not in the cache')
    .option('--relink', 're-create every file from the cache (e.g. after changing cache.type)')
    .option('--dry', 'list what would be restored and deleted, change nothing')
    .option('--rev <rev>', 'restore the data recorded at this revision (commit, branch, tag, HEAD~3), not the workspace pointers')
    .option('--to <dir>', 'write a snapshot into this directory (paths as in the repository), leaving the workspace alone')
    .option('--with-deps', 'with stage targets (or outputs of a stage): also the outputs of the stages upstream of them')
    .option('--pull', 'first fetch what the cache lacks from the remote')
    .option('-r, --remote <name>', 'with --pull: the remote to fetch from (default: core.remote)')
    .option('-j, --jobs <n>', 'with --pull: parallel transfers', parseJobs)
    .option('--json', 'print one JSON object: restored, deleted, missing (and fetch with --pull)')
    .addHelpText(
      'after',
      examples(
        'tdv checkout',
        'tdv checkout data/images/cat.png',
        'tdv checkout --force data.tdv',
        'tdv checkout --rev v1 data             # the data as tagged v1, into the workspace',
        'tdv checkout --rev HEAD~30 --to /tmp/day1   # a read-only (when linked) snapshot beside the workspace',
        'tdv checkout --rev 3f2a1b9 --pull      # fetch what is missing first',
      ),
    );
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if ((opts.remote !== undefined || opts.jobs !== undefined) && !opts.pull) throw new UsageError('-r/--remote and -j/--jobs only apply with --pull');
  };
  ctx.action(cmd, { check }, async ({ out, repo, args: [targets], opts, resolve }) => {
    const { checkout } = await import('../../repo/checkout.js');
    const to = opts.to === undefined ? undefined : resolve(opts.to);
    const progress = opts.dry ? undefined : await progressFor(out, opts.pull ? 'fetch' : 'checkout', opts.pull ? 'objects' : 'files');
    // The flags are the porcelain's options, paths made absolute.
    const res = await checkout(repo, { ...(opts satisfies FlagsOf<CheckoutOptions, typeof opts>), targets: resolve(targets), to, progress }).finally(() => progress?.finish());
    if (out.json) {
      out.data({
        restored: res.restored.length,
        deleted: res.deleted.length,
        missing: res.missing,
        kept: res.kept,
        ...(res.commit ? { commit: res.commit } : {}),
        ...(res.fetch ? { fetch: transferJson(res.fetch) } : {}),
      });
    }
    if (res.fetch) printTransfer(out, res.fetch, { done: 'Fetched', prep: 'from', again: ctx.commandLine() });
    const of = res.commit ? ofRevision(opts.rev!, res.commit) : '';
    const into = to ? ` in ${q(opts.to!)}` : '';
    if (opts.dry) for (const r of res.restored) out.info(`restore: ${q(r)}`);
    else for (const r of res.restored.slice(0, 20)) out.debug(`restored ${q(r)}`);
    // In words: `D  path` would read as git's staged deletion.
    for (const d of res.deleted) out.info(`${opts.dry ? 'delete' : 'deleted'}: ${q(d)}`);
    const what = of ? `the data${of}` : 'the pointers';
    // Nothing to do is "already matches" only when nothing is missing either (review finding 9).
    if (res.restored.length === 0 && res.deleted.length === 0 && res.missing.length === 0) out.info(to ? `${q(opts.to!)} already matches ${what}.` : `Workspace already matches ${what}.`);
    else if (opts.dry) out.info(`Would restore ${plural(res.restored.length, 'file')}${of}${into} and delete ${plural(res.deleted.length, 'file')}.`);
    else out.info(`Restored ${plural(res.restored.length, 'file')}${of}${into}, deleted ${plural(res.deleted.length, 'file')}.`);
    renderKept(out, res.kept);
    renderNotRestored(out, res.missing);
    // Everything restorable is restored; what was not makes the command fail, after it is listed.
    if (res.fetch) {
      const failed = transferError(res.fetch, {
        done: 'Fetched',
        prep: 'from',
        again: ctx.commandLine(),
        after: checkedOutNote(res),
        also: also(notRestoredFix(res.missing.filter((m) => m.stage !== undefined))),
      });
      if (failed) throw failed;
    }
    if (res.missing.length > 0) throw notRestoredError(res.missing, { fetch: fetchHint(ctx, targets, opts), dry: opts.dry });
  });
}

/** "; <hint>", or nothing. */
function also(hint: string): string {
  return hint ? `; ${hint}` : '';
}

/**
 * The commands that fetch what a checkout lacks, for the same data: `tdv pull`
 * of the same targets (and --rev), or this very command with --pull (the only
 * one for a snapshot --to elsewhere; after --pull, running it again retries).
 */
function fetchHint(ctx: CliContext, targets: readonly string[], opts: Pick<CheckoutOptions, 'pull' | 'to' | 'rev'>): string[] {
  if (opts.pull) return [ctx.commandLine()];
  const withPull = `${ctx.commandLine()} --pull`;
  if (opts.to !== undefined) return [withPull];
  const pull = ['tdv pull', ...(opts.rev === undefined ? [] : [`--rev ${shs([opts.rev])}`]), ...(targets.length ? [shs(targets)] : [])].join(' ');
  return opts.rev === undefined ? [pull] : [pull, withPull];
}
