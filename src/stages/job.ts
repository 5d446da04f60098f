/**
 * A stage handed to an engine that does not share this machine's file system
 * (a Docker host over SSH, a Kubernetes cluster): a job spec goes in, a job
 * result comes out. Nothing is shared but bytes named by their SHA-256:
 *
 *   repro                         JobRunner (one file per engine, see registry.ts)
 *   -----                         ---------
 *   stage + checked inputs  --->  JobSpec: image, cmd, env, wdir,
 *                                 inputs [path, sha256, size], outputs, resources
 *                                 io.openInput(input) streams an input's bytes,
 *                                 verified, from the cache
 *                                 ... runs it somewhere ...
 *                                 writes what came back under io.staging
 *   verifies, caches, checks <--  JobResult: exit code, times, image digest,
 *   out through the guard         where, outputs [path, sha256, size]
 *
 * repro then hashes every file under the staging directory again, refuses a
 * path the stage did not declare, caches the outputs and checks them out into
 * the workspace through the checkout engine, exactly as for a local run; the
 * result's hashes are a claim it checks, never trusts.
 */
import type { Readable } from 'node:stream';

/** A regular file a job reads: a repo-relative path (POSIX separators) and its content's identity. */
export interface JobFile {
  /** Repo-relative path, legal per formats/paths.ts. */
  path: string;
  sha256: string;
  size: number;
  /** Whether the workspace file is executable (scripts run as `./x.sh`). */
  exec?: boolean;
}

/** CPU, memory and GPUs a stage asks for (`resources:` in tdv.yaml). */
export interface Resources {
  /** CPUs, fractional allowed (Docker `--cpus`, Kubernetes `cpu`). */
  cpus?: number;
  /** Bytes of memory (Docker `--memory`, Kubernetes `memory`). */
  memory?: number;
  /** Whole GPUs (Docker `--gpus`, Kubernetes `nvidia.com/gpu`). */
  gpus?: number;
}

export interface JobSpec {
  /** The stage's name (for container and Job names, labels and messages). */
  stage: string;
  /**
   * What the stage runs in: an image reference as written in tdv.yaml (`image:`),
   * or, for `build:` stages, the build context (repo-relative) and Dockerfile,
   * which the runner builds where it runs. The runner reports the image ID it
   * actually ran in `JobResult.image`.
   */
  image?: { ref: string; id?: string } | { build: { context: JobFile[]; dir: string; dockerfile?: string } };
  /** Commands run one after another, each by its own `sh -c`; the first failure stops the job. */
  cmd: string[];
  /** The stage's environment additions (names and values travel as data, never as shell text). */
  env: Record<string, string>;
  /** Repo-relative working directory (`.` for the root). */
  wdir: string;
  /** Every file the stage declares it reads (deps expanded to files, params files). */
  inputs: JobFile[];
  /** Declared outputs and metrics (repo-relative files or directories): the only paths that may come back. */
  outputs: string[];
  resources?: Resources;
  /** Outputs that persist (`persist: true`): their current files are sent as inputs too. */
  persist?: string[];
}

/** What the engine says happened. Hashes are claims: repro hashes the staged files again. */
export interface JobResult {
  /** The last command's exit code; null when killed by a signal or lost. */
  exitCode: number | null;
  signal?: string;
  /** When the job started and ended, as the engine saw it (ISO 8601). */
  started: string;
  ended: string;
  /** The image ID (`sha256:...`) the engine actually ran, if it ran in an image. */
  image?: string;
  /** Where it ran: a Docker host, a Kubernetes node and pod. */
  where: string;
  /** The files brought back under `io.staging`, as the runner hashed them. */
  outputs: JobFile[];
}

export interface JobIO {
  /** The bytes of an input, from the cache (verified when it entered the cache). */
  openInput(input: JobFile): Readable;
  /** Absolute path of an existing input's cached object, for runners that want a file (docker cp, a tar). */
  inputPath(input: JobFile): string;
  /**
   * An empty directory of this job's own (under `.tdv/tmp`): the runner writes
   * the outputs that came back here, at their repo-relative paths. Anything
   * else found here (a symlink, a path not declared) fails the stage.
   */
  staging: string;
  /** The command's output as it comes (also written to the stage's log). */
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  /** Debugging lines (`-v`): the exact commands and requests. */
  onDebug?(line: string): void;
  /**
   * Aborting (Ctrl-C, SIGTERM, SIGHUP: repro's one AbortSignal, the same the
   * local runners get) stops the remote container or Job; the runner then
   * resolves with `exitCode: null` once it is gone (and calls the `done` of
   * its cleanup registrations).
   */
  signal?: AbortSignal;
  /**
   * Registers how to stop what the runner started (a container on a host, a
   * Job), run if tdv dies before `done` is called: a SIGKILLed repro leaves
   * nothing running (see stages/reaper.ts). Call it as soon as the thing may
   * exist (before creating it when its name is chosen first), and `done`
   * once it is removed or finished. Returns `done`; synchronous and cheap
   * (a pipe write and a small journal file).
   */
  onCleanup?(action: CleanupAction): () => void;
  /**
   * Byte exchange through the repository's S3 remote, for engines whose
   * containers fetch inputs and return outputs themselves (Kubernetes: no
   * credentials enter the user's image, only presigned URLs). Absent when the
   * repository has no S3 remote.
   */
  exchange?: JobExchange;
}

