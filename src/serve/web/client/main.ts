// The tdv web view: one page, hash-routed (`#/<view>?k=v`), reading the JSON
// API under /-/api/. Every repository string is rendered as text (dom.ts).

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import {
  ApiError,
  type Diff,
  get,
  type Lineage,
  type LineageDep,
  type Listing,
  type LogPage,
  type MetricsHistory,
  type ParamsDiff,
  type Pipeline,
  type Refs,
  type Stage,
  type WebPath,
} from './api.js';
import { drawDag } from './dag.js';
import { bytes, type Child, fileUrl, h, mount, route, short, valueText, when } from './dom.js';

let refs: Refs | undefined;
/** The revision the header's picker shows; views without their own `rev` use it. */
let current = 'HEAD';

const app = h('main', { id: 'app' });
const picker = h('input', { id: 'rev', list: 'revs', spellcheck: 'false', autocomplete: 'off', 'aria-label': 'revision', placeholder: 'branch, tag, commit or @YYYY-MM-DD' });
const revList = h('datalist', { id: 'revs' });
const repoName = h('span', { class: 'repo' });
const nav = h('nav', { class: 'tabs' });

const VIEWS: { id: string; label: string }[] = [
  { id: 'refs', label: 'Branches' },
  { id: 'log', label: 'History' },
  { id: 'files', label: 'Files' },
  { id: 'dag', label: 'Pipeline' },
  { id: 'metrics', label: 'Metrics' },
  { id: 'diff', label: 'Diff' },
  { id: 'params', label: 'Params' },
];

function header(): HTMLElement {
  picker.addEventListener('change', () => {
    const v = picker.value.trim();
    if (!v) return;
    current = v;
    const { view, params } = parseHash();
    const keep = view === 'diff' || view === 'params' ? { ...Object.fromEntries(params), b: v } : { rev: v };
    location.hash = route(view === 'refs' ? 'log' : view, keep);
  });
  return h(
    'header',
    { class: 'top' },
    h('div', { class: 'brand' }, h('a', { href: route('refs'), class: 'logo' }, 'tdv'), repoName),
    nav,
    h('label', { class: 'picker' }, h('span', null, 'Revision'), picker, revList),
  );
}

function parseHash(): { view: string; params: URLSearchParams } {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const view = (q === -1 ? raw : raw.slice(0, q)) || 'refs';
  return { view, params: new URLSearchParams(q === -1 ? '' : raw.slice(q + 1)) };
}

function renderNav(view: string): void {
  mount(
    nav,
    VIEWS.map((v) =>
      h(
        'a',
        { href: route(v.id, v.id === 'diff' || v.id === 'params' || v.id === 'refs' ? {} : { rev: current }), class: v.id === view ? 'active' : null, 'aria-current': v.id === view ? 'page' : null },
        v.label,
      ),
    ),
  );
}

// ---------- building blocks ----------

/** A revision as shown: a full commit id shortened to 12 digits (still unambiguous), anything else as given. */
const revLabel = (rev: string): string => (/^[0-9a-f]{40}$/.test(rev) ? rev.slice(0, 12) : rev);
const badge = (text: string, kind: string): HTMLElement => h('span', { class: `badge ${kind}` }, text);
const mono = (text: string, title?: string): HTMLElement => h('code', { class: 'mono', title: title ?? null }, text);
const commitLink = (oid: string): HTMLElement => h('a', { href: route('files', { rev: oid }), class: 'mono commit', title: oid }, short(oid));
const num = (...c: Child[]): HTMLTableCellElement => h('td', { class: 'num' }, ...c);

function table(head: (string | [string, string])[], rows: HTMLTableRowElement[], cls = ''): HTMLTableElement {
  return h(
    'table',
    { class: `grid ${cls}` },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        head.map((c) => (Array.isArray(c) ? h('th', { class: c[1] }, c[0]) : h('th', null, c))),
      ),
    ),
    h('tbody', null, rows),
  );
}

function card(title: Child, ...body: Child[]): HTMLElement {
  return h('section', { class: 'card' }, h('h2', null, title), ...body);
}

function empty(text: string): HTMLElement {
  return h('p', { class: 'empty' }, text);
}

function failure(err: unknown): HTMLElement {
  const e = err instanceof ApiError ? err : undefined;
  return h('div', { class: 'error', role: 'alert' }, h('strong', null, e ? `${e.status} ${e.code}` : 'Error'), h('span', null, e ? e.message : String((err as Error)?.message ?? err)));
}

