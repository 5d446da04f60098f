import * as v from 'valibot';
import fs from 'node:fs';
import path from 'node:path';
import { FormatError } from '../errors.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { isInside, readUtf8OrUndefined, toPosix } from '../util/fs.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';
import { STAGE_NAME, STAGE_NAME_RULE } from './names.js';
import { type At, dictOf, fail, isMapping, listOf, onlyKeys, pathItem, validate } from '../formats/schema.js';
import { expandStages, fileReader, mergeParams, withQuoteHint } from './template.js';
import type { Resources } from './job.js';
import { ALL_FILES, type ItemSpec, patternProblem, unknownItemRefs } from './items.js';

export const PIPELINE_FILE = 'tdv.yaml';
export const PARAMS_FILE = 'params.yaml';

/** The checked fields of a stage as written (schema below); paths are resolved after it (`resolveStage`). */
type StageBody = v.InferOutput<ReturnType<typeof stageSchema>>;

/** One stage of `tdv.yaml`, validated, its paths repo-relative (POSIX). Field types come from its schema. */
export interface Stage {
  name: string;
  /** The command, or (list form) commands run one after another, each by its own shell; the first failure stops the stage. */
  cmd: StageBody['cmd'];
  /** A Docker image reference; absent (and no `build`) means the command runs locally. */
  image?: NonNullable<StageBody['image']>;
  /** Build the image from a local Dockerfile: repo-relative context directory. */
  build?: Exclude<StageBody['build'], string | undefined>;
  deps: string[];
  /** params.yaml keys (or other files') the stage reads. */
  params: { file: string; keys: string[] }[];
  /** Cached outputs. */
  outs: string[];
  /** Small JSON results kept in Git, not cached. */
  metrics: string[];
  env: StageBody['env'];
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
  frozen?: StageBody['frozen'];
  /** `always_changed: true`: repro runs it every time (and never restores it from the run-cache). */
  alwaysChanged?: StageBody['always_changed'];
  /** Free text for people (`desc`). */
  desc?: NonNullable<StageBody['desc']>;
  /** Free data for tools (`meta`), ignored by tdv. */
  meta?: unknown;
  /** `runner: NAME`: the configured runner (`runner.<name>` in config, or `local`) the stage runs on. */
  runner?: string;
  /** `tdv.yaml:line:col` of `runner:`, for an unknown name. */
  runnerWhere?: string;
  /** `resources: {cpus, memory, gpus}`: what the stage asks of the runner (memory in bytes). */
  resources?: Resources;
  /**
   * `foreach-file: {dir, pattern}`: a per-item stage (stages/items.ts). `dir`
   * (repo-relative) is also in `deps`; the one entry of `outs` is the output directory.
   */
  items?: ItemSpec;
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

const STAGE_KEYS = ['cmd', 'image', 'build', 'foreach-file', 'deps', 'params', 'outs', 'metrics', 'env', 'wdir', 'runner', 'resources', 'frozen', 'always_changed', 'desc', 'meta'] as const;
/** Keys an entry of `outs` or `metrics` may have in its long form `- path: {cache: false}`. */
const OUT_KEYS = ['cache', 'persist', 'desc'] as const;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Loads and validates `tdv.yaml` at the repository root. Every error names
 * the file, line and column and says what to write instead. Returns undefined
 * when there is no pipeline file. Graph checks (duplicate outputs, cycles,
 * overlap with pointers) are in graph.ts.
 *
 * Two passes per stage: its schema (`stageSchema`, the shape of every field,
 * no file system) and then `resolveStage`, which turns its paths into
 * repo-relative ones and checks them against the workspace (symlinks on the
 * way, outputs the repository keeps otherwise). Those checks stay code: they
 * need the root, the resolved wdir and the caller's `checkOutput`, they read
 * the disk, and they run on values whose shape the schema already proved.
 */
export async function loadPipeline(root: string, opts: LoadOptions = {}): Promise<Pipeline | undefined> {
  const file = path.join(root, PIPELINE_FILE);
  const text = opts.text ?? readUtf8OrUndefined(file, PIPELINE_FILE, { follow: false });
  if (text === undefined) return undefined;
  const shown = PIPELINE_FILE;
  const y = await parseYaml(text, shown).catch((e: unknown) => {
    throw withQuoteHint(e, text);
  });
  const stages = new Map<string, Stage>();
  const at: At = (keys) => y.where(shown, keys);
  const doc = validate(PipelineSchema, y.value, at);
  if (!doc?.stages) return { file, stages };
  // vars, foreach, matrix and ${...} (template.ts): plain stages, each with where it was written.
  for (const e of await expandStages(doc, at, { text, readFile: fileReader(root) })) {
    const stageAt: At = (keys) => e.at([...keys]);
    validate(StageName, e.written, stageAt);
    const stage = resolveStage(root, e.name, validate(stageSchema(e.name), e.body, stageAt), stageAt, opts);
    stages.set(e.name, { ...stage, params: mergeParams(stage.params, e.params) });
  }
  return { file, stages };
}

/** A string with more than blanks in it. */
const filled = (x: unknown): x is string => typeof x === 'string' && x.trim() !== '';
const nonEmptyString = (message: string) => v.custom<string>(filled, message);

/** The top level of tdv.yaml: `stages`, and `vars` (which template.ts checks as it loads them). */
const PipelineSchema = v.nullish(
  v.pipe(
    v.custom<Record<string, unknown>>(isMapping, fail('must be a mapping with a "stages" key')),
    onlyKeys(['stages', 'vars'], (k) => fail(`unknown key "${k}"`, 'The top level of tdv.yaml has "stages" and "vars"')),
    v.object({
      stages: v.nullish(v.custom<Record<string, unknown>>(isMapping, fail('"stages" must be a mapping of stage names to stages'))),
      vars: v.optional(v.unknown()),
    }),
  ),
);

/** A stage's name as written (`build` of `build@us`). */
const StageName = v.custom<string>(
  (n) => typeof n === 'string' && STAGE_NAME.test(n),
  (issue) => fail(`stage name ${JSON.stringify(issue.input)} is not allowed`, STAGE_NAME_RULE),
);

/**
 * The shape of one stage after template expansion. Made per stage because
 * its messages name it. An unknown key is reported before anything else: a
 * misspelt key is the likeliest cause of every later issue.
 */
function stageSchema(name: string) {
  const of = `of stage "${name}"`;
  const flag = (k: string) => v.nullish(v.boolean(fail(`"${k}" ${of} must be true or false`)), false);
  const outs = (k: 'outs' | 'metrics') =>
    v.nullish(
      listOf((i) => outEntry(name, k, i), fail(`"${k}" ${of} must be a list of paths`)),
      [],
    );
  // In the order the fields were checked before the schema, so the first of several errors stays the same.
  const fields = {
    cmd: cmdSchema(name),
    frozen: flag('frozen'),
    always_changed: flag('always_changed'),
    desc: v.nullish(v.string(fail(`"desc" ${of} must be a string`))),
    wdir: v.optional(nonEmptyString(fail(`"wdir" ${of} must be a non-empty string`)), '.'),
    build: v.optional(buildSchema(name)),
    image: v.optional(nonEmptyString(fail(`"image" ${of} must be a non-empty string`))),
    deps: v.nullish(
      listOf((i) => nonEmptyString(fail(`entry ${i + 1} of "deps" in stage "${name}" must be a path`)), fail(`"deps" ${of} must be a list of paths`)),
      [],
    ),
    params: v.nullish(paramsSchema(name), []),
    outs: outs('outs'),
    metrics: outs('metrics'),
    env: v.nullish(envSchema(name), {}),
    runner: v.optional(
      v.custom<string>(
        (r) => typeof r === 'string' && RUNNER_NAME.test(r),
        (i) => fail(`"runner" ${of} must be a runner name, got ${JSON.stringify(i.input)}`, 'Name one of `tdv runner list`, or local for this machine'),
      ),
    ),
    resources: v.optional(resourcesSchema(name)),
    'foreach-file': v.optional(itemsSchema(name)),
    meta: v.optional(v.unknown()),
  } satisfies Record<(typeof STAGE_KEYS)[number], v.GenericSchema>;
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, fail(`stage "${name}" must be a mapping with at least "cmd"`)),
    onlyKeys(Object.keys(fields), (k) => fail(`unknown key "${k}" in stage "${name}"`, `Known keys: ${STAGE_KEYS.join(', ')}`)),
    v.check((r) => r.cmd !== undefined, fail(`stage "${name}" has no "cmd"`, 'Add the command to run, e.g. cmd: sh scripts/run.sh')),
    v.rawCheck<Record<string, unknown>>(({ dataset, addIssue }) => {
      if (dataset.typed && dataset.value.image !== undefined && dataset.value.build !== undefined) {
        addIssue({ message: fail(`stage "${name}" has both "image" and "build"`, 'Name an image or build one, not both'), path: [pathItem(dataset.value, 'build')] });
      }
    }),
    v.object(fields),
  );
}

