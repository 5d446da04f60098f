import fs from 'node:fs';
import type { CommandUnknownOpts } from '@commander-js/extra-typings';
import { shortOid } from '../../formats/oid.js';
import type { DiffEntry, DiffResult, FileVersion } from '../../repo/diff.js';
import { formatBytes, type Output, plural } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';
import { shellWord } from '../../formats/paths.js';

export function registerDiff(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('diff')
    .description('list data files added, modified and deleted between two revisions, or a revision and the workspace')
    .argument('[args...]', 'up to two revisions A and B (default: HEAD and the workspace), then targets; put -- before targets that could be read as revisions')
    .option('--json', 'print one JSON object (schema in README)')
    .addHelpText(
      'after',
      examples(
        'tdv diff                       # HEAD against the workspace',
        'tdv diff v1 v2                 # two revisions, nothing checked out',
        'tdv diff HEAD~1 data/trips',
        'tdv diff main -- data           # -- when a name could be a revision too',
        'tdv diff v1 v2 --json',
      ),
    );
  ctx.action(cmd, async ({ repo, args: [args], resolve, show }) => {
    const { diff, splitDiffArgs } = await import('../../repo/diff.js');
    const split = splitDiffArgs(repo, args, separatorIndex(cmd, args), (a) => fs.existsSync(resolve(a)));
    const res = await diff(repo, { a: split.a, b: split.b, targets: resolve(split.targets) });
    show(res, render);
  });
}

/** How many of the command's arguments came before a `--`, if one was given (commander drops it). */
function separatorIndex(cmd: CommandUnknownOpts, args: readonly string[]): number | undefined {
  const raw = (cmd.parent as (CommandUnknownOpts & { rawArgs?: string[] }) | null)?.rawArgs ?? [];
  const at = raw.indexOf('--');
  if (at === -1) return undefined;
  return args.length - (raw.length - at - 1);
}

function version(v: FileVersion | undefined): string {
  if (v?.blocker) {
    const b = v.blocker;
    const where = b.kind === 'symlink' ? `a symlink to ${q(b.target ?? '?')}${b.dangling ? ', which does not exist' : ''}` : 'not a regular file or directory';
    return `${where}; \`tdv checkout --force ${shellWord(b.path)}\` puts the data back`;
  }
  return v ? `${formatBytes(v.size)}, ${shortOid(v.hash)}${v.isexec ? ', executable' : ''}` : '';
}

function line(c: DiffEntry): string {
  if (c.status === 'added') return `(${version(c.new)})`;
  if (c.status === 'deleted') return `(${version(c.old)})`;
  return `(${version(c.old)} -> ${version(c.new)})`;
}

function render(res: DiffResult, out: Output): void {
  const p = out.paint;
  const colour = { added: p.green, modified: p.yellow, deleted: p.red };
  for (const c of res.changes) out.info(`${colour[c.status](`${c.status}:`.padEnd(10))} ${q(c.path)}  ${p.dim(line(c))}`);
  const a = res.a.rev === undefined ? 'the workspace' : q(res.a.rev);
  const b = res.b.rev === undefined ? 'the workspace' : q(res.b.rev);
  const s = res.summary;
  if (res.changes.length === 0) out.info(`No data changed between ${a} and ${b}.`);
  else out.info(`${plural(res.changes.length, 'file')} changed between ${a} and ${b}: ${s.added} added, ${s.modified} modified, ${s.deleted} deleted.`);
}
