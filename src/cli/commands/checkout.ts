import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { plural } from '../../ui/output.js';
import { type CliContext, examples, parsePositiveInt } from '../context.js';
import { progressFor, renderTransfer } from '../transfer.js';
import { q } from '../render.js';

interface CheckoutFlags {
  force?: boolean;
  relink?: boolean;
  dry?: boolean;
  rev?: string;
  to?: string;
  pull?: boolean;
  remote?: string;
  jobs?: number;
}

export function registerCheckout(program: Command, ctx: CliContext): void {
  program
    .command('checkout')
    .description('make workspace data match the pointers, restoring files from the cache')
    .argument('[targets...]', 'pointer files, tracked paths, or files inside tracked directories (default: all)')
    .option('-f, --force', 'overwrite or delete workspace changes that are not in the cache')
    .option('--relink', 're-create every file from the cache (e.g. after changing cache.type)')
    .option('--dry', 'list what would be restored and deleted, change nothing')
    .option('--rev <rev>', 'restore the data recorded at this revision (commit, branch, tag, HEAD~3), not the workspace pointers')
    .option('--to <dir>', 'write a snapshot into this directory (paths as in the repository), leaving the workspace alone')
    .option('--pull', 'first fetch what the cache lacks from the remote')
    .option('-r, --remote <name>', 'with --pull: the remote to fetch from (default: core.remote)')
    .option('-j, --jobs <n>', 'with --pull: parallel transfers', parsePositiveInt('--jobs'))
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
    )
    .action(async (targets: string[], opts: CheckoutFlags, cmd: Command) => {
      const out = await ctx.output(cmd);
      if ((opts.remote !== undefined || opts.jobs !== undefined) && !opts.pull) throw new UsageError('-r/--remote and -j/--jobs only apply with --pull');
      const repo = await ctx.openRepo(out);
      const { checkout } = await import('../../repo/checkout.js');
      const to = opts.to === undefined ? undefined : ctx.resolve(opts.to);
      const progress = opts.dry ? undefined : await progressFor(out, opts.pull ? 'fetch' : 'checkout', opts.pull ? 'objects' : 'files');
      const res = await checkout(repo, {
        progress,
        targets: targets.map((t) => ctx.resolve(t)),
        force: opts.force,
        relink: opts.relink,
        dry: opts.dry,
        rev: opts.rev,
        to,
        pull: opts.pull,
        remote: opts.remote,
        jobs: opts.jobs,
      }).finally(() => progress?.finish());
      if (res.fetch) renderTransfer(out, res.fetch, { done: 'Fetched', prep: 'from', again: 'tdv checkout --pull', after: 'nothing was checked out; ' });
      const of = res.commit ? ` of ${q(opts.rev!)} (${res.commit.slice(0, 12)})` : '';
      const into = to ? ` in ${q(opts.to!)}` : '';
      if (opts.dry) for (const r of res.restored) out.info(`M  ${q(r)}`);
      else for (const r of res.restored.slice(0, 20)) out.debug(`restored ${q(r)}`);
      for (const d of res.deleted) out.info(`D  ${q(d)}`);
      const what = of ? `the data${of}` : 'the pointers';
      if (res.restored.length === 0 && res.deleted.length === 0) out.info(to ? `${q(opts.to!)} already matches ${what}.` : `Workspace already matches ${what}.`);
      else if (opts.dry) out.info(`Would restore ${plural(res.restored.length, 'file')}${of}${into} and delete ${plural(res.deleted.length, 'file')}.`);
      else out.info(`Restored ${plural(res.restored.length, 'file')}${of}${into}, deleted ${plural(res.deleted.length, 'file')}.`);
    });
}