/** `cmd` as a string, or a non-empty list of non-empty strings (each run by its own shell, in order). */
/** What YAML made of a value, for a message: `the number Infinity`, `binary data`, `a mapping`. */
function readAs(c: unknown): string {
  if (c instanceof Uint8Array) return 'binary data';
  if (c instanceof Date) return `the date ${c.toISOString()}`;
  if (c instanceof Set || c instanceof Map) return 'a set';
  if (typeof c === 'object') return 'a mapping';
  return `the ${typeof c} ${typeof c === 'number' ? String(c) : JSON.stringify(c)}`;
}

function cmdSchema(name: string) {
  return v.lazy((c) => {
    if (filled(c)) return v.string();
    if (Array.isArray(c) && c.length > 0) {
      return listOf(
        (i) => nonEmptyString(fail(`entry ${i + 1} of "cmd" in stage "${name}" must be a non-empty command string`, 'Quote a command that YAML reads as something else, e.g. - "echo: done"')),
        '',
      );
    }
    const misread = c !== null && c !== undefined && typeof c !== 'string' && !Array.isArray(c);
    return v.never(
      fail(
        `"cmd" of stage "${name}" must be a command or a list of commands${misread ? `, but YAML reads it as ${readAs(c)}` : ''}`,
        misread ? 'Quote the command: cmd: "echo key: value"' : 'Write cmd: python train.py, or a list with one command per line',
      ),
    );
  });
}

