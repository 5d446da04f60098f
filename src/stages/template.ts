import path from 'node:path';
import { FormatError } from '../errors.js';
import { relPathProblem } from '../formats/paths.js';
import { isMapping } from '../formats/schema.js';
import { parseYaml } from '../util/yaml.js';
import { Guard } from '../workspace/guard.js';
import { parseValues } from './values.js';

/**
 * Templating of `tdv.yaml`, as DVC users know it from `dvc.yaml`:
 *
 *   vars:                       # merged, in order, over params.yaml (read when `${` is used)
 *     - config.json:train,lr    # a file, or some of its top-level keys
 *     - {out: results}          # inline values
 *   stages:
 *     train:   {cmd: python train.py --lr ${lr}}            -> stage "train"
 *     build:   {foreach: [us, uk], do: {cmd: ./b ${item}}}  -> "build@us", "build@uk"
 *     fit:     {matrix: {m: [a, b], n: [1, 2]}, cmd: ...}   -> "fit@a-1" ... "fit@b-2"
 *     eval:    {vars: [{k: 5}], cmd: eval --k ${k}}         -> a stage's own vars (under do: in a foreach)
 *
 * `${a.b}` inside a string puts a string, number or boolean there; a value that
 * is only `${a.b}` keeps its type (a list of deps, a number for env). `\${`
 * is a literal `${` (for a shell's `${HOME}`, or write `$HOME`).
 *
 * A value from a params file is recorded as that file's params key of the
 * stage, so `tdv params diff` shows it and a change of it reruns the stage
 * even where it is not part of the stage's identity (an env value). An inline
 * value changes the command or paths it is substituted into, which already
 * make the stage's identity in tdv.lock.
 */

/** The default params file, read for `${...}` like DVC's `params.yaml`. */
const DEFAULT_PARAMS = 'params.yaml';

/** One stage after expansion: its name, its body with every `${...}` resolved, and where it was written. */
export interface ExpandedStage {
  name: string;
  /** The name as written in tdv.yaml (`build` of `build@us`). */
  written: string;
  body: unknown;
  /** Where a key path of `body` was written in tdv.yaml (the `do:` of a foreach): `tdv.yaml:line:col`. */
  at: (keys: (string | number)[]) => string;
  /** Params keys whose values the stage's fields took (file repo-relative, dotted key), sorted. */
  params: { file: string; key: string }[];
}

export interface ExpandOptions {
  /** The text of tdv.yaml: params.yaml is read only when it uses `${`. */
  text: string;
  /** Parsed content of a params file (repo-relative), undefined when absent; `source` names who named it (fileReader). */
  readFile: (file: string, source: string) => Promise<unknown>;
}

/** Reads a params/vars file under `root` through a guard (no symlinks, nothing outside). */
export function fileReader(root: string): ExpandOptions['readFile'] {
  const guard = new Guard(root);
  return async (file, source) => {
    const text = guard.readText(file, { source });
    return text === undefined ? undefined : parseValues(text, file);
  };
}

/**
 * The stages of a tdv.yaml text, expanded, for readers of a pipeline at a
 * revision (metrics, params) that have no workspace: `read` gives a file's
 * text at that revision. Positions are `<shown>:line:col`.
 */
export async function expandText(text: string, shown: string, read: (file: string) => string | undefined): Promise<ExpandedStage[]> {
  const y = await parseYaml(text, shown).catch((e: unknown) => {
    throw withQuoteHint(e, text);
  });
  if (!isMapping(y.value)) return [];
  const where = (keys: Keys) => y.where(shown, keys);
  return expandStages(y.value, where, {
    text,
    readFile: async (file) => {
      const t = read(file);
      return t === undefined ? undefined : parseValues(t, file);
    },
  });
}

type Keys = (string | number)[];
type At = (keys: Keys) => string;
type Dict = Record<string, unknown>;

