import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples, parseJobs, type Program } from '../context.js';
import { q, shs } from '../render.js';
import { progressFor } from '../transfer.js';

export function registerAdd(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('add')
    .description('track data files or directories: cache them and write <path>.tdv pointers for Git')
    .argument('<paths...>', 'files or directories to track')
    .option('-j, --jobs <n>', 'files hashed at once', parseJobs)
    .option('--json', 'print one JSON object: added (path, pointer, size, nfiles, changed) and gitFiles')
    .addHelpText('after', examples('tdv add data/raw.csv', 'tdv add data/images/ && git add data/images.tdv data/.gitignore'));
  ctx.action(cmd, async ({ out, repo, args: [paths], opts, resolve, show }) => {
    const { add } = await import('../../repo/add.js');
    const progress = await progressFor(out, 'add', 'files');
    const res = await add(repo, { paths: resolve(paths), jobs: opts.jobs, progress }).finally(() => progress?.finish());
    show(res, (res) => {
      for (const a of res.added) {
        const what = a.nfiles === undefined ? formatBytes(a.size) : `${plural(a.nfiles, 'file')}, ${formatBytes(a.size)}`;
        out.info(a.changed ? `Added ${q(a.path)} (${what}) -> ${q(a.pointer)}` : `${q(a.path)} is unchanged (${what})`);
      }
      if (res.added.some((a) => a.changed) && repo.git) out.info(`\nTo track the changes with Git, run:\n  git add ${shs(res.gitFiles)}`);
    });
  });
}