function pageTitle(title: Child, sub?: Child): HTMLElement {
  return h('div', { class: 'page-title' }, h('h1', null, title), sub ? h('p', { class: 'sub' }, sub) : null);
}

/** Two revision fields and a button: for the diff and params views. */
function revPair(view: string, a: string, b: string): HTMLElement {
  const ia = h('input', { name: 'a', list: 'revs', value: a, spellcheck: 'false', 'aria-label': 'from revision' });
  const ib = h('input', { name: 'b', list: 'revs', value: b, spellcheck: 'false', 'aria-label': 'to revision' });
  const go = (ev: Event) => {
    ev.preventDefault();
    location.hash = route(view, { a: ia.value.trim(), b: ib.value.trim() });
  };
  return h('form', { class: 'pair', onsubmit: go }, h('label', null, 'From', ia), h('span', { class: 'arrow' }, '→'), h('label', null, 'To', ib), h('button', { type: 'submit' }, 'Compare'));
}

/** Where to link a dep, output or metric: the file at that commit (`/<commit>/<path>`). */
function pathLink(commit: string, p: WebPath | { path: string; kind?: string }): HTMLElement {
  if ('kind' in p && p.kind === 'missing') return h('span', { class: 'mono path missing', title: 'not in this revision' }, p.path);
  return h('a', { href: fileUrl(commit, p.path), class: 'mono path', 'data-path': p.path }, p.path);
}

/** A link to what produced an output (`reverse`: what depends on a path), at that commit. */
function lineageLink(commit: string, p: string, reverse = false): HTMLElement {
  return h(
    'a',
    {
      href: route('lineage', { rev: commit, path: p, reverse: reverse ? '1' : undefined }),
      class: 'link small lineage',
      'data-lineage': p,
      title: reverse ? `what depends on ${p}` : `what produced ${p}`,
    },
    reverse ? 'downstream' : 'lineage',
  );
}

// ---------- views ----------

async function viewRefs(): Promise<HTMLElement> {
  const r = refs!;
  const row = (x: { name: string; commit: string; subject: string; date: string }, isHead: boolean) =>
    h(
      'tr',
      null,
      h('td', null, h('a', { href: route('log', { rev: x.name }), class: 'ref' }, x.name), isHead ? badge('HEAD', 'head') : null),
      h('td', null, commitLink(x.commit)),
      h('td', { class: 'subject' }, x.subject),
      h('td', { class: 'date' }, when(x.date)),
    );
  return h(
    'div',
    null,
    pageTitle(r.name, `Served as bucket ${r.bucket}`),
    card(
      'Branches',
      r.branches.length
        ? table(
            ['Branch', 'Commit', 'Last commit', ['Date', 'date']],
            r.branches.map((b) => row(b, b.name === r.head?.branch)),
          )
        : empty('No branches yet.'),
    ),
    card(
      'Tags',
      r.tags.length
        ? table(
            ['Tag', 'Commit', 'Subject', ['Date', 'date']],
            r.tags.map((t) => row(t, false)),
          )
        : empty('No tags.'),
    ),
  );
}

function changeLine(c: LogPage['commits'][number]['changes'][number]): HTMLElement {
  const sizes = c.previous && c.version ? `${bytes(c.previous.size)} → ${bytes(c.version.size)}` : bytes((c.version ?? c.previous)?.size);
  const isDir = c.files !== null || (c.version ?? c.previous)?.nfiles !== undefined;
  const counts = c.files
    ? (['added', 'modified', 'deleted'] as const)
        .filter((k) => c.files![k] > 0)
        .map((k) => `${c.files![k]} ${k}`)
        .join(', ')
    : '';
  return h(
    'li',
    null,
    badge(c.change, c.change),
    h('span', { class: 'mono path' }, isDir ? `${c.path}/` : c.path),
    h('span', { class: 'muted nowrap' }, sizes),
    counts ? h('span', { class: 'muted small nowrap' }, `(files: ${counts})`) : null,
  );
}

