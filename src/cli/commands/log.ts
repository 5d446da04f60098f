import { shortOid } from '../../formats/oid.js';
import type { LogChange, LogResult, VersionInfo } from '../../repo/log.js';
import { escapeLine, formatBytes, type Output, plural } from '../../ui/output.js';
import { q } from '../render.js';
import { type CliContext, examples, parsePositiveInt, type Program } from '../context.js';

export function registerLog(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('log')
    .description('list the versions of tracked data along the current branch: the commits where it changed')
    .argument('[path]', 'a tracked path, a file inside a tracked directory, its pointer file, or a directory holding pointers (default: everything tracked)')
    .option('-n, --max-count <n>', 'show at most this many commits', parsePositiveInt('-n'))
    .option('--json', 'print one JSON object (schema in README)')
    .addHelpText(
      'after',
      '\nFollows the first parent of merges, like `git log --first-parent`: a merge shows what it brought in as one change.\n' +
        examples('tdv log data', 'tdv log data/weather.csv', 'tdv log -n 5', 'tdv log models/model.pkl --json'),
    );
  ctx.action(cmd, async ({ repo, args: [target], opts, resolve, show }) => {
    const { log } = await import('../../repo/log.js');
    const res = await log(repo, { target: target === undefined ? undefined : resolve(target), max: opts.maxCount });
    show(res, (r, out) => render(r, out, target));
  });
}

function describe(v: VersionInfo): string {
  return [shortOid(v.hash), formatBytes(v.size), ...(v.nfiles === undefined ? [] : [plural(v.nfiles, 'file')])].join('  ');
}

function line(c: LogChange): string {
  const files = c.files && c.change === 'modified' ? `  (+${c.files.added} ~${c.files.modified} -${c.files.deleted} files)` : '';
  if (c.change === 'deleted') return `D  ${q(c.path)}  (was ${describe(c.previous!)})`;
  return `${c.change === 'added' ? 'A' : 'M'}  ${q(c.path)}  ${describe(c.version!)}${files}`;
}

function render(res: LogResult, out: Output, target: string | undefined): void {
  const p = out.paint;
  // One write: a long history is thousands of lines.
  const lines: string[] = [];
  for (const c of res.commits) {
    // Author names and subjects come from commits anyone may have written: one line each, whatever they hold.
    lines.push(`${p.yellow(c.commit.slice(0, 12))}  ${c.date.slice(0, 16).replace('T', ' ')}  ${escapeLine(c.author.name)}  ${escapeLine(c.subject)}`);
    for (const ch of c.changes) lines.push(`    ${line(ch)}`);
  }
  if (lines.length > 0) out.info(lines.join('\n'));
  if (res.commits.length === 0) out.info(`No versions of ${target === undefined ? 'tracked data' : q(target)} on ${res.branch === null ? 'this detached HEAD' : q(res.branch)}.`);
  if (res.shallow) out.warn('the history stops at the boundary of this shallow clone; `git fetch --unshallow` brings the older versions');
}
