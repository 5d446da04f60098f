import { type CliContext, examples, type Program } from '../context.js';
import { allHistoryOptions, collect, progressFor, renderTransfer, scopeOf, transferJson, transferOptions } from '../transfer.js';

export function registerFetch(program: Program, ctx: CliContext): void {
  const cmd = allHistoryOptions(transferOptions(program.command('fetch').description('download data the pointers reference from a remote into the cache (workspace untouched)')), 'fetch')
    .option('--rev <rev>', "fetch the data of this revision instead of the workspace pointers' (repeatable)", collect)
    .addHelpText('after', examples('tdv fetch', 'tdv fetch data/images -r s3store', 'tdv fetch --rev v1 --rev v2      # what checkout --rev or diff of those needs'));
  ctx.action(cmd, async ({ out, repo, args: [targets], opts, resolve }) => {
    const { fetch } = await import('../../repo/fetch.js');
    const progress = await progressFor(out, 'fetch');
    const res = await fetch(repo, {
      targets: resolve(targets),
      remote: opts.remote,
      jobs: opts.jobs,
      limitRate: opts.limitRate,
      runCache: opts.runCache,
      withDeps: opts.withDeps,
      progress,
      scope: scopeOf(opts, opts.rev === undefined),
    }).finally(() => progress?.finish());
    if (out.json) out.data(transferJson(res));
    renderTransfer(out, res, { done: 'Fetched', prep: 'from', again: ctx.commandLine() });
  });
}
