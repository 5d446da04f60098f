/**
 * What both runners share: one child process in its own process group, its
 * output streamed as it comes, and a way to stop the whole group.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { TdvError } from '../../errors.js';

export interface GroupChild {
  /** The child's pid, which is also its process group's id (undefined when it could not be started). */
  pid?: number;
  /** Settles when the child has exited and its output pipes have closed. */
  done: Promise<GroupExit>;
  /** Sends `signal` to the child's whole process group (the child and everything it started). */
  killGroup(signal: NodeJS.Signals): void;
}

export interface GroupExit {
  exitCode: number | null;
  signal?: string;
  /** Set when the child could not be started at all (missing executable or cwd, ...). */
  spawnError?: { code?: string; message: string };
  /** The last bytes of stderr, for diagnosing failures of the program itself (the docker CLI). */
  stderrTail: string;
}

const STDERR_TAIL = 8 << 10;

/** Process groups still running, killed if this process exits while they run (see below). */
const live = new Set<number>();
let exitHook = false;

/**
 * Starts `file args` (no shell involved: argv is passed as is) as the leader of
 * a new process group, so that Ctrl-C in the terminal does not reach it
 * directly (the caller decides what stopping means) and so that killing the
 * group also kills whatever the command started.
 */
export function spawnGroup(file: string, args: readonly string[], opts: { cwd?: string; env: NodeJS.ProcessEnv; onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void }): GroupChild {
  const sub = execa(file, args, {
    cwd: opts.cwd,
    env: opts.env,
    extendEnv: false,
    detached: true,
    stdin: 'ignore',
    buffer: false,
    reject: false,
    // execa's own cleanup skips detached children; the exit hook below covers them.
    cleanup: false,
  });
  const pid = sub.pid;
  if (pid !== undefined) {
    live.add(pid);
    if (!exitHook) {
      exitHook = true;
      // A child in its own group outlives tdv unless someone kills it; `exit`
      // handlers must be synchronous, which process.kill is.
      process.on('exit', () => {
        for (const p of live) killQuietly(-p, 'SIGKILL');
      });
    }
  }
  let tail = '';
  sub.stdout?.on('data', (c: Buffer) => opts.onOutput?.(c, 'stdout'));
  sub.stderr?.on('data', (c: Buffer) => {
    opts.onOutput?.(c, 'stderr');
    tail = (tail + c.toString('utf8')).slice(-STDERR_TAIL);
  });
  const done = sub.then((r): GroupExit => {
    if (pid !== undefined) live.delete(pid);
    if (r.exitCode === undefined && r.signal === undefined) {
      const cause = r.cause as NodeJS.ErrnoException | undefined;
      return { exitCode: null, spawnError: { code: r.code ?? cause?.code, message: cause?.message ?? r.shortMessage ?? 'could not start' }, stderrTail: tail };
    }
    return { exitCode: r.exitCode ?? null, signal: r.signal, stderrTail: tail };
  });
  return {
    pid,
    done,
    killGroup(signal) {
      if (pid !== undefined) killQuietly(-pid, signal);
    },
  };
}

/** process.kill, minus ESRCH: the group may have ended a moment ago. */
function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

/**
 * Rejects what an environment cannot carry: a name that is empty or holds `=`
 * or NUL (`A=B` as a name would silently set `A`), a value with NUL. Newlines
 * and shell syntax are fine: names and values travel as data, never as shell text.
 */
export function checkEnv(stage: string, env: Record<string, string>): void {
  for (const [k, v] of Object.entries(env)) {
    if (k === '' || k.includes('=') || k.includes('\0')) {
      throw new TdvError('BAD_STAGE_ENV', `stage ${stage}: env name ${JSON.stringify(k)} is not a valid variable name; fix it in tdv.yaml`, { data: { stage, name: k } });
    }
    if (typeof v !== 'string' || v.includes('\0')) {
      throw new TdvError('BAD_STAGE_ENV', `stage ${stage}: env ${k} must be a string without NUL bytes; fix it in tdv.yaml`, { data: { stage, name: k } });
    }
  }
}

/** Throws unless `cwd` is an existing directory inside `root`. */
export function checkCwd(stage: string, root: string, cwd: string): void {
  const rel = path.relative(root, cwd);
  if (!path.isAbsolute(cwd) || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new TdvError('STAGE_WDIR_OUTSIDE', `stage ${stage}: working directory ${cwd} is outside the repository ${root}; fix wdir in tdv.yaml`, { data: { stage, cwd } });
  }
  let isDir = false;
  try {
    isDir = fs.statSync(cwd).isDirectory();
  } catch {
    // reported below
  }
  if (!isDir) {
    throw new TdvError('STAGE_WDIR_MISSING', `stage ${stage}: working directory ${rel || '.'} does not exist; create it or fix wdir in tdv.yaml`, { data: { stage, cwd } });
  }
}
