import type { CommitResult } from '../../repo/commit.js';
import { type Output, plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';

/** `tdv commit`. */
export function registerCommit(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('commit')
    .description("record stages' current outputs in tdv.lock and the cache without running them")
    .argument('[stages...]', 'stage names (default: every stage)')
    .option('--json', 'print one JSON object: committed, unchanged')
    .addHelpText('after', examples('tdv commit', 'tdv commit train'));
  ctx.action(cmd, async ({ repo, args: [stages], show }) => {
    const { commit } = await import('../../repo/commit.js');
    show(await commit(repo, { stages }), render);
  });
}

function render(res: CommitResult, out: Output): void {
  for (const n of res.committed) out.info(`committed ${n}`);
  out.info(
    res.committed.length
      ? `Recorded ${plural(res.committed.length, 'stage')} in tdv.lock${res.unchanged.length ? `; ${res.unchanged.length} unchanged` : ''}.`
      : 'tdv.lock already records every stage as it is.',
  );
}