/** `build`: the context directory, or `{context, dockerfile}`. */
function buildSchema(name: string) {
  return v.lazy((b) => {
    if (typeof b === 'string') return v.string();
    if (!isMapping(b)) return v.never(fail(`"build" of stage "${name}" must be a directory or {context, dockerfile}`));
    return v.pipe(
      v.custom<Record<string, unknown>>(isMapping),
      onlyKeys(['context', 'dockerfile'], (k) => fail(`unknown key "${k}" in "build"`, 'Known keys: context, dockerfile')),
      v.check((o) => typeof o.context === 'string', fail(`"build" of stage "${name}" needs "context": the directory holding the Dockerfile`)),
      // An empty dockerfile would name the context directory itself.
      v.object({ context: v.string(), dockerfile: v.optional(nonEmptyString(fail('"dockerfile" must be a path'))) }),
    );
  });
}

/** An entry of `outs` or `metrics`, its long form read: the path and its options. */
interface OutEntry {
  path: string;
  cache?: boolean;
  persist?: boolean;
  desc?: string;
}

/**
 * An entry of `outs` or `metrics`: a path, or the long form `- path: {cache:
 * false, persist: true, desc: ...}` (one key, the path). Unknown options are
 * errors: a misspelt `cahce: false` would otherwise cache a file the user
 * means to commit.
 */
function outEntry(name: string, k: 'outs' | 'metrics', i: number) {
  const notPath = fail(`entry ${i + 1} of "${k}" in stage "${name}" must be a path`);
  return v.lazy((e) => {
    if (!isMapping(e))
      return v.pipe(
        nonEmptyString(notPath),
        v.transform((p): OutEntry => ({ path: p })),
      );
    const keys = Object.keys(e);
    if (keys.length !== 1) return v.never(fail(`entry ${i + 1} of "${k}" in stage "${name}" must be a path, or one path with its options`, 'Write - out/model.bin: {cache: false}'));
    const p = keys[0]!;
    if (!filled(p)) return v.never(notPath);
    const q = JSON.stringify(p);
    const known = `Known options: ${OUT_KEYS.join(', ')}`;
    const bool = (key: string) => v.optional(v.boolean(fail(`"${key}" of ${q} in stage "${name}" must be true or false`)));
    const options = v.pipe(
      v.custom<Record<string, unknown>>(isMapping, fail(`the options of ${q} in stage "${name}" must be a mapping`, known)),
      onlyKeys(OUT_KEYS, (key) => fail(`unknown option "${key}" of ${q} in stage "${name}"`, known)),
      v.object({ cache: bool('cache'), persist: bool('persist'), desc: v.optional(v.string(fail(`"desc" of ${q} in stage "${name}" must be a string`))) }),
      v.rawCheck<{ cache?: boolean }>(({ dataset, addIssue }) => {
        if (k === 'metrics' && dataset.typed && dataset.value.cache === true) {
          addIssue({
            message: fail(`metrics ${q} of stage "${name}" cannot be cached: metrics are small files kept in Git`, 'Remove "cache: true", or list the file under "outs"'),
            path: [pathItem(dataset.value, 'cache')],
          });
        }
      }),
    );
    return v.pipe(
      v.object({ [p]: v.nullish(options) }),
      v.transform((o): OutEntry => ({ ...o[p], path: p })),
    );
  });
}

