import type { Command } from 'commander';
import { type CliContext, examples } from '../context.js';
import { q, qs, shs } from '../render.js';

export function registerRemove(program: Command, ctx: CliContext): void {
  program
    .command('remove')
    .description('stop tracking data: delete its pointer and .gitignore entry, keep the files')
    .argument('<targets...>', 'pointer files or tracked paths')
    .addHelpText('after', examples('tdv remove data.tdv', 'tdv remove data/images'))
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { remove } = await import('../../repo/remove.js');
      const res = await remove(repo, targets.map((t) => ctx.resolve(t)));
      for (const r of res.removed) out.info(`Removed ${q(r)}`);
      if (repo.git && res.removed.length) {
        const edited = res.gitignores.filter((g) => !g.deleted).map((g) => g.path);
        const deleted = res.gitignores.filter((g) => g.deleted).map((g) => g.path);
        const steps = [`git rm -q --cached --ignore-unmatch ${shs([...res.removed, ...deleted])}`];
        if (edited.length) steps.push(`git add ${shs(edited)}`);
        out.info(`\nTo record this in Git, run:\n  ${steps.join(' && ')}`);
      }
    });
}
