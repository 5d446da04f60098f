/**
 * Carrying out a CleanupAction (stages/job.ts) from outside the process that
 * registered it: the reaper process (stages/reaper-child.ts) when tdv died,
 * and the next `tdv repro` for the journal of a run whose tdv and reaper both
 * died (stages/reaper.ts). Node built-ins only: the reaper process loads this
 * and nothing else, so it starts in the time of a bare `node`.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { CleanupAction } from './job.js';

/** What carrying out an action found: it stopped something, there was nothing left, or it could not tell. */
export type Outcome = { stopped: true } | { gone: true } | { failed: string };

export interface CarryOutOptions {
  /**
   * `pgid` only: the group leader's start time (`procStart`) when it was
   * registered. A live process with that pid and another start time is a
   * reused pid: it is never signalled.
   */
  start?: string;
  /**
   * `pgid` only: signal the group only when its leader is alive with exactly
   * `start` (the next run's sweep, long after the fact). Without it, a group
   * whose leader has exited but whose members live on is stopped too (the
   * reaper, acting the moment tdv died: those members keep the number in use,
   * so it cannot have been handed to another process).
   */
  requireStart?: boolean;
  /** `pgid` only: how long the group has between SIGTERM and SIGKILL; default 2000 ms. */
  graceMs?: number;
  /** The environment a `docker-rm` action's variables are added to; default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** `docker-rm` and `http-delete`: give up after this long; default 30000 ms. */
  timeoutMs?: number;
}

/**
 * The start time of process `pid` (field 22 of /proc/<pid>/stat, in clock
 * ticks since boot), or undefined when there is no such process. With the
 * pid, it names one process for the machine's uptime: a pid the kernel
 * reuses comes with a later start time. (The same as workspace/mutex.ts
 * reads for the repository lock; repeated here so the reaper process loads
 * nothing but Node's built-ins.)
 */
export function procStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Carries out `action`; never throws. */
export async function carryOut(action: CleanupAction, opts: CarryOutOptions = {}): Promise<Outcome> {
  try {
    switch (action.kind) {
      case 'pgid':
        return await stopGroup(action.pgid, opts);
      case 'docker-rm':
        return await dockerRm(action, opts);
      case 'http-delete':
        return await httpDelete(action, opts);
      default:
        return { failed: `unknown cleanup action ${JSON.stringify((action as { kind?: unknown }).kind)}` };
    }
  } catch (err) {
    return { failed: (err as Error).message };
  }
}

/** A short description of an action for one warning line: `process group 123`, `container tdv-...`, `DELETE https://host/path`. */
export function describeAction(action: CleanupAction): string {
  switch (action.kind) {
    case 'pgid':
      return `process group ${action.pgid}`;
    case 'docker-rm':
      return `container ${action.args.at(-1) ?? '?'}`;
    case 'http-delete': {
      try {
        const u = new URL(action.url);
        return `DELETE ${u.origin}${u.pathname}`;
      } catch {
        return `DELETE ${action.url}`;
      }
    }
    default:
      return 'an unknown action';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Whether group `pgid` has a member that is not a zombie (an exited process
 * nobody has reaped yet, which kill(-pgid, 0) still counts): field 5 of
 * /proc/<pid>/stat is the process group, field 3 the state.
 */
function groupAlive(pgid: number): boolean {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc');
  } catch {
    return false;
  }
  for (const p of pids) {
    if (p.charCodeAt(0) < 48 || p.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue; // ended
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') return true;
  }
  return false;
}

/**
 * SIGTERM to the group, then SIGKILL to what is left after the grace period.
 * A process group's number stays allocated while any member lives (Linux
 * frees a pid only when no process uses it as pid, group or session), so
 * while the group has members, -pgid can only mean this group; what must
 * never be signalled is a live process that got the leader's pid after the
 * whole group was gone, which its start time tells.
 */
async function stopGroup(pgid: number, opts: CarryOutOptions): Promise<Outcome> {
  // kill(-1) is every process we may signal, kill(0) our own group: never.
  if (!Number.isSafeInteger(pgid) || pgid <= 1) return { failed: `refusing to signal process group ${pgid}` };
  if (pgid === process.pid || pgid === process.ppid) return { failed: `refusing to signal process group ${pgid}, its own` };
  const now = procStart(pgid);
  if (opts.requireStart ? opts.start === undefined || now !== opts.start : now !== undefined && opts.start !== undefined && now !== opts.start) return { gone: true };
  if (!groupAlive(pgid)) return { gone: true };
  try {
    process.kill(-pgid, 'SIGTERM');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return { gone: true };
    return { failed: `cannot signal process group ${pgid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  const until = Date.now() + (opts.graceMs ?? 2_000);
  while (Date.now() < until && groupAlive(pgid)) await sleep(50);
  if (groupAlive(pgid)) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // ended a moment ago
    }
  }
  return { stopped: true };
}

/** Runs `docker args` (`rm --force -- NAME`): exit 0 stopped it, "No such container" means it was gone. */
function dockerRm(action: Extract<CleanupAction, { kind: 'docker-rm' }>, opts: CarryOutOptions): Promise<Outcome> {
  if (typeof action.docker !== 'string' || action.docker === '' || !Array.isArray(action.args) || !action.args.every((a) => typeof a === 'string')) {
    return Promise.resolve({ failed: 'a docker-rm action without a docker command' });
  }
  return new Promise((resolve) => {
    const child = spawn(action.docker, action.args, { env: { ...(opts.env ?? process.env), ...action.env }, stdio: ['ignore', 'ignore', 'pipe'], timeout: opts.timeoutMs ?? 30_000 });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (c: string) => (stderr = (stderr + c).slice(-4096)));
    child.on('error', (err) => resolve({ failed: `cannot run ${action.docker}: ${err.message}` }));
    child.on('close', (code, signal) => {
      // `docker rm --force` of a container already gone exits 0 too, saying so on stderr.
      if (/no such container/i.test(stderr)) resolve({ gone: true });
      else if (code === 0) resolve({ stopped: true });
      else resolve({ failed: `${action.docker} ${action.args.join(' ')}: ${stderr.trim().split('\n')[0] || (signal ? `killed by ${signal}` : `exit ${code}`)}` });
    });
  });
}

/** A DELETE request: 2xx stopped it, 404 means it was gone. TLS material is PEM text. */
async function httpDelete(action: Extract<CleanupAction, { kind: 'http-delete' }>, opts: CarryOutOptions): Promise<Outcome> {
  const url = new URL(action.url);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { failed: `cannot DELETE ${url.protocol} URLs` };
  const mod = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise((resolve) => {
    const req = mod.request(url, {
      method: 'DELETE',
      headers: action.headers,
      timeout: opts.timeoutMs ?? 30_000,
      ...(url.protocol === 'https:' ? { ca: action.ca, cert: action.cert, key: action.key, rejectUnauthorized: action.insecure !== true } : {}),
    });
    req.on('response', (res) => {
      res.resume();
      const s = res.statusCode ?? 0;
      if (s >= 200 && s < 300) resolve({ stopped: true });
      else if (s === 404 || s === 410) resolve({ gone: true });
      else resolve({ failed: `DELETE ${url.origin}${url.pathname}: HTTP ${s}` });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ failed: `DELETE ${url.origin}${url.pathname}: ${err.message}` }));
    req.end();
  });
}
