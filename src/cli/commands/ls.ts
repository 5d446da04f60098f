import { TdvError } from '../../errors.js';
import type { LsResult } from '../../repo/ls.js';
import type { Repo } from '../../repo/repo.js';
import { formatBytes, type Output } from '../../ui/output.js';
import { q } from '../render.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerLs(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('ls')
    .description('list the files (data and Git) of a revision of this repository or of another one, without reading any data')
    .argument('[url]', 'another repository (a path, file://, ssh:// or https:// URL; `.` is this one), or a path of this repository')
    .argument('[path]', 'the path to list in that repository (default: its root)')
    .option('--rev <rev>', 'the revision: a branch, tag, commit or date (@2016-07-31); default: HEAD (another repository: its default branch)')
    .option('-R, --recursive', 'list every file below, tracked directories expanded')
    .option('-l, --long', 'show sizes')
    .option('-r, --remote <name>', "the remote a tracked directory's manifest comes from when it is not cached")
    .option('--json', 'print a JSON list of entries (schema in README)')
    .addHelpText(
      'after',
      '\nOne argument inside this repository is a path of it (relative to where tdv runs); anything else is a repository URL.\n' +
        'Lines start with "data" for what tdv tracks and "git" for Git files; directories end in "/".\n' +
        examples('tdv ls', 'tdv ls data --rev v1', 'tdv ls -R --rev @2016-07-31 data', 'tdv ls https://github.com/org/registry datasets', 'tdv ls ../registry images --json'),
    );
  ctx.action(cmd, { repo: false }, async ({ out, args: [a, b], opts, show }) => {
    const { ls, lsTarget } = await import('../../repo/ls.js');
    let repo: Repo | undefined;
    try {
      repo = await ctx.openRepo(out);
    } catch (err) {
      // Outside any repository `tdv ls URL` still works; `tdv ls` alone then says what is missing.
      if (!(err instanceof TdvError && err.code === 'NOT_A_REPO')) throw err;
    }
    const target = lsTarget([a, b], ctx.io.cwd, repo?.root);
    const res = await ls(repo, { ...target, rev: opts.rev, recursive: opts.recursive, long: opts.long, remote: opts.remote });
    if (out.json) out.data(res.entries);
    else show(res, (r, o) => render(r, o, opts.long === true));
  });
}

function render(res: LsResult, out: Output, long: boolean): void {
  const lines = res.entries.map((e) => {
    const name = `${q(e.path)}${e.kind === 'dir' ? '/' : ''}`;
    const size = long ? `${(e.size === undefined ? '-' : formatBytes(e.size)).padStart(10)}  ` : '';
    return `${e.source === 'data' ? 'data' : 'git '}  ${size}${name}`;
  });
  // One write: a recursive listing may be many thousands of lines.
  if (lines.length > 0) out.info(lines.join('\n'));
}