async function viewLog(params: URLSearchParams): Promise<HTMLElement> {
  const rev = params.get('rev') || current;
  const first = await get<LogPage>('log', { rev, limit: '30' });
  const picked: string[] = [];
  const compare = h('button', { type: 'button', disabled: true, class: 'primary' }, 'Compare 2 selected');
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'more' }, 'Older versions');
  const updateCompare = () => {
    compare.disabled = picked.length !== 2;
  };
  compare.addEventListener('click', () => {
    // Older first: the diff reads as "what this history did".
    const order = [...body.querySelectorAll<HTMLInputElement>('input[type=checkbox]')].map((i) => i.value);
    const [x, y] = [...picked].sort((p, q) => order.indexOf(q) - order.indexOf(p));
    // Twelve digits name a commit as surely as forty, and read better in the fields.
    location.hash = route('diff', { a: x!.slice(0, 12), b: y!.slice(0, 12) });
  });
  const addPage = (page: LogPage) => {
    for (const c of page.commits) {
      const box = h('input', { type: 'checkbox', value: c.commit, 'aria-label': `select ${short(c.commit)}` });
      box.addEventListener('change', () => {
        if (box.checked) {
          picked.push(c.commit);
          if (picked.length > 2) {
            const drop = picked.shift()!;
            const other = body.querySelector<HTMLInputElement>(`input[value="${drop}"]`);
            if (other) other.checked = false;
          }
        } else picked.splice(picked.indexOf(c.commit), 1);
        updateCompare();
      });
      body.append(
        h(
          'tr',
          { 'data-commit': c.commit },
          h('td', { class: 'pick' }, box),
          h('td', { class: 'date' }, when(c.date)),
          h('td', null, commitLink(c.commit)),
          h('td', null, h('div', { class: 'subject' }, c.subject), h('div', { class: 'muted small' }, c.author.name)),
          h('td', null, h('ul', { class: 'changes' }, c.changes.map(changeLine))),
          h('td', { class: 'actions' }, h('a', { href: route('files', { rev: c.commit }) }, 'Files'), h('a', { href: route('dag', { rev: c.commit }) }, 'Pipeline')),
        ),
      );
    }
    more.hidden = page.next === null;
    more.onclick = async () => {
      more.disabled = true;
      try {
        addPage(await get<LogPage>('log', { rev, from: page.next!, limit: '30' }));
      } finally {
        more.disabled = false;
      }
    };
  };
  addPage(first);
  const tbl = h(
    'table',
    { class: 'grid log' },
    h('thead', null, h('tr', null, h('th', { class: 'pick' }), h('th', { class: 'date' }, 'Date'), h('th', null, 'Commit'), h('th', null, 'Message'), h('th', null, 'Data changes'), h('th'))),
    body,
  );
  return h(
    'div',
    null,
    pageTitle(h('span', null, 'Data versions on ', mono(revLabel(rev))), first.shallow ? 'This clone is shallow: older versions are not here.' : 'Commits where tracked data changed, newest first.'),
    h('div', { class: 'toolbar' }, h('span', { class: 'muted' }, 'Select two versions to compare them file by file.'), compare),
    first.commits.length ? h('section', { class: 'card flush' }, tbl) : card('No data versions', empty('No commit on this branch changed tracked data.')),
    more,
  );
}

async function viewFiles(params: URLSearchParams): Promise<HTMLElement> {
  const rev = params.get('rev') || current;
  const dir = params.get('path') ?? '';
  const l = await get<Listing>('files', { rev, path: dir });
  const crumbs: Child[] = [h('a', { href: route('files', { rev }) }, '/')];
  let acc = '';
  for (const part of dir ? dir.split('/') : []) {
    acc = acc ? `${acc}/${part}` : part;
    crumbs.push(h('span', { class: 'sep' }, ' › '), h('a', { href: route('files', { rev, path: acc }) }, part));
  }
  const rows = l.entries.map((e) =>
    h(
      'tr',
      null,
      h('td', null, e.kind === 'dir' ? h('a', { href: route('files', { rev, path: e.path }), class: 'dir' }, `${e.name}/`) : h('a', { href: fileUrl(l.commit, e.path), class: 'file' }, e.name)),
      h('td', null, badge(e.source, e.source)),
      num(e.kind === 'file' || e.size !== null ? bytes(e.size) : ''),
      h('td', null, e.oid ? mono(short(e.oid), e.oid) : null),
    ),
  );
  return h(
    'div',
    null,
    pageTitle(h('span', null, 'Files at ', mono(revLabel(rev))), h('span', null, commitLink(l.commit), ' ', l.subject, h('span', { class: 'muted' }, ` · ${l.author} · ${when(l.date)}`))),
    h('div', { class: 'crumbs' }, crumbs),
    h('section', { class: 'card flush' }, l.entries.length ? table(['Name', 'Kept by', ['Size', 'num'], 'Object'], rows, 'files') : empty('Empty directory.')),
  );
}