const kind = (v: unknown) => (v === null || v === undefined ? 'empty (null)' : Array.isArray(v) ? 'a list' : isMapping(v) ? 'a mapping' : `a ${typeof v}`);

/** `o[k] = v` as an own property, even for `__proto__` (a YAML key like any other), which assignment would make the prototype. */
function setOwn(o: Dict, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** A value and, when it came from the global context, its path there (for params tracking). */
interface Bound {
  value: unknown;
  path?: string[];
}

/** Where each leaf of the global context came from: a label for messages, the file for tracking. */
interface Origin {
  label: string;
  file?: string;
  key?: string;
}

/**
 * The variables of tdv.yaml: params.yaml's and those of `vars`, merged; a
 * leaf defined twice (by different sources) is an error, as in DVC.
 */
class Context {
  constructor(
    readonly data: Dict = {},
    /** Dotted path of every leaf (reached through mappings only) -> its origin. */
    readonly leaves = new Map<string, Origin>(),
    private readonly wholeFiles = new Set<string>(),
    /** The lines of tdv.yaml, to point an error at the `${...}` itself. */
    private readonly lines: readonly string[] = [],
  ) {}

  /** A copy to merge a stage's own `vars` into, leaving the pipeline's as they are. */
  child(): Context {
    return new Context(structuredClone(this.data), new Map(this.leaves), new Set(this.wholeFiles), this.lines);
  }

  /**
   * `at` (`file:line:col` of a field) moved to where `ref` is written on that
   * line, when it is there (a one-line value); else `at` as it is.
   */
  refine(at: string, ref: string): string {
    const m = /^(.*):(\d+):(\d+)$/.exec(at);
    const i = m ? (this.lines[Number(m[2]) - 1]?.indexOf(ref, Number(m[3]) - 1) ?? -1) : -1;
    return m && i >= 0 ? `${m[1]}:${m[2]}:${i + 1}` : at;
  }

  merge(src: Dict, origin: (dotted: string) => Origin, at: string): void {
    const walk = (target: Dict, from: Dict, prefix: string[]) => {
      for (const [k, v] of Object.entries(from)) {
        const p = [...prefix, k];
        const dotted = p.join('.');
        if (Object.hasOwn(target, k)) {
          if (isMapping(target[k]) && isMapping(v)) {
            walk(target[k] as Dict, v, p);
            continue;
          }
          const before = this.ownerOf(dotted);
          const now = origin(dotted);
          if (before && before.label === now.label && before.key === now.key) continue; // the same file twice
          throw new FormatError(at, `variable "${dotted}" from ${now.label} is already defined by ${before?.label ?? 'another source'}`, 'Give it another name in one of them');
        }
        setOwn(target, k, v);
        this.record(v, p, origin);
      }
    };
    walk(this.data, src, []);
  }

  /** Whether `file` was already merged whole (a second `- params.yaml` is a no-op). */
  once(file: string): boolean {
    if (this.wholeFiles.has(file)) return false;
    this.wholeFiles.add(file);
    return true;
  }

  private record(v: unknown, p: string[], origin: (dotted: string) => Origin): void {
    if (isMapping(v) && Object.keys(v).length > 0) for (const [k, c] of Object.entries(v)) this.record(c, [...p, k], origin);
    else {
      // A key holding a dot cannot be named as a params key (`a.b` is a inside b): not tracked, only substituted.
      const o = origin(p.join('.'));
      this.leaves.set(p.join('.'), p.some((k) => k.includes('.')) ? { label: o.label } : o);
    }
  }

  private ownerOf(dotted: string): Origin | undefined {
    const exact = this.leaves.get(dotted);
    if (exact) return exact;
    for (const [k, o] of this.leaves) if (k.startsWith(`${dotted}.`)) return o;
    return undefined;
  }
}

/**
 * Expands the stages of a parsed tdv.yaml (`doc`, a mapping) into plain
 * stages: `vars` loaded, `foreach` and `matrix` unrolled, `${...}` resolved.
 * `where` maps a key path of the document to `tdv.yaml:line:col`.
 */
export async function expandStages(doc: Dict, where: At, opts: ExpandOptions): Promise<ExpandedStage[]> {
  const global = new Context({}, new Map(), new Set(), opts.text.split('\n'));
  if (opts.text.includes('${')) {
    const params = await opts.readFile(DEFAULT_PARAMS, 'tdv.yaml');
    if (params !== undefined && params !== null) {
      if (!isMapping(params)) throw new FormatError(DEFAULT_PARAMS, 'must be a mapping of parameter names to values, for ${...} in tdv.yaml');
      global.once(DEFAULT_PARAMS);
      global.merge(params, (dotted) => ({ label: DEFAULT_PARAMS, file: DEFAULT_PARAMS, key: dotted }), where(['vars']));
    }
  }
  await loadVars(global, doc.vars, where, opts);
  const stages = doc.stages;
  if (!isMapping(stages)) return [];
  const out: ExpandedStage[] = [];
  const made = new Map<string, string>();
  const add = (s: ExpandedStage, by: string) => {
    const other = made.get(s.name);
    if (other !== undefined) throw new FormatError(s.at([]), `stage name "${s.name}" is made twice (${other} and ${by})`, 'Make the foreach keys or matrix values distinct');
    made.set(s.name, by);
    out.push(s);
  };
  for (const [name, raw] of Object.entries(stages)) {
    const at: At = (keys) => where(['stages', name, ...keys]);
    const ctx = await stageContext(global, raw, at, opts);
    if (isMapping(raw) && raw.foreach !== undefined) {
      for (const s of foreach(ctx, name, raw, at)) add(s, `entry "${s.name.slice(name.length + 1)}" of its foreach`);
    } else if (isMapping(raw) && raw.matrix !== undefined) {
      for (const s of matrix(ctx, name, raw, at)) add(s, `matrix values "${s.name.slice(name.length + 1)}"`);
    } else if (isMapping(raw) && raw.do !== undefined) {
      throw new FormatError(at(['do']), `stage "${name}" has "do" but no "foreach"`, 'Add foreach: with the list or mapping to iterate over');
    } else add(resolveStage(ctx, name, name, raw, at, new Map()), `stage "${name}"`);
  }
  return out;
}

/**
 * The variables a stage sees: the pipeline's, plus its own `vars` (under `do:`
 * for a foreach, whose entries are resolved with the pipeline's), as in DVC.
 * A name the pipeline defines cannot be defined again.
 */
async function stageContext(global: Context, raw: unknown, at: At, opts: ExpandOptions): Promise<Context> {
  if (!isMapping(raw)) return global;
  const prefix = raw.foreach !== undefined && isMapping(raw.do) ? ['do'] : [];
  const vars = prefix.length ? (raw.do as Dict).vars : raw.vars;
  if (vars === undefined) return global;
  const ctx = global.child();
  await loadVars(ctx, vars, (keys) => at([...prefix, ...keys]), opts);
  return ctx;
}

async function loadVars(ctx: Context, vars: unknown, where: At, opts: ExpandOptions): Promise<void> {
  if (vars === undefined || vars === null) return;
  if (!Array.isArray(vars)) throw new FormatError(where(['vars']), '"vars" must be a list of params files and mappings of values', 'e.g. vars: [params.yaml, {out: results}]');
  for (const [i, entry] of vars.entries()) {
    const at = where(['vars', i]);
    if (isMapping(entry)) {
      ctx.merge(entry, () => ({ label: `vars entry ${i + 1} (${at})` }), at);
      continue;
    }
    if (typeof entry !== 'string' || entry.trim() === '') throw new FormatError(at, `entry ${i + 1} of "vars" must be a params file (file.yaml or file.yaml:key1,key2) or a mapping of values`);
    if (entry.includes('${')) throw new FormatError(at, `entry ${i + 1} of "vars" cannot use \${...}`, 'Name the file as it is');
    // `file:key1,key2` takes some top-level keys of the file, as in DVC.
    const colon = entry.lastIndexOf(':');
    const fileRaw = colon > 0 ? entry.slice(0, colon) : entry;
    const keys =
      colon > 0
        ? entry
            .slice(colon + 1)
            .split(',')
            .map((k) => k.trim())
            .filter((k) => k !== '')
        : undefined;
    const file = path.posix.normalize(fileRaw.replace(/^\.\//, ''));
    const problem = relPathProblem(file);
    if (problem !== undefined || path.posix.isAbsolute(fileRaw))
      throw new FormatError(at, `vars file ${JSON.stringify(fileRaw)} ${problem ?? 'is absolute'}`, 'Name a params file inside the repository, relative to its root');
    if (keys === undefined && !ctx.once(file)) continue;
    const content = await opts.readFile(file, at);
    if (content === undefined) throw new FormatError(at, `vars file ${JSON.stringify(file)} does not exist`, 'Create it, or remove it from vars');
    if (!isMapping(content)) throw new FormatError(at, `vars file ${JSON.stringify(file)} must hold a mapping of names to values`);
    let picked: Dict = content;
    if (keys !== undefined) {
      picked = {};
      for (const k of keys) {
        if (!Object.hasOwn(content, k)) throw new FormatError(at, `vars file ${JSON.stringify(file)} has no key "${k}"`, `Add it to ${file}, or remove it from this entry`);
        setOwn(picked, k, content[k]);
      }
    }
    ctx.merge(picked, (dotted) => ({ label: file, file, key: dotted }), at);
  }
}

/** DVC's key of a foreach entry: the value itself for a list of plain values, its index when the list holds mappings or lists. */
function foreachEntries(v: unknown[] | Dict): [string, unknown, boolean][] {
  if (!Array.isArray(v)) return Object.entries(v).map(([k, x]) => [k, x, true]);
  const composite = v.some((x) => typeof x === 'object' && x !== null);
  return v.map((x, i) => [composite ? String(i) : scalarText(x), x, false]);
}

function foreach(ctx: Context, name: string, raw: Dict, at: At): ExpandedStage[] {
  for (const k of Object.keys(raw)) {
    if (k !== 'foreach' && k !== 'do') throw new FormatError(at([k]), `stage "${name}" has "${k}" beside "foreach"`, 'Put the stage\'s keys under "do:"');
  }
  if (!isMapping(raw.do))
    throw new FormatError(at(raw.do === undefined ? ['foreach'] : ['do']), `stage "${name}" has "foreach" but no "do" mapping`, 'Add do: with the stage to make for each entry (cmd, deps, outs...)');
  let bound: Bound = { value: raw.foreach };
  if (typeof raw.foreach === 'string') bound = wholeRef(ctx, raw.foreach, new Map(), at(['foreach']), name) ?? bound;
  else bound = { value: walk(plain(ctx, name), raw.foreach, ['foreach'], at) };
  const list = bound.value;
  if (!Array.isArray(list) && !isMapping(list)) {
    throw new FormatError(at(['foreach']), `"foreach" of stage "${name}" is ${kind(list)}, not a list or mapping`, 'Write a list, a mapping, or ${name} of one from vars or params.yaml');
  }
  reserved(ctx, name, at(['foreach']), ['item', 'key']);
  const body = raw.do;
  const first = new Map<string, number>();
  return foreachEntries(list).map(([key, value, isKey], i) => {
    const pos = at(Array.isArray(raw.foreach) ? ['foreach', i] : ['foreach']);
    checkKey(name, key, pos);
    const before = first.get(key);
    if (before !== undefined) {
      throw new FormatError(
        pos,
        `"foreach" of stage "${name}" gives the name "${name}@${key}" to entries ${before + 1} and ${i + 1}`,
        'A list of plain values names the stages after the values: make them distinct, or iterate over a mapping whose keys name the stages',
      );
    }
    first.set(key, i);
    const keyPath = Array.isArray(list) ? String(i) : key;
    const locals = new Map<string, Bound>([['item', { value, ...(bound.path ? { path: [...bound.path, keyPath] } : {}) }]]);
    if (isKey) locals.set('key', { value: key });
    return resolveStage(ctx, name, `${name}@${key}`, body, (keys) => at(['do', ...keys]), locals);
  });
}

/** Most stages one matrix may make: far beyond a real pipeline, far below what exhausts memory. */
const MAX_MATRIX = 10_000;

function matrix(ctx: Context, name: string, raw: Dict, at: At): ExpandedStage[] {
  const m = raw.matrix;
  if (!isMapping(m) || Object.keys(m).length === 0)
    throw new FormatError(at(['matrix']), `"matrix" of stage "${name}" must be a mapping of names to lists`, 'e.g. matrix: {model: [a, b], seed: [1, 2]}');
  const axes: { name: string; values: unknown[]; path?: string[] }[] = [];
  for (const [axis, v] of Object.entries(m)) {
    let b: Bound = { value: v };
    if (typeof v === 'string') b = wholeRef(ctx, v, new Map(), at(['matrix', axis]), name) ?? b;
    else b = { value: walk(plain(ctx, name), v, ['matrix', axis], at) };
    if (!Array.isArray(b.value))
      throw new FormatError(
        at(['matrix', axis]),
        `"${axis}" of the matrix of stage "${name}" is ${kind(b.value)}, not a list`,
        'Write a list of values, or ${name} of a list from vars or params.yaml',
      );
    axes.push({ name: axis, values: b.value, ...(b.path ? { path: b.path } : {}) });
  }
  reserved(ctx, name, at(['matrix']), ['item', 'key']);
  const body = Object.fromEntries(Object.entries(raw).filter(([k]) => k !== 'matrix'));
  // A few lines of YAML can name more combinations than memory holds (12 axes of 10: 10^12):
  // counted before any is built, so such a file is one error and not an out-of-memory crash.
  const count = axes.reduce((n, a) => n * a.values.length, 1);
  if (count > MAX_MATRIX) throw new FormatError(at(['matrix']), `the matrix of stage "${name}" makes ${count} combinations, more than ${MAX_MATRIX}`, 'Use fewer axes or values, or split the stage');
  // The cartesian product, first axis slowest, as DVC orders it.
  let combos: number[][] = [[]];
  for (const a of axes) combos = combos.flatMap((c) => a.values.map((_, i) => [...c, i]));
  const seen = new Set<string>();
  return combos.map((c) => {
    const item: Dict = {};
    const parts: string[] = [];
    axes.forEach((a, j) => {
      const v = a.values[c[j]!];
      setOwn(item, a.name, v);
      // DVC's name part: the value, or axis name and index for a mapping or list.
      parts.push(typeof v === 'object' && v !== null ? `${a.name}${c[j]}` : scalarText(v));
    });
    const key = parts.join('-');
    checkKey(name, key, at(['matrix']));
    if (seen.has(key))
      throw new FormatError(
        at(['matrix']),
        `the matrix of stage "${name}" gives the name "${name}@${key}" to two combinations`,
        'Make the values of each axis distinct (1 and "1" name a stage alike)',
      );
    seen.add(key);
    const locals = new Map<string, Bound>([
      ['item', { value: item }],
      ['key', { value: key }],
    ]);
    // `${item.<axis>}` of an axis that came from the context is tracked through that path.
    const paths = new Map<string, string[]>();
    axes.forEach((a, j) => a.path && paths.set(a.name, [...a.path, String(c[j])]));
    return resolveStage(ctx, name, `${name}@${key}`, body, at, locals, paths);
  });
}

/** A resolver without locals or tracking: for the values a foreach or matrix iterates over, which name the stages. */
const plain = (ctx: Context, stage: string): Resolver => ({ ctx, locals: new Map(), stage, track: () => undefined });

/** A generated name is a target on the command line and a log file name: keep it plain. */
function checkKey(stage: string, key: string, at: string): void {
  if (!/^[A-Za-z0-9_.,+=-]{1,128}$/.test(key) || key === '.' || key === '..') {
    throw new FormatError(
      at,
      `stage "${stage}" would be named ${JSON.stringify(`${stage}@${key}`)}, which is not allowed`,
      'Use keys or values of letters, digits, ".", "_", "-", "+", "=" and ","; or iterate over a mapping whose keys name the stages',
    );
  }
}

function reserved(ctx: Context, stage: string, at: string, names: string[]): void {
  for (const n of names) {
    if (Object.hasOwn(ctx.data, n)) throw new FormatError(at, `variable "${n}" (${ctx.leaves.get(n)?.label ?? 'from vars'}) would be hidden by the "${n}" of stage "${stage}"`, 'Rename the variable');
  }
}

function resolveStage(ctx: Context, written: string, name: string, raw: unknown, at: At, locals: Map<string, Bound>, itemPaths?: Map<string, string[]>): ExpandedStage {
  const used = new Map<string, { file: string; key: string }>();
  const track = (b: Bound) => {
    if (!b.path || b.path.some((p) => p.includes('.'))) return;
    const dotted = b.path.join('.');
    for (const [k, o] of ctx.leaves) {
      if (o.file !== undefined && (k === dotted || k.startsWith(`${dotted}.`))) used.set(`${o.file}\0${k}`, { file: o.file, key: k });
    }
  };
  const resolver: Resolver = { ctx, locals, stage: name, track, ...(itemPaths ? { itemPaths } : {}) };
  // A per-item stage's command names `${item...}` and `${out}`, which tdv fills in for each item
  // when it runs (stages/items.ts): left as written there. A foreach or matrix sets `item` too.
  let perItem: Resolver | undefined;
  if (isMapping(raw) && raw['foreach-file'] !== undefined) {
    if (locals.has('item')) {
      throw new FormatError(at(['foreach-file']), `stage "${name}" has "foreach-file" inside a foreach or matrix: both set \${item}`, 'Make it a stage of its own, outside the foreach or matrix');
    }
    reserved(ctx, name, at(['foreach-file']), ['item', 'out']);
    perItem = { ...resolver, runtime: new Set(['item', 'out']) };
  }
  // A `cmd` YAML read as a mapping is load.ts's to refuse, with its hint to quote it.
  // `meta` is free data for other tools, which may use ${...} themselves: left as written.
  const entries = isMapping(raw) ? Object.entries(raw).filter(([k]) => k !== 'vars') : [];
  const body = isMapping(raw) ? Object.fromEntries(entries.map(([k, v]) => [k, k === 'meta' ? v : walk(k === 'cmd' && perItem ? perItem : resolver, v, [k], at)])) : raw;
  const params = [...used.values()].sort((a, b) => (a.file === b.file ? (a.key < b.key ? -1 : 1) : a.file < b.file ? -1 : 1));
  return { name, written, body, at, params };
}

interface Resolver {
  ctx: Context;
  locals: Map<string, Bound>;
  stage: string;
  track: (b: Bound) => void;
  itemPaths?: Map<string, string[]>;
  /** Names filled in when the stage runs, left as written (a per-item stage's `item` and `out`). */
  runtime?: ReadonlySet<string>;
}

function walk(r: Resolver, v: unknown, keys: Keys, at: At): unknown {
  if (typeof v === 'string') return interpolate(r, v, at(keys));
  if (Array.isArray(v)) return v.map((x, i) => walk(r, x, [...keys, i], at));
  if (isMapping(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(r, x, [...keys, k], at)]));
  return v;
}

/** `${...}` occurrences: an optional backslash (the escape), then the expression up to the first `}`. */
const REF = /(\\?)\$\{([^{}]*)\}/g;

/** The value of `s` when it is exactly one `${...}` (typed), else undefined. */
function wholeRef(ctx: Context, s: string, locals: Map<string, Bound>, at: string, stage: string): Bound | undefined {
  const m = /^\$\{([^{}]*)\}$/.exec(s);
  return m ? lookup({ ctx, locals, stage, track: () => undefined }, m[1]!, at) : undefined;
}

/**
 * Resolves the references in one string. A string that is only `${x}` takes
 * x's value with its type; elsewhere a reference must be a string, number or
 * boolean, written as text.
 */
export function interpolateString(s: string, lookupFn: (expr: string) => unknown, at: string | ((ref: string) => string)): unknown {
  const whole = /^\$\{([^{}]*)\}$/.exec(s);
  if (whole) return lookupFn(whole[1]!);
  if (!s.includes('${')) return s;
  return s.replace(REF, (all, esc: string, expr: string) => {
    if (esc) return all.slice(1);
    const v = lookupFn(expr);
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return scalarText(v);
    throw new FormatError(
      typeof at === 'string' ? at : at(all),
      `\${${expr.trim()}} is ${kind(v)}, which cannot be put inside a string`,
      `Use it as the whole value, or name one of its entries such as \${${expr.trim()}.<key>}`,
    );
  });
}

function interpolate(r: Resolver, s: string, at: string): unknown {
  const pos = (ref: string) => r.ctx.refine(at, ref);
  return interpolateString(
    s,
    (expr) => {
      const b = lookup(r, expr, pos(`\${${expr}}`));
      r.track(b);
      return b.value;
    },
    pos,
  );
}

/** `a.b.0` or `a.b[0]` -> ['a', 'b', '0']; undefined for what is not a reference. */
export function parseRef(expr: string): string[] | undefined {
  const e = expr.trim();
  if (!/^[A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*$/.test(e)) return undefined;
  return e.split(/\.|\[|\]/).filter((p) => p !== '');
}

function lookup(r: Resolver, expr: string, at: string): Bound {
  const parts = parseRef(expr);
  if (!parts) {
    throw new FormatError(at, `\${${expr}} in stage "${r.stage}" is not a variable reference such as \${name} or \${name.key}`, 'For a literal ${ write \\${ (a shell variable can be written $NAME)');
  }
  const [head, ...rest] = parts as [string, ...string[]];
  if (r.runtime?.has(head)) return { value: `\${${expr}}` };
  const local = r.locals.get(head);
  let value: unknown;
  let p: string[] | undefined;
  if (local) {
    value = local.value;
    p = local.path;
    // `${item.axis}` of a matrix: the axis value's own path, when it came from the context.
    if (head === 'item' && !p && rest.length > 0 && r.itemPaths?.has(rest[0]!)) {
      value = (value as Dict)[rest[0]!];
      p = r.itemPaths.get(rest.shift()!);
    }
  } else if (Object.hasOwn(r.ctx.data, head)) {
    value = r.ctx.data[head];
    p = [head];
  } else {
    const known = [...r.locals.keys(), ...Object.keys(r.ctx.data)];
    throw new FormatError(
      at,
      `\${${expr.trim()}} in stage "${r.stage}" is not defined${known.length ? ` (defined: ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', ...' : ''})` : ''}`,
      head === 'key' && r.locals.has('item')
        ? 'A foreach over a list sets only ${item}; iterate over a mapping for ${key}'
        : 'Define it under vars: or in params.yaml; for a literal ${ write \\${ (a shell variable can be written $NAME)',
    );
  }
  let seen = head;
  for (const part of rest) {
    let next: unknown;
    if (Array.isArray(value) && /^\d+$/.test(part)) next = value[Number(part)];
    else if (isMapping(value) && Object.hasOwn(value, part)) next = value[part];
    if (next === undefined)
      throw new FormatError(
        at,
        `\${${expr.trim()}} in stage "${r.stage}" is not defined: "${seen}" is ${kind(value)}${isMapping(value) || Array.isArray(value) ? ` without "${part}"` : ''}`,
        `Name an existing entry${isMapping(value) ? ` (${Object.keys(value).slice(0, 8).join(', ')})` : ''}`,
      );
    value = next;
    p = p ? [...p, part] : undefined;
    seen = `${seen}.${part}`;
  }
  return { value, ...(p ? { path: p } : {}) };
}

/** How a plain value is written into a string and a stage name: booleans as true/false, as YAML writes them. */
function scalarText(v: unknown): string {
  return typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

/**
 * The stages `target` names among `names`: itself, or else every stage a
 * foreach or matrix of that name made (`fit` -> `fit@a`, `fit@b`), as
 * `dvc repro fit` does. A target that names none is returned as it is, for
 * the caller to report as unknown.
 */
export function stagesNamed(names: Iterable<string>, target: string): string[] {
  const all = [...names];
  if (all.includes(target) || target.includes('@')) return [target];
  const made = all.filter((n) => n.startsWith(`${target}@`));
  return made.length ? made : [target];
}

/**
 * Adds the params keys a stage's templated values came from to the params it
 * lists itself (each file's keys sorted, files sorted, as load.ts returns them).
 */
export function mergeParams(listed: { file: string; keys: string[] }[], used: { file: string; key: string }[]): { file: string; keys: string[] }[] {
  if (used.length === 0) return listed;
  const byFile = new Map(listed.map((p) => [p.file, new Set(p.keys)]));
  for (const u of used) {
    let keys = byFile.get(u.file);
    if (!keys) byFile.set(u.file, (keys = new Set()));
    // A listed parent key (`train`) already covers `train.lr`.
    if (![...keys].some((k) => u.key === k || u.key.startsWith(`${k}.`))) keys.add(u.key);
  }
  return [...byFile].map(([file, keys]) => ({ file, keys: [...keys].sort() })).sort((a, b) => (a.file < b.file ? -1 : 1));
}

/**
 * `e` with a hint to quote the value when it is a YAML syntax error on a
 * `key: value` line of `text` (the position is in its `file:line:col`).
 */
export function withQuoteHint(e: unknown, text: string): unknown {
  if (!(e instanceof FormatError)) return e;
  const file = String((e.data as { file?: unknown } | undefined)?.file ?? '');
  const m = /:(\d+):\d+$/.exec(file);
  const hint = m ? quoteHint(text, Number(m[1])) : undefined;
  if (!hint || !e.message.includes('invalid YAML')) return e;
  return new FormatError(file, `${e.message.slice(file.length + 2).replace(/\.$/, '')}`, hint);
}

/**
 * A hint for a YAML error on a `key: value` line of tdv.yaml: a command such
 * as `echo a: b` or `{x} y` is YAML syntax unless quoted. `line` is 1-based.
 */
export function quoteHint(text: string, line: number): string | undefined {
  const l = text.split('\n')[line - 1];
  const m = l === undefined ? null : /^\s*(?:-\s+)?([A-Za-z_][\w-]*)\s*:\s+(\S.*)$/.exec(l);
  if (!m) return undefined;
  const value = m[2]!.replace(/\r$/, '');
  // A hint quotes the line back: not one of kilobytes (a deeply nested value), which would bury the error.
  if (value.length > 200) return undefined;
  // In a flow list `[a, ${b}]` the `{` of `${` opens a mapping: quote the entries instead.
  if (/^[[{]/.test(value) && value.includes('${')) {
    return `Inside [ ] or { }, a \${...} must be quoted: ${m[1]}: ${value.replace(/([^\s,[\]{}]*\$\{[^}]*\}[^\s,[\]{}]*)/g, "'$1'")}, or write one entry per line (- ...)`;
  }
  const quoted = value.includes("'") ? JSON.stringify(value) : `'${value}'`;
  return `If ${m[1]} is meant to be this text, quote it: ${m[1]}: ${quoted}`;
}
