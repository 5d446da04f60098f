import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../errors.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { isInside, readTextOrUndefined, toPosix } from '../util/fs.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';
import { expandStages, fileReader, mergeParams, withQuoteHint } from './template.js';

export const PIPELINE_FILE = 'tdv.yaml';
export const PARAMS_FILE = 'params.yaml';

/** One stage of `tdv.yaml`, validated, its paths repo-relative (POSIX). */
export interface Stage {
  name: string;
  /** The command, or (list form) commands run one after another, each by its own shell; the first failure stops the stage. */
  cmd: string | string[];
  /** A Docker image reference; absent (and no `build`) means the command runs locally. */
  image?: string;
  /** Build the image from a local Dockerfile: repo-relative context directory. */
  build?: { context: string; dockerfile?: string };
  deps: string[];
  /** params.yaml keys (or other files') the stage reads. */
  params: { file: string; keys: string[] }[];
  /** Cached outputs. */
  outs: string[];
  /** Small JSON results kept in Git, not cached. */
  metrics: string[];
  env: Record<string, string>;
  /** Repo-relative working directory (`.` for the root). Paths in the stage are relative to it. */
  wdir: string;
  /** `tdv.yaml:line:col` of the stage, for messages. */
  where: string;
  /** `tdv.yaml:line:col` of each output (outs and metrics), for messages. */
  origins: Map<string, string>;
  /**
   * Outputs declared with `cache: false`: hashed and recorded in tdv.lock but
   * neither cached nor git-ignored (the user commits them to Git).
   */
  uncached?: ReadonlySet<string>;
  /** Outputs and metrics declared with `persist: true`: not deleted before the stage runs. */
  persist?: ReadonlySet<string>;
  /** `frozen: true`: never run by repro (not even with --force), its deps not checked. */
  frozen?: boolean;
  /** `always_changed: true`: repro runs it every time (and never restores it from the run-cache). */
  alwaysChanged?: boolean;
  /** Free text for people (`desc`). */
  desc?: string;
  /** Free data for tools (`meta`), ignored by tdv. */
  meta?: unknown;
}

/** A stage's commands in the order they run (`cmd` in either form). */
export function stageCommands(stage: Pick<Stage, 'cmd'>): string[] {
  return typeof stage.cmd === 'string' ? [stage.cmd] : stage.cmd;
}

export interface Pipeline {
  file: string;
  stages: Map<string, Stage>;
}

/**
 * Why a stage may not write `rel` (one of its `outs` or `metrics`), as the
 * caller knows the repository (Git-tracked files, .tdvignore), or undefined.
 */
export type OutputCheck = (rel: string, key: 'outs' | 'metrics', stage: string, flags?: { cache: boolean }) => { problem: string; fix: string } | undefined;

export interface LoadOptions {
  /** Checks every output against what only the repository knows; its answer is an error at the output's line. */
  checkOutput?: OutputCheck;
  /** The pipeline's text, instead of reading tdv.yaml: checks an edit before it is written. */
  text?: string;
}

/**
 * Files a stage may never write: tdv's own (the pipeline, its lock), and the
 * files Git and tdv read their rules from, which tdv edits to ignore outputs.
 */
const NOT_OUTPUTS: Record<string, string> = {
  'tdv.yaml': 'is the pipeline file itself',
  'tdv.lock': "is tdv's record of the pipeline's runs",
};
const CONTROL_FILES = new Set(['.gitignore', '.gitattributes', '.tdvignore']);
const POINTER_SUFFIX = '.tdv';

const STAGE_KEYS = ['cmd', 'image', 'build', 'deps', 'params', 'outs', 'metrics', 'env', 'wdir', 'frozen', 'always_changed', 'desc', 'meta'] as const;
/** Keys an entry of `outs` or `metrics` may have in its long form `- path: {cache: false}`. */
const OUT_KEYS = ['cache', 'persist', 'desc'] as const;
/** A stage name as written in tdv.yaml (foreach/matrix add `@key` to it). */
export const STAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** What to do about a name STAGE_NAME refuses. */
export const STAGE_NAME_RULE = 'Use letters, digits, ".", "_" and "-", starting with a letter or digit (at most 64)';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Loads and validates `tdv.yaml` at the repository root. Every error names
 * the file, line and column and says what to write instead. Returns undefined
 * when there is no pipeline file. Graph checks (duplicate outputs, cycles,
 * overlap with pointers) are in graph.ts.
 */
