import { UsageError } from '../../errors.js';
import { shortOid } from '../../formats/oid.js';
import type { LineageDep, LineageResult, LineageSource, LineageStage } from '../../repo/lineage.js';
import { escapeLine, type Output, plural } from '../../ui/output.js';
import { type CliContext, examples, parsePositiveInt, type Program } from '../context.js';
import { q } from '../render.js';

export function registerLineage(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('lineage')
    .description('show what produced an output (stages, commands, images, params, data and code, down to their commits), or with --reverse what depends on a path')
    .argument('<path>', 'a stage output, a file inside an output directory, or (with --reverse) any path a stage reads')
    .option('--rev <rev>', 'read tdv.lock and pointers at this revision (default: the workspace)')
    .option('--depth <n>', 'walk at most this many stage levels', parsePositiveInt('--depth'))
    .option('--reverse', 'list the stages downstream of the path, and their outputs: what to rerun or distrust')
    .option('--json', 'print one JSON object (schema in README)')
    .option('--mermaid', 'print a Mermaid flowchart')
    .option('--dot', 'print Graphviz DOT')
    .addHelpText(
      'after',
      "\nA stage is stale when a hash it recorded for a dep is not what that dep's producer (or pointer, or Git) records now: its outputs were not made from what is there.\n" +
        examples('tdv lineage model.pkl', 'tdv lineage --rev v1 metrics.json --json', 'tdv lineage --reverse data/raw.csv', 'tdv lineage model.pkl --dot | dot -Tsvg > lineage.svg'),
    );
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if ([opts.dot, opts.mermaid, opts.json].filter(Boolean).length > 1) throw new UsageError('choose one of --dot, --mermaid and --json');
  };
  ctx.action(cmd, { check }, async ({ repo, args: [target], opts, resolve, show }) => {
    const { lineage } = await import('../../repo/lineage.js');
    const res = await lineage(repo, { target: resolve(target), rev: opts.rev, depth: opts.depth, reverse: opts.reverse });
    if (opts.mermaid) return void ctx.io.stdout.write(mermaid(res));
    if (opts.dot) return void ctx.io.stdout.write(dot(res));
    show(res, render);
  });
}

/** The tree nests at most this many stages deep (the indentation grows with each). */
const MAX_NESTING = 100;
/** Stage names and image IDs come from tdv.lock (perhaps hand-edited): one line, no terminal controls. */
const nm = (n: string) => escapeLine(n);
const names = (ns: string[]) => ns.map(nm).join(', ');
const mark = (s: LineageStage['status'] | LineageDep['status']) => (s === 'stale' ? 'STALE' : s === 'unknown' ? 'unknown' : '');
const cmdText = (c: string | string[]) => escapeLine(typeof c === 'string' ? c : c.join(' && '));

function sourceText(s: LineageSource | undefined): string {
  if (!s) return '';
  const commit = s.commit ? `, commit ${s.commit.id.slice(0, 12)} ${s.commit.date.slice(0, 10)} ${escapeLine(s.commit.subject)}` : '';
  const dirty = `${s.uncommitted ? ', not committed' : ''}${s.modified ? ', changed since `tdv add`' : ''}`;
  if (s.kind === 'data') return `data (${q(s.pointer!)}${commit}${dirty})`;
  if (s.kind === 'git') return `git blob ${s.blob!.slice(0, 12)}${commit}${dirty}`;
  return 'untracked (neither a stage output nor tracked by tdv or Git)';
}

function depText(d: LineageDep, sources: Map<string, LineageSource>): string {
  const from = d.kind === 'output' ? `<- ${names(d.producers!)}` : sourceText(sources.get(d.path));
  let why = '';
  if (d.status === 'stale') why = `  STALE: recorded ${shortOid(d.sha256)}, ${d.kind === 'output' ? 'its producer records' : 'now'} ${d.current ? shortOid(d.current) : 'nothing'}`;
  else if (d.status === 'unknown') why = '  (unknown whether current)';
  return `${q(d.path)}  ${shortOid(d.sha256)}  ${from}${why}`;
}