async function viewDiff(params: URLSearchParams): Promise<HTMLElement> {
  const b = params.get('b') || current;
  const a = params.get('a') || (b.startsWith('@') ? '' : `${b}~1`);
  const form = revPair('diff', a, b);
  if (!a || !b) return h('div', null, pageTitle('Compare two revisions'), form);
  const d = await get<Diff>('diff', { a, b });
  const delta = (c: Diff['changes'][number]) => {
    if (!c.old || !c.new) return '';
    const n = c.new.size - c.old.size;
    return n === 0 ? '±0' : `${n > 0 ? '+' : '−'}${bytes(Math.abs(n))}`;
  };
  const only = params.get('only'); // 'data': the data only, without Git files
  const shown = d.changes.filter((c) => only !== 'data' || c.source === 'data');
  // Thousands of rows make a slow page that nobody reads; the summary still counts them all.
  const rows = shown
    .slice(0, MAX_ROWS)
    .map((c) =>
      h(
        'tr',
        { class: `st-${c.status}` },
        h('td', null, badge(c.status, c.status)),
        h('td', null, h('a', { href: fileUrl(c.status === 'deleted' ? d.a.commit : d.b.commit, c.path), class: 'mono path' }, c.path)),
        h('td', null, badge(c.source, c.source)),
        num(c.old ? bytes(c.old.size) : '—'),
        num(c.new ? bytes(c.new.size) : '—'),
        num(delta(c)),
      ),
    );
  // The revision as given, unless it is the commit id itself.
  const side = (x: Diff['a']) => h('div', { class: 'side' }, x.commit.startsWith(x.rev) ? null : [mono(x.rev), ' '], commitLink(x.commit), h('div', { class: 'muted small' }, x.subject));
  return h(
    'div',
    null,
    pageTitle('Compare two revisions'),
    form,
    h(
      'div',
      { class: 'summary' },
      side(d.a),
      h('span', { class: 'arrow' }, '→'),
      side(d.b),
      h('div', { class: 'chips' }, badge(`${d.summary.added} added`, 'added'), badge(`${d.summary.modified} modified`, 'modified'), badge(`${d.summary.deleted} deleted`, 'deleted')),
    ),
    h(
      'div',
      { class: 'toolbar' },
      h('span', { class: 'muted' }, shown.length > MAX_ROWS ? `The first ${MAX_ROWS} of ${shown.length} changes.` : `${shown.length} change${shown.length === 1 ? '' : 's'}.`),
      h('a', { href: route('diff', { a, b, only: only === 'data' ? undefined : 'data' }), class: 'small', 'data-toggle': 'only' }, only === 'data' ? 'Show Git files too' : 'Show data only'),
    ),
    h(
      'section',
      { class: 'card flush' },
      shown.length ? table(['Change', 'Path', 'Kept by', ['Before', 'num'], ['After', 'num'], ['Δ size', 'num']], rows, 'diff') : empty('The two revisions hold the same files.'),
    ),
  );
}

const MAX_ROWS = 2000;