export async function loadPipeline(root: string, opts: LoadOptions = {}): Promise<Pipeline | undefined> {
  const file = path.join(root, PIPELINE_FILE);
  const text = opts.text ?? readTextOrUndefined(file, undefined, PIPELINE_FILE, { follow: false });
  if (text === undefined) return undefined;
  const shown = PIPELINE_FILE;
  const y = await parseYaml(text, shown).catch((e: unknown) => {
    throw withQuoteHint(e, text);
  });
  const stages = new Map<string, Stage>();
  const v = y.value;
  if (v === null || v === undefined) return { file, stages };
  const at = (keys: (string | number)[]) => where(y, shown, keys);
  if (typeof v !== 'object' || Array.isArray(v)) throw new FormatError(shown, 'must be a mapping with a "stages" key');
  for (const k of Object.keys(v)) if (k !== 'stages' && k !== 'vars') throw new FormatError(at([k]), `unknown key "${k}"`, 'The top level of tdv.yaml has "stages" and "vars"');
  const body = (v as { stages?: unknown }).stages;
  if (body === null || body === undefined) return { file, stages };
  if (typeof body !== 'object' || Array.isArray(body)) throw new FormatError(at(['stages']), '"stages" must be a mapping of stage names to stages');
  // vars, foreach, matrix and ${...} (template.ts): plain stages, each with where it was written.
  for (const e of await expandStages(v as Record<string, unknown>, at, { text, readFile: fileReader(root) })) {
    const stage = parseStage(root, e.written, e.name, e.body, e.at, opts);
    stages.set(e.name, { ...stage, params: mergeParams(stage.params, e.params) });
  }
  return { file, stages };
}

function where(y: YamlFile, file: string, keys: (string | number)[]): string {
  for (let n = keys.length; n > 0; n--) {
    const pos = y.posOf(keys.slice(0, n));
    if (pos) return `${file}:${pos.line}:${pos.col}`;
  }
  return file;
}