/** The provenance as a tree from the target; each stage drawn once. */
function render(res: LineageResult, out: Output): void {
  const lines: string[] = [];
  const at = res.rev === null ? '' : ` at ${q(res.rev)} (${res.commit!.slice(0, 12)})`;
  const byName = new Map(res.stages.map((s) => [s.name, s]));
  const sources = new Map(res.sources.map((s) => [s.path, s]));
  if (res.direction === 'down') {
    lines.push(`${q(res.target)}${at}: ${res.stages.length === 0 ? 'no stage depends on it' : `${plural(res.stages.length, 'stage')} downstream`}`);
    for (const s of res.stages) {
      const outs = s.outs.map((o) => q(o.path)).join(', ');
      lines.push(`  ${s.level}  ${nm(s.name)}${s.status === 'fresh' ? '' : `  [${mark(s.status)}]`}  -> ${outs || '(no outputs)'}`);
    }
  } else if (res.stages.length === 0) {
    lines.push(`${q(res.target)}${at}: source ${sourceText(res.sources[0])}; no stage writes it`);
  } else {
    lines.push(`${q(res.target)}${at}  <- ${names(res.producers)}`);
    const drawn = new Set<string>();
    // Depth first with an explicit stack (a chain of thousands of stages must not overflow the
    // call stack), nested at most MAX_NESTING levels (the indentation would make the text grow
    // with the square of the chain's length): deeper stages are named, and --json has them all.
    type Item = { kind: 'stage'; name: string; pre: string; last: boolean; nesting: number } | { kind: 'dep'; d: LineageDep; inner: string; last: boolean; nesting: number };
    const todo: Item[] = [];
    const pushStages = (names: string[], pre: string, nesting: number) => {
      for (let i = names.length - 1; i >= 0; i--) todo.push({ kind: 'stage', name: names[i]!, pre, last: i === names.length - 1, nesting });
    };
    pushStages(res.producers, '', 0);
    while (todo.length > 0) {
      const it = todo.pop()!;
      if (it.kind === 'dep') {
        // A dep's line, then (before the next dep) the stages that wrote it.
        lines.push(`${it.inner}${it.last ? '└─ ' : '├─ '}${depText(it.d, sources)}`);
        pushStages(it.d.kind === 'output' ? it.d.producers! : [], `${it.inner}${it.last ? '   ' : '│  '}`, it.nesting + 1);
        continue;
      }
      const { name, pre, last, nesting } = it;
      const s = byName.get(name);
      const branch = `${pre}${last ? '└─ ' : '├─ '}`;
      const inner = `${pre}${last ? '   ' : '│  '}`;
      if (!s) {
        lines.push(`${branch}${nm(name)}  (beyond --depth)`);
        continue;
      }
      if (drawn.has(name)) {
        lines.push(`${branch}${nm(name)}  (shown above)`);
        continue;
      }
      if (nesting >= MAX_NESTING) {
        lines.push(`${branch}${nm(name)}  (and what made it: too deep to draw here; --json lists every stage)`);
        continue;
      }
      drawn.add(name);
      lines.push(`${branch}${nm(s.name)}${s.status === 'fresh' ? '' : `  [${mark(s.status)}]`}  $ ${cmdText(s.cmd)}`);
      if (s.image) lines.push(`${inner}│  image ${nm(s.image)}`);
      for (const [file, kv] of Object.entries(s.params))
        lines.push(
          `${inner}│  params ${q(file)}: ${escapeLine(
            Object.entries(kv)
              .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
              .join(' '),
          )}`,
        );
      for (let i = s.deps.length - 1; i >= 0; i--) todo.push({ kind: 'dep', d: s.deps[i]!, inner, last: i === s.deps.length - 1, nesting });
    }
  }
  if (res.truncated) lines.push(`(stopped at --depth; more stages lie ${res.direction === 'up' ? 'upstream' : 'downstream'})`);
  out.info(lines.join('\n'));
  if (res.modified)
    out.warn(
      `${q(res.target)} in the workspace is not what ${names(res.producers)} recorded: it changed since that run, so this is not its provenance (\`tdv checkout\` restores the output, \`tdv repro\` reruns the stage)`,
    );
  else if (res.status === 'stale') out.warn(`some stages are stale: what they recorded is not what is there now${res.rev === null ? '; `tdv repro` reruns them' : ''}`);
}

