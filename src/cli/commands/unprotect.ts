import { plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerUnprotect(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('unprotect')
    .description('turn linked (read-only) workspace files into editable copies')
    .argument('<targets...>', 'tracked files or directories')
    .addHelpText('after', examples('tdv unprotect data/model.bin', 'tdv unprotect data/'));
  ctx.action(cmd, async ({ out, repo, args: [targets], resolve }) => {
    const { unprotect } = await import('../../repo/unprotect.js');
    const res = await unprotect(repo, resolve(targets));
    out.info(`Unprotected ${plural(res.files, 'file')}.`);
  });
}
