/**
 * How a stage's command is executed: in a Docker container or locally with
 * `sh -c`. Runners only run commands; deciding what runs, hashing and
 * recording are reproduce's job (src/repo/reproduce.ts).
 */
import type { CleanupAction } from './job.js';

export interface RunSpec {
  /** Stage name, for container names and messages. */
  stage: string;
  /** The command, run by `sh -c` (in the container, or locally). */
  cmd: string;
  /** Absolute path of the repository root (mounted at the same path in a container). */
  root: string;
  /** Absolute working directory, inside `root`. */
  cwd: string;
  /** The stage's environment additions. Values never pass through a host shell. */
  env: Record<string, string>;
  /** Docker only: the image ID to run (`sha256:...`), as resolved by `resolveImage`/`buildImage`. */
  image?: string;
  /** Receives the command's output as it comes. */
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  /** Aborting stops the process or container. */
  signal?: AbortSignal;
  /** Receives debugging lines (`-v`), such as the exact `docker run` command line. */
  onDebug?(line: string): void;
  /**
   * Registers how to stop what the runner started (its process group, its
   * container), carried out if tdv dies before `done` is called (see
   * stages/reaper.ts, and `JobIO.onCleanup`). Returns `done`.
   */
  onCleanup?(action: CleanupAction): () => void;
}

export interface RunResult {
  /** The command's exit code; null when it was killed by a signal. */
  exitCode: number | null;
  /** The signal that ended it, if any. */
  signal?: string;
}

export interface StageRunner {
  readonly kind: 'local' | 'docker';
  run(spec: RunSpec): Promise<RunResult>;
}

/** What a Docker runner also offers: image identity, for tdv.lock and change detection. */
export interface DockerImages {
  /** The image ID (`sha256:...`) a reference names now, per `docker image inspect`. */
  resolveImage(ref: string): Promise<string>;
  /**
   * Builds `contextDir` (its Dockerfile) tagged by a hash of the context's
   * content, so any change to the context gives a new tag and a new ID.
   */
  buildImage(contextDir: string, opts?: { dockerfile?: string; onOutput?: (chunk: Buffer) => void; signal?: AbortSignal }): Promise<{ tag: string; id: string }>;
}