/** The graph: path nodes and stage nodes, edges dep -> stage -> output; stale edges marked. */
function graph(res: LineageResult) {
  const nodes = new Map<string, { id: string; label: string; kind: 'stage' | 'path'; status?: string }>();
  const edges: { from: string; to: string; stale: boolean }[] = [];
  const node = (key: string, label: string, kind: 'stage' | 'path', status?: string) => {
    let n = nodes.get(key);
    if (!n) nodes.set(key, (n = { id: `n${nodes.size}`, label, kind, status }));
    return n.id;
  };
  // Keys are prefixed so that a stage and a path of one name stay two nodes.
  const pathNode = (p: string) => node(`p:${p}`, p, 'path');
  pathNode(res.target);
  for (const s of res.stages) node(`s:${s.name}`, s.name, 'stage', s.status);
  const inResult = new Map(res.stages.map((s) => [s.name, new Set(s.outs.map((o) => o.path))]));
  for (const s of res.stages) {
    const sid = nodes.get(`s:${s.name}`)!.id;
    for (const d of s.deps) {
      const did = pathNode(d.path);
      edges.push({ from: did, to: sid, stale: d.status === 'stale' });
      for (const p of d.producers ?? []) {
        const outs = inResult.get(p);
        if (outs === undefined) continue;
        if (!outs.has(d.path)) edges.push({ from: nodes.get(`s:${p}`)!.id, to: did, stale: false });
      }
    }
    for (const o of s.outs) edges.push({ from: sid, to: pathNode(o.path), stale: false });
  }
  const seen = new Set<string>();
  return { nodes: [...nodes.values()], edges: edges.filter((e) => !seen.has(`${e.from}>${e.to}`) && seen.add(`${e.from}>${e.to}`)) };
}

/** A Mermaid label: entity codes for what would end or bend the quoted string, one line. */
export function mermaidLabel(s: string): string {
  return s
    .replace(/#/g, '#35;')
    .replace(/"/g, '#quot;')
    .replace(/</g, '#lt;')
    .replace(/>/g, '#gt;')
    .replace(/`/g, '#96;')
    .replace(/[\x00-\x1f\x7f\u2028\u2029]/g, (c) => `#${c.charCodeAt(0)};`);
}

/** A DOT double-quoted string: backslash and quote escaped, line breaks as \n. */
export function dotString(s: string): string {
  return `"${s
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\r?\n|\r/g, '\\n')
    .replace(/[\x00-\x1f\x7f]/g, ' ')}"`;
}

/** Mermaid flowchart: ids are n0, n1, ... (never a path), labels escaped. */
export function mermaid(res: LineageResult): string {
  const g = graph(res);
  const lines = ['flowchart LR'];
  for (const n of g.nodes) lines.push(n.kind === 'stage' ? `  ${n.id}["${mermaidLabel(n.label)}${n.status === 'stale' ? ' (stale)' : ''}"]` : `  ${n.id}[/"${mermaidLabel(n.label)}"/]`);
  for (const e of g.edges) lines.push(e.stale ? `  ${e.from} -. stale .-> ${e.to}` : `  ${e.from} --> ${e.to}`);
  return `${lines.join('\n')}\n`;
}

/** Graphviz digraph: ids are n0, n1, ..., labels quoted. */
export function dot(res: LineageResult): string {
  const g = graph(res);
  const lines = ['digraph lineage {', '  rankdir=LR;'];
  for (const n of g.nodes) {
    const attrs = n.kind === 'stage' ? `shape=box, label=${dotString(n.label)}${n.status === 'stale' ? ', color=red' : ''}` : `shape=note, label=${dotString(n.label)}`;
    lines.push(`  ${n.id} [${attrs}];`);
  }
  for (const e of g.edges) lines.push(`  ${e.from} -> ${e.to}${e.stale ? ' [style=dashed, color=red, label="stale"]' : ''};`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