function parseStage(root: string, written: string, name: string, raw: unknown, at: (keys: (string | number)[]) => string, opts: LoadOptions): Stage {
  if (!STAGE_NAME.test(written)) {
    throw new FormatError(at([]), `stage name ${JSON.stringify(written)} is not allowed`, STAGE_NAME_RULE);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError(at([]), `stage "${name}" must be a mapping with at least "cmd"`);
  const r = raw as Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!(STAGE_KEYS as readonly string[]).includes(k)) throw new FormatError(at([k]), `unknown key "${k}" in stage "${name}"`, `Known keys: ${STAGE_KEYS.join(', ')}`);
  }
  const str = (k: string, v: unknown): string => {
    if (typeof v !== 'string' || v.trim() === '') throw new FormatError(at([k]), `"${k}" of stage "${name}" must be a non-empty string`);
    return v;
  };
  if (r.cmd === undefined) throw new FormatError(at([]), `stage "${name}" has no "cmd"`, 'Add the command to run, e.g. cmd: sh scripts/run.sh');
  const cmd = parseCmd(r.cmd, name, at);
  const flag = (k: 'frozen' | 'always_changed'): boolean => {
    if (r[k] === undefined || r[k] === null) return false;
    if (typeof r[k] !== 'boolean') throw new FormatError(at([k]), `"${k}" of stage "${name}" must be true or false`);
    return r[k];
  };
  const frozen = flag('frozen');
  const alwaysChanged = flag('always_changed');
  if (r.desc !== undefined && r.desc !== null && typeof r.desc !== 'string') throw new FormatError(at(['desc']), `"desc" of stage "${name}" must be a string`);
  if (r.image !== undefined && r.build !== undefined) {
    throw new FormatError(at(['build']), `stage "${name}" has both "image" and "build"`, 'Name an image or build one, not both');
  }
  const wdirRaw = r.wdir === undefined ? '.' : str('wdir', r.wdir);
  const wdir = repoPath(root, '.', wdirRaw, at(['wdir']), name, 'wdir');
  const origins = new Map<string, string>();
  const uncached = new Set<string>();
  const persist = new Set<string>();
  const list = (k: 'deps' | 'outs' | 'metrics'): string[] => {
    const v = r[k];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) throw new FormatError(at([k]), `"${k}" of stage "${name}" must be a list of paths`);
    const seen = new Set<string>();
    return v.map((entry: unknown, i) => {
      const { path: p, flags } = k === 'deps' ? { path: entry, flags: undefined } : outEntry(entry, k, i, name, at);
      if (typeof p !== 'string' || p.trim() === '') throw new FormatError(at([k, i]), `entry ${i + 1} of "${k}" in stage "${name}" must be a path`);
      const rel = repoPath(root, wdir, p, at([k, i]), name, k);
      if (seen.has(rel)) throw new FormatError(at([k, i]), `stage "${name}" lists ${quotePath(rel)} twice in "${k}"`);
      seen.add(rel);
      // A dep is read and hashed by tdv: never through a symlink, which could lead anywhere.
      if (k === 'deps') noSymlinkOnTheWay(root, rel, at([k, i]), name, k, true);
      if (k !== 'deps') {
        // An output kept in Git (cache: false) is still written by the stage: the same checks hold.
        const cache = k === 'outs' && flags?.cache !== false;
        checkOutput(root, rel, k, name, at([k, i]), opts.checkOutput, cache);
        origins.set(rel, at([k, i]));
        if (k === 'outs' && !cache) uncached.add(rel);
        if (flags?.persist) persist.add(rel);
      }
      return rel;
    });
  };
  let build: Stage['build'];
  if (r.build !== undefined) {
    if (typeof r.build === 'string') {
      build = { context: repoPath(root, wdir, r.build, at(['build']), name, 'build') };
      noSymlinkOnTheWay(root, build.context, at(['build']), name, 'build', true);
    } else if (typeof r.build === 'object' && r.build !== null && !Array.isArray(r.build)) {
      const b = r.build as Record<string, unknown>;
      for (const k of Object.keys(b)) if (k !== 'context' && k !== 'dockerfile') throw new FormatError(at(['build', k]), `unknown key "${k}" in "build"`, 'Known keys: context, dockerfile');
      if (typeof b.context !== 'string') throw new FormatError(at(['build']), `"build" of stage "${name}" needs "context": the directory holding the Dockerfile`);
      const context = repoPath(root, wdir, b.context, at(['build', 'context']), name, 'build.context');
      if (b.dockerfile !== undefined && typeof b.dockerfile !== 'string') throw new FormatError(at(['build', 'dockerfile']), '"dockerfile" must be a path');
      if (b.dockerfile === undefined) build = { context };
      else {
        // A path like any other of the stage (relative to the context, inside the repository),
        // read by tdv to hash it: never a symlink, a device or a file outside.
        const df = repoPath(root, context, b.dockerfile, at(['build', 'dockerfile']), name, 'build.dockerfile');
        noSymlinkOnTheWay(root, df, at(['build', 'dockerfile']), name, 'build.dockerfile', true);
        build = { context, dockerfile: path.posix.relative(context === '.' ? '' : context, df) };
      }
      noSymlinkOnTheWay(root, context, at(['build', 'context']), name, 'build.context', true);
    } else throw new FormatError(at(['build']), `"build" of stage "${name}" must be a directory or {context, dockerfile}`);
  }
  return {
    name,
    cmd,
    ...(r.image !== undefined ? { image: str('image', r.image) } : {}),
    ...(build ? { build } : {}),
    deps: list('deps'),
    params: parseParams(r.params, name, at, root, wdir),
    outs: list('outs'),
    metrics: list('metrics'),
    env: parseEnv(r.env, name, at),
    wdir,
    where: at([]),
    origins,
    ...(uncached.size ? { uncached } : {}),
    ...(persist.size ? { persist } : {}),
    ...(frozen ? { frozen } : {}),
    ...(alwaysChanged ? { alwaysChanged } : {}),
    ...(typeof r.desc === 'string' ? { desc: r.desc } : {}),
    ...(r.meta !== undefined ? { meta: r.meta } : {}),
  };
}

