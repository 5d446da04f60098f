import { type CliContext, examples, type Program } from '../context.js';
import { q, shs } from '../render.js';

export function registerInit(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('init')
    .description('make the current Git repository a tdv repository')
    .option('--no-scm', 'allow a directory that is not a Git work tree')
    .option('--subdir', 'allow a subdirectory of a Git work tree')
    .option('-f, --force', 're-create missing tdv files in an initialized repository (keeps configuration and cache)')
    .option('--json', 'print one JSON object: root, created')
    .addHelpText('after', examples('git init && tdv init', 'tdv init --no-scm'));
  ctx.action(cmd, { repo: false }, async ({ out, opts, show }) => {
    const { init } = await import('../../repo/init.js');
    const res = init(ctx.io.cwd, { noScm: !opts.scm, subdir: opts.subdir, force: opts.force });
    show(res, (res) => {
      out.info(`Initialized tdv repository in ${q(res.root)}`);
      if (opts.scm && res.created.length) out.info(`Commit it with:\n  git add ${shs(res.created)} && git commit -m "Initialize tdv"`);
    });
  });
}
