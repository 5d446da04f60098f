import { type Command, Option, type OptionValues } from '@commander-js/extra-typings';
import type { MetricsHistory, ValueChange, Values } from '../../repo/metrics.js';
import { escapeLine, type Output } from '../../ui/output.js';
import { q } from '../render.js';
import { formatTable } from '../table.js';
import { collect } from '../transfer.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerMetrics(program: Program, ctx: CliContext): void {
  const metrics = program.command('metrics').description('show and compare the metrics files of the pipeline (JSON, YAML or TOML)');
  const metricsShow = metrics
    .command('show')
    .description('print the metrics files declared in tdv.yaml, in the workspace or at revisions')
    .option('--json', 'print JSON: {file: {key: value}}, or with --rev/--all-commits {commits: [...], problems: [...]}')
    .addOption(new Option('--md', 'print Markdown tables').conflicts('json'))
    .option('--rev <rev>', 'the metrics at this revision (repeatable): one row per revision', collect)
    .option('--all-commits', 'the metrics at every commit that has them (reachable from a branch, tag or HEAD), newest first')
    .addHelpText('after', examples('tdv metrics show', 'tdv metrics show --json', 'tdv metrics show --rev v1 --rev v2', 'tdv metrics show --all-commits --md'));
  ctx.action(metricsShow, async ({ out, repo, opts, show }) => {
    const m = await import('../../repo/metrics.js');
    if (opts.rev?.length || opts.allCommits) {
      const history = await m.metricsHistory(repo, { revs: opts.rev, allCommits: opts.allCommits });
      show(history, (h) => lines(out, historyLines(h, !!opts.md)));
      // Messages name files as `label:path` already; others get the commit in front.
      for (const p of history.problems) out.warn(p.message.replace(/^"/, '').startsWith(`${p.label}:`) ? p.message : `${p.label}: ${p.message}`);
      return;
    }
    const values = await m.metricsShow(repo);
    show(values, (v) => lines(out, Object.keys(v).length ? valuesLines(v, !!opts.md) : ['No metrics: no stage of tdv.yaml declares metrics files, or none exists yet.']));
  });
  const metricsDiff = diffOptions(
    metrics
      .command('diff')
      .description('compare metrics between two revisions (default: HEAD and the workspace)')
      .argument('[a]', 'a revision (default HEAD)')
      .argument('[b]', 'a revision (default: the workspace)'),
  ).addHelpText('after', examples('tdv metrics diff', 'tdv metrics diff v1 v2 --json', 'tdv metrics diff main --md --all'));
  ctx.action(metricsDiff, async ({ repo, args: [a, b], opts, show }) => {
    const { metricsDiff } = await import('../../repo/metrics.js');
    show(await metricsDiff(repo, a, b, { all: opts.all }), renderDiff('metrics', a ?? 'HEAD', b ?? 'workspace', opts.md));
  });
  const params = program.command('params').description('show and compare the parameters the pipeline uses');
  const paramsShow = params
    .command('show')
    .description('print the current value of every parameter a stage of tdv.yaml uses, from its params file')
    .option('--json', 'print one JSON object: {file: {key: value}}')
    .addOption(new Option('--md', 'print a Markdown table').conflicts('json'))
    .addHelpText('after', examples('tdv params show', 'tdv params show --json'));
  ctx.action(paramsShow, async ({ out, repo, opts, show }) => {
    const { paramsShow } = await import('../../repo/metrics.js');
    show(await paramsShow(repo), (v) => lines(out, Object.keys(v).length ? valuesLines(v, !!opts.md) : ['No params: no stage of tdv.yaml uses params.']));
  });
  const paramsDiff = diffOptions(
    params
      .command('diff')
      .description('compare the params stages use between two revisions (default: HEAD, as tdv.lock recorded, and the workspace)')
      .argument('[a]', 'a revision (default HEAD)')
      .argument('[b]', 'a revision (default: the workspace)'),
  ).addHelpText('after', examples('tdv params diff', 'tdv params diff v1 v2', 'tdv params diff --all --md'));
  ctx.action(paramsDiff, async ({ repo, args: [a, b], opts, show }) => {
    const { paramsDiff } = await import('../../repo/metrics.js');
    show(await paramsDiff(repo, a, b, { all: opts.all }), renderDiff('params', a ?? 'HEAD', b ?? 'workspace', opts.md));
  });
}

/** The options of `metrics diff` and `params diff`. */
function diffOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>) {
  return cmd
    .option('--json', 'print a JSON array of {file, key, old, new, change} (and unchanged: true with --all)')
    .option('--all', 'also list the values that did not change')
    .addOption(new Option('--md', 'print a Markdown table').conflicts('json'));
}