/** `cmd` as a string, or a non-empty list of non-empty strings (each run by its own shell, in order). */
function parseCmd(v: unknown, name: string, at: (keys: (string | number)[]) => string): string | string[] {
  if (typeof v === 'string' && v.trim() !== '') return v;
  if (Array.isArray(v) && v.length > 0) {
    v.forEach((c, i) => {
      if (typeof c !== 'string' || c.trim() === '') {
        throw new FormatError(
          at(['cmd', i]),
          `entry ${i + 1} of "cmd" in stage "${name}" must be a non-empty command string`,
          'Quote a command that YAML reads as something else, e.g. - "echo: done"',
        );
      }
    });
    return v as string[];
  }
  const misread = v !== null && v !== undefined && typeof v !== 'string' && !Array.isArray(v);
  throw new FormatError(
    at(['cmd']),
    `"cmd" of stage "${name}" must be a command or a list of commands${misread ? `, but YAML reads it as ${typeof v === 'object' ? 'a mapping' : `the ${typeof v} ${JSON.stringify(v)}`}` : ''}`,
    misread ? 'Quote the command: cmd: "echo key: value"' : 'Write cmd: python train.py, or a list with one command per line',
  );
}

/**
 * An entry of `outs` or `metrics`: a path, or the long form `- path: {cache:
 * false, persist: true, desc: ...}` (one key, the path). Unknown options are
 * errors: a misspelt `cahce: false` would otherwise cache a file the user
 * means to commit.
 */
function outEntry(entry: unknown, k: 'outs' | 'metrics', i: number, name: string, at: (keys: (string | number)[]) => string): { path: unknown; flags?: { cache?: boolean; persist?: boolean } } {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return { path: entry };
  const keys = Object.keys(entry);
  if (keys.length !== 1) throw new FormatError(at([k, i]), `entry ${i + 1} of "${k}" in stage "${name}" must be a path, or one path with its options`, 'Write - out/model.bin: {cache: false}');
  const p = keys[0]!;
  const opts = (entry as Record<string, unknown>)[p];
  if (opts === null || opts === undefined) return { path: p };
  if (typeof opts !== 'object' || Array.isArray(opts))
    throw new FormatError(at([k, i, p]), `the options of ${JSON.stringify(p)} in stage "${name}" must be a mapping`, `Known options: ${OUT_KEYS.join(', ')}`);
  const o = opts as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(OUT_KEYS as readonly string[]).includes(key))
      throw new FormatError(at([k, i, p, key]), `unknown option "${key}" of ${JSON.stringify(p)} in stage "${name}"`, `Known options: ${OUT_KEYS.join(', ')}`);
  }
  for (const key of ['cache', 'persist'] as const) {
    if (o[key] !== undefined && typeof o[key] !== 'boolean') throw new FormatError(at([k, i, p, key]), `"${key}" of ${JSON.stringify(p)} in stage "${name}" must be true or false`);
  }
  if (o.desc !== undefined && typeof o.desc !== 'string') throw new FormatError(at([k, i, p, 'desc']), `"desc" of ${JSON.stringify(p)} in stage "${name}" must be a string`);
  if (k === 'metrics' && o.cache === true) {
    throw new FormatError(
      at([k, i, p, 'cache']),
      `metrics ${JSON.stringify(p)} of stage "${name}" cannot be cached: metrics are small files kept in Git`,
      'Remove "cache: true", or list the file under "outs"',
    );
  }
  const flags: { cache?: boolean; persist?: boolean } = {};
  if (typeof o.cache === 'boolean') flags.cache = o.cache;
  if (typeof o.persist === 'boolean') flags.persist = o.persist;
  return { path: p, flags };
}

