import path from 'node:path';
import type { Command } from 'commander';
import { TdvError } from '../../errors.js';
import { type CliContext, examples } from '../context.js';
import { q, qs, sh } from '../render.js';

export function registerMergeDriver(program: Command, ctx: CliContext): void {
  program
    .command('merge-driver')
    .description('merge pointer files for Git: directories file by file (registered by tdv install; Git runs it)')
    .argument('<base>', "the common ancestor's version (Git's %O)")
    .argument('<ours>', 'our version, where the result is written (%A)')
    .argument('<theirs>', 'their version (%B)')
    .argument('[path]', "the pointer file's path in the repository (%P)")
    .addHelpText(
      'after',
      `\nExit 0 when merged; 1 on a conflict, naming the files changed differently on both sides.\n${examples('tdv install                 # registers it: git config merge.tdv.driver "tdv merge-driver %O %A %B %P"', 'tdv merge-driver .merge_file_base .merge_file_ours .merge_file_theirs data.tdv   # as Git runs it')}`,
    )
    .action(async (base: string, ours: string, theirs: string, file: string | undefined, _opts: unknown, cmd: Command) => {
      const out = await ctx.output(cmd);
      // Git runs drivers at the top of the work tree; the tdv repository may be below it (init --subdir).
      const { Repo } = await import('../../repo/repo.js');
      const repo = await Repo.open(file ? path.dirname(ctx.resolve(file)) : ctx.io.cwd, { warn: (m) => out.warn(m), debug: (m) => out.debug(m) });
      const { mergeDriver } = await import('../../repo/merge-driver.js');
      const rel = file === undefined ? undefined : repo.rel(ctx.resolve(file));
      const res = await mergeDriver(repo, { base: ctx.resolve(base), ours: ctx.resolve(ours), theirs: ctx.resolve(theirs), path: rel });
      if (!res.merged) {
        const list = res.conflicts.length <= 5 ? qs(res.conflicts) : `${qs(res.conflicts.slice(0, 5))} and ${res.conflicts.length - 5} more`;
        const at = q(res.path);
        throw new TdvError(
          'MERGE_CONFLICT',
          `${at}: changed differently on both sides: ${list}; keep one side with \`git checkout --ours ${sh(res.path)}\` or \`--theirs\`, or put the data you want in place and \`tdv add\` it, then \`git add ${sh(res.path)}\``,
          { data: { conflicts: res.conflicts } },
        );
      }
      for (const d of res.mergedDirs) out.info(`tdv: merged ${q(d)} file by file`);
    });
}
