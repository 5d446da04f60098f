import { MissingObjectsError } from '../errors.js';
import { isDirOid } from '../formats/oid.js';
import type { KeptData, NotRestored } from '../repo/checkout.js';
import { type Output, plural } from '../ui/output.js';
import { q, qs, sh } from './render.js';

const LIST_MAX = 20;

/**
 * Lists the recorded data a checkout could not restore, its objects missing
 * from the cache (stdout, at most LIST_MAX lines; `--json` has them all).
 */
export function renderNotRestored(out: Output, missing: readonly NotRestored[]): void {
  if (missing.length === 0) return;
  out.info(`Not restored, not in the cache (${countOf(missing)}):`);
  for (const m of missing.slice(0, LIST_MAX)) {
    const what = isDirOid(m.oid) ? `${q(m.path)}/ (its list of files, ${m.oid.slice(0, 12)})` : q(m.path);
    const by = m.stage === undefined ? q(m.pointer) : `output of stage "${m.stage}"`;
    out.info(`    ${what}  [${by}]`);
  }
  if (missing.length > LIST_MAX) out.info(`    ... and ${missing.length - LIST_MAX} more (--json lists them all)`);
}

/** "2 files and 1 directory": a directory counts once when its manifest, the list of its files, is what is missing. */
function countOf(missing: readonly NotRestored[]): string {
  const dirs = missing.filter((m) => isDirOid(m.oid)).length;
  const files = missing.length - dirs;
  return [files ? plural(files, 'file') : '', dirs ? `${dirs} ${dirs === 1 ? 'directory' : 'directories'}` : ''].filter(Boolean).join(' and ');
}

/**
 * What to do about data that was not restored: `fetchWith`, the command (or
 * commands, said as alternatives) that fetches it (none when the command just tried to), and, for stage outputs of
 * the workspace's tdv.lock, the `tdv repro` that rebuilds them. '' when there
 * is nothing to suggest.
 */
export function notRestoredFix(missing: readonly NotRestored[], fetchWith?: string | readonly string[]): string {
  const commands = fetchWith === undefined ? [] : typeof fetchWith === 'string' ? [fetchWith] : fetchWith;
  const fetch = commands.length === 0 ? undefined : commands.map((c) => `\`${c}\``).join(' or ');
  const stages = [...new Set(missing.flatMap((m) => (m.stage === undefined ? [] : [m.stage])))].sort();
  const repro = stages.length > 0 ? `\`tdv repro ${stages.join(' ')}\`` : undefined;
  const outputsOf = `the outputs of ${stages.length === 1 ? 'stage' : 'stages'} ${stages.map((s) => `"${s}"`).join(', ')}`;
  if (fetch !== undefined && repro !== undefined) {
    return missing.every((m) => m.stage !== undefined) ? `run ${fetch} to fetch them if they were pushed, or ${repro} to rebuild them` : `run ${fetch} to fetch them (${repro} rebuilds ${outputsOf})`;
  }
  if (fetch !== undefined) return `run ${fetch} to fetch them`;
  return repro === undefined ? '' : `${repro} rebuilds ${outputsOf}`;
}

/** The error of a checkout that restored everything but `missing` (exit 1); with `dry`, that would. */
export function notRestoredError(missing: readonly NotRestored[], opts: { fetch?: string | readonly string[]; dry?: boolean } = {}): MissingObjectsError {
  const paths = missing.map((m) => (isDirOid(m.oid) ? `${m.path}/` : m.path));
  const shown = paths.length <= 5 ? qs(paths) : `${qs(paths.slice(0, 5))} and ${paths.length - 5} more`;
  const fix = notRestoredFix(missing, opts.fetch);
  const rest = opts.dry ? 'the rest can be restored' : 'everything else was restored';
  return new MissingObjectsError(`${countOf(missing)} not ${opts.dry ? 'restorable' : 'restored'}, not in the cache: ${shown}; ${rest}${fix ? `; ${fix}` : ''}`, paths);
}

/**
 * What a checkout did beside the objects it lacked, said before a retry hint:
 * "everything else was checked out; ", "nothing was checked out; " (all of it
 * was missing), or nothing when nothing was missing.
 */
export function checkedOutNote(res: { restored: readonly string[]; deleted: readonly string[]; missing: readonly NotRestored[] }): string {
  if (res.missing.length === 0) return '';
  return res.restored.length + res.deleted.length > 0 ? 'everything else was checked out; ' : 'nothing was checked out; ';
}

/**
 * Data tdv placed that no pointer tracks now (a branch switch took its
 * pointer away) and that checkout kept: one line each, saying why it stayed.
 */
export function renderKept(out: Output, kept: readonly KeptData[]): void {
  for (const k of kept.slice(0, LIST_MAX)) {
    const why =
      k.why === 'changed'
        ? `no pointer tracks it now, and it changed since tdv placed it; delete it yourself, or \`tdv add ${sh(k.path)}\` to track this version`
        : k.why === 'uncached'
          ? 'no pointer tracks it now, and the cache lacks its data, so deleting it would lose it'
          : `${q(k.by)} was deleted, but Git still tracks it: \`tdv remove\` stops tracking data, \`git checkout -- ${sh(k.by)}\` brings the pointer back`;
    out.info(`kept: ${q(k.path)} (${why})`);
  }
  if (kept.length > LIST_MAX) out.info(`... and ${kept.length - LIST_MAX} more kept (--json lists them all)`);
}
