import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';
import { allHistoryOptions, collect, progressFor, renderTransfer, scopeOf, transferJson, transferOptions } from '../transfer.js';

export function registerPush(program: Program, ctx: CliContext): void {
  const cmd = allHistoryOptions(transferOptions(program.command('push').description('upload cached data the pointers reference to a remote')), 'push')
    .option('--rev <rev>', "push the data of this revision instead of the workspace pointers' (repeatable; what the cache holds of it)", collect)
    .option('--dry', 'list what would be uploaded, upload nothing')
    .option('--repair', 'upload the data again even where the remote has it (after pull reported a corrupt object there)')
    .addHelpText(
      'after',
      examples(
        'tdv push',
        'tdv push data/images -r s3store -j 32',
        'tdv push --dry --json',
        'tdv push --repair data/big.csv  # store it again: the copy on the remote is damaged',
        'tdv push --rev v1               # the data tagged v1',
        'tdv push --all-tags          # every tagged version too (what the cache holds of it)',
      ),
    );
  ctx.action(cmd, async ({ out, repo, args: [targets], opts, resolve }) => {
    const { push } = await import('../../repo/push.js');
    const progress = opts.dry ? undefined : await progressFor(out, 'push');
    const res = await push(repo, {
      targets: resolve(targets),
      remote: opts.remote,
      jobs: opts.jobs,
      limitRate: opts.limitRate,
      runCache: opts.runCache,
      withDeps: opts.withDeps,
      dry: opts.dry,
      repair: opts.repair,
      progress,
      scope: scopeOf(opts, opts.rev === undefined),
    }).finally(() => progress?.finish());
    if (opts.dry) {
      const planned = res.planned ?? [];
      if (out.json) out.data({ ...transferJson(res), planned });
      else {
        for (const p of planned) out.info(`${q(p.path)}  ${formatBytes(p.size)}`);
        out.info(`Would push ${plural(planned.length, 'object')} (${formatBytes(planned.reduce((n, p) => n + p.size, 0))}) to remote "${res.remote}"; ${res.skipped} already there.`);
      }
      return;
    }
    if (out.json) out.data(transferJson(res));
    renderTransfer(out, res, { done: 'Pushed', prep: 'to', again: ctx.commandLine() });
  });
}
