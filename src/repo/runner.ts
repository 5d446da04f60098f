/**
 * Runner configuration: adding, removing, modifying and listing the
 * `runner.<name>` sections of `.tdv/config.yaml` and `.tdv/config.local.yaml`,
 * and the default runner (`core.runner`), as `tdv remote` does for remotes.
 *
 * A section holds the engine `type` (docker, kubernetes) and that engine's
 * keys, which its module's schema checks here before anything is written
 * (and again when a stage uses the runner, for hand-edited files).
 */
import { TdvError, UsageError } from '../errors.js';
import { CONFIG_FILE, type ConfigFileName, LOCAL_CONFIG_FILE, LOCAL_RUNNER, maskUrl, REMOTE_NAME_RE, RUNNER_TYPES, type RunnerType } from '../formats/config.js';
import { type ConfigWrite, type ConfigEdit, editConfig, fileFor, otherFile } from './lib/config-edit.js';
import { engineKeys, moduleOf, settingsProblem, unknownRunner } from './lib/runners.js';
import type { RunnerModule } from '../stages/runners/registry.js';
import type { Repo } from './repo.js';

export type { ConfigWrite };

/** A value given on the command line: text, or several (a repeated key or flag) for a list. */
export type RunnerValue = string | string[];

export interface AddRunnerOptions {
  name: string;
  /** The engine: one of RUNNER_TYPES. */
  type: string;
  /** The engine's keys as given (`KEY=VALUE`, repeated keys and flags such as `--host` as lists). */
  settings?: Record<string, RunnerValue>;
  /** Also make it the default runner (`core.runner`, in the same file). */
  makeDefault?: boolean;
  /** Write to config.local.yaml instead of config.yaml. */
  local?: boolean;
  /** Replace an existing runner of that name (its sections in both files). */
  force?: boolean;
}

export interface AddRunnerResult extends ConfigWrite {
  name: string;
  type: RunnerType;
  /** The keys as stored (typed). */
  settings: Record<string, unknown>;
  isDefault: boolean;
  replaced: boolean;
}

function runnerExists(name: string, type: string): TdvError {
  return new TdvError('RUNNER_EXISTS', `runner "${name}" already exists (type ${type}); use \`tdv runner add -f\` to replace it, or \`tdv runner modify ${name} KEY VALUE\``, { data: { name } });
}

/** Adds runner `name` of engine `type`, its keys checked by the engine's schema before anything is written. */
export async function addRunner(repo: Repo, opts: AddRunnerOptions): Promise<AddRunnerResult> {
  checkName(opts.name);
  const type = checkType(opts.type);
  // Said before the keys are checked: `add gpu docker` of an existing runner is about the name, not a missing key.
  const known = repo.config.runner?.[opts.name];
  if (known && !opts.force) throw runnerExists(opts.name, known.type);
  const mod = await moduleOf({ type });
  const settings: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, given] of Object.entries(opts.settings ?? {})) {
    if (k === 'type') throw new UsageError(`give the type as the second argument (tdv runner add ${opts.name} TYPE), not as a key`);
    settings[k] = typedValue(mod, opts.name, settings, k, given);
  }
  const bad = settingsProblem(mod, opts.name, settings);
  if (bad) throw usageFromProblem(bad.message, mod, type);
  const target = fileFor(opts.local);
  const {
    value: replaced,
    after,
    write,
  } = await editConfig(repo, 'runner', (e) => {
    const existing = e.config.runner[opts.name];
    if (existing && !opts.force) throw runnerExists(opts.name, existing.type);
    // Replacing means a new runner: no settings carry over from the old one.
    for (const f of [LOCAL_CONFIG_FILE, CONFIG_FILE] as const) e.delete(f, ['runner', opts.name]);
    e.set(target, ['runner', opts.name, 'type'], type);
    for (const [k, x] of Object.entries(settings)) e.set(target, ['runner', opts.name, k], x);
    if (opts.makeDefault) e.set(target, ['core', 'runner'], opts.name);
    return existing !== undefined;
  });
  return { name: opts.name, type, settings: { ...settings }, isDefault: after.core.runner === opts.name, replaced, ...write };
}

export interface RemoveRunnerResult extends ConfigWrite {
  name: string;
  /** `core.runner` named it and was unset. */
  unsetDefault: boolean;
}

/**
 * Removes runner `name` from both config files, or with `local` only its
 * section in config.local.yaml. When the runner is gone, a `core.runner`
 * naming it is unset wherever it is.
 */
