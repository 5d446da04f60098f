import type { Command } from 'commander';
import { type CliContext, examples } from '../context.js';
import { progressFor, renderTransfer, type TransferFlags, transferJson, transferOptions } from '../transfer.js';

export function registerFetch(program: Command, ctx: CliContext): void {
  transferOptions(program.command('fetch').description('download data the pointers reference from a remote into the cache (workspace untouched)'))
    .addHelpText('after', examples('tdv fetch', 'tdv fetch data/images -r s3store'))
    .action(async (targets: string[], opts: TransferFlags, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { fetch } = await import('../../repo/fetch.js');
      const progress = await progressFor(out, 'fetch');
      const res = await fetch(repo, { targets: targets.map((t) => ctx.resolve(t)), remote: opts.remote, jobs: opts.jobs, runCache: opts.runCache, progress }).finally(() => progress?.finish());
      if (out.json) out.data(transferJson(res));
      renderTransfer(out, res, { done: 'Fetched', prep: 'from', again: 'tdv fetch' });
    });
}