const within = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`) || parent.startsWith(`${child}/`);

/** Inputs (each with the stage that wrote it) or outputs (each with the stages that read it), linked to the files. */
function pathTable(commit: string, list: WebPath[], showProducer: (name: string) => void, readers?: Stage[]): HTMLElement {
  if (!list.length) return empty('None.');
  return table(
    ['Path', 'Kind', 'SHA-256', ['Size', 'num']],
    list.map((p) =>
      h(
        'tr',
        null,
        h(
          'td',
          null,
          pathLink(commit, p),
          readers && p.sha256 ? lineageLink(commit, p.path) : null,
          p.producer ? h('button', { type: 'button', class: 'link small', 'data-producer': p.producer, onclick: () => showProducer(p.producer!) }, `← ${p.producer}`) : null,
          (readers ?? [])
            .filter((r) => r.deps.some((d) => within(p.path, d.path)))
            .map((r) => h('button', { type: 'button', class: 'link small', 'data-consumer': r.name, onclick: () => showProducer(r.name) }, `→ ${r.name}`)),
        ),
        h('td', null, badge(p.kind === 'git' ? 'code (git)' : p.kind, p.kind)),
        h('td', null, p.sha256 ? mono(short(p.sha256), p.sha256) : h('span', { class: 'muted' }, '—')),
        num(p.size === null ? '' : bytes(p.size)),
      ),
    ),
    'paths',
  );
}

function stagePanel(p: Pipeline, st: Stage, select: (name: string) => void): HTMLElement {
  const metrics = st.metrics.map((m) =>
    h(
      'div',
      { class: 'metric-file' },
      h('div', null, pathLink(p.commit, m), m.sha256 ? mono(short(m.sha256), m.sha256) : null, m.sha256 ? lineageLink(p.commit, m.path) : null),
      m.values
        ? table(
            ['Metric', ['Value', 'num']],
            Object.entries(m.values).map(([k, v]) => h('tr', null, h('td', { class: 'mono' }, k), num(valueText(v)))),
            'compact',
          )
        : empty('Not readable at this revision.'),
    ),
  );
  return h(
    'aside',
    { class: 'panel', 'aria-label': `stage ${st.name}` },
    h('h2', null, st.name, st.locked ? null : badge('not run', 'deleted')),
    st.desc ? h('p', { class: 'muted' }, st.desc) : null,
    h('h3', null, 'Command'),
    h('pre', { class: 'cmd' }, st.cmd.join('\n')),
    h('h3', null, 'Image'),
    st.image
      ? h(
          'dl',
          { class: 'kv' },
          h('dt', null, 'Reference'),
          h('dd', null, st.image.ref ? mono(st.image.ref) : h('span', { class: 'muted' }, 'built locally')),
          h('dt', null, 'Image ID'),
          h('dd', null, st.image.digest ? mono(st.image.digest, st.image.digest) : h('span', { class: 'muted' }, 'not recorded')),
        )
      : h('p', { class: 'muted' }, 'Runs locally (no image).'),
    h('h3', null, 'Params'),
    st.params.length
      ? table(
          ['File', 'Key', ['Value', 'num']],
          st.params.map((x) => h('tr', null, h('td', null, pathLink(p.commit, { path: x.file })), h('td', { class: 'mono' }, x.key), num(valueText(x.value)))),
          'compact',
        )
      : empty('None.'),
    h('h3', null, 'Inputs'),
    pathTable(p.commit, st.deps, select),
    h('h3', null, 'Outputs'),
    pathTable(
      p.commit,
      st.outs,
      select,
      p.stages.filter((x) => x.upstream.includes(st.name)),
    ),
    st.metrics.length ? [h('h3', null, 'Metrics'), metrics] : null,
  );
}

async function viewDag(params: URLSearchParams): Promise<HTMLElement> {
  const rev = params.get('rev') || current;
  const p = await get<Pipeline>('dag', { rev });
  const head = pageTitle(h('span', null, 'Pipeline at ', mono(revLabel(rev))), h('span', null, commitLink(p.commit), ' ', p.subject));
  if (!p.stages.length) return h('div', null, head, p.problem ? failure(new ApiError(200, 'PIPELINE', p.problem)) : card('No pipeline', empty('This revision has no tdv.yaml or tdv.lock.')));
  const metric = params.get('metric');
  let selected =
    params.get('stage') ?? (metric ? p.stages.find((s) => s.metrics.some((m) => m.path === metric))?.name : undefined) ?? p.stages.find((s) => s.metrics.length)?.name ?? p.stages.at(-1)!.name;
  const graph = h('div', { class: 'graph card' });
  const side = h('div', { class: 'panel-wrap' });
  const show = (name: string) => {
    const st = p.stages.find((s) => s.name === name);
    if (!st) return;
    selected = name;
    history.replaceState(null, '', route('dag', { rev, stage: name }));
    mount(graph, drawDag(p, selected, show));
    mount(side, stagePanel(p, st, show));
  };
  show(selected);
  // A graph wider than its column beside the panel gets the page's width, the panel below it.
  const wide = Number(graph.querySelector('svg')?.getAttribute('width') ?? 0) > 760;
  return h('div', null, head, p.problem ? failure(new ApiError(200, 'PIPELINE', p.problem)) : null, h('div', { class: `dag-layout${wide ? ' wide' : ''}` }, graph, side));
}

const PALETTE = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bc4c00', '#0a7b83', '#bf3989', '#4d2d00', '#57606a'];

async function viewMetrics(params: URLSearchParams): Promise<HTMLElement> {
  const rev = params.get('rev') || current;
  const m = await get<MetricsHistory>('metrics', { rev });
  const head = pageTitle(h('span', null, 'Metrics along ', mono(revLabel(rev))), 'One point per commit that has metrics, oldest on the left.');
  const keys: { file: string; key: string; id: string }[] = [];
  const seen = new Set<string>();
  for (const c of m.commits)
    for (const [file, kv] of Object.entries(c.metrics))
      for (const [key, v] of Object.entries(kv)) {
        const id = `${file}:${key}`;
        if (typeof v === 'number' && !seen.has(id)) {
          seen.add(id);
          keys.push({ file, key, id });
        }
      }
  if (!keys.length) return h('div', null, head, card('No metrics', empty('No commit on this branch records numeric metrics.')));
  const valueOf = (c: MetricsHistory['commits'][number], k: { file: string; key: string }) => {
    const v = c.metrics[k.file]?.[k.key];
    return typeof v === 'number' ? v : null;
  };
  const wanted = new Set((params.get('show') ?? '').split(',').filter((x) => seen.has(x)));
  if (!wanted.size) for (const k of keys.slice(0, 4)) wanted.add(k.id);
  const chartBox = h('div', { class: 'chart', id: 'chart' });
  let plot: uPlot | undefined;
  const draw = () => {
    plot?.destroy();
    const chosen = keys.filter((k) => wanted.has(k.id));
    const xs = m.commits.map((_, i) => i);
    const data: uPlot.AlignedData = [xs, ...chosen.map((k) => m.commits.map((c) => valueOf(c, k)))];
    const width = Math.max(320, Math.min(chartBox.clientWidth || 900, 1200));
    plot = new uPlot(
      {
        width,
        height: 340,
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false } },
        legend: { live: true },
        axes: [
          {
            values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) && m.commits[t] ? short(m.commits[t]!.commit).slice(0, 7) : '')),
            // A label per commit while they fit (about 80 px each), else every k-th.
            splits: (u) => {
              const k = Math.max(1, Math.ceil(xs.length / Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 80))));
              return xs.filter((x) => x % k === 0 || x === xs.length - 1);
            },
            grid: { stroke: '#eaeef2' },
            font: '11px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace',
          },
          { grid: { stroke: '#eaeef2' }, font: '12px system-ui, sans-serif', size: 60 },
        ],
        series: [
          { label: 'commit', value: (_u, v) => (v === null || !m.commits[v] ? '' : `${short(m.commits[v]!.commit).slice(0, 7)} ${m.commits[v]!.subject.slice(0, 40)}`) },
          ...chosen.map((k) => {
            const color = PALETTE[keys.indexOf(k) % PALETTE.length]!;
            return { label: k.id, stroke: color, width: 2, points: { size: 7, fill: color }, spanGaps: true };
          }),
        ],
      },
      data,
      chartBox,
    );
  };
  const toggles = h(
    'div',
    { class: 'series' },
    keys.map((k) => {
      const box = h('input', { type: 'checkbox', value: k.id, checked: wanted.has(k.id) });
      box.addEventListener('change', () => {
        if (box.checked) wanted.add(k.id);
        else wanted.delete(k.id);
        history.replaceState(null, '', route('metrics', { rev, show: [...wanted].join(',') }));
        draw();
      });
      const color = PALETTE[keys.indexOf(k) % PALETTE.length]!;
      const swatch = h('span', { class: 'swatch' });
      swatch.style.background = color;
      return h('label', { class: 'toggle' }, box, swatch, h('span', { class: 'mono' }, k.id));
    }),
  );
  const rows = [...m.commits].reverse().map((c) =>
    h(
      'tr',
      null,
      h('td', null, commitLink(c.commit)),
      h('td', { class: 'subject' }, c.subject),
      keys.map((k) => num(valueText(c.metrics[k.file]?.[k.key]))),
      h(
        'td',
        { class: 'actions' },
        h('a', { href: route('dag', { rev: c.commit, metric: keys[0]!.file }), title: 'the stage that wrote these metrics' }, 'Stage'),
        Object.keys(c.metrics).map((f) => lineageLink(c.commit, f)),
      ),
    ),
  );
  const tbl = h(
    'table',
    { class: 'grid metrics' },
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', null, 'Commit'),
        h('th', null, 'Message'),
        // Each metric's name leads to the stage that wrote its file, at the newest commit.
        keys.map((k) => h('th', { class: 'num mono' }, h('a', { href: route('dag', { rev: m.commits.at(-1)!.commit, metric: k.file }), title: `${k.id}: the stage that wrote it` }, k.key))),
        h('th'),
      ),
    ),
    h('tbody', null, rows),
  );
  const out = h(
    'div',
    null,
    head,
    m.problems.length ? failure(new ApiError(200, 'METRICS', `${m.problems.length} commit(s) have unreadable metrics; first: ${m.problems[0]!.message}`)) : null,
    h('section', { class: 'card' }, toggles, chartBox),
    h('section', { class: 'card flush' }, tbl),
  );
  // Drawn once the box is in the page and has a width.
  requestAnimationFrame(draw);
  return out;
}

async function viewParams(params: URLSearchParams): Promise<HTMLElement> {
  const b = params.get('b') || current;
  const a = params.get('a') || (b.startsWith('@') ? '' : `${b}~1`);
  const form = revPair('params', a, b);
  if (!a || !b) return h('div', null, pageTitle('Params diff'), form);
  const d = await get<ParamsDiff>('params', { a, b });
  const showAll = params.get('all') === '1';
  const list = d.changes.filter((c) => showAll || !c.unchanged);
  const changed = d.changes.filter((c) => !c.unchanged).length;
  const rows = list.map((c) =>
    h(
      'tr',
      { class: c.unchanged ? 'unchanged' : 'changed' },
      h('td', null, pathLink(d.b.commit, { path: c.file })),
      h('td', { class: 'mono' }, c.key),
      num(c.old === undefined ? '—' : valueText(c.old)),
      num(c.new === undefined ? '—' : valueText(c.new)),
      num(c.change === undefined ? '' : `${c.change > 0 ? '+' : ''}${c.change}`),
    ),
  );
  const toggle = h('a', { href: route('params', { a, b, all: showAll ? undefined : '1' }), class: 'small' }, showAll ? 'Hide unchanged' : `Show unchanged (${d.changes.length - changed})`);
  return h(
    'div',
    null,
    pageTitle('Params diff', 'The parameter values tdv.lock recorded at each revision.'),
    form,
    h('div', { class: 'toolbar' }, h('span', { class: 'muted' }, `${changed} changed`), toggle),
    h('section', { class: 'card flush' }, list.length ? table(['File', 'Key', ['Before', 'num'], ['After', 'num'], ['Change', 'num']], rows, 'params') : empty('No parameter changed.')),
  );
}

const freshBadge = (s: LineageDep['status']): HTMLElement | null => (s === 'fresh' ? null : badge(s, s === 'stale' ? 'deleted' : 'missing'));

function depRow(l: Lineage, d: LineageDep): HTMLTableRowElement {
  const from =
    d.kind === 'output'
      ? (d.producers ?? []).map((n) => h('a', { href: `#stage-${encodeURIComponent(n)}`, class: 'small' }, `← ${n}`))
      : h('span', { class: 'muted small' }, d.kind === 'git' ? 'code (git)' : d.kind);
  const why = d.status === 'stale' ? `recorded ${short(d.sha256)}, now ${d.current ? short(d.current) : 'nothing'}` : d.status === 'unknown' ? 'cannot tell' : '';
  return h(
    'tr',
    null,
    h('td', null, pathLink(l.commit, { path: d.path }), ' ', from),
    h('td', null, mono(short(d.sha256), d.sha256)),
    h('td', null, freshBadge(d.status), h('span', { class: 'muted small' }, why || 'fresh')),
  );
}

