import type { FreezeResult } from '../../repo/freeze.js';
import type { Output } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';

/** `tdv freeze` and `tdv unfreeze`. */
export function registerFreeze(program: Program, ctx: CliContext): void {
  const freeze = program
    .command('freeze')
    .description('mark pipeline stages frozen in tdv.yaml: repro never runs them, whatever changed')
    .argument('<stages...>', 'stage names')
    .option('--json', 'print one JSON object: changed, unchanged')
    .addHelpText('after', examples('tdv freeze prepare', 'tdv freeze prepare featurize'));
  ctx.action(freeze, async ({ repo, args: [stages], show }) => {
    const { freeze } = await import('../../repo/freeze.js');
    show(await freeze(repo, stages), render('frozen'));
  });
  const unfreeze = program
    .command('unfreeze')
    .description('let repro run frozen stages again (removes "frozen" from tdv.yaml)')
    .argument('<stages...>', 'stage names')
    .option('--json', 'print one JSON object: changed, unchanged')
    .addHelpText('after', examples('tdv unfreeze prepare'));
  ctx.action(unfreeze, async ({ repo, args: [stages], show }) => {
    const { unfreeze } = await import('../../repo/freeze.js');
    show(await unfreeze(repo, stages), render('not frozen'));
  });
}

function render(state: 'frozen' | 'not frozen') {
  return (res: FreezeResult, out: Output): void => {
    for (const n of res.changed) out.info(`${n}: ${state} now`);
    for (const n of res.unchanged) out.info(`${n}: already ${state}`);
  };
}
