import { TdvError } from '../../errors.js';
import type { FsckResult } from '../../repo/fsck.js';
import { escapeLine, formatBytes, type Output, plural } from '../../ui/output.js';
import { q } from '../render.js';
import { type CliContext, examples, parseJobs, type Program } from '../context.js';
import { progressFor } from '../transfer.js';

const LIST_MAX = 20;

export function registerFsck(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('fsck')
    .description('verify the cache: re-hash every object, quarantine corrupt ones, report referenced objects that are missing')
    .option('--remote [name]', 'also check that a remote (default: core.remote) holds every referenced object, with the right size')
    .option('-j, --jobs <n>', 'parallel requests to the remote', parseJobs)
    .option('--json', 'print one JSON object (schema in README)')
    .addHelpText('after', examples('tdv fsck', 'tdv fsck --remote', 'tdv fsck --remote s3store --json'));
  ctx.action(cmd, async ({ out, repo, opts, show }) => {
    const { fsck } = await import('../../repo/fsck.js');
    const progress = await progressFor(out, 'fsck', 'objects');
    const res = await fsck(repo, {
      remote: opts.remote !== undefined,
      remoteName: typeof opts.remote === 'string' ? opts.remote : undefined,
      jobs: opts.jobs,
      progress,
    }).finally(() => progress?.finish());
    show(res, render);
    if (!res.clean) throw new TdvError('FSCK_FAILED', `fsck found problems: ${problems(res)}${fixes(res)}`);
  });
}

function render(res: FsckResult, out: Output): void {
  const list = <T>(items: T[], line: (t: T) => string, warn = false) => {
    for (const t of items.slice(0, LIST_MAX)) warn ? out.warn(line(t)) : out.info(line(t));
    if (items.length > LIST_MAX) out.info(`  ... and ${items.length - LIST_MAX} more (see --json for all)`);
  };
  out.info(`Checked ${plural(res.objects, 'cache object')} (${formatBytes(res.bytes)}); ${plural(res.referenced, 'object')} referenced by pointers and tdv.lock.`);
  list(res.corrupt, (c) => `corrupt: ${c.oid}: ${escapeLine(c.reason)}; moved to ${q(c.quarantined)}`);
  list(res.missing, (m) => `missing from the cache: ${q(m.path)} (object ${m.oid.slice(0, 12)}, ${q(m.pointer)})`);
  list(res.errors, (e) => e, true);
  if (res.remote) {
    const r = res.remote;
    out.info(`Remote "${r.remote}" (${escapeLine(r.url)}): checked ${plural(r.checked, 'object')}.`);
    list(r.missing, (m) => `missing from remote "${r.remote}": ${q(m.path)} (object ${m.oid.slice(0, 12)}, ${q(m.pointer)})`);
    list(r.wrongSize, (m) => `wrong size on remote "${r.remote}": ${q(m.path)} (object ${m.oid.slice(0, 12)}): ${m.actual} bytes, expected ${m.expected}`);
  }
  if (res.clean) out.info('No problems found.');
}

function problems(res: FsckResult): string {
  const parts: string[] = [];
  if (res.corrupt.length) parts.push(`${plural(res.corrupt.length, 'corrupt object')} moved to .tdv/tmp/quarantine/`);
  if (res.missing.length) parts.push(`${plural(res.missing.length, 'referenced object')} missing from the cache`);
  if (res.remote?.missing.length) parts.push(`${res.remote.missing.length} missing from remote "${res.remote.remote}"`);
  if (res.remote?.wrongSize.length) parts.push(`${res.remote.wrongSize.length} with the wrong size on remote "${res.remote.remote}"`);
  if (res.errors.length) parts.push(`${plural(res.errors.length, 'file')} that could not be checked`);
  return parts.join(', ');
}

function fixes(res: FsckResult): string {
  const f: string[] = [];
  if (res.corrupt.length || res.missing.length) f.push('`tdv pull` fetches missing objects again (or `tdv add` the data where it exists)');
  if (res.remote?.missing.length) f.push(`\`tdv push -r ${res.remote.remote}\` from a clone that has the data uploads what the remote lacks`);
  if (res.remote?.wrongSize.length) f.push('delete the objects of the wrong size on the remote, then push them again');
  return f.length ? `; ${f.join('; ')}` : '';
}
