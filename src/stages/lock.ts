import * as v from 'valibot';
import path from 'node:path';
import { isHex64, isOid } from '../formats/oid.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { decodeUtf8, MAX_TEXT_BYTES, readFileOrUndefined, tooLargeError } from '../util/fs.js';
import { Guard } from '../workspace/guard.js';
import { type At, dictOf, fail, isMapping, listOf, pathItem, validate } from '../formats/schema.js';
import { parseYaml } from '../util/yaml.js';

export const LOCK_FILE = 'tdv.lock';

/** A path a stage read or wrote, as it was: file or directory (`nfiles`). `cache: false` marks an output kept in Git. */
export type LockedPath = v.InferOutput<ReturnType<typeof lockedPathSchema>>;

/** What produced a stage's outputs, as recorded after it last succeeded (`image`: the image ID actually used). */
export type LockedStage = v.InferOutput<ReturnType<typeof lockedStageSchema>>;

export type LockFile = Map<string, LockedStage>;

/** Reads `tdv.lock`; an empty map when there is none. Malformed content is an error naming file and line. */
export async function readLock(root: string): Promise<LockFile> {
  const bytes = readFileOrUndefined(path.join(root, LOCK_FILE), MAX_TEXT_BYTES, LOCK_FILE, 'tdv.lock', { follow: false });
  return bytes === undefined ? new Map() : parseLock(decodeLock(bytes, LOCK_FILE), LOCK_FILE);
}

/**
 * The text of a tdv.lock, from the workspace or any revision alike: at most
 * MAX_TEXT_BYTES, and strictly UTF-8 (tdv writes it so; read leniently, bad
 * bytes would become U+FFFD in paths nobody wrote).
 */
export function decodeLock(bytes: Uint8Array, shown: string): string {
  if (bytes.length > MAX_TEXT_BYTES) throw tooLargeError(shown, bytes.length, MAX_TEXT_BYTES, 'tdv.lock');
  return decodeUtf8(bytes, shown, LOCK_FIX);
}

const LOCK_FIX = 'Delete it and run `tdv repro` to record the pipeline again, or restore it with `git checkout tdv.lock`';

/** tdv.lock: `schema` (tdv writes 1) and `stages`, each checked by its schema, in file order. */
const LockSchema = v.nullish(
  v.pipe(
    v.custom<{ stages: unknown }>((x) => isMapping(x) && isMapping(x.stages), fail('is not a tdv lock file (no "stages" mapping)', LOCK_FIX)),
    v.object({
      // tdv writes 1 (a hand-edited "1" is the same); another is a format this tdv does not know, not one to guess at.
      schema: v.optional(v.picklist([1, '1'], fail('was written by a newer tdv (its "schema" is not 1)', 'Upgrade tdv, or delete it and run `tdv repro` to record the pipeline again'))),
      stages: dictOf((name) => lockedStageSchema(name), ''),
    }),
  ),
);

/** Parses a tdv.lock text (`shown` names it in errors, with the line of the stage's key at fault). */
export async function parseLock(text: string, shown: string): Promise<LockFile> {
  const y = await parseYaml(text, shown);
  // file:line:col of the innermost key or item written at fault (none above a stage).
  const at: At = (keys) => y.where(shown, keys, 2);
  const lock = validate(LockSchema, y.value, at);
  return new Map(lock ? Object.entries(lock.stages) : []);
}

const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const lockFail = (name: string, what: string) => fail(`stage "${name}": ${what}`, LOCK_FIX);

/**
 * An entry of `deps`, `outs` or `metrics`. Its paths are written to by
 * checkout and pull: never outside the workspace, never into .git or .tdv.
 * Messages name the stage and the entry's path, so the schema is made per
 * stage and (through `lazy`) per entry.
 */
function lockedPathSchema(name: string, key: 'deps' | 'outs' | 'metrics') {
  const count = (p: string, what: string) => v.custom<number>(isCount, lockFail(name, `${p}: invalid ${what}`));
  return v.pipe(
    v.custom<{ path: string; sha256: string }>(
      (p) => isMapping(p) && typeof p.path === 'string' && typeof p.sha256 === 'string' && (isOid(p.sha256) || isHex64(p.sha256)),
      lockFail(name, `an entry of "${key}" has no valid path and sha256`),
    ),
    v.check(
      (p) => relPathProblem(p.path) === undefined,
      (issue) => lockFail(name, `unsafe path ${quotePath((issue.input as { path: string }).path) || '""'}: it ${relPathProblem((issue.input as { path: string }).path)}`),
    ),
    v.lazy((e) => {
      const p = (e as { path: string }).path;
      const cacheMsg = lockFail(name, `${p}: "cache" may only be false, on an output`);
      return v.object({
        path: v.string(),
        sha256: v.string(),
        size: count(p, 'size'),
        nfiles: v.optional(count(p, 'nfiles')),
        cache: v.optional(key === 'outs' ? v.literal(false, cacheMsg) : v.never(cacheMsg)),
      });
    }),
  );
}

