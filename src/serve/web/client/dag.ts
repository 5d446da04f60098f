// The pipeline DAG drawn as SVG: one column per depth (a stage sits one column
// right of its deepest upstream stage), stages in a column ordered by where
// their upstream stages sit, edges as curves from an output to a consumer.
//
//   [prepare] ──► [features] ──► [train]
//                      └───────────► [evaluate]

import type { Pipeline, Stage } from './api.js';
import { s } from './dom.js';

const NODE_W = 196;
const NODE_H = 54;
const COL_GAP = 64;
const ROW_GAP = 22;
const PAD = 16;
/** How far above the stages an edge skipping columns bows. */
const BOW = 44;

interface Placed {
  stage: Stage;
  x: number;
  y: number;
}

/** Positions of every stage: column by depth, rows by the mean row of their upstream stages. */
function layout(p: Pipeline, top: number): Map<string, Placed> {
  const cols: Stage[][] = [];
  for (const st of p.stages) (cols[st.depth] ??= []).push(st);
  const row = new Map<string, number>();
  for (const col of cols) {
    if (!col) continue;
    const key = (st: Stage) => {
      const ups = st.upstream.map((u) => row.get(u)).filter((r): r is number => r !== undefined);
      return ups.length ? ups.reduce((a, b) => a + b, 0) / ups.length : Number.POSITIVE_INFINITY;
    };
    const sorted = col.map((st, i) => ({ st, k: key(st), i })).sort((a, b) => a.k - b.k || a.i - b.i);
    sorted.forEach(({ st }, i) => row.set(st.name, i));
  }
  const tallest = Math.max(1, ...cols.map((c) => c?.length ?? 0));
  const placed = new Map<string, Placed>();
  cols.forEach((col, depth) => {
    if (!col) return;
    // Each column centred on the tallest one.
    const offset = ((tallest - col.length) * (NODE_H + ROW_GAP)) / 2;
    for (const st of col) placed.set(st.name, { stage: st, x: PAD + depth * (NODE_W + COL_GAP), y: top + offset + row.get(st.name)! * (NODE_H + ROW_GAP) });
  });
  return placed;
}

const clip = (t: string, n: number) => (t.length > n ? `${t.slice(0, n - 1)}…` : t);

function subtitle(st: Stage): string {
  if (!st.locked) return 'not run at this revision';
  if (st.image?.ref) return `docker · ${st.image.ref}`;
  if (st.image?.digest) return `docker · ${st.image.digest.slice(7, 19)}`;
  return `local · ${st.cmd[0] ?? ''}`;
}

/** The DAG as an SVG element; `select` is called with a stage's name when it is clicked (or Enter is pressed on it). */
export function drawDag(p: Pipeline, selected: string | undefined, select: (name: string) => void): SVGSVGElement {
  // An edge that skips a column bows over the stages between (room is left above them for it).
  const depthOf = new Map(p.stages.map((st) => [st.name, st.depth]));
  const skips = (e: { from: string; to: string }) => (depthOf.get(e.to) ?? 0) - (depthOf.get(e.from) ?? 0) > 1;
  const placed = layout(p, p.edges.some(skips) ? PAD + BOW : PAD);
  let w = 0;
  let hgt = 0;
  for (const n of placed.values()) {
    w = Math.max(w, n.x + NODE_W + PAD);
    hgt = Math.max(hgt, n.y + NODE_H + PAD);
  }
  const svg = s('svg', { class: 'dag', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: 'img', 'aria-label': 'pipeline stages and their dependencies' });
  svg.append(
    s(
      'defs',
      null,
      s(
        'marker',
        { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        s('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrowhead' }),
      ),
    ),
  );
  const related = new Set<string>();
  if (selected !== undefined) for (const e of p.edges) if (e.from === selected || e.to === selected) related.add(`${e.from}\u0000${e.to}`);
  for (const e of p.edges) {
    const a = placed.get(e.from);
    const b = placed.get(e.to);
    if (!a || !b) continue;
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2;
    const y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    const top = Math.min(a.y, b.y) - BOW;
    const d = skips(e) ? `M ${x1} ${y1} C ${x1 + COL_GAP} ${top}, ${x2 - COL_GAP} ${top}, ${x2} ${y2}` : `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
    svg.append(s('path', { class: `edge${related.has(`${e.from}\u0000${e.to}`) ? ' related' : ''}`, d, 'marker-end': 'url(#arrow)' }));
  }
  for (const n of placed.values()) {
    const st = n.stage;
    const cls = ['node', st.name === selected ? 'selected' : '', st.locked ? '' : 'unrun', st.metrics.length ? 'has-metrics' : ''].filter(Boolean).join(' ');
    const g = s(
      'g',
      {
        class: cls,
        transform: `translate(${n.x},${n.y})`,
        tabindex: 0,
        role: 'button',
        'data-stage': st.name,
        'aria-label': `stage ${st.name}`,
        onclick: () => select(st.name),
        onkeydown: (ev: Event) => {
          if ((ev as KeyboardEvent).key === 'Enter' || (ev as KeyboardEvent).key === ' ') select(st.name);
        },
      },
      s('title', null, st.name),
      s('rect', { width: NODE_W, height: NODE_H, rx: 8, ry: 8 }),
      s('text', { x: 14, y: 23, class: 'name' }, clip(st.name, 22)),
      s('text', { x: 14, y: 41, class: 'sub' }, clip(subtitle(st), 26)),
      st.metrics.length ? s('circle', { cx: NODE_W - 14, cy: 14, r: 4, class: 'metric-dot' }, s('title', null, 'writes metrics')) : null,
    );
    svg.append(g);
  }
  return svg;
}
