/**
 * Per-item stages (`foreach-file`): a stage whose command processes one file
 * of an input directory into an output directory of its own. tdv runs the
 * command once per item whose content (or whose stage) changed, keeps each
 * item's result in the run-cache keyed by the item, and records the output
 * directory as one manifest in tdv.lock.
 *
 *   input dir manifest --pattern--> items (path, sha256)
 *   stage key  = hash(cmd, image, params, other deps, env, wdir, dir, pattern, out)
 *   item key   = hash(stage key, item path, item sha256)   -> run record { outs: files }
 *   output dir = union of every item's files (two items writing one name: refused)
 *
 * This module is plumbing: selecting items, keys, the command of one item and
 * the shell script that runs a batch of them. Running, caching and checkout
 * are the repository's (repo/lib/items.ts).
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import picomatch from 'picomatch';
import type { ManifestEntry } from '../formats/manifest.js';
import { posixShellWord } from '../formats/paths.js';
import type { StageInputs } from './status.js';

/** A stage's `foreach-file`, resolved: repo-relative input directory and the pattern items match. */
export interface ItemSpec {
  dir: string;
  pattern: string;
}

/** One input file of a per-item stage. */
export interface Item {
  /** Path relative to the input directory (as in its manifest). */
  rel: string;
  sha256: string;
  size: number;
}

/** The default pattern: every file, at any depth. */
export const ALL_FILES = '**';

/** Names `${...}` may use in a per-item command, besides `${out}`. */
export const ITEM_FIELDS = ['name', 'stem', 'ext', 'rel', 'dir'] as const;

/** Why a pattern is not usable, or undefined. */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.trim() === '') return 'is empty';
  if (pattern.startsWith('/')) return 'is absolute: write it relative to the input directory';
  if (pattern.split('/').includes('..')) return 'goes up with "..": it matches paths inside the input directory only';
  try {
    picomatch.makeRe(pattern, { dot: true });
  } catch (err) {
    return `is not a glob pattern (${(err as Error).message})`;
  }
  return undefined;
}

/**
 * The items of a directory: its manifest's files matching `pattern` (a
 * pattern without `/` matches the file name at any depth, as in .gitignore;
 * with one, the path inside the directory). Dot files match too.
 */
export function selectItems(entries: readonly ManifestEntry[], pattern: string): Item[] {
  const all = pattern === ALL_FILES;
  const match = all ? undefined : picomatch(pattern, { dot: true, basename: !pattern.includes('/') });
  const out: Item[] = [];
  for (const e of entries) if (!match || match(e.relpath)) out.push({ rel: e.relpath, sha256: e.sha256, size: e.size });
  return out;
}

/**
 * What every item's result depends on besides the item: the command, image,
 * params, env, working directory, the stage's other deps, and where items come
 * from and go. A change to any of them reruns every item.
 */
export function itemsStageKey(stage: { cmd: string | string[]; wdir: string; env: Record<string, string>; outs: readonly string[] }, spec: ItemSpec, inputs: StageInputs): string {
  const canonical = JSON.stringify({
    kind: 'foreach-file',
    cmd: stage.cmd,
    image: inputs.image ?? null,
    wdir: stage.wdir,
    env: Object.entries(stage.env).sort(),
    deps: inputs.deps
      .filter((d) => d.path !== spec.dir)
      .map((d) => [d.path, d.sha256])
      .sort(),
    params: Object.entries(inputs.params)
      .sort()
      .map(([f, kv]) => [f, Object.entries(kv).sort()]),
    dir: spec.dir,
    pattern: spec.pattern,
    outs: [...stage.outs],
  });
  return createHash('sha256').update(canonical).digest('hex');
}

/** The run-cache key of one item's result: its stage's key, its path (commands use its name) and its content. */
export function itemKey(stageKey: string, item: Pick<Item, 'rel' | 'sha256'>): string {
  return createHash('sha256').update(`item\0${stageKey}\0${item.rel}\0${item.sha256}`).digest('hex');
}

/** `${item}`, `${item.<field>}` and `${out}` in a per-item command (a backslash before `$` keeps one as written). */
const ITEM_REF = /(\\?)\$\{\s*(item(?:\.([A-Za-z_]+))?|out)\s*\}/g;

/** The references in a per-item command that are not ones tdv knows (`${item.size}`), for load-time errors. */
export function unknownItemRefs(cmd: string): string[] {
  const bad: string[] = [];
  for (const m of cmd.matchAll(ITEM_REF)) {
    if (m[1]) continue;
    const field = m[3];
    if (field !== undefined && !(ITEM_FIELDS as readonly string[]).includes(field)) bad.push(m[0]);
  }
  return bad;
}