/**
 * An output is deleted before its stage runs and replaced by what the stage
 * wrote: it must name nothing else. Not tdv's or Git's own files, not a
 * pointer, and not (through `check`) what the repository keeps otherwise.
 * Its parent directories must be real directories, never a symlink: the guard
 * refuses to write through one, so a pipeline that would is refused here,
 * before anything is deleted.
 */
function checkOutput(root: string, rel: string, key: 'outs' | 'metrics', stage: string, at: string, check: OutputCheck | undefined, cache: boolean): void {
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  const refuse = (problem: string, fix: string) => new FormatError(at, `${key} path ${quotePath(rel)} of stage "${stage}" ${problem}`, fix);
  const own = NOT_OUTPUTS[rel];
  if (own !== undefined) throw refuse(own, 'A stage cannot write it; name a file of its own');
  if (name.endsWith(POINTER_SUFFIX)) throw refuse(`ends in ${POINTER_SUFFIX}, the name of a tdv pointer file`, 'Name the output without that suffix');
  // repro git-ignores an output with a line `/<name>` in its directory's .gitignore, which has
  // no escape for a line break: such a name would end the line and write a rule of its own.
  if (/[\n\r]/.test(name)) throw refuse('has a line break in its name, which a .gitignore line cannot hold', 'Rename the output');
  if (CONTROL_FILES.has(name)) throw refuse(`is a ${name} file, which holds Git's or tdv's rules (tdv edits .gitignore files to ignore outputs)`, 'Name a file of its own');
  let dir = '';
  for (const part of rel.split('/').slice(0, -1)) {
    dir = dir === '' ? part : `${dir}/${part}`;
    const st = fs.lstatSync(path.join(root, dir), { throwIfNoEntry: false });
    if (st === undefined || !st.isDirectory()) {
      if (st?.isSymbolicLink()) {
        let target = '';
        try {
          target = ` (-> ${quotePath(fs.readlinkSync(path.join(root, dir)))})`;
        } catch {
          /* gone meanwhile: the message still names it */
        }
        throw refuse(`goes through the symlink ${quotePath(dir)}${target}`, `tdv never writes through a symlink; replace ${quotePath(dir)} with a real directory, or name the output's real path`);
      }
      break; // missing: made as a real directory; a file: the stage fails to write there
    }
  }
  const why = check?.(rel, key, stage, { cache });
  if (why) throw refuse(why.problem, why.fix);
}

/** `path` (relative to `wdir`) as a repo-relative POSIX path; errors for paths leaving the repo or into .git/.tdv. */
function repoPath(root: string, wdir: string, p: string, at: string, stage: string, key: string): string {
  if (path.isAbsolute(p)) throw new FormatError(at, `${key} path ${JSON.stringify(p)} of stage "${stage}" is absolute`, "Write it relative to the stage's wdir");
  const abs = path.resolve(root, wdir, p);
  if (!isInside(root, abs)) throw new FormatError(at, `${key} path ${JSON.stringify(p)} of stage "${stage}" is outside the repository`, 'Stages read and write only inside the repository');
  const rel = toPosix(path.relative(root, abs)) || '.';
  if (/^(\.git|\.tdv)(\/|$)/.test(rel)) throw new FormatError(at, `${key} path ${JSON.stringify(p)} of stage "${stage}" is inside ${rel.split('/')[0]}/`, 'Use a path in the workspace');
  if (key !== 'wdir' && rel === '.') throw new FormatError(at, `${key} of stage "${stage}" names the whole repository`, 'Name the files or directories it uses');
  // The one definition of a legal path (formats/paths.ts): what tdv would refuse later is refused here.
  const problem = rel === '.' ? undefined : relPathProblem(rel);
  if (problem !== undefined) throw new FormatError(at, `${key} path ${JSON.stringify(p)} of stage "${stage}" ${problem}`, 'Use a plain path in the workspace');
  // Where the stage runs must really be inside: a symlink on the way that leaves the
  // repository would make its command write there. (Outputs are checked per component.)
  if (key === 'wdir') {
    const real = realOfExisting(abs);
    if (!isInside(realOfExisting(root), real)) {
      throw new FormatError(
        at,
        `${key} path ${JSON.stringify(p)} of stage "${stage}" goes through a symlink that leaves the repository (to ${real})`,
        'Replace the symlink with a directory, or write the output inside the repository',
      );
    }
  }
  return rel;
}

