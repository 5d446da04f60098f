import type { Command } from 'commander';
import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples } from '../context.js';

export function registerGc(program: Command, ctx: CliContext): void {
  program
    .command('gc')
    .description('delete cache objects that no pointer references')
    .option('-w, --workspace', 'keep only what the workspace pointers reference')
    .option('--dry', 'list what would be deleted, delete nothing')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--json', 'print one JSON object')
    .addHelpText('after', examples('tdv gc --workspace --dry', 'tdv gc --workspace -f'))
    .action(async (opts: { workspace?: boolean; dry?: boolean; force?: boolean }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { gc } = await import('../../repo/gc.js');
      if (repo.config.cache.dir) out.warn(`the cache ${repo.cacheDir} is shared: objects used only by other clones will be deleted too`);
      const res = await gc(repo, {
        workspace: opts.workspace,
        dry: opts.dry,
        confirm: async (plan) =>
          opts.force === true || ctx.confirm(`Delete ${plural(plan.unused.length, 'unused object')} (${formatBytes(plan.bytes)}) from ${repo.cacheDir}?`, '-f'),
      });
      if (out.json) {
        out.data({ removed: res.removed, objects: res.unused.length, bytes: res.bytes, kept: res.kept, unused: res.unused });
        return;
      }
      if (opts.dry) for (const u of res.unused) out.info(`${u.oid}  ${formatBytes(u.size)}`);
      const n = plural(res.unused.length, 'object');
      if (res.unused.length === 0) out.info(`Nothing to collect; ${plural(res.kept, 'object')} in use.`);
      else if (res.removed) out.info(`Removed ${n} (${formatBytes(res.bytes)}); kept ${res.kept}.`);
      else if (opts.dry) out.info(`Would remove ${n} (${formatBytes(res.bytes)}); kept ${res.kept}.`);
      else out.info('Cancelled; nothing was deleted.');
    });
}
