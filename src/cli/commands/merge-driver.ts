import path from 'node:path';
import { TdvError } from '../../errors.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q, qs, sh } from '../render.js';

export function registerMergeDriver(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('merge-driver')
    .description('merge pointer files for Git: directories file by file (registered by tdv install; Git runs it)')
    .argument('<base>', "the common ancestor's version (Git's %O)")
    .argument('<ours>', 'our version, where the result is written (%A)')
    .argument('<theirs>', 'their version (%B)')
    .argument('[path]', "the pointer file's path in the repository (%P)")
    .addHelpText(
      'after',
      `\nExit 0 when merged; 1 on a conflict, naming the files changed differently on both sides.\n${examples('tdv install                 # registers it: git config merge.tdv.driver "tdv merge-driver %O %A %B %P"', 'tdv merge-driver .merge_file_base .merge_file_ours .merge_file_theirs data.tdv   # as Git runs it')}`,
    );
  // Git runs drivers at the top of the work tree; the tdv repository may be below it (init --subdir).
  ctx.action(cmd, { at: ([, , , file]) => (file ? path.dirname(file) : undefined) }, async ({ out, repo, args: [base, ours, theirs, file], resolve }) => {
    const { mergeDriver } = await import('../../repo/merge-driver.js');
    const rel = file === undefined ? undefined : repo.rel(resolve(file));
    const res = await mergeDriver(repo, { base: resolve(base), ours: resolve(ours), theirs: resolve(theirs), path: rel });
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
