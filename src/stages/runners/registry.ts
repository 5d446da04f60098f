/**
 * Runners by engine type, as git-lfs registers transfer adapters by name: a
 * new engine is one new file here plus its entry below (and it runs the
 * runner contract suite, test/contract/runners). Each module is loaded only
 * when a stage uses it, so `tdv status` never pays for a Kubernetes client.
 *
 * `local` is not here: it is this machine (LocalRunner, or DockerRunner for a
 * stage with an image), which shares the workspace and needs no job spec.
 */
import type * as v from 'valibot';
import type { RunnerType } from '../../formats/config.js';
import type { JobRunner, RunnerConfig, RunnerContext } from '../job.js';

/** What a runner module exports. */
export interface RunnerModule {
  /** The keys of a `runner.<name>` section of this type (besides `type`), checked when config is read and by `tdv runner add/modify`. */
  configSchema: v.GenericSchema<Record<string, unknown>>;
  /** Key -> one line for `tdv runner add --help` and error messages. */
  configKeys: Record<string, string>;
  create(cfg: RunnerConfig, ctx: RunnerContext): JobRunner;
}

// Typed by the config format's list of types: a type config.yaml accepts has a module, and no other.
const MODULES: Record<RunnerType, () => Promise<RunnerModule>> = {
  /** Docker engines on other machines (ssh://, tcp:// with TLS, a Docker context), one or a pool. */
  docker: async () => (await import('./docker-host.js')).runnerModule,
  /** A Job per stage through the Kubernetes API; bytes move through the S3 remote by presigned URLs. */
  kubernetes: async () => (await import('./kubernetes.js')).runnerModule,
};

/** The engine types a `runner.<name>.type` may name. */
export const RUNNER_TYPES: readonly string[] = Object.keys(MODULES);

/** The module of engine `type`, or undefined for a type tdv does not know. */
export async function runnerModule(type: string): Promise<RunnerModule | undefined> {
  return Object.hasOwn(MODULES, type) ? MODULES[type as RunnerType]() : undefined;
}
