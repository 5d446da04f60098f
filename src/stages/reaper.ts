/**
 * Nothing a `tdv repro` started outlives it, even when it is SIGKILLed,
 * OOM-killed or crashes (when it can clean up, Ctrl-C and `exit` handlers do).
 * Two layers:
 *
 *   tdv repro ----pipe----> reaper process (own session, cwd /, no stdout/stderr)
 *     register id action      pipe closes without `bye`: carries out every
 *     done id                 action not done (SIGTERM then SIGKILL a process
 *     bye                     group, `docker rm --force`, an HTTP DELETE), exits
 *       |
 *       +--> .tdv/tmp/running/<tdv pid>.json: the same actions, for when the
 *            reaper died too (kill -9 of both, a reboot): the next repro
 *            finds the journal of a tdv that is gone and carries them out.
 *
 * Why one reaper process per run rather than a pipe-watching wrapper around
 * each stage's shell: a wrapper covers only a local process group (a Job on a
 * cluster or a container on another host has no local process to wrap), it
 * would have to live outside the group it kills (so one more process per
 * stage, not per run), and it would stand between tdv and the command's exit
 * status. The reaper is started on the first registration only (a repro that
 * restores or skips everything starts none), as its own small bundle entry
 * that loads only Node's built-ins (the main bundle would load commander,
 * yaml and valibot first), at tdv's priority (niced, it would start and
 * clean up slowly on a busy machine: nice 10 weighs about a tenth of a
 * normal process). Measured on the 2-core dev machine at load average 7:
 * tdv's own thread spends 2-3 ms on the spawn and under 1 ms per journal
 * write; the reaper's start-up is about 100 ms of CPU (a bare `node -e 0`
 * is 80), on the other core; a repro of one `true` stage, 25 runs with and
 * 25 without interleaved, took min 331 / median 488 ms with the reaper and
 * 365 / 518 ms without (an earlier batch: 537 vs 504 median): no difference
 * above the noise.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as v from 'valibot';
import type { Guard } from '../workspace/guard.js';
import type { CleanupAction } from './job.js';
import { carryOut, describeAction, type Outcome, procStart } from './reap-actions.js';
import { processGone } from '../util/fs.js';

/** Journals, under `.tdv/`: `tmp/running/<tdv pid>.json`. */
const DIR = 'tmp/running';

/** The reaper process's entry, beside this module (dist/bundle/reaper-child.js, or dist/stages/ under tsc). */
const CHILD = new URL('./reaper-child.js', import.meta.url);

const ActionSchema = v.variant('kind', [
  v.object({ kind: v.literal('pgid'), pgid: v.pipe(v.number(), v.integer(), v.minValue(2)) }),
  v.object({ kind: v.literal('docker-rm'), docker: v.pipe(v.string(), v.minLength(1)), args: v.array(v.string()), env: v.optional(v.record(v.string(), v.string())) }),
  v.object({
    kind: v.literal('http-delete'),
    url: v.string(),
    headers: v.optional(v.record(v.string(), v.string())),
    ca: v.optional(v.string()),
    cert: v.optional(v.string()),
    key: v.optional(v.string()),
    insecure: v.optional(v.boolean()),
  }),
]);

/** One journal: which tdv (pid, start time, host) started what, and how to stop it. */
const JournalSchema = v.object({
  pid: v.pipe(v.number(), v.integer(), v.minValue(1)),
  start: v.string(),
  host: v.string(),
  cmd: v.string(),
  actions: v.array(v.object({ action: ActionSchema, start: v.optional(v.string()) })),
});
export type Journal = v.InferOutput<typeof JournalSchema>;

export interface ReaperOptions {
  /** The guard of `.tdv/` (repo.own): the journal is one of tdv's own files. */
  own: Guard;
  /** The command, for the journal (`repro`). */
  cmd?: string;
  /**
   * The reaper process's script; default the bundled `reaper-child.js` beside
   * this module; null for none (journal only). When the script is missing
   * (tdv run from its TypeScript sources, as the in-process tests do), there
   * is no reaper process either: the journal and the exit handlers remain.
   */
  script?: URL | string | null;
  debug?(line: string): void;
}

/**
 * The watchdog of one run. `register` is what runners are given as
 * `JobIO.onCleanup` / `RunSpec.onCleanup`: call it as soon as the thing
 * exists (or before it is created, when its name is known: a container),
 * and call the function it returns once it is stopped or finished.
 */
export class Reaper {
  private child?: ChildProcess;
  private spawned = false;
  private next = 0;
  private readonly entries = new Map<number, { action: CleanupAction; start?: string }>();
  private readonly file = `${DIR}/${process.pid}.json`;
  private readonly self = { pid: process.pid, start: procStart(process.pid) ?? '', host: os.hostname() };

  constructor(private readonly opts: ReaperOptions) {}

  /** Registers how to stop something this run started; returns `done`. */
  readonly register = (action: CleanupAction): (() => void) => {
    const id = ++this.next;
    // A group leader's start time tells it from a later process given the same pid.
    const entry = action.kind === 'pgid' ? { action, start: procStart(action.pgid) } : { action };
    this.entries.set(id, entry);
    this.send(`register ${id} ${JSON.stringify(entry)}\n`);
    this.writeJournal();
    let once = false;
    return () => {
      if (once) return;
      once = true;
      this.entries.delete(id);
      this.send(`done ${id}\n`);
      this.writeJournal();
    };
  };

