import type { Command } from 'commander';
import { plural } from '../../ui/output.js';
import { type CliContext, examples } from '../context.js';

export function registerCheckout(program: Command, ctx: CliContext): void {
  program
    .command('checkout')
    .description('make workspace data match the pointers, restoring files from the cache')
    .argument('[targets...]', 'pointer files, tracked paths, or files inside tracked directories (default: all)')
    .option('-f, --force', 'overwrite or delete workspace changes that are not in the cache')
    .option('--relink', 're-create every file from the cache (e.g. after changing cache.type)')
    .option('--dry', 'list what would be restored and deleted, change nothing')
    .addHelpText('after', examples('tdv checkout', 'tdv checkout data/images/cat.png', 'tdv checkout --force data.tdv'))
    .action(async (targets: string[], opts: { force?: boolean; relink?: boolean; dry?: boolean }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { checkout } = await import('../../repo/checkout.js');
      const res = await checkout(repo, { targets: targets.map((t) => ctx.resolve(t)), force: opts.force, relink: opts.relink, dry: opts.dry });
      if (opts.dry) for (const r of res.restored) out.info(`M  ${r}`);
      else for (const r of res.restored.slice(0, 20)) out.debug(`restored ${r}`);
      for (const d of res.deleted) out.info(`D  ${d}`);
      if (res.restored.length === 0 && res.deleted.length === 0) out.info('Workspace already matches the pointers.');
      else if (opts.dry) out.info(`Would restore ${plural(res.restored.length, 'file')} and delete ${plural(res.deleted.length, 'file')}.`);
      else out.info(`Restored ${plural(res.restored.length, 'file')}, deleted ${plural(res.deleted.length, 'file')}.`);
    });
}