export async function removeRunner(repo: Repo, name: string, opts: { local?: boolean } = {}): Promise<RemoveRunnerResult> {
  checkName(name);
  const { value: unsetDefault, write } = await editConfig(repo, 'runner', (e) => {
    if (!e.config.runner[name]) throw unknownRunner(e.config, { name, from: '--runner' });
    if (opts.local && !e.has(LOCAL_CONFIG_FILE, ['runner', name])) {
      throw new UsageError(`runner "${name}" has no section in .tdv/config.local.yaml; run without --local to remove the runner itself`);
    }
    const files: ConfigFileName[] = opts.local ? [LOCAL_CONFIG_FILE] : [LOCAL_CONFIG_FILE, CONFIG_FILE];
    for (const f of files) e.delete(f, ['runner', name]);
    if (e.has(CONFIG_FILE, ['runner', name])) return false;
    let unset = false;
    for (const f of [LOCAL_CONFIG_FILE, CONFIG_FILE] as const) {
      if (e.get(f, ['core', 'runner']) === name) unset = e.delete(f, ['core', 'runner']) || unset;
    }
    return unset;
  });
  return { name, unsetDefault, ...write };
}

export interface ModifyRunnerResult extends ConfigWrite {
  name: string;
  key: string;
  /** The value stored (typed); undefined after an unset. */
  value?: unknown;
  changed: boolean;
}

/**
 * Sets (or with `unset` removes) one key of runner `name`. The value is read
 * as the engine's schema wants it: `true`/`false`, a number, a list written
 * `[a, b]` (or given as several values), else text. `type` may be changed
 * too; the whole section must then suit the new engine.
 */
export async function modifyRunner(repo: Repo, name: string, key: string, value: RunnerValue | undefined, opts: { local?: boolean; unset?: boolean } = {}): Promise<ModifyRunnerResult> {
  checkName(name);
  if (opts.unset && value !== undefined) throw new UsageError('give a value or --unset, not both');
  if (!opts.unset && value === undefined) throw new UsageError(`give a value for ${key}, or --unset to remove it`);
  if (key === 'type' && opts.unset) throw new UsageError(`runner "${name}" needs a type; to delete the runner, run \`tdv runner remove ${name}\``);
  const current = repo.config.runner[name];
  if (!current) throw unknownRunner(repo.config, { name, from: '--runner' });
  const type = key === 'type' ? checkType(Array.isArray(value) ? value.join(',') : value!) : current.type;
  const mod = await moduleOf({ type });
  const next = engineKeys(current);
  let typed: unknown;
  if (key !== 'type') {
    if (value !== undefined) typed = next[key] = typedValue(mod, name, next, key, value);
    else delete next[key];
  } else typed = type;
  const target = fileFor(opts.local);
  const keyPath = ['runner', name, key];
  const { value: changed, write } = await editConfig(repo, 'runner', (e) => {
    if (!e.config.runner[name]) throw unknownRunner(e.config, { name, from: '--runner' });
    // An unset in one file leaves the other's value in effect: check what will be.
    if (opts.unset && e.has(otherFile(target), keyPath)) next[key] = e.get(otherFile(target), keyPath);
    const bad = settingsProblem(mod, name, next);
    if (bad) throw usageFromProblem(bad.message, mod, type);
    return applyModify(e, target, keyPath, typed, opts, name, key);
  });
  return { name, key, ...(typed !== undefined ? { value: typed } : {}), changed, ...write };
}

function applyModify(e: ConfigEdit, target: ConfigFileName, keyPath: string[], typed: unknown, opts: { local?: boolean; unset?: boolean }, name: string, key: string): boolean {
  if (typed !== undefined) {
    if (JSON.stringify(e.get(target, keyPath)) === JSON.stringify(typed)) return false;
    e.set(target, keyPath, typed);
    return true;
  }
  const other = otherFile(target);
  if (!e.has(target, keyPath)) {
    if (e.has(other, keyPath)) throw new UsageError(`runner.${name}.${key} is set in .tdv/${other}, not .tdv/${target}; ${opts.local ? 'drop' : 'add'} --local to unset it there`);
    return false;
  }
  return e.delete(target, keyPath);
}

export interface RunnerInfo {
  name: string;
  /** The engine type; `local` for this machine. */
  type: RunnerType | 'local';
  isDefault: boolean;
  /** The engine's keys as configured (URLs with user info masked). */
  settings: Record<string, unknown>;
}

/** `local` first, then the configured runners sorted by name. */
export function listRunners(repo: Repo): RunnerInfo[] {
  const cfg = repo.config;
  const def = cfg.core.runner ?? LOCAL_RUNNER;
  const mask = (x: unknown): unknown => (typeof x === 'string' ? maskUrl(x) : Array.isArray(x) ? x.map(mask) : x);
  return [
    { name: LOCAL_RUNNER, type: 'local' as const, isDefault: def === LOCAL_RUNNER, settings: {} },
    ...Object.keys(cfg.runner)
      .sort()
      .map((name) => {
        const r = cfg.runner[name]!;
        return { name, type: r.type, isDefault: def === name, settings: Object.fromEntries(Object.entries(engineKeys(r)).map(([k, x]) => [k, mask(x)])) };
      }),
  ];
}