  /**
   * The run is over: the reaper process is told `bye` and exits, the journal
   * is removed. Actions still registered (a runner that never said `done`)
   * are left to the reaper, which carries them out when its pipe closes
   * without `bye`, and stay in the journal.
   */
  close(): void {
    const clean = this.entries.size === 0;
    if (this.child?.stdin) {
      if (clean) this.child.stdin.write('bye\n');
      this.child.stdin.end();
    }
    this.child = undefined;
    if (clean) this.removeJournal();
  }

  private send(line: string): void {
    if (!this.spawned) this.start();
    // Written at once while the pipe has room (64 KiB), so a SIGKILL right after still finds it there.
    this.child?.stdin?.write(line);
  }

  private start(): void {
    this.spawned = true;
    const script = this.opts.script === undefined ? CHILD : this.opts.script;
    if (script === null || !fs.existsSync(script)) {
      this.opts.debug?.('no reaper process (its script is not built); leftovers are journalled only');
      return;
    }
    try {
      // detached: its own session and process group, so neither Ctrl-C in the terminal nor a
      // kill of tdv's group reaches it; stdout and stderr to /dev/null so that a pipe reading
      // tdv's output ends when tdv does; cwd / so it keeps no directory busy.
      const child = spawn(process.execPath, [script instanceof URL ? fileURLToPath(script) : script], { detached: true, stdio: ['pipe', 'ignore', 'ignore'], cwd: '/' });
      child.on('error', (err) => this.opts.debug?.(`reaper process: ${err.message}`));
      child.stdin?.on('error', () => undefined); // it died: the journal still names everything
      // Neither it nor its pipe keeps tdv running.
      child.unref();
      (child.stdin as unknown as { unref?(): void } | null)?.unref?.();
      this.child = child;
      this.opts.debug?.(`reaper process ${child.pid} started`);
    } catch (err) {
      this.opts.debug?.(`cannot start the reaper process: ${(err as Error).message}`);
    }
  }

  private writeJournal(): void {
    if (this.entries.size === 0) {
      this.removeJournal();
      return;
    }
    const j: Journal = { ...this.self, cmd: this.opts.cmd ?? 'repro', actions: [...this.entries.values()] };
    try {
      // 0600: an http-delete action may carry a bearer token.
      this.opts.own.writeControlFile(this.file, `${JSON.stringify(j)}\n`, { mode: 0o600 });
    } catch (err) {
      this.opts.debug?.(`cannot write ${this.file}: ${(err as Error).message}`);
    }
  }

  private removeJournal(): void {
    try {
      this.opts.own.removeControlFile(this.file);
    } catch {
      // not a regular file: sweep reports it
    }
  }
}

export interface SweepResult {
  /** What was stopped, per dead run: `tdv repro (pid 123): process group 456, container tdv-...`. */
  stopped: string[];
  /** Actions that could not be carried out, with the reason. */
  failed: string[];
}

/**
 * Finds the journals of runs on this host whose tdv is gone (no process with
 * that pid and start time), carries out their actions that still have
 * something to stop, and deletes them. A process group is signalled only
 * while its leader is the very process registered (same pid, same start
 * time): a reused pid is never signalled. A Docker host or API server that
 * does not answer within 10 s is reported, not waited for. Run with the
 * repository lock held.
 */
export async function sweepRunning(own: Guard, opts: { graceMs?: number; debug?(line: string): void } = {}): Promise<SweepResult> {
  const res: SweepResult = { stopped: [], failed: [] };
  let names: string[];
  try {
    names = fs.readdirSync(own.resolve(DIR, 'inspect'));
  } catch {
    return res; // no journal was ever written here
  }
  for (const name of names) {
    const rel = `${DIR}/${name}`;
    const tmp = /^\.tdvtmp\.(\d+)\./.exec(name);
    if (tmp) {
      if (processGone(Number(tmp[1]))) own.removeQuiet(rel);
      continue;
    }
    const m = /^(\d+)\.json$/.exec(name);
    // This process's own pid is no exception: a journal named so, with another start time, is a dead run's.
    if (!m) continue;
    let journal: Journal;
    try {
      const parsed = v.safeParse(JournalSchema, JSON.parse(own.readControlFile(rel) ?? 'null'));
      if (!parsed.success) throw new Error(parsed.issues[0].message);
      journal = parsed.output;
    } catch (err) {
      opts.debug?.(`.tdv/${rel} is not a journal tdv wrote (${(err as Error).message}); removing it`);
      own.removeQuiet(rel);
      continue;
    }
    if (journal.host !== os.hostname()) continue; // another machine's run (a shared file system): not ours to judge
    if (procStart(journal.pid) === journal.start) continue; // still running
    const outcomes: Outcome[] = await Promise.all(journal.actions.map((a) => carryOut(a.action, { start: a.start, requireStart: true, graceMs: opts.graceMs, timeoutMs: 10_000 })));
    const stopped = journal.actions.filter((_, i) => 'stopped' in outcomes[i]!).map((a) => describeAction(a.action));
    if (stopped.length) res.stopped.push(`\`tdv ${journal.cmd}\` (pid ${journal.pid}) ${stopped.join(', ')}`);
    outcomes.forEach((o, i) => {
      if ('failed' in o) res.failed.push(`${describeAction(journal.actions[i]!.action)}: ${o.failed}`);
    });
    own.removeQuiet(rel);
  }
  return res;
}
