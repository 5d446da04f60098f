import path from 'node:path';
import type { Action } from '../../repo/install.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';

const WHAT: Record<string, string> = {
  'post-checkout': 'tdv checkout after git checkout of a branch',
  'post-merge': 'tdv checkout after git merge and git pull',
  'pre-push': 'tdv push before git push',
};

export function registerInstall(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('install')
    .description('install Git hooks (checkout after git checkout and merge, push before git push) and the pointer merge driver')
    .option('--uninstall', 'remove what tdv install added, and nothing else')
    .addHelpText(
      'after',
      '\nExisting hooks are kept: tdv adds a marked block to a shell hook, and --uninstall removes only that block.\n' +
        'The merge driver is registered in .gitattributes (`*.tdv merge=tdv`, commit it) and in .git/config (`merge.tdv.driver`).\n' +
        examples('tdv install', 'tdv install --uninstall'),
    );
  ctx.action(cmd, async ({ out, repo, opts }) => {
    const { install } = await import('../../repo/install.js');
    const res = await install(repo, { uninstall: opts.uninstall });
    const rel = (p: string) => path.relative(ctx.io.cwd, p) || '.';
    const verb: Record<Action, string> = { installed: 'added', updated: 'updated', unchanged: 'already there', removed: 'removed', absent: 'not there' };
    for (const h of res.hooks) {
      const chained = h.chained && h.action !== 'absent' ? " (kept the hook's own commands)" : '';
      out.info(`${q(rel(path.join(res.hooksDir, h.name)))}: ${verb[h.action]}${opts.uninstall ? '' : ` — ${WHAT[h.name]}`}${chained}`);
    }
    out.info(`.gitattributes *.tdv merge=tdv: ${verb[res.attributes]}`);
    out.info(`git config merge.tdv.driver: ${verb[res.driver]}`);
    if (!opts.uninstall && res.attributes === 'installed') out.info('Commit .gitattributes so that every clone merges pointer files with tdv (each clone runs `tdv install` once).');
  });
}