/** `foreach-file`: `{dir, pattern}` (pattern optional: every file). */
function itemsSchema(name: string) {
  const of = `of "foreach-file" in stage "${name}"`;
  const example = 'e.g. foreach-file: {dir: data/images, pattern: "*.jpg"}';
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, fail(`"foreach-file" of stage "${name}" must be a mapping with "dir" (and "pattern")`, example)),
    onlyKeys(['dir', 'pattern'], (k) => fail(`unknown key "${k}" ${of}`, 'Known keys: dir, pattern')),
    v.check((o) => o.dir !== undefined, fail(`"foreach-file" of stage "${name}" has no "dir": the directory whose files are the items`, example)),
    v.object({
      dir: nonEmptyString(fail(`"dir" ${of} must be a directory path`, example)),
      pattern: v.optional(
        v.pipe(
          v.string(fail(`"pattern" ${of} must be a glob pattern such as "*.jpg"`)),
          v.rawCheck<string>(({ dataset, addIssue }) => {
            const problem = dataset.typed ? patternProblem(dataset.value) : undefined;
            if (problem !== undefined) addIssue({ message: fail(`"pattern" ${of} ${problem}`, 'Write a glob relative to the directory, e.g. "*.jpg" or "2026/**/*.csv"') });
          }),
        ),
        ALL_FILES,
      ),
    }),
  );
}

/** `params`: keys of params.yaml, or `{file: [keys]}`. */
function paramsSchema(name: string) {
  const badKey = fail(`a params key of stage "${name}" must be a non-empty string such as sales.price`);
  const entry = (i: number) =>
    v.lazy((item) => {
      if (typeof item === 'string') return nonEmptyString(badKey);
      if (!isMapping(item)) return v.never(fail(`entry ${i + 1} of "params" in stage "${name}" must be a key or {file: [keys]}`));
      return dictOf(
        (file) =>
          v.pipe(
            v.array(v.unknown(), fail(`params of ${file} in stage "${name}" must be a list of keys`)),
            v.check((keys) => keys.every(filled), badKey),
            v.transform((keys) => keys as string[]),
          ),
        '',
      );
    });
  return listOf(entry, fail(`"params" of stage "${name}" must be a list of keys or {file: [keys]}`));
}

/** A runner's name as config.yaml's `runner.<name>` allows it (formats/config.ts), or `local`. */
const RUNNER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

const MEMORY_UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
export const MEMORY_SYNTAX = 'a number of bytes, or a number with K, M, G or T (powers of 1024, as Docker reads them; Ki, Mi, Gi, Ti too), e.g. 512M or 1.5G';

/** Bytes of a `resources.memory` value (`2G`, `512Mi`, `1073741824`), or undefined when it is not one. */
export function parseMemory(x: unknown): number | undefined {
  if (typeof x === 'number') return Number.isSafeInteger(x) && x > 0 ? x : undefined;
  if (typeof x !== 'string') return undefined;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*(?:([kmgt])(?:ib?|b)?|b)?$/i.exec(x.trim());
  if (!m || (m[2] === undefined && m[1]!.includes('.'))) return undefined;
  const n = Math.round(Number(m[1]) * MEMORY_UNITS[(m[2] ?? '').toLowerCase()]!);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** `resources`: cpus (a positive number), memory (bytes or 512M), gpus (a whole number). */
function resourcesSchema(name: string) {
  const of = `of stage "${name}"`;
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, fail(`"resources" ${of} must be a mapping`, 'Write resources: {cpus: 2, memory: 4G, gpus: 1}')),
    onlyKeys(['cpus', 'memory', 'gpus'], (k) => fail(`unknown key "${k}" in "resources" ${of}`, 'Known keys: cpus, memory, gpus')),
    v.object({
      cpus: v.optional(
        v.custom<number>(
          (c) => typeof c === 'number' && Number.isFinite(c) && c > 0,
          (i) => fail(`"resources.cpus" ${of} must be a positive number of CPUs, got ${JSON.stringify(i.input)}`, 'Write e.g. cpus: 2 or cpus: 0.5'),
        ),
      ),
      memory: v.optional(
        v.pipe(
          v.custom<string | number>(
            (m) => parseMemory(m) !== undefined,
            (i) => fail(`"resources.memory" ${of} must be ${MEMORY_SYNTAX}, got ${JSON.stringify(i.input)}`),
          ),
          v.transform((m) => parseMemory(m)!),
        ),
      ),
      gpus: v.optional(
        v.custom<number>(
          (g) => typeof g === 'number' && Number.isSafeInteger(g) && g >= 0,
          (i) => fail(`"resources.gpus" ${of} must be a whole number of GPUs, got ${JSON.stringify(i.input)}`, 'Write e.g. gpus: 1'),
        ),
      ),
    }),
  );
}

