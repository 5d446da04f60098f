import type { Command } from 'commander';
import { plural } from '../../ui/output.js';
import { type CliContext, examples } from '../context.js';

export function registerUnprotect(program: Command, ctx: CliContext): void {
  program
    .command('unprotect')
    .description('turn linked (read-only) workspace files into editable copies')
    .argument('<targets...>', 'tracked files or directories')
    .addHelpText('after', examples('tdv unprotect data/model.bin', 'tdv unprotect data/'))
    .action(async (targets: string[], _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { unprotect } = await import('../../repo/unprotect.js');
      const res = await unprotect(
        repo,
        targets.map((t) => ctx.resolve(t)),
      );
      out.info(`Unprotected ${plural(res.files, 'file')}.`);
    });
}
