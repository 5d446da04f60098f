import type { Command } from 'commander';
import type { ValueChange, Values } from '../../repo/metrics.js';
import { escapeLine, type Output } from '../../ui/output.js';
import { q } from '../render.js';
import { type CliContext, examples } from '../context.js';

export function registerMetrics(program: Command, ctx: CliContext): void {
  const metrics = program.command('metrics').description('show and compare the metrics files of the pipeline (JSON, kept in Git)');
  metrics
    .command('show')
    .description('print the metrics files declared in tdv.yaml')
    .option('--json', 'print one JSON object: {file: {key: value}}')
    .addHelpText('after', examples('tdv metrics show', 'tdv metrics show --json'))
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { metricsShow } = await import('../../repo/metrics.js');
      const values = await metricsShow(repo);
      if (out.json) out.data(values);
      else renderValues(out, values);
    });
  metrics
    .command('diff')
    .description('compare metrics between two revisions (default: HEAD and the workspace)')
    .argument('[a]', 'a revision (default HEAD)')
    .argument('[b]', 'a revision (default: the workspace)')
    .option('--json', 'print a JSON array of {file, key, old, new, change}')
    .addHelpText('after', examples('tdv metrics diff', 'tdv metrics diff v1 v2 --json'))
    .action(async (a: string | undefined, b: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { metricsDiff } = await import('../../repo/metrics.js');
      renderDiff(out, await metricsDiff(repo, a, b), 'metrics', a ?? 'HEAD', b ?? 'workspace');
    });
  program
    .command('params')
    .description('compare pipeline parameters between revisions')
    .command('diff')
    .description('compare the params stages use between two revisions (default: HEAD, as tdv.lock recorded, and the workspace)')
    .argument('[a]', 'a revision (default HEAD)')
    .argument('[b]', 'a revision (default: the workspace)')
    .option('--json', 'print a JSON array of {file, key, old, new, change}')
    .addHelpText('after', examples('tdv params diff', 'tdv params diff v1 v2'))
    .action(async (a: string | undefined, b: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const out = await ctx.output(cmd);
      const repo = await ctx.openRepo(out);
      const { paramsDiff } = await import('../../repo/metrics.js');
      renderDiff(out, await paramsDiff(repo, a, b), 'params', a ?? 'HEAD', b ?? 'workspace');
    });
}

// Keys and string values come from files a pipeline wrote: shown on one line, whatever they hold.
const show = (v: unknown) => (v === undefined ? '-' : typeof v === 'string' ? escapeLine(v) : JSON.stringify(v));

function renderValues(out: Output, values: Values): void {
  const files = Object.keys(values);
  if (!files.length) out.info('No metrics: no stage of tdv.yaml declares metrics files, or none exists yet.');
  for (const f of files) {
    out.info(`${q(f)}:`);
    for (const [k, v] of Object.entries(values[f]!)) out.info(`    ${escapeLine(k)}: ${show(v)}`);
  }
}

function renderDiff(out: Output, changes: ValueChange[], what: string, a: string, b: string): void {
  if (out.json) {
    out.data(changes);
    return;
  }
  if (!changes.length) {
    out.info(`No ${what} changed between ${q(a)} and ${q(b)}.`);
    return;
  }
  const rows = changes.map((c) => [`${q(c.file)}:${escapeLine(c.key)}`, show(c.old), show(c.new), c.change === undefined ? '' : `${c.change > 0 ? '+' : ''}${c.change}`]);
  const head = ['path:key', q(a), q(b), 'change'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) out.info(r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
}