/** `env`: variable names to strings, numbers or booleans (passed on as text). */
function envSchema(name: string) {
  return dictOf(
    (k) =>
      v.pipe(
        v.custom<string | number | boolean>((x) => typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean', fail(`env ${k} of stage "${name}" must be a string, number or boolean`)),
        v.transform(String),
      ),
    fail(`"env" of stage "${name}" must be a mapping of variable names to values`),
    (k) => (ENV_NAME.test(k) ? undefined : fail(`${JSON.stringify(k)} is not a valid environment variable name`, 'Use letters, digits and "_", not starting with a digit')),
  );
}

/**
 * A stage whose shape its schema checked, its paths resolved against the
 * workspace: relative to wdir, inside the repository, never through a
 * symlink where tdv reads or writes, no output the repository keeps otherwise.
 */
function resolveStage(root: string, name: string, b: StageBody, at: At, opts: LoadOptions): Stage {
  const wdir = repoPath(root, '.', b.wdir, at(['wdir']), name, 'wdir');
  const origins = new Map<string, string>();
  const uncached = new Set<string>();
  const persist = new Set<string>();
  const list = (k: 'deps' | 'outs' | 'metrics', entries: readonly OutEntry[]): string[] => {
    const seen = new Set<string>();
    return entries.map((entry, i) => {
      const rel = repoPath(root, wdir, entry.path, at([k, i]), name, k);
      if (seen.has(rel)) throw new FormatError(at([k, i]), `stage "${name}" lists ${quotePath(rel)} twice in "${k}"`);
      seen.add(rel);
      // A dep is read and hashed by tdv: never through a symlink, which could lead anywhere.
      if (k === 'deps') noSymlinkOnTheWay(root, rel, at([k, i]), name, k, true);
      else {
        // An output kept in Git (cache: false) is still written by the stage: the same checks hold.
        const cache = k === 'outs' && entry.cache !== false;
        checkOutput(root, rel, k, name, at([k, i]), opts.checkOutput, cache);
        origins.set(rel, at([k, i]));
        if (k === 'outs' && !cache) uncached.add(rel);
        if (entry.persist) persist.add(rel);
      }
      return rel;
    });
  };
  let build: Stage['build'];
  if (typeof b.build === 'string') {
    build = { context: repoPath(root, wdir, b.build, at(['build']), name, 'build') };
    noSymlinkOnTheWay(root, build.context, at(['build']), name, 'build', true);
  } else if (b.build !== undefined) {
    const context = repoPath(root, wdir, b.build.context, at(['build', 'context']), name, 'build.context');
    if (b.build.dockerfile === undefined) build = { context };
    else {
      // A path like any other of the stage (relative to the context, inside the repository),
      // read by tdv to hash it: never a symlink, a device or a file outside.
      const df = repoPath(root, context, b.build.dockerfile, at(['build', 'dockerfile']), name, 'build.dockerfile');
      noSymlinkOnTheWay(root, df, at(['build', 'dockerfile']), name, 'build.dockerfile', true);
      build = { context, dockerfile: path.posix.relative(context === '.' ? '' : context, df) };
    }
    noSymlinkOnTheWay(root, context, at(['build', 'context']), name, 'build.context', true);
  }
  const deps = list(
    'deps',
    b.deps.map((p) => ({ path: p })),
  );
  const outs = list('outs', b.outs);
  const metrics = list('metrics', b.metrics);
  let items: ItemSpec | undefined;
  if (b['foreach-file'] !== undefined) {
    items = perItem(root, wdir, name, b, at, { deps, outs, metrics, uncached, persist });
    // The input directory is a dep like any other (the DAG, status and tdv.lock see it).
    if (!deps.includes(items.dir)) deps.unshift(items.dir);
  }
  return {
    name,
    cmd: b.cmd,
    ...(b.image !== undefined ? { image: b.image } : {}),
    ...(build ? { build } : {}),
    deps,
    params: resolveParams(root, wdir, name, b.params, at),
    outs,
    metrics,
    env: b.env,
    wdir,
    where: at([]),
    origins,
    ...(uncached.size ? { uncached } : {}),
    ...(persist.size ? { persist } : {}),
    ...(b.frozen ? { frozen: true } : {}),
    ...(b.always_changed ? { alwaysChanged: true } : {}),
    ...(typeof b.desc === 'string' ? { desc: b.desc } : {}),
    ...(b.meta !== undefined ? { meta: b.meta } : {}),
    ...(b.runner !== undefined ? { runner: b.runner, runnerWhere: at(['runner']) } : {}),
    ...(b.resources !== undefined ? { resources: defined(b.resources) } : {}),
    ...(items ? { items } : {}),
  };
}

/**
 * A per-item stage's `foreach-file`, checked against the rest of the stage:
 * one cached output directory (the items' results), no metrics, no outputs
 * that persist or are kept in Git, no `always_changed` (items rerun by
 * content), and only the `${item...}`/`${out}` references tdv fills in.
 */
function perItem(root: string, wdir: string, name: string, b: StageBody, at: At, o: { deps: string[]; outs: string[]; metrics: string[]; uncached: Set<string>; persist: Set<string> }): ItemSpec {
  const spec = b['foreach-file']!;
  const where = at(['foreach-file']);
  const dir = repoPath(root, wdir, spec.dir, at(['foreach-file', 'dir']), name, 'foreach-file dir');
  noSymlinkOnTheWay(root, dir, at(['foreach-file', 'dir']), name, 'foreach-file dir', true);
  const bad = (message: string, fix: string): never => {
    throw new FormatError(where, `stage "${name}": ${message}`, fix);
  };
  if (o.outs.length !== 1) bad(`a foreach-file stage has exactly one entry in "outs", the directory the items' results go to (it has ${o.outs.length})`, 'e.g. outs: [data/thumbs]');
  const out = o.outs[0]!;
  if (o.metrics.length) bad('a foreach-file stage cannot have "metrics"', 'Compute metrics in a stage that reads its output directory');
  if (o.uncached.size || o.persist.size) bad(`its output directory ${quotePath(out)} cannot be "cache: false" or "persist: true": tdv builds it from the items' results`, 'Remove the option');
  if (b.always_changed) bad('"always_changed" has no meaning for a foreach-file stage: items rerun when they or the stage change', 'Remove always_changed, or use tdv repro --force');
  const inside = (a: string, c: string) => a === c || c.startsWith(`${a}/`);
  if (inside(dir, out) || inside(out, dir)) bad(`its output directory ${quotePath(out)} and its input directory ${quotePath(dir)} overlap`, 'Write the results to a directory of their own');
  for (const c of stageCommands(b)) {
    const unknown = unknownItemRefs(c);
    if (unknown.length) bad(`${unknown[0]} in "cmd" is not something tdv fills in`, 'Use ${item}, ${item.name}, ${item.stem}, ${item.ext}, ${item.rel}, ${item.dir} or ${out}');
  }
  return { dir, pattern: spec.pattern };
}

/** `o` without its undefined values (a `resources` key not written is not there). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
}

/** `params` by file (repo-relative), keys sorted and each once. */
function resolveParams(root: string, wdir: string, name: string, items: StageBody['params'], at: At): Stage['params'] {
  const byFile = new Map<string, Set<string>>();
  const add = (file: string, keys: readonly string[]) => {
    let set = byFile.get(file);
    if (!set) byFile.set(file, (set = new Set()));
    for (const k of keys) set.add(k);
  };
  items.forEach((item, i) => {
    if (typeof item === 'string') add(repoPath(root, wdir, PARAMS_FILE, at(['params', i]), name, 'params'), [item]);
    else for (const [file, keys] of Object.entries(item)) add(repoPath(root, wdir, file, at(['params', i, file]), name, 'params'), keys);
  });
  return [...byFile].map(([file, keys]) => ({ file, keys: [...keys].sort() })).sort((a, b) => (a.file < b.file ? -1 : 1));
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
  const own = Object.hasOwn(NOT_OUTPUTS, rel) ? NOT_OUTPUTS[rel] : undefined;
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
