import { UsageError } from '../../errors.js';
import type { GcOptions, GcPlan } from '../../repo/gc.js';
import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples, type FlagsOf, parseJobs, type Program } from '../context.js';
import { q } from '../render.js';
import { progressFor } from '../transfer.js';

export function registerGc(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('gc')
    .description('delete cache objects that no pointer references')
    .option('-w, --workspace', 'keep only what the workspace pointers reference')
    .option('--all-branches', "also keep the data of every local branch's tip")
    .option('--all-tags', 'also keep the data of every tag')
    .option('--all-commits', 'also keep the data of every commit reachable from a branch, tag, HEAD or stash')
    .option('-c, --cloud', 'also delete unreferenced objects from the remote')
    .option('--not-in-remote', 'keep a referenced object only if the remote lacks it: what the remote holds is deleted from the cache too (`tdv fetch` gets it back)')
    .option('-r, --remote <name>', 'with --cloud or --not-in-remote: the remote (default: core.remote)')
    .option('-j, --jobs <n>', 'with --cloud or --not-in-remote: parallel requests', parseJobs)
    .option('--dry', 'list what would be deleted, delete nothing')
    .option('-f, --force', 'do not ask for confirmation')
    .option('--shared-cache', 'collect a cache outside the repository (cache.dir, a .tdv/cache symlink) although other repositories may use it')
    .option('--shared-remote', 'with --cloud: collect a remote other repositories push to too (their repos/<id> markers are there), deleting their objects this repository does not use')
    .option('--json', 'print one JSON object')
    .addHelpText(
      'after',
      "\nThe workspace's data and what the Git index stages are always kept; the --all-* scopes add history and may be combined.\n" +
        "push marks a remote with this repository's id (repos/<id>); --cloud refuses a remote that names other repositories,\n" +
        'or holds objects but no marker of this one (pushed by an older tdv), unless --shared-remote is given.\n' +
        examples(
          'tdv gc --workspace --dry',
          'tdv gc --workspace --not-in-remote   # free the cache of data the remote keeps safe',
          'tdv gc --workspace -f',
          'tdv gc --all-tags --all-branches',
          'tdv gc --all-commits --cloud -r storage --dry',
        ),
    );
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if ((opts.remote !== undefined || opts.jobs !== undefined) && !opts.cloud && !opts.notInRemote) throw new UsageError('-r/--remote and -j/--jobs only apply with --cloud or --not-in-remote');
  };
  ctx.action(cmd, { check }, async ({ out, repo, opts }) => {
    const { gc } = await import('../../repo/gc.js');
    const progress = opts.dry ? undefined : await progressFor(out, 'gc', 'objects');
    // The flags are the porcelain's options, but --force, which answers its question.
    const { force, ...flags } = opts;
    const confirm = async (plan: GcPlan) => force === true || ctx.confirm(question(plan, repo.cacheDir), '-f');
    const res = await gc(repo, { ...(flags satisfies FlagsOf<GcOptions, typeof flags>), progress, confirm }).finally(() => progress?.finish());
    if (res.shared) out.warn(`the cache ${res.shared.dir} is outside this repository (${res.shared.via}): objects only other repositories use ${res.removed ? 'were' : 'would be'} deleted too`);
    if (res.sharedRemote) {
      const s = res.sharedRemote;
      const who = s.others.length > 0 ? `objects of other repositories (${s.others.map((o) => `repos/${o}`).join(', ')})` : 'objects but no marker of this repository';
      out.warn(`remote "${s.remote}" holds ${who}: objects only they use ${res.removed ? 'were' : 'would be'} deleted too`);
    }
    if (res.unknown.length > 0) {
      const u = res.unknown[0]!;
      out.warn(
        `${plural(res.unknown.length, 'directory version')} in the kept history ${res.unknown.length === 1 ? 'has' : 'have'} no manifest in the cache${res.cloud ? ' nor on the remote' : ''} (first: ${q(u.path)} ${/^[0-9a-f]{40,64}$/.test(u.commit) ? `at ${u.commit.slice(0, 12)}` : `in ${u.commit}`}), so only files other versions use are kept for ${res.unknown.length === 1 ? 'it' : 'them'}`,
      );
    }
    if (out.json) {
      out.data({
        removed: res.removed,
        objects: res.unused.length,
        bytes: res.bytes,
        kept: res.kept,
        unused: res.unused,
        unknown: res.unknown,
        ...(res.shared ? { sharedCache: res.shared } : {}),
        ...(res.inRemote ? { inRemote: res.inRemote } : {}),
        ...(res.sharedRemote ? { sharedRemote: res.sharedRemote } : {}),
        ...(res.cloud
          ? {
              cloud: {
                remote: res.cloud.remote,
                objects: res.cloud.unused.length,
                kept: res.cloud.kept,
                unused: res.cloud.unused,
                ...(res.cloud.packs
                  ? { packs: res.cloud.packs, ...(res.cloud.indexes ? { indexes: res.cloud.indexes } : {}), bytesReclaimed: res.cloud.bytesReclaimed, unnamed: res.cloud.unnamed }
                  : {}),
              },
            }
          : {}),
      });
      return;
    }
    if (opts.dry) {
      for (const u of res.unused) out.info(`${u.oid}  ${formatBytes(u.size)}`);
      for (const oid of res.cloud?.unused ?? []) out.info(`${oid}  (remote "${res.cloud!.remote}")`);
    }
    if (res.inRemote)
      out.info(
        `${plural(res.inRemote.objects, 'referenced object')} ${res.inRemote.objects === 1 ? 'is' : 'are'} on remote "${res.inRemote.remote}", so ${res.inRemote.objects === 1 ? 'it is' : 'they are'} not kept in the cache (\`tdv fetch\` gets ${res.inRemote.objects === 1 ? 'it' : 'them'} back).`,
      );
    const n = plural(res.unused.length, 'object');
    const c = res.cloud;
    if (res.unused.length === 0 && (c?.unused.length ?? 0) === 0) {
      const stray = c?.unnamed?.deleted ? ` Deleted ${plural(c.unnamed.deleted, 'pack')} no index named (left by an interrupted upload).` : '';
      out.info(`Nothing to collect; ${plural(res.kept, 'object')} in use${c ? `, ${c.kept} on remote "${c.remote}"` : ''}.${stray}`);
    } else if (res.removed) {
      const p = c?.packs;
      const packs = p
        ? ` Packs: ${p.deleted} deleted, ${p.rewritten} rewritten into ${p.created}, ${p.kept} kept; ${formatBytes(c.bytesReclaimed ?? 0)} reclaimed${c.unnamed?.waiting ? `; ${plural(c.unnamed.waiting, 'pack')} no index names left for a later gc (an upload may be running)` : ''}.`
        : '';
      out.info(`Removed ${n} (${formatBytes(res.bytes)}); kept ${res.kept}.${c ? ` Remote "${c.remote}": removed ${c.unused.length}, kept ${c.kept}.${packs}` : ''}`);
    } else if (opts.dry) {
      const p = c?.packs;
      const packs = p ? ` Packs: would delete ${p.deleted}, rewrite ${p.rewritten}, keep ${p.kept}; about ${formatBytes(c.bytesReclaimed ?? 0)} reclaimed.` : '';
      out.info(`Would remove ${n} (${formatBytes(res.bytes)}); kept ${res.kept}.${c ? ` Remote "${c.remote}": would remove ${c.unused.length}, keep ${c.kept}.${packs}` : ''}`);
    } else out.info('Cancelled; nothing was deleted.');
  });
}

function question(plan: GcPlan, cacheDir: string): string {
  const local = `${plural(plan.unused.length, 'unused object')} (${formatBytes(plan.bytes)}) from ${q(cacheDir)}`;
  return plan.cloud ? `Delete ${local} and ${plural(plan.cloud.unused.length, 'unused object')} from remote "${plan.cloud.remote}"?` : `Delete ${local}?`;
}