/** Whether a command names `${out}` (a per-item command that writes nothing there produces nothing). */
export function usesOut(cmd: string): boolean {
  for (const m of cmd.matchAll(ITEM_REF)) if (!m[1] && m[2] === 'out') return true;
  return false;
}

/** The values `${item...}` and `${out}` stand for, for one item; paths relative to the stage's wdir. */
export interface ItemVars {
  item: string;
  name: string;
  stem: string;
  ext: string;
  rel: string;
  dir: string;
  out: string;
}

/** The variables of item `rel` of directory `dir` (repo-relative), seen from `wdir`, writing into `out`. */
export function itemVars(dir: string, rel: string, wdir: string, out: string): ItemVars {
  const repoPath = dir === '.' ? rel : `${dir}/${rel}`;
  const item = path.posix.relative(wdir === '.' ? '' : wdir, repoPath) || '.';
  const name = path.posix.basename(rel);
  const dot = name.lastIndexOf('.');
  const ext = dot > 0 ? name.slice(dot) : '';
  return { item: notOption(item), name, stem: ext ? name.slice(0, dot) : name, ext, rel: notOption(rel), dir: notOption(path.posix.dirname(rel)), out };
}

/**
 * A relative path starting with `-` as `./-...`: the same path, never an option to the command
 * it is given to (found by the adversarial pass: with `wdir` the input directory, `cat ${item}`
 * of a file named `--version.txt` was `cat --version.txt`). Names (`${item.name}`, `.stem`) stay
 * as they are: they are not paths, and `${out}/${item.stem}.png` starts with `${out}`.
 */
function notOption(p: string): string {
  return p.startsWith('-') ? `./${p}` : p;
}

/**
 * One item's command: each reference replaced by its value as one shell word
 * (quoted when it holds anything a shell treats specially), so a file named
 * `$(rm -rf ~).jpg` is a name, never a command. Write `${item}` bare, not in
 * quotes of your own.
 */
export function itemCommand(cmd: string, vars: ItemVars): string {
  return cmd.replace(ITEM_REF, (all, esc: string, ref: string, field: string | undefined) => {
    if (esc) return all.slice(1);
    const value = ref === 'out' ? vars.out : field === undefined ? vars.item : vars[field as (typeof ITEM_FIELDS)[number]];
    return posixShellWord(value);
  });
}

/** Environment variables each item's command also gets (for scripts it calls). */
export function itemEnv(vars: ItemVars): Record<string, string> {
  return { TDV_ITEM: vars.item, TDV_ITEM_NAME: vars.name, TDV_ITEM_STEM: vars.stem, TDV_ITEM_EXT: vars.ext, TDV_ITEM_REL: vars.rel, TDV_ITEM_DIR: vars.dir, TDV_OUT: vars.out };
}

/** One item of a batch: its index (its line in the status file) and variables. */
export interface BatchItem {
  index: number;
  vars: ItemVars;
}

/**
 * The `sh` script that runs a batch of items in one process (one container):
 * each item's commands in a subshell of their own (a `cd` or `exit` stays
 * there), in its output directory made beforehand (with `mkdirs`, by the script:
 * a process per item costs ~1 ms here), then `<index> <status>` appended to
 * `statusFile`. Unless `keepGoing`, the first item that fails ends the batch
 * with its status (with `stopWithZero`, with 0). Values are data: quoted words, never shell text.
 */
export function batchScript(cmds: readonly string[], items: readonly BatchItem[], statusFile: string, keepGoing: boolean, opts: { mkdirs?: boolean; stopWithZero?: boolean } = {}): string {
  const mkdirs = opts.mkdirs === true;
  // A job elsewhere brings its outputs back only when it succeeds: it stops with 0 after a failure (the status file tells).
  const stop = opts.stopWithZero ? '0' : '"$tdv_s"';
  const lines = ['# written by tdv: one batch of a foreach-file stage', `tdv_status=${posixShellWord(statusFile)}`];
  for (const it of items) {
    const env = Object.entries(itemEnv(it.vars))
      .map(([k, v]) => `${k}=${posixShellWord(v)}`)
      .join(' ');
    const body = cmds.map((c) => `(\n${itemCommand(c, it.vars)}\n)`).join(' && ');
    lines.push(`export ${env}`);
    lines.push(mkdirs ? `mkdir -p -- "$TDV_OUT" && ${body}` : body);
    lines.push(`tdv_s=$?; echo "${it.index} $tdv_s" >> "$tdv_status"${keepGoing ? '' : `; [ "$tdv_s" -eq 0 ] || exit ${stop}`}`);
  }
  lines.push('exit 0', '');
  return lines.join('\n');
}

/** Parses a batch's status file: item index -> exit status. Lines it cannot read are ignored (the item then counts as not run). */
export function parseStatus(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^(\d+) (\d+)$/.exec(line);
    if (m) out.set(Number(m[1]), Number(m[2]));
  }
  return out;
}
