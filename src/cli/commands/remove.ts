import { type CliContext, examples, type Program } from '../context.js';
import { q, shs } from '../render.js';

export function registerRemove(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('remove')
    .description('stop tracking data: delete its pointer and .gitignore entry, keep the files; or remove a stage from tdv.yaml and tdv.lock, keeping its outputs')
    .argument('<targets...>', 'pointer files, tracked paths, or stage names')
    .option('--json', 'print one JSON object: removed, stages, pipelineFiles, gitignores')
    .addHelpText('after', examples('tdv remove data.tdv', 'tdv remove data/images', 'tdv remove train          # the stage "train" of tdv.yaml'));
  ctx.action(cmd, async ({ out, repo, args: [targets], resolve, show }) => {
    const { remove } = await import('../../repo/remove.js');
    const res = await remove(
      repo,
      targets.map((t) => ({ path: resolve(t), name: t })),
    );
    show(res, (res) => {
      for (const r of res.removed) out.info(`Removed ${q(r)}`);
      for (const s of res.stages) out.info(`Removed stage "${s}" (its outputs stay)`);
      if (repo.git && (res.removed.length || res.stages.length)) {
        const edited = [...res.pipelineFiles, ...res.gitignores].filter((g) => !g.deleted).map((g) => g.path);
        const deleted = [...res.pipelineFiles, ...res.gitignores].filter((g) => g.deleted).map((g) => g.path);
        const steps = [...res.removed, ...deleted].length ? [`git rm -q --cached --ignore-unmatch ${shs([...res.removed, ...deleted])}`] : [];
        if (edited.length) steps.push(`git add ${shs(edited)}`);
        if (steps.length) out.info(`\nTo record this in Git, run:\n  ${steps.join(' && ')}`);
      }
    });
  });
}
