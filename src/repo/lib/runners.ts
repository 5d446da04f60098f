/**
 * Runners by name, for repro and `tdv runner`: which runner a stage runs on
 * (the resolution order below), the engine module of a configured runner
 * (loaded only when a stage uses it), its settings checked against that
 * module's schema, and the runner made from them.
 *
 *   --runner NAME  >  the stage's `runner:`  >  core.runner  >  local
 *
 * `local` is this machine (LocalRunner, or DockerRunner for a stage with an
 * image) and is never configured; every other name must be a `runner.<name>`
 * section of config.yaml or config.local.yaml.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import * as v from 'valibot';
import { FormatError, TdvError } from '../../errors.js';
import { type Config, LOCAL_RUNNER, RUNNER_TYPES, type RunnerSettings } from '../../formats/config.js';
import { issueKeys, renderMessage, showKeys } from '../../formats/schema.js';
import type { JobRunner, RunnerContext } from '../../stages/job.js';
import type { Stage } from '../../stages/load.js';
import { procStart } from '../../stages/reap-actions.js';
import { type RunnerModule, runnerModule } from '../../stages/runners/registry.js';
import type { Repo } from '../repo.js';

/** A stage's runner and what named it, for messages. */
export interface ChosenRunner {
  name: string;
  /** `--runner`, `tdv.yaml:3:5` (the stage's `runner:`), `core.runner`, or `default` (local, nothing named one). */
  from: string;
}

/**
 * The runner `stage` runs on: `override` (`repro --runner`), else the
 * stage's `runner:`, else `core.runner`, else local. A name no
 * `runner.<name>` section defines (nor `given`: runners handed to repro) is
 * UNKNOWN_RUNNER, naming where it came from.
 */
export function chooseRunner(config: Config, stage: Pick<Stage, 'name' | 'runner' | 'runnerWhere'>, override?: string, given?: ReadonlySet<string>): ChosenRunner {
  const chosen: ChosenRunner =
    override !== undefined
      ? { name: override, from: '--runner' }
      : stage.runner !== undefined
        ? { name: stage.runner, from: stage.runnerWhere ?? 'tdv.yaml' }
        : config.core.runner !== undefined
          ? { name: config.core.runner, from: 'core.runner' }
          : { name: LOCAL_RUNNER, from: 'default' };
  if (chosen.name !== LOCAL_RUNNER && config.runner[chosen.name] === undefined && !given?.has(chosen.name)) throw unknownRunner(config, chosen, stage.name);
  return chosen;
}

/** UNKNOWN_RUNNER for a name that is neither `local` nor configured, naming where it was written and the fix. */
export function unknownRunner(config: Config, chosen: ChosenRunner, stage?: string): TdvError {
  const known = Object.keys(config.runner).sort();
  const where = chosen.from === '--runner' ? '--runner names' : chosen.from === 'core.runner' ? 'core.runner (the default runner) names' : `${chosen.from}: ${stage ? `stage "${stage}" ` : ''}names`;
  const fix = known.length ? `known runners: local, ${known.join(', ')}` : `add it with \`tdv runner add ${chosen.name} TYPE ...\`, or use local`;
  return new TdvError('UNKNOWN_RUNNER', `${where} runner "${chosen.name}", which is not configured; ${fix}`, { data: { name: chosen.name, from: chosen.from, known } });
}

/** The module of a configured runner's engine type. */
export async function moduleOf(settings: RunnerSettings): Promise<RunnerModule> {
  const mod = await runnerModule(settings.type);
  // config.ts accepts only RUNNER_TYPES, and the registry has a module for each.
  if (!mod) throw new Error(`bug: no runner module for type ${settings.type} (known: ${RUNNER_TYPES.join(', ')})`);
  return mod;
}

/**
 * A runner's settings (without `type`) as its engine's schema reads them, or
 * the first problem as `[keys, message]`: the key path inside the section and
 * the message (problem, then the fix after a newline), with its key-path
 * markers filled in as `runner.<name>.<key>`.
 */
