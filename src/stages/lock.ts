import path from 'node:path';
import { FormatError } from '../errors.js';
import { isHex64, isOid } from '../formats/oid.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import { decodeUtf8, MAX_TEXT_BYTES, readFileOrUndefined, tooLargeError } from '../util/fs.js';
import { Guard } from '../workspace/guard.js';
import { parseYaml } from '../util/yaml.js';

export const LOCK_FILE = 'tdv.lock';

/** A path a stage read or wrote, as it was: file or directory (`nfiles`). */
export interface LockedPath {
  path: string;
  sha256: string;
  size: number;
  nfiles?: number;
  /** An output declared `cache: false`: recorded here, kept in Git, never checked out from the cache. */
  cache?: false;
}

/** What produced a stage's outputs, as recorded after it last succeeded. */
export interface LockedStage {
  /** As tdv.yaml has it: one command, or the list run in order. */
  cmd: string | string[];
  /** The image ID actually used (`sha256:...`), for Docker stages. */
  image?: string;
  deps: LockedPath[];
  /** file -> key -> value. */
  params: Record<string, Record<string, unknown>>;
  outs: LockedPath[];
  metrics: LockedPath[];
}

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

export async function parseLock(text: string, shown: string): Promise<LockFile> {
  const y = await parseYaml(text, shown);
  const out: LockFile = new Map();
  const v = y.value as { schema?: unknown; stages?: unknown } | null;
  if (v === null || v === undefined) return out;
  const at = (keys: (string | number)[]) => {
    const l = y.lineOf(keys);
    return l ? `${shown}:${l}` : shown;
  };
  const fix = LOCK_FIX;
  if (typeof v !== 'object' || Array.isArray(v) || typeof v.stages !== 'object' || v.stages === null || Array.isArray(v.stages)) {
    throw new FormatError(shown, 'is not a tdv lock file (no "stages" mapping)', fix);
  }
  for (const [name, raw] of Object.entries(v.stages as Record<string, unknown>)) {
    const r = raw as Record<string, unknown>;
    const bad = (key: string, what: string) => new FormatError(at(['stages', name, key]), `stage "${name}": ${what}`, fix);
    if (typeof r !== 'object' || r === null || !(typeof r.cmd === 'string' || (Array.isArray(r.cmd) && r.cmd.every((c) => typeof c === 'string')))) {
      throw bad('cmd', 'needs a "cmd" string or list of strings');
    }
    if (r.image !== undefined && (typeof r.image !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(r.image))) throw bad('image', 'image must be an image ID sha256:<64 hex>');
    const paths = (key: 'deps' | 'outs' | 'metrics'): LockedPath[] => {
      const list = r[key] ?? [];
      if (!Array.isArray(list)) throw bad(key, `"${key}" must be a list`);
      return list.map((e: unknown) => {
        const p = e as Record<string, unknown>;
        if (typeof p?.path !== 'string' || typeof p.sha256 !== 'string' || !(isOid(p.sha256) || isHex64(p.sha256))) throw bad(key, `an entry of "${key}" has no valid path and sha256`);
        // These paths are written to by checkout and pull: never outside the workspace, never into .git or .tdv.
        const problem = relPathProblem(p.path);
        if (problem !== undefined) throw bad(key, `unsafe path ${quotePath(p.path) || '""'}: it ${problem}`);
        if (typeof p.size !== 'number' || !Number.isSafeInteger(p.size) || p.size < 0) throw bad(key, `${p.path}: invalid size`);
        if (p.nfiles !== undefined && (typeof p.nfiles !== 'number' || !Number.isSafeInteger(p.nfiles) || p.nfiles < 0)) throw bad(key, `${p.path}: invalid nfiles`);
        if (p.cache !== undefined && (key !== 'outs' || p.cache !== false)) throw bad(key, `${p.path}: "cache" may only be false, on an output`);
        return { path: p.path, sha256: p.sha256, size: p.size, ...(p.nfiles !== undefined ? { nfiles: p.nfiles as number } : {}), ...(p.cache === false ? { cache: false as const } : {}) };
      });
    };
    const params = r.params ?? {};
    if (typeof params !== 'object' || params === null || Array.isArray(params)) throw bad('params', '"params" must be a mapping of files to values');
    out.set(name, {
      cmd: r.cmd as string | string[],
      ...(r.image ? { image: r.image as string } : {}),
      deps: paths('deps'),
      params: params as Record<string, Record<string, unknown>>,
      outs: paths('outs'),
      metrics: paths('metrics'),
    });
  }
  return out;
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