/**
 * Refuses a symlink on the way to `rel` (and at `rel` itself with `self`): the
 * build context and Dockerfile are read by tdv and sent to Docker, so a link
 * there would ship or print files from anywhere.
 */
function noSymlinkOnTheWay(root: string, rel: string, at: string, stage: string, key: string, self: boolean): void {
  if (rel === '.') return;
  const parts = rel.split('/');
  let dir = '';
  for (let i = 0; i < parts.length; i++) {
    if (i === parts.length - 1 && !self) return;
    dir = dir === '' ? parts[i]! : `${dir}/${parts[i]}`;
    const st = fs.lstatSync(path.join(root, dir), { throwIfNoEntry: false });
    if (st === undefined) return;
    if (st.isSymbolicLink()) {
      throw new FormatError(
        at,
        `${key} path ${quotePath(rel)} of stage "${stage}" goes through the symlink ${quotePath(dir)}`,
        `tdv never reads through a symlink there; replace ${quotePath(dir)} with a real ${i === parts.length - 1 ? 'file or directory' : 'directory'}`,
      );
    }
  }
}

/** The real path of `p`'s deepest existing ancestor (or itself), with the rest appended as given. */
function realOfExisting(p: string): string {
  const rest: string[] = [];
  let dir = p;
  for (;;) {
    try {
      return path.join(fs.realpathSync.native(dir), ...rest);
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return p;
      rest.unshift(path.basename(dir));
      dir = parent;
    }
  }
}

function parseParams(v: unknown, name: string, at: (keys: (string | number)[]) => string, root: string, wdir: string): Stage['params'] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new FormatError(at(['params']), `"params" of stage "${name}" must be a list of keys or {file: [keys]}`);
  const byFile = new Map<string, Set<string>>();
  const addKey = (file: string, key: unknown, pos: string) => {
    if (typeof key !== 'string' || key.trim() === '') throw new FormatError(pos, `a params key of stage "${name}" must be a non-empty string such as sales.price`);
    let keys = byFile.get(file);
    if (!keys) byFile.set(file, (keys = new Set()));
    keys.add(key);
  };
  v.forEach((item, i) => {
    if (typeof item === 'string') addKey(repoPath(root, wdir, PARAMS_FILE, at(['params', i]), name, 'params'), item, at(['params', i]));
    else if (typeof item === 'object' && item !== null && !Array.isArray(item)) {
      for (const [file, keys] of Object.entries(item)) {
        const f = repoPath(root, wdir, file, at(['params', i, file]), name, 'params');
        if (!Array.isArray(keys)) throw new FormatError(at(['params', i, file]), `params of ${file} in stage "${name}" must be a list of keys`);
        keys.forEach((k) => addKey(f, k, at(['params', i, file])));
      }
    } else throw new FormatError(at(['params', i]), `entry ${i + 1} of "params" in stage "${name}" must be a key or {file: [keys]}`);
  });
  return [...byFile].map(([file, keys]) => ({ file, keys: [...keys].sort() })).sort((a, b) => (a.file < b.file ? -1 : 1));
}

function parseEnv(v: unknown, name: string, at: (keys: (string | number)[]) => string): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new FormatError(at(['env']), `"env" of stage "${name}" must be a mapping of variable names to values`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!ENV_NAME.test(k)) throw new FormatError(at(['env', k]), `${JSON.stringify(k)} is not a valid environment variable name`, 'Use letters, digits and "_", not starting with a digit');
    if (typeof val !== 'string' && typeof val !== 'number' && typeof val !== 'boolean') throw new FormatError(at(['env', k]), `env ${k} of stage "${name}" must be a string, number or boolean`);
    out[k] = String(val);
  }
  return out;
}