/**
 * Presigned URLs on an S3 remote for one job's inputs and outputs (see
 * remote/exchange.ts). Inputs are uploaded once under content-addressed keys
 * (`exchange/objects/<sha256>`, plain, whatever the remote's layout), so a
 * rerun or another stage reading the same file uploads nothing.
 */
export interface JobExchange {
  /** A presigned GET URL per input's sha256, uploading (from `open`) the inputs the remote lacks there. */
  inputUrls(files: readonly JobFile[], open: (f: JobFile) => Readable, signal?: AbortSignal): Promise<Map<string, string>>;
  /**
   * A presigned PUT URL for key `name` of job `job`'s own, and how to read it
   * back and remove it afterwards. `form` is the same slot as an S3 POST
   * upload (a form's url and fields, signed for exactly that key), for
   * helpers whose only HTTP client cannot PUT (busybox wget posts a file).
   */
  outputSlot(job: string, name: string): Promise<{ url: string; form?: { url: string; fields: Record<string, string> }; read(): Promise<Readable | undefined>; remove(): Promise<void> }>;
}

/**
 * How to stop something a runner started, in a form another process can
 * carry out (the reaper process when tdv dies, or the next repro from the
 * journal in `.tdv/tmp/running`, mode 0600; see stages/reaper.ts and
 * stages/reap-actions.ts):
 *
 * - `pgid`: SIGTERM to the process group, SIGKILL after 2 s; never while a
 *   live process with that pid has another start time than at registration.
 * - `docker-rm`: runs `docker args` (e.g. `['rm', '--force', '--', name]`,
 *   `['-H', 'ssh://u@h', 'rm', '--force', '--', name]`) with `env` added to
 *   tdv's environment (so put there only what says where the daemon is,
 *   never secrets); exit 0 is "stopped", "No such container" is "gone".
 * - `http-delete`: a DELETE of `url` (a Job: add `?propagationPolicy=Background`
 *   so its pods go too) with `headers`; `ca`, `cert`, `key` are PEM text
 *   (not paths); 2xx is "stopped", 404 and 410 "gone".
 */
export type CleanupAction =
  | { kind: 'pgid'; pgid: number }
  | { kind: 'docker-rm'; docker: string; args: string[]; env?: Record<string, string> }
  | { kind: 'http-delete'; url: string; headers?: Record<string, string>; ca?: string; cert?: string; key?: string; insecure?: boolean };

/** An engine that runs job specs (registered by `type` in registry.ts). */
export interface JobRunner {
  /** The runner's configured name (`runner.<name>` in config), for messages. */
  readonly name: string;
  /** The engine type (`docker`, `kubernetes`, ...). */
  readonly type: string;
  /**
   * The image ID `ref` names where this runner runs (for change detection and
   * tdv.lock), or undefined when the engine cannot tell before running (then
   * the ID the run reports is recorded).
   */
  resolveImage?(ref: string, signal?: AbortSignal): Promise<string | undefined>;
  run(job: JobSpec, io: JobIO): Promise<JobResult>;
  /** Stops leftovers of earlier runs of this repository (containers, Jobs) that are still running. */
  sweep?(repoId: string): Promise<string[]>;
  close?(): Promise<void>;
}

/** A configured runner: `runner.<name>` in config.yaml, with its engine `type` and that type's keys. */
export interface RunnerConfig {
  name: string;
  type: string;
  [key: string]: unknown;
}

/** Given to a runner factory: what it may need of the repository. */
export interface RunnerContext {
  /** Absolute repository root (for labels: its hash names this clone's containers and Jobs). */
  root: string;
  /** A short stable id of this clone (hash of root + host name), put on every container and Job as a label. */
  repoId: string;
  /** The environment (DOCKER_HOST, KUBECONFIG, HOME...), default process.env. */
  env: NodeJS.ProcessEnv;
  /**
   * This tdv process, as a label value (`tdv.owner`): runners put it on what
   * they start, and `sweep` leaves alone what a live owner started (another
   * repro of a clone with the same id: two CI jobs on one machine).
   */
  owner?: string;
  /** Whether the tdv process an owner label names may still be running (one on another machine counts as running: only its own machine can tell). */
  ownerAlive?(owner: string): boolean;
}