/**
 * A value in a table cell: strings as they are, others as JSON, absent as
 * `-`. Keys and values come from files a pipeline wrote: always one line.
 */
export const cell = (v: unknown): string => (v === undefined ? '-' : typeof v === 'string' ? escapeLine(v) : JSON.stringify(v));

/**
 * The values of several files: per file a `file:` line and indented
 * `key: value` lines, or with `md` one Markdown table (path, key, value).
 */
export function valuesLines(values: Values, md: boolean): string[] {
  const files = Object.keys(values);
  if (md) return formatTable([['path', 'key', 'value'], ...files.flatMap((f) => Object.entries(values[f]!).map(([k, v]) => [q(f), escapeLine(k), cell(v)]))], true);
  return files.flatMap((f) => [`${q(f)}:`, ...Object.entries(values[f]!).map(([k, v]) => `    ${escapeLine(k)}: ${cell(v)}`)]);
}

/**
 * Metrics at several commits: per metrics file a table with one row per
 * commit (short id, one column per key, subject), so a metric's history
 * reads down a column.
 */
export function historyLines(h: MetricsHistory, md: boolean): string[] {
  const files = [...new Set(h.commits.flatMap((c) => Object.keys(c.metrics)))].sort();
  if (!files.length) return [h.commits.length ? `No metrics at ${h.commits.map((c) => c.label).join(', ')}.` : 'No commit has metrics.'];
  const lines: string[] = [];
  for (const f of files) {
    const keys = [...new Set(h.commits.flatMap((c) => Object.keys(c.metrics[f] ?? {})))];
    const rows = h.commits.map((c) => {
      const m = c.metrics[f];
      const id = c.commit.slice(0, 7);
      return [c.label === id || c.label === c.commit ? id : `${id} (${escapeLine(c.label)})`, ...keys.map((k) => (m && Object.hasOwn(m, k) ? cell(m[k]) : '-')), escapeLine(c.subject)];
    });
    if (lines.length) lines.push('');
    lines.push(`${q(f)}:`);
    if (md) lines.push('');
    lines.push(...formatTable([['commit', ...keys.map(escapeLine), 'subject'], ...rows], md));
  }
  return lines;
}

/** The rows of a diff table: header, then one row per changed (or, with --all, listed) key. */
export function diffRows(changes: readonly ValueChange[], a: string, b: string): string[][] {
  return [
    ['path:key', q(a), q(b), 'change'],
    ...changes.map((c) => [`${q(c.file)}:${escapeLine(c.key)}`, cell(c.old), cell(c.new), c.change === undefined ? '' : `${c.change > 0 ? '+' : ''}${c.change}`]),
  ];
}

/** Prints lines of human output. */
function lines(out: Output, text: readonly string[]): void {
  for (const line of text) out.info(line);
}

/** Renders the changes of `what` (metrics, params) between a and b: a table, or Markdown with `md`. */
function renderDiff(what: string, a: string, b: string, md: boolean | undefined) {
  return (changes: ValueChange[], out: Output): void => {
    if (!changes.length) out.info(`No ${what} changed between ${q(a)} and ${q(b)}.`);
    else lines(out, formatTable(diffRows(changes, a, b), !!md));
  };
}