/** One stage of tdv.lock; keys tdv does not know are ignored (a newer tdv may add some). */
function lockedStageSchema(name: string) {
  const paramsMsg = lockFail(name, '"params" must be a mapping of files to values');
  const paths = (key: 'deps' | 'outs' | 'metrics') =>
    v.nullish(
      listOf(() => lockedPathSchema(name, key), lockFail(name, `"${key}" must be a list`)),
      [],
    );
  return v.pipe(
    v.unknown(),
    v.rawCheck<unknown>(({ dataset, addIssue }) => {
      const r = dataset.value;
      if (!isMapping(r) || !(typeof r.cmd === 'string' || (Array.isArray(r.cmd) && r.cmd.every((c) => typeof c === 'string')))) {
        addIssue({ message: lockFail(name, 'needs a "cmd" string or list of strings'), path: [pathItem(r, 'cmd')] });
      }
    }),
    v.object({
      cmd: v.union([v.string(), v.array(v.string())]),
      image: v.optional(v.custom<string>((i) => typeof i === 'string' && /^sha256:[0-9a-f]{64}$/.test(i), lockFail(name, 'image must be an image ID sha256:<64 hex>'))),
      // file -> key -> value; a file's values are a mapping too (commands read them as one).
      params: v.nullish(
        dictOf(() => dictOf(() => v.unknown(), paramsMsg), paramsMsg),
        {},
      ),
      deps: paths('deps'),
      outs: paths('outs'),
      metrics: paths('metrics'),
    }),
  );
}

/**
 * Writes `tdv.lock` atomically: stages by name, paths sorted, keys in a fixed
 * order, so a diff shows exactly what changed.
 */
export async function writeLock(root: string, lock: LockFile): Promise<void> {
  const { stringify } = await import('yaml');
  const stages: Record<string, unknown> = {};
  for (const name of [...lock.keys()].sort()) {
    const s = lock.get(name)!;
    const sortPaths = (l: LockedPath[]) =>
      [...l]
        .sort((a, b) => (a.path < b.path ? -1 : 1))
        .map((p) => ({ path: p.path, sha256: p.sha256, size: p.size, ...(p.nfiles !== undefined ? { nfiles: p.nfiles } : {}), ...(p.cache === false ? { cache: false } : {}) }));
    const params: Record<string, Record<string, unknown>> = {};
    for (const f of Object.keys(s.params).sort()) {
      params[f] = {};
      for (const k of Object.keys(s.params[f]!).sort()) params[f]![k] = s.params[f]![k];
    }
    stages[name] = {
      cmd: s.cmd,
      ...(s.image ? { image: s.image } : {}),
      ...(s.deps.length ? { deps: sortPaths(s.deps) } : {}),
      ...(Object.keys(params).length ? { params } : {}),
      ...(s.outs.length ? { outs: sortPaths(s.outs) } : {}),
      ...(s.metrics.length ? { metrics: sortPaths(s.metrics) } : {}),
    };
  }
  const text = `# Written by tdv repro: what produced each stage's outputs. Commit it with tdv.yaml.\n${stringify({ schema: 1, stages }, { lineWidth: 0 })}`;
  // A control file: written as a regular file only, never through a committed symlink.
  new Guard(root).writeControlFile(LOCK_FILE, text);
}

/**
 * What tdv.lock records for a stage that just ran (or was committed): the
 * `cache: false` mark of each output is taken from tdv.yaml, never from where
 * the hashes came from (a run record is data from the cache or a remote).
 */
export function lockedStage(
  stage: { cmd: string | string[]; uncached?: ReadonlySet<string> },
  inputs: { image?: string; deps: LockedPath[]; params: Record<string, Record<string, unknown>> },
  outs: LockedPath[],
  metrics: LockedPath[],
): LockedStage {
  const mark = (o: LockedPath): LockedPath => {
    const { cache: _ignored, ...rest } = o;
    return stage.uncached?.has(o.path) ? { ...rest, cache: false } : rest;
  };
  const plain = (o: LockedPath): LockedPath => {
    const { cache: _ignored, ...rest } = o;
    return rest;
  };
  return { cmd: stage.cmd, ...(inputs.image ? { image: inputs.image } : {}), deps: inputs.deps, params: inputs.params, outs: outs.map(mark), metrics: metrics.map(plain) };
}
