import { plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { ofRevision, q } from '../render.js';
import { checkedOutNote, notRestoredError, notRestoredFix, renderKept, renderNotRestored } from '../restore.js';
import { allHistoryOptions, printTransfer, progressFor, scopeOf, transferError, transferJson, transferOptions } from '../transfer.js';

export function registerPull(program: Program, ctx: CliContext): void {
  const cmd = allHistoryOptions(transferOptions(program.command('pull').description('fetch data from a remote, then check it out into the workspace')), 'fetch')
    .option('-f, --force', 'overwrite or delete workspace changes that are not in the cache')
    .option('--rev <rev>', "fetch and check out the data of this revision (commit, branch, tag) instead of the workspace pointers'")
    .addHelpText(
      'after',
      examples(
        'tdv pull',
        'tdv pull data/images/cat.png',
        'tdv pull -r s3store --json',
        'tdv pull --rev v1 data',
        "tdv pull --all-tags         # the workspace's data, and every tagged version into the cache",
      ),
    );
  ctx.action(cmd, async ({ out, repo, args: [targets], opts, resolve }) => {
    const { pull } = await import('../../repo/pull.js');
    const progress = await progressFor(out, 'pull');
    const res = await pull(repo, {
      targets: resolve(targets),
      remote: opts.remote,
      jobs: opts.jobs,
      limitRate: opts.limitRate,
      runCache: opts.runCache,
      withDeps: opts.withDeps,
      force: opts.force,
      rev: opts.rev,
      scope: scopeOf(opts, opts.rev === undefined),
      progress,
    }).finally(() => progress?.finish());
    const co = res.checkout;
    if (out.json) out.data({ ...transferJson(res.fetch), restored: co.restored.length, deleted: co.deleted.length, missing: co.missing, kept: co.kept });
    const verb = { done: 'Fetched', prep: 'from', again: ctx.commandLine() };
    printTransfer(out, res.fetch, verb);
    const of = co.commit ? ofRevision(opts.rev!, co.commit) : '';
    out.info(
      co.restored.length + co.deleted.length + co.missing.length === 0
        ? `Workspace already matches ${of ? `the data${of}` : 'the pointers'}.`
        : `Restored ${plural(co.restored.length, 'file')}${of}, deleted ${plural(co.deleted.length, 'file')}.`,
    );
    // Everything the cache now holds is checked out; what is still missing makes the command fail, after it is listed.
    for (const d of co.deleted) out.info(`deleted: ${q(d)}`);
    renderKept(out, co.kept);
    renderNotRestored(out, co.missing);
    const stageFix = notRestoredFix(co.missing.filter((m) => m.stage !== undefined));
    const failed = transferError(res.fetch, { ...verb, after: checkedOutNote(co), also: stageFix ? `; ${stageFix}` : '' });
    if (failed) throw failed;
    if (co.missing.length > 0) throw notRestoredError(co.missing);
  });
}