export interface SetDefaultRunnerResult extends ConfigWrite {
  /** The default in effect afterwards (`local` when none is set). */
  default: string;
  changed: boolean;
}

/** Sets `core.runner` to `name` (configured, or `local`), or with `unset` removes it. */
export async function setDefaultRunner(repo: Repo, name: string | undefined, opts: { local?: boolean; unset?: boolean } = {}): Promise<SetDefaultRunnerResult> {
  if (opts.unset && name !== undefined) throw new UsageError('give a runner name or --unset, not both');
  if (!opts.unset && name === undefined) throw new UsageError('give the name of the runner to make the default, or --unset');
  if (name !== undefined && name !== LOCAL_RUNNER) checkName(name);
  const target = fileFor(opts.local);
  const {
    value: changed,
    after,
    write,
  } = await editConfig(repo, 'runner', (e) => {
    if (name !== undefined) {
      if (name !== LOCAL_RUNNER && !e.config.runner[name]) throw unknownRunner(e.config, { name, from: '--runner' });
      if (e.get(target, ['core', 'runner']) === name) return false;
      e.set(target, ['core', 'runner'], name);
      return true;
    }
    if (e.delete(target, ['core', 'runner'])) return true;
    if (e.has(otherFile(target), ['core', 'runner'])) {
      throw new UsageError(`the default runner is set in .tdv/${otherFile(target)}, not .tdv/${target}; ${opts.local ? 'drop' : 'add'} --local to unset it there`);
    }
    return false;
  });
  return { default: after.core.runner ?? LOCAL_RUNNER, changed, ...write };
}

// ---------------------------------------------------------------------------

function checkName(name: string): void {
  if (name === LOCAL_RUNNER) throw new UsageError(`"${LOCAL_RUNNER}" is this machine: always there, never configured; choose another name`);
  if (!REMOTE_NAME_RE.test(name)) throw new UsageError(`invalid runner name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-", starting with a letter or digit`);
}

function checkType(type: string): RunnerType {
  if (!(RUNNER_TYPES as readonly string[]).includes(type)) throw new UsageError(`unknown runner type "${type}"; known types: ${RUNNER_TYPES.join(', ')}`);
  return type as RunnerType;
}

/** A UsageError from an engine schema's message (problem, then the fix), listing the type's keys when the schema gives no fix. */
function usageFromProblem(message: string, mod: RunnerModule, type: string): UsageError {
  const [problem, ...fix] = message.split('\n');
  const known = Object.keys(mod.configKeys);
  const hint = fix.join(' ') || (known.length ? `keys of type ${type}: ${known.join(', ')}` : '');
  return new UsageError(`${problem}${hint ? `; ${hint.replace(/^./, (c) => c.toLowerCase())}` : ''}`);
}

/**
 * Command-line text as the value the engine's schema accepts for `key`: the
 * first of (YAML-like reading, the text itself, a list of one) it accepts,
 * so `true`, `8` and `[a, b]` become a boolean, a number and a list where the
 * schema wants them, and stay text where it wants text. Several values are a list.
 */
function typedValue(mod: RunnerModule, name: string, others: Record<string, unknown>, key: string, given: RunnerValue): unknown {
  // One value where the schema wants a list is a list of one (`hosts=ssh://a`).
  const candidates: unknown[] = Array.isArray(given) ? [given.map((g) => scalar(g)), given] : [flowOrScalar(given), given, [scalar(given)], [given]];
  // None fits: the one the schema got furthest into, so its message is about the value's parts.
  let best: { c: unknown; depth: number } | undefined;
  for (const c of candidates) {
    const bad = settingsProblem(mod, name, { ...others, [key]: c });
    if (!bad || bad.keys[0] !== key) return c;
    if (!best || bad.keys.length > best.depth) best = { c, depth: bad.keys.length };
  }
  return best!.c;
}

function scalar(text: string): string | number | boolean {
  if (text === 'true' || text === 'false') return text === 'true';
  if (/^-?[0-9]+(\.[0-9]+)?$/.test(text) && Number.isFinite(Number(text))) return Number(text);
  return text;
}

/** `[a, b]` as a list of scalars, else one scalar. */
function flowOrScalar(text: string): unknown {
  const m = /^\[(.*)\]$/s.exec(text.trim());
  if (!m) return scalar(text);
  return m[1]!.trim() === ''
    ? []
    : m[1]!
        .split(',')
        .map((x) => x.trim())
        .map(scalar);
}
