import type { Command } from 'commander';
import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples, parsePositiveInt } from '../context.js';
import { q, qs, shs } from '../render.js';
import { progressFor } from '../transfer.js';

export function registerAdd(program: Command, ctx: CliContext): void {
  program
    .command('add')
    .description('track data files or directories: cache them and write <path>.tdv pointers for Git')
    .argument('<paths...>', 'files or directories to track')
    .option('-j, --jobs <n>', 'files hashed at once', parsePositiveInt('--jobs'))
    .addHelpText('after', examples('tdv add data/raw.csv', 'tdv add data/images/ && git add data/images.tdv data/.gitignore'))
    .action(async (paths: string[], opts: { jobs?: number }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { add } = await import('../../repo/add.js');
      const progress = await progressFor(out, 'add', 'files');
      const res = await add(repo, { paths: paths.map((p) => ctx.resolve(p)), jobs: opts.jobs, progress }).finally(() => progress?.finish());
      for (const a of res.added) {
        const what = a.nfiles === undefined ? formatBytes(a.size) : `${plural(a.nfiles, 'file')}, ${formatBytes(a.size)}`;
        out.info(a.changed ? `Added ${q(a.path)} (${what}) -> ${q(a.pointer)}` : `${q(a.path)} is unchanged (${what})`);
      }
      if (res.added.some((a) => a.changed) && repo.git) out.info(`\nTo track the changes with Git, run:\n  git add ${shs(res.gitFiles)}`);
    });
}
