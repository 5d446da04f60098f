import { maskUrl } from '../../formats/config.js';
import { type CliContext, examples, parseJobs, parseLimitRate, type Program } from '../context.js';
import { q, shs } from '../render.js';
import { progressFor } from '../transfer.js';

export function registerUpdate(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('update')
    .description('move imported data (`tdv import`) to the version its source revision names now, or to --rev')
    .argument('[targets...]', 'imported data or their pointer files (default: every import)')
    .option('--rev <rev>', 'a branch, tag, commit id or date of the source to move to (recorded from now on)')
    .option('-f, --force', 'discard workspace changes to imported data that the cache lacks')
    .option('-j, --jobs <n>', 'parallel downloads', parseJobs)
    .option('--limit-rate <rate>', 'at most this many bytes per second from the remote, e.g. 500k or 4M', parseLimitRate)
    .option('--json', 'print one JSON object: imports (path, pointer, url, rev, from, to, state, oldOid, oid, fetch) and gitFiles')
    .addHelpText('after', examples('tdv update', 'tdv update trips.csv.tdv', 'tdv update data/images --rev v2'));
  ctx.action(cmd, async ({ out, repo, args: [targets], opts, resolve, show }) => {
    const { update } = await import('../../repo/update.js');
    const progress = await progressFor(out, 'update');
    const res = await update(repo, { targets: resolve(targets), rev: opts.rev, force: opts.force, jobs: opts.jobs, limitRate: opts.limitRate, progress }).finally(() => progress?.finish());
    show(res, (res) => {
      if (res.imports.length === 0) out.info('No imported data to update.');
      for (const i of res.imports) {
        const at = `${i.rev ?? 'HEAD'} of ${maskUrl(i.url)}`;
        if (i.state === 'current') out.info(`${q(i.path)} is up to date with ${at} (${i.to.slice(0, 12)})`);
        else if (i.oid === i.oldOid) out.info(`Updated ${q(i.pointer)} to ${at} (${i.from.slice(0, 12)} -> ${i.to.slice(0, 12)}); the data did not change`);
        else out.info(`Updated ${q(i.path)} to ${at} (${i.from.slice(0, 12)} -> ${i.to.slice(0, 12)})`);
      }
      if (res.gitFiles.length > 0 && repo.git) out.info(`\nTo track the changes with Git, run:\n  git add ${shs(res.gitFiles)}`);
    });
  });
}
