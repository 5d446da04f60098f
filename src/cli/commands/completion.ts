import { UsageError } from '../../errors.js';
import { completionScript, type Shell, SHELLS } from '../completion.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerCompletion(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('completion')
    .description("print a shell completion script (bash, zsh or fish) for tdv's commands and options")
    .argument('<shell>', SHELLS.join(', '))
    .addHelpText(
      'after',
      examples(
        'source <(tdv completion bash)             # in ~/.bashrc',
        'source <(tdv completion zsh)              # in ~/.zshrc, after compinit',
        'tdv completion fish > ~/.config/fish/completions/tdv.fish',
      ),
    );
  ctx.action(cmd, { repo: false }, ({ args: [shell] }) => {
    if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`no completion for shell "${shell}"; choose ${SHELLS.join(', ')}`);
    ctx.io.stdout.write(completionScript(program, shell as Shell));
  });
}