/** What produced an output (stages level by level, then the data and code at the bottom), or what depends on a path. */
async function viewLineage(params: URLSearchParams): Promise<HTMLElement> {
  const rev = params.get('rev') || current;
  const p = params.get('path') ?? '';
  const reverse = params.get('reverse') === '1';
  const l = await get<Lineage>('lineage', { rev, path: p, reverse: reverse ? '1' : undefined });
  const title = pageTitle(
    h('span', null, reverse ? 'Downstream of ' : 'Lineage of ', mono(l.target), ' at ', mono(revLabel(rev))),
    h('span', null, commitLink(l.commit), ' ', l.subject, ' ', l.status === 'fresh' ? badge('fresh', 'added') : badge(l.status, l.status === 'stale' ? 'deleted' : 'missing')),
  );
  const toggle = h(
    'div',
    { class: 'toolbar' },
    h('span', { class: 'muted' }, reverse ? 'The stages that read it, and what they wrote: what to rerun or distrust.' : 'Each stage that led to it, down to the tracked data and the code.'),
    lineageLink(l.commit, l.target, !reverse),
  );
  const stages = l.stages.map((st) =>
    h(
      'section',
      { class: 'card', id: `stage-${encodeURIComponent(st.name)}`, 'data-stage': st.name },
      h('h2', null, `${st.level}. `, h('a', { href: route('dag', { rev: l.commit, stage: st.name }) }, st.name), ' ', freshBadge(st.status)),
      h('pre', { class: 'cmd' }, typeof st.cmd === 'string' ? st.cmd : st.cmd.join('\n')),
      st.image ? h('p', null, 'Image ', mono(st.image, st.image)) : null,
      Object.keys(st.params).length
        ? table(
            ['Params file', 'Key', ['Value', 'num']],
            Object.entries(st.params).flatMap(([f, kv]) => Object.entries(kv).map(([k, v]) => h('tr', null, h('td', { class: 'mono' }, f), h('td', { class: 'mono' }, k), num(valueText(v))))),
            'compact',
          )
        : null,
      h('h3', null, 'Inputs'),
      st.deps.length
        ? table(
            ['Path', 'Recorded', 'Status'],
            st.deps.map((d) => depRow(l, d)),
            'paths',
          )
        : empty('None.'),
      h('h3', null, 'Outputs'),
      h(
        'ul',
        { class: 'changes' },
        st.outs.map((o) => h('li', null, pathLink(l.commit, { path: o.path }), ' ', mono(short(o.sha256), o.sha256), ' ', reverse ? lineageLink(l.commit, o.path) : null)),
      ),
    ),
  );
  const sources = l.sources.length
    ? card(
        reverse ? 'Source' : 'Sources',
        table(
          ['Path', 'Kept by', 'Version', 'Last changed'],
          l.sources.map((s) =>
            h(
              'tr',
              null,
              h('td', null, pathLink(l.commit, { path: s.path })),
              h('td', null, badge(s.kind === 'git' ? 'code (git)' : s.kind, s.kind === 'untracked' ? 'missing' : s.kind), s.pointer ? h('span', { class: 'muted small' }, ` ${s.pointer}`) : null),
              h('td', null, s.blob ? mono(`blob ${short(s.blob)}`, s.blob) : s.sha256 ? mono(short(s.sha256), s.sha256) : '—'),
              h('td', null, s.commit ? [commitLink(s.commit.id), ' ', h('span', { class: 'muted small' }, s.commit.subject)] : '—'),
            ),
          ),
        ),
      )
    : null;
  const none =
    l.stages.length === 0 ? card(reverse ? 'Nothing downstream' : 'Source', empty(reverse ? 'No stage reads it at this revision.' : 'No stage writes it: it is source data or code.')) : null;
  return h('div', { class: 'lineage' }, title, toggle, none, stages, l.truncated ? empty('More stages lie beyond the depth shown.') : null, sources);
}

