import type { Command } from 'commander';
import type { StatusResult } from '../../repo/status.js';
import type { Output } from '../../ui/output.js';
import { type CliContext, examples } from '../context.js';

export function registerStatus(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description('show tracked data that changed in the workspace or is missing from the cache')
    .argument('[targets...]', 'pointer files or tracked paths (default: all)')
    .option('--json', 'print one JSON object (schema in README)')
    .addHelpText('after', examples('tdv status', 'tdv status data/images --json'))
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { status } = await import('../../repo/status.js');
      const res = await status(repo, { targets: targets.map((t) => ctx.resolve(t)) });
      if (out.json) out.data(res);
      else render(res, out);
    });
}

const LIST_MAX = 20;

function render(res: StatusResult, out: Output): void {
  if (res.clean) {
    out.info('Data and pipelines are up to date.');
    return;
  }
  const p = out.paint;
  for (const d of res.data) {
    out.info(`${d.pointer}:`);
    if (d.workspace !== 'unchanged') out.info(`    ${p.red(`${d.workspace}:`.padEnd(14))}${d.path}`);
    if (d.files) {
      for (const [kind, paths] of Object.entries(d.files) as [string, string[]][]) {
        for (const f of paths.slice(0, LIST_MAX)) out.info(`        ${p.yellow(`${kind}:`.padEnd(11))}${d.path}/${f}`);
        if (paths.length > LIST_MAX) out.info(`        ... and ${paths.length - LIST_MAX} more ${kind}`);
      }
    }
    if (d.cache === 'missing') out.info(`    ${p.red('not in cache:'.padEnd(14))}${d.path} (run \`tdv pull\` to fetch it)`);
  }
}
