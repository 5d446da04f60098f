import type { Command } from 'commander';
import type { FreezeResult } from '../../repo/freeze.js';
import type { Output } from '../../ui/output.js';
import { type CliContext, examples } from '../context.js';

/** `tdv freeze` and `tdv unfreeze`. */
export function registerFreeze(program: Command, ctx: CliContext): void {
  program
    .command('freeze')
    .description('mark pipeline stages frozen in tdv.yaml: repro never runs them, whatever changed')
    .argument('<stages...>', 'stage names')
    .option('--json', 'print one JSON object: changed, unchanged')
    .addHelpText('after', examples('tdv freeze prepare', 'tdv freeze prepare featurize'))
    .action(async (stages: string[], _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { freeze } = await import('../../repo/freeze.js');
      render(out, await freeze(repo, stages), 'frozen');
    });
  program
    .command('unfreeze')
    .description('let repro run frozen stages again (removes "frozen" from tdv.yaml)')
    .argument('<stages...>', 'stage names')
    .option('--json', 'print one JSON object: changed, unchanged')
    .addHelpText('after', examples('tdv unfreeze prepare'))
    .action(async (stages: string[], _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { unfreeze } = await import('../../repo/freeze.js');
      render(out, await unfreeze(repo, stages), 'not frozen');
    });
}

function render(out: Output, res: FreezeResult, state: 'frozen' | 'not frozen'): void {
  if (out.json) {
    out.data(res);
    return;
  }
  for (const n of res.changed) out.info(`${n}: ${state} now`);
  for (const n of res.unchanged) out.info(`${n}: already ${state}`);
}
