import { type CliContext, examples, type Program } from '../context.js';
import { q, shs } from '../render.js';

export function registerMv(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('mv')
    .description('move tracked data and its pointer (<src>.tdv -> <dst>.tdv), keeping the .gitignore lines right')
    .argument('<src>', 'tracked file or directory (or its pointer file)')
    .argument('<dst>', 'new path, or an existing directory to move it into')
    .option('--json', 'print one JSON object: from, to, pointerFrom, pointerTo, movedData, gitignores')
    .addHelpText(
      'after',
      '\nA stage output is renamed in tdv.yaml instead. Nothing is staged in Git: run the command printed.\n' +
        examples('tdv mv data/raw.csv data/2024.csv', 'tdv mv images archive/      # into an existing directory'),
    );
  ctx.action(cmd, async ({ repo, args: [src, dst], resolve, show }) => {
    const { move } = await import('../../repo/mv.js');
    show(await move(repo, resolve(src), resolve(dst)), (res, out) => {
      out.info(`Moved ${q(res.from)} -> ${q(res.to)}${res.movedData ? '' : ' (its data is not in the workspace: only the pointer moved)'}; pointer ${q(res.pointerFrom)} -> ${q(res.pointerTo)}`);
      if (!repo.git) return;
      const steps: string[] = [];
      const gone = [...(res.pointerWasTracked ? [res.pointerFrom] : []), ...res.gitignoresDeleted];
      if (gone.length) steps.push(`git rm -q --cached --ignore-unmatch ${shs(gone)}`);
      steps.push(`git add ${shs([res.pointerTo, ...res.gitignores])}`);
      out.info(`\nTo record this in Git, run:\n  ${steps.join(' && ')}`);
    });
  });
}