const RENDER: Record<string, (p: URLSearchParams) => Promise<HTMLElement>> = {
  lineage: viewLineage,
  refs: viewRefs,
  log: viewLog,
  files: viewFiles,
  diff: viewDiff,
  dag: viewDag,
  metrics: viewMetrics,
  params: viewParams,
};

let generation = 0;

async function render(): Promise<void> {
  const gen = ++generation;
  const { view, params } = parseHash();
  const fn = Object.hasOwn(RENDER, view) ? RENDER[view]! : viewRefs;
  const rev = params.get('rev') ?? params.get('b');
  if (rev) current = rev;
  picker.value = revLabel(current);
  renderNav(view);
  app.setAttribute('aria-busy', 'true');
  let node: HTMLElement;
  try {
    node = await fn(params);
  } catch (err) {
    node = failure(err);
  }
  if (gen !== generation) return; // a newer navigation won
  mount(app, node);
  app.setAttribute('aria-busy', 'false');
  app.dataset.view = view;
}

async function start(): Promise<void> {
  document.body.append(header(), app);
  try {
    refs = await get<Refs>('refs');
  } catch (err) {
    mount(app, failure(err));
    return;
  }
  document.title = `${refs.name} · tdv`;
  repoName.textContent = refs.name;
  current = refs.head?.branch ?? refs.head?.commit ?? 'HEAD';
  mount(
    revList,
    [...refs.branches, ...refs.tags].map((r) => h('option', { value: r.name })),
  );
  window.addEventListener('hashchange', () => void render());
  await render();
}

void start();
