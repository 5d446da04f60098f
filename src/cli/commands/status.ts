import type { ImportStatus } from '../../repo/lib/imports.js';
import type { RemoteStatusResult } from '../../repo/lib/remote-status.js';
import type { StatusResult } from '../../repo/status.js';
import { escapeLine, type Output } from '../../ui/output.js';
import { type CliContext, examples, parseJobs, type Program } from '../context.js';
import { blockerNote, q, sh } from '../render.js';
import { maskUrl } from '../../formats/config.js';

export function registerStatus(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('status')
    .description('show tracked data that changed in the workspace or is missing from the cache')
    .argument('[targets...]', 'pointer files, tracked paths or stage names (default: all)')
    .option('--with-deps', 'with stage targets (or outputs of a stage): also the stages upstream of them')
    .option('--json', 'print one JSON object (schema in README)')
    .option('--remote', 'compare the cache with a remote instead of the workspace')
    .option('-r, --remote-name <name>', 'the remote to compare with (implies --remote; default: core.remote)')
    .option('-j, --jobs <n>', 'parallel requests to the remote', parseJobs)
    .addHelpText('after', examples('tdv status', 'tdv status data/images --json', 'tdv status --remote -r s3store'));
  ctx.action(cmd, async ({ repo, args: [targets], opts, resolve, show }) => {
    if (opts.remote || opts.remoteName !== undefined) {
      const { remoteStatus } = await import('../../repo/lib/remote-status.js');
      const res = await remoteStatus(repo, { targets: resolve(targets), remote: opts.remoteName, jobs: opts.jobs, withDeps: opts.withDeps });
      show(res, renderRemote);
      return;
    }
    const { status } = await import('../../repo/status.js');
    const res = await status(repo, { targets: resolve(targets), withDeps: opts.withDeps });
    show(res, render);
  });
}

const LIST_MAX = 20;

function render(res: StatusResult, out: Output): void {
  const p = out.paint;
  for (const s of res.stages ?? []) out.info(`${(s.frozen ? p.dim : p.yellow)(`${s.name}:`)} ${escapeLine(s.reasons.join('; '))}`);
  // A source that could not be asked is a warning: status still succeeds.
  for (const i of res.imports ?? []) {
    if (i.state === 'unreachable') out.warn(`${q(i.pointer)}: cannot tell whether ${sourceOf(i)} moved: ${escapeLine(i.error ?? 'no answer')}`);
  }
  if (res.clean) {
    out.info('Data and pipelines are up to date.');
    return;
  }
  // An import whose source moved is listed under its pointer, with the pointer's other news.
  const moved = new Map((res.imports ?? []).filter((i) => i.state === 'moved').map((i) => [i.pointer, i]));
  const updateLine = (i: ImportStatus) =>
    out.info(`    ${p.yellow('update available:'.padEnd(19))}${q(i.path)} (${sourceOf(i)} is now ${i.latest!.slice(0, 12)}, was ${i.commit.slice(0, 12)}; run \`tdv update ${sh(i.pointer)}\`)`);
  for (const d of byPointer(res.data)) {
    if (d.first) out.info(`${q(d.pointer)}:`);
    const i = d.first ? moved.get(d.pointer) : undefined;
    if (i) {
      updateLine(i);
      moved.delete(d.pointer);
    }
    if (d.workspace !== 'unchanged') out.info(`    ${p.red(`${d.workspace}:`.padEnd(14))}${q(d.path)}`);
    if (d.blocker) out.info(`    ${' '.repeat(14)}(${blockerNote(d.blocker, d.path, d.pointer)})`);
    if (d.files) {
      for (const [kind, paths] of Object.entries(d.files) as [string, string[]][]) {
        for (const f of paths.slice(0, LIST_MAX)) out.info(`        ${p.yellow(`${kind}:`.padEnd(11))}${q(`${d.path}/${f}`)}`);
        if (paths.length > LIST_MAX) out.info(`        ... and ${paths.length - LIST_MAX} more ${kind}`);
      }
    }
    if (d.cache === 'missing') out.info(`    ${p.red('not in cache:'.padEnd(14))}${q(d.path)} (run \`tdv pull\` to fetch it)`);
  }
  for (const i of moved.values()) {
    out.info(`${q(i.pointer)}:`);
    updateLine(i);
  }
}

/** An import's source for messages: its revision (HEAD: the default branch) and URL. */
function sourceOf(i: ImportStatus): string {
  return `${i.rev ?? 'HEAD'} of ${maskUrl(i.url)}`;
}

function renderRemote(res: RemoteStatusResult, out: Output): void {
  if (res.clean) {
    out.info(`Cache and remote "${res.remote}" are in sync.`);
    return;
  }
  const p = out.paint;
  for (const d of byPointer(res.data)) {
    if (d.first) out.info(`${q(d.pointer)}:`);
    if (d.missingOnRemote > 0) out.info(`    ${p.red('not on remote:'.padEnd(16))}${q(d.path)} (${d.missingOnRemote} of ${d.objects} objects; \`tdv push\` uploads them)`);
    if (d.missingLocally > 0) out.info(`    ${p.yellow('not in cache:'.padEnd(16))}${q(d.path)} (${d.missingLocally} of ${d.objects} objects; \`tdv fetch\` downloads them)`);
    if (d.unknownFiles) out.info(`    ${p.red('unknown files:'.padEnd(16))}${q(d.path)} (${escapeLine(d.manifestError ?? 'its manifest is neither cached nor on the remote')})`);
  }
}

/**
 * The entries grouped by the file that records them, in the order each file
 * first appears, `first` on the first of each: the `tdv.lock:` header (or a
 * pointer's holding several outputs) is printed once, its outputs below it.
 */
function byPointer<T extends { pointer: string }>(entries: readonly T[]): (T & { first: boolean })[] {
  const groups = new Map<string, T[]>();
  for (const e of entries) {
    const g = groups.get(e.pointer);
    if (g) g.push(e);
    else groups.set(e.pointer, [e]);
  }
  return [...groups.values()].flatMap((g) => g.map((e, i) => ({ ...e, first: i === 0 })));
}
