import { UsageError } from '../../errors.js';
import type { Dag } from '../../stages/graph.js';
import { escapeLine } from '../../ui/output.js';
import { type CliContext, examples, type Program } from '../context.js';
import { q } from '../render.js';

export function registerDag(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('dag')
    .description('show the pipeline of tdv.yaml as a graph: text, Graphviz (--dot) or Mermaid (--mermaid)')
    .option('--dot', 'print Graphviz DOT')
    .option('--mermaid', 'print a Mermaid flowchart')
    .option('--json', 'print one JSON object: stages in run order, each with the stages it waits for')
    .addHelpText('after', examples('tdv dag', 'tdv dag --dot | dot -Tsvg > dag.svg', 'tdv dag --mermaid'));
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if ([opts.dot, opts.mermaid, opts.json].filter(Boolean).length > 1) throw new UsageError('choose one of --dot, --mermaid and --json');
  };
  ctx.action(cmd, { check }, async ({ out, repo, opts }) => {
    const { dag: loadDag } = await import('../../repo/dag.js');
    const dag = await loadDag(repo);
    if (opts.json) return out.data({ stages: dag.order.map((name) => ({ name, upstream: [...dag.upstream.get(name)!] })) });
    const text = opts.dot ? dot(dag) : opts.mermaid ? mermaid(dag) : plain(dag);
    ctx.io.stdout.write(text);
  });
}

const edges = (dag: Dag) => dag.order.flatMap((n) => [...dag.upstream.get(n)!].map((u) => [u, n] as const));

/** One line per stage, in run order, with what it waits for. */
function plain(dag: Dag): string {
  return dag.order
    .map((n) => {
      const up = [...dag.upstream.get(n)!];
      const s = dag.stages.get(n)!;
      const where = s.image ? ` [${escapeLine(s.image)}]` : s.build ? ` [build ${q(s.build.context)}]` : '';
      return `${n}${where}${up.length ? `  <- ${up.join(', ')}` : ''}\n`;
    })
    .join('');
}

function dot(dag: Dag): string {
  const q = (s: string) => JSON.stringify(s);
  return `digraph pipeline {\n  rankdir=LR;\n${dag.order.map((n) => `  ${q(n)};\n`).join('')}${edges(dag)
    .map(([a, b]) => `  ${q(a)} -> ${q(b)};\n`)
    .join('')}}\n`;
}

function mermaid(dag: Dag): string {
  // Mermaid ids must be simple: index them, label with the stage name.
  const id = new Map(dag.order.map((n, i) => [n, `s${i}`]));
  return `flowchart LR\n${dag.order.map((n) => `  ${id.get(n)}["${n}"]\n`).join('')}${edges(dag)
    .map(([a, b]) => `  ${id.get(a)} --> ${id.get(b)}\n`)
    .join('')}`;
}
