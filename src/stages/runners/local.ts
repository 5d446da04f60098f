/**
 * Runs a stage's command on this machine with `sh -c`, in the stage's working
 * directory, with this process's environment plus the stage's `env`.
 */
import { TdvError } from '../../errors.js';
import type { RunResult, RunSpec, StageRunner } from '../runner.js';
import { checkCwd, checkEnv, spawnGroup } from './process.js';

export interface LocalRunnerOptions {
  /** The environment the stage's `env` is added to; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How long an aborted command has between SIGTERM and SIGKILL; default 5000 ms. */
  killGraceMs?: number;
  /** The shell that runs `cmd`; default `sh`. */
  shell?: string;
}

export class LocalRunner implements StageRunner {
  readonly kind = 'local' as const;
  private readonly env: NodeJS.ProcessEnv;
  private readonly killGraceMs: number;
  private readonly shell: string;

  constructor(opts: LocalRunnerOptions = {}) {
    this.env = opts.env ?? process.env;
    this.killGraceMs = opts.killGraceMs ?? 5_000;
    this.shell = opts.shell ?? 'sh';
  }

  /**
   * Runs `sh -c cmd` in `spec.cwd`. The command leads its own process group:
   * aborting sends SIGTERM to the group (the shell and everything it started),
   * then SIGKILL after the grace period, and resolves with `exitCode: null` and
   * the signal. Ctrl-C in a terminal does not reach the command by itself; the
   * caller turns it into an abort.
   */
  async run(spec: RunSpec): Promise<RunResult> {
    checkEnv(spec.stage, spec.env);
    checkCwd(spec.stage, spec.root, spec.cwd);
    if (spec.signal?.aborted) return { exitCode: null, signal: 'SIGTERM' };
    const child = spawnGroup(this.shell, ['-c', spec.cmd], {
      cwd: spec.cwd,
      env: { ...this.env, ...spec.env },
      onOutput: (chunk, stream) => spec.onOutput(chunk, stream),
    });
    // Stopped by the reaper if tdv dies (SIGKILL, OOM) while the group runs.
    const registered = child.pid !== undefined ? spec.onCleanup?.({ kind: 'pgid', pgid: child.pid }) : undefined;
    let killTimer: NodeJS.Timeout | undefined;
    const onAbort = () => {
      child.killGroup('SIGTERM');
      // Not cleared when the shell exits: something it started may ignore SIGTERM.
      killTimer = setTimeout(() => child.killGroup('SIGKILL'), this.killGraceMs);
    };
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const r = await child.done;
      if (r.spawnError) {
        throw new TdvError('STAGE_START_FAILED', `stage ${spec.stage}: cannot run ${this.shell}: ${r.spawnError.message}`, {
          data: { stage: spec.stage, code: r.spawnError.code },
        });
      }
      return r.signal ? { exitCode: null, signal: r.signal } : { exitCode: r.exitCode };
    } finally {
      spec.signal?.removeEventListener('abort', onAbort);
      if (killTimer) {
        clearTimeout(killTimer);
        // The group may outlive its leader; finish what the abort started.
        child.killGroup('SIGKILL');
      }
      registered?.();
    }
  }
}