export function settingsProblem(mod: RunnerModule, name: string, settings: Record<string, unknown>): { keys: (string | number)[]; message: string } | undefined {
  const r = v.safeParse(mod.configSchema, settings, { abortEarly: true });
  if (r.success) return undefined;
  const keys = issueKeys(r.issues[0]);
  const full = ['runner', name, ...keys];
  const message = renderMessage(r.issues[0].message, full);
  // A message that does not name its key (valibot's defaults) gets the key path in front.
  return { keys, message: message.includes(`runner.${name}`) ? message : `${showKeys(full)}: ${message}` };
}

/** A runner's settings without its `type`, the keys an engine's schema checks. */
export function engineKeys(settings: RunnerSettings): Record<string, unknown> {
  const { type: _type, ...rest } = settings;
  return rest;
}

/**
 * Checks configured runner `name`'s keys against its engine's schema: a
 * FormatError at the key's `file:line:col` (from config) when one is wrong.
 */
export async function checkedRunner(config: Config, name: string): Promise<{ settings: RunnerSettings; mod: RunnerModule }> {
  const settings = config.runner[name];
  if (!settings) throw unknownRunner(config, { name, from: '--runner' });
  const mod = await moduleOf(settings);
  const bad = settingsProblem(mod, name, engineKeys(settings));
  if (bad) {
    const at = config.runnerAt[name];
    const first = bad.keys[0];
    const where = (typeof first === 'string' && at?.keys[first]) || at?.section || `runner.${name}`;
    const [problem, ...fix] = bad.message.split('\n');
    const known = Object.keys(mod.configKeys);
    throw new FormatError(where, problem!, fix.join(' ') || (known.length ? `Keys of type ${settings.type}: ${known.join(', ')}` : ''));
  }
  return { settings, mod };
}

/**
 * A short stable id of this clone: the hash of its root and this machine's
 * name. Runners label what they start with it, so `sweep` finds this clone's
 * leftovers and no one else's.
 */
export function cloneId(repo: Repo): string {
  return createHash('sha256').update(`${os.hostname()}\0${repo.root}`).digest('hex').slice(0, 16);
}

/** This machine, as the first part of an owner label: a hash of its name and boot id. */
function machineTag(): string {
  let boot = '';
  try {
    boot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // not Linux: the name alone
  }
  return createHash('sha256').update(`${os.hostname()}\0${boot}`).digest('hex').slice(0, 12);
}

/** This process as an owner label value: `<machine>.<pid>.<start time>` (a valid Docker and Kubernetes label). */
export function ownerLabel(): string {
  return `${machineTag()}.${process.pid}.${procStart(process.pid) ?? '0'}`;
}

/**
 * Whether the tdv that wrote owner label `owner` may still run: one on
 * another machine (or boot) may, as far as this one can tell; one here runs
 * when its pid is alive with the same start time (a reused pid is not it).
 */
export function ownerAlive(owner: string): boolean {
  const m = /^([0-9a-f]{12})\.(\d+)\.(\d+)$/.exec(owner);
  if (!m) return false;
  if (m[1] !== machineTag()) return true;
  return procStart(Number(m[2])) === m[3];
}

/** The context a runner factory gets. */
export function runnerContext(repo: Repo, env: NodeJS.ProcessEnv = process.env): RunnerContext {
  return { root: repo.root, repoId: cloneId(repo), env, owner: ownerLabel(), ownerAlive };
}

/** Creates configured runner `name` (its keys checked first). */
export async function createRunner(repo: Repo, name: string, env?: NodeJS.ProcessEnv): Promise<JobRunner> {
  const { settings, mod } = await checkedRunner(repo.config, name);
  return mod.create({ ...engineKeys(settings), name, type: settings.type }, runnerContext(repo, env));
}
