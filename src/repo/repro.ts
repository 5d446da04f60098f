import fs from 'node:fs';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { TDV_DIR } from '../formats/layout.js';
import { type Dag, withDownstream, withUpstream } from '../stages/graph.js';
import type { Stage } from '../stages/load.js';
import { type LockedPath, type LockFile, readLock, writeLock } from '../stages/lock.js';
import { ParamsReader } from '../stages/params.js';
import { RunCache, type RunEntry, recordMismatch } from '../stages/run-cache.js';
import type { DockerImages, StageRunner } from '../stages/runner.js';
import { type CheckContext, checkStage, type StageInputs } from '../stages/status.js';
import { Guard, UnsafePathError } from '../workspace/guard.js';
import { quotePath } from '../formats/paths.js';
import { applyCheckout, type CheckoutTarget, planCheckout } from '../workspace/checkout.js';
import { addGitignoreEntry } from '../workspace/gitignore.js';
import { cacheTarget, hashWorkspace, workspaceContext } from './lib/hashing.js';
import type { Repo } from './repo.js';
import { loadDag, stageHasher } from './lib/pipeline.js';
import type { Progress } from '../util/progress.js';

export interface ReproOptions {
  /** Stage names; none means every stage. Given names run with their upstream (or downstream). */
  stages?: string[];
  /** Run the selected stages even if unchanged. */
  force?: boolean;
  /** Only report what would run and why. */
  dry?: boolean;
  /** Stages at once (default: number of cores). */
  jobs?: number;
  /** After a failure, go on with stages that do not depend on it. */
  keepGoing?: boolean;
  /** With stage names: also everything downstream of them, instead of upstream. */
  downstream?: boolean;
  /** Use the run-cache (default true). */
  runCache?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: ReproEvent) => void;
  /** Hears of the selected stages, and of each one settled (not with `dry`). */
  progress?: Progress;
  /** Injectable runners (tests, other back ends). */
  runners?: { local?: StageRunner; docker?: StageRunner & DockerImages };
}

export type ReproEvent =
  | { type: 'plan'; stage: string; reasons: string[] }
  | { type: 'skip'; stage: string }
  | { type: 'start'; stage: string; reasons: string[]; where: 'local' | 'docker' }
  | { type: 'output'; stage: string; chunk: Buffer; stream: 'stdout' | 'stderr' }
  | { type: 'debug'; stage: string; line: string }
  | { type: 'restored'; stage: string }
  | { type: 'done'; stage: string; seconds: number }
  | { type: 'failed'; stage: string; message: string; logTail: string[] };

const SETTLED = new Set<ReproEvent['type']>(['skip', 'restored', 'done', 'failed']);

export interface ReproResult {
  ran: string[];
  restored: string[];
  skipped: string[];
  failed: { stage: string; error: string; log?: string }[];
  /** Not run because a stage they depend on failed, or the run was interrupted. */
  blocked: string[];
  /** With `dry`: every selected stage with the reasons it would run (empty: up to date). */
  plan?: { stage: string; reasons: string[] }[];
}

/**
 * Runs the stages whose inputs changed, and everything downstream that then
 * changes, in dependency order with up to `jobs` at once:
 *
 *   ready = every upstream stage finished  ->  check (cheapest first)
 *     unchanged              -> skip
 *     same inputs run before -> restore outputs from the run-cache
 *     otherwise              -> remove outputs, run, cache outputs, record in tdv.lock
 *
 * tdv.lock is written after each stage that succeeds, so an interrupted run
 * keeps what finished and records nothing for what did not.
 */
export async function reproduce(repo: Repo, opts: ReproOptions = {}): Promise<ReproResult> {
  return repo.withLock('repro', async () => {
    const dag = await loadDag(repo);
    if (!dag) throw new TdvError('NO_PIPELINE', `no ${'tdv.yaml'} in ${repo.root}; declare stages there first (see \`tdv repro --help\`)`);
    for (const n of opts.stages ?? []) {
      if (!dag.stages.has(n)) throw new UsageError(`unknown stage "${n}"; stages in tdv.yaml: ${[...dag.stages.keys()].join(', ') || '(none)'}`);
    }
    const names = opts.stages?.length ? (opts.downstream ? withDownstream(dag, opts.stages) : withUpstream(dag, opts.stages)) : dag.order;
    // Progress counts the selected stages as they settle (unchanged, restored, done or failed).
    const progress = opts.dry ? undefined : opts.progress;
    progress?.plan(names.length, 0);
    const onEvent = progress && ((e: ReproEvent) => (SETTLED.has(e.type) && progress.files(), opts.onEvent?.(e)));
    const run = new Run(repo, dag, await readLock(repo.root), onEvent ? { ...opts, onEvent } : opts);
    try {
      return opts.dry ? await run.plan(names) : await run.execute(names);
    } finally {
      repo.statCache.save();
    }
  });
}

class Run {
  private readonly params: ParamsReader;
  private readonly runCache: RunCache;
  private readonly images = new Map<string, Promise<string>>();
  private docker?: StageRunner & DockerImages;
  private local?: StageRunner;
  private readonly emit: (e: ReproEvent) => void;

  constructor(
    private readonly repo: Repo,
    private readonly dag: Dag,
    private readonly lock: LockFile,
    private readonly opts: ReproOptions,
  ) {
    this.params = new ParamsReader(repo.root);
    this.runCache = new RunCache(repo.store);
    this.emit = opts.onEvent ?? (() => {});
    this.docker = opts.runners?.docker;
    this.local = opts.runners?.local;
  }

  private ctx(dry: boolean): CheckContext {
    return {
      params: this.params,
      hashPath: (rel) => this.hashPath(rel),
      imageId: (stage) => this.imageId(stage, dry),
    };
  }

  hashPath(rel: string): Promise<LockedPath | undefined> {
    return stageHasher(this.repo)(rel);
  }

  private async dockerRunner(): Promise<StageRunner & DockerImages> {
    if (!this.docker) {
      const { DockerRunner } = await import('../stages/runners/docker.js');
      this.docker = new DockerRunner();
    }
    return this.docker!;
  }

  private async localRunner(): Promise<StageRunner> {
    if (!this.local) {
      const { LocalRunner } = await import('../stages/runners/local.js');
      this.local = new LocalRunner();
    }
    return this.local!;
  }

  /** The image ID a stage runs in: resolved (`image`) or built (`build`) once per run. */
  private imageId(stage: Stage, _dry: boolean): Promise<string | undefined> {
    if (!stage.image && !stage.build) return Promise.resolve(undefined);
    const key = stage.image ? `image:${stage.image}` : `build:${stage.build!.context}:${stage.build!.dockerfile ?? ''}`;
    let id = this.images.get(key);
    if (!id) {
      id = (async () => {
        const docker = await this.dockerRunner();
        if (stage.image) return docker.resolveImage(stage.image);
        const b = stage.build!;
        const built = await docker.buildImage(path.join(this.repo.root, b.context), { dockerfile: b.dockerfile, signal: this.opts.signal });
        return built.id;
      })();
      this.images.set(key, id);
    }
    return id;
  }

  /** --dry: every selected stage and why it would run; downstream of a stage that would run is marked too. */
  async plan(names: string[]): Promise<ReproResult> {
    const plan: { stage: string; reasons: string[] }[] = [];
    const willRun = new Set<string>();
    for (const n of names) {
      const stage = this.dag.stages.get(n)!;
      const check = this.opts.force ? { reasons: ['forced'] } : await checkStage(stage, this.lock.get(n), this.ctx(true), true);
      const reasons = [...check.reasons];
      const up = [...this.dag.upstream.get(n)!].filter((u) => willRun.has(u));
      if (up.length && !reasons.length) reasons.push(`upstream will run: ${up.join(', ')}`);
      if (reasons.length) willRun.add(n);
      plan.push({ stage: n, reasons });
      this.emit({ type: 'plan', stage: n, reasons });
    }
    return { ran: [], restored: [], skipped: plan.filter((p) => !p.reasons.length).map((p) => p.stage), failed: [], blocked: [], plan };
  }

  async execute(names: string[]): Promise<ReproResult> {
    const res: ReproResult = { ran: [], restored: [], skipped: [], failed: [], blocked: [] };
    const selected = new Set(names);
    const state = new Map<string, 'pending' | 'running' | 'ok' | 'failed' | 'blocked'>(names.map((n) => [n, 'pending']));
    const jobs = Math.max(1, this.opts.jobs ?? (await import('node:os')).availableParallelism());
    const running = new Map<string, Promise<void>>();
    let stop = false;
    const ups = (n: string) => [...this.dag.upstream.get(n)!].filter((u) => selected.has(u));
    for (;;) {
      if (this.opts.signal?.aborted) stop = true;
      for (const n of names) {
        if (state.get(n) !== 'pending') continue;
        const u = ups(n).map((x) => state.get(x));
        if (u.some((s) => s === 'failed' || s === 'blocked')) {
          state.set(n, 'blocked');
          res.blocked.push(n);
          continue;
        }
        if (stop || running.size >= jobs || u.some((s) => s !== 'ok')) continue;
        state.set(n, 'running');
        running.set(
          n,
          this.stage(n, res).then(
            (ok) => {
              state.set(n, ok ? 'ok' : 'failed');
              if (!ok && !this.opts.keepGoing) stop = true;
              running.delete(n);
            },
            (err: unknown) => {
              running.delete(n);
              throw err;
            },
          ),
        );
      }
      if (running.size === 0) break;
      await Promise.race(running.values());
    }
    for (const n of names) {
      if (state.get(n) === 'pending') {
        state.set(n, 'blocked');
        res.blocked.push(n);
      }
    }
    return res;
  }

  /** Checks, then skips, restores or runs one stage. True when it ends up up to date. */
  private async stage(name: string, res: ReproResult): Promise<boolean> {
    const stage = this.dag.stages.get(name)!;
    const locked = this.lock.get(name);
    const check = await checkStage(stage, locked, this.ctx(false));
    if (check.missingDeps.length) {
      const msg = `stage "${name}": ${check.missingDeps.join(', ')} ${check.missingDeps.length === 1 ? 'does' : 'do'} not exist and no stage produces ${check.missingDeps.length === 1 ? 'it' : 'them'}`;
      res.failed.push({ stage: name, error: msg });
      this.emit({ type: 'failed', stage: name, message: msg, logTail: [] });
      return false;
    }
    const reasons = this.opts.force ? ['forced', ...check.reasons] : check.reasons;
    if (reasons.length === 0) {
      res.skipped.push(name);
      this.emit({ type: 'skip', stage: name });
      return true;
    }
    const inputs = check.inputs!;
    const key = RunCache.key(stage, inputs);
    const guard = this.guardFor(stage);
    if (this.opts.runCache !== false && !this.opts.force) {
      const hit = this.runCache.get(key);
      if (hit && (await this.restore(stage, key, hit, guard))) {
        await this.record(stage, inputs, hit.outs, hit.metrics);
        res.restored.push(name);
        this.emit({ type: 'restored', stage: name });
        return true;
      }
    }
    const started = Date.now();
    const where = inputs.image ? 'docker' : 'local';
    this.emit({ type: 'start', stage: name, reasons, where });
    // Outputs are removed before the run (a stage must not see stale ones), through the guard:
    // never through a symlink, never a Git-tracked file other than a declared metric.
    for (const o of [...stage.outs, ...stage.metrics]) {
      guard.remove(o, stage.where);
      if (o.includes('/')) guard.mkdirp(o.slice(0, o.lastIndexOf('/')), stage.where);
    }
    const own = this.repo.own;
    own.mkdirp('logs');
    addGitignoreEntry(own, 'logs');
    const logRel = `logs/${name}.log`;
    const logShown = `${TDV_DIR}/${logRel}`;
    const log = own.openForWrite(logRel);
    let result;
    try {
      const runner = inputs.image ? await this.dockerRunner() : await this.localRunner();
      result = await runner.run({
        stage: name,
        cmd: stage.cmd,
        root: this.repo.root,
        cwd: path.join(this.repo.root, stage.wdir),
        env: stage.env,
        image: inputs.image,
        signal: this.opts.signal,
        onOutput: (chunk, stream) => {
          fs.writeSync(log, chunk);
          this.emit({ type: 'output', stage: name, chunk, stream });
        },
        onDebug: (line) => this.emit({ type: 'debug', stage: name, line }),
      });
    } catch (err) {
      fs.closeSync(log);
      if (!(err instanceof TdvError)) throw err;
      res.failed.push({ stage: name, error: err.message, log: logShown });
      this.emit({ type: 'failed', stage: name, message: err.message, logTail: tail(own, logRel) });
      return false;
    }
    fs.closeSync(log);
    const fail = (message: string) => {
      res.failed.push({ stage: name, error: message, log: logShown });
      this.emit({ type: 'failed', stage: name, message, logTail: tail(own, logRel) });
      return false;
    };
    if (this.opts.signal?.aborted) return fail(`stage "${name}" was interrupted; nothing was recorded for it`);
    if (result.exitCode !== 0) return fail(`stage "${name}" failed: ${result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`} (log: ${logShown})`);
    // The command may have changed anything it can write, a directory on an output's way into a
    // symlink included (even from inside a container): a fresh guard checks every path again.
    const after = this.guardFor(stage);
    const outs: LockedPath[] = [];
    const metrics: LockedPath[] = [];
    try {
      const missing = [...stage.outs, ...stage.metrics].filter((o) => after.lstat(o, stage.where) === undefined);
      if (missing.length) return fail(`stage "${name}" did not produce ${missing.map(quotePath).join(', ')}, which tdv.yaml declares (log: ${logShown})`);
      for (const o of stage.outs) {
        const st = await cacheTarget(this.repo, after.resolve(o, 'write', stage.where), o, { guard: after, source: stage.where });
        outs.push(st.kind === 'dir' ? { path: o, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: o, sha256: st.oid, size: st.size });
        addGitignoreEntry(after, o);
      }
      // Metrics stay plain files in Git; a copy goes into the cache so the run-cache can restore them.
      for (const m of stage.metrics) {
        const st = await hashWorkspace(this.repo, { abs: after.resolve(m, 'read', stage.where), rel: m }, { write: 'store' });
        if (st.kind !== 'file') return fail(`metrics ${quotePath(m)} of stage "${name}" must be a file`);
        metrics.push({ path: m, sha256: st.oid, size: st.size });
      }
    } catch (err) {
      if (err instanceof UnsafePathError) return fail(`stage "${name}" left an output tdv will not take: ${err.message}; nothing was recorded for it`);
      throw err;
    }
    await this.record(stage, inputs, outs, metrics);
    this.runCache.put(key, { outs, metrics });
    res.ran.push(name);
    this.emit({ type: 'done', stage: name, seconds: (Date.now() - started) / 1000 });
    return true;
  }

  private async record(stage: Stage, inputs: StageInputs, outs: LockedPath[], metrics: LockedPath[]): Promise<void> {
    this.lock.set(stage.name, { cmd: stage.cmd, ...(inputs.image ? { image: inputs.image } : {}), deps: inputs.deps, params: inputs.params, outs, metrics });
    await writeLock(this.repo.root, this.lock);
  }

  /**
   * The workspace guard for one stage: like the repository's, it refuses to
   * overwrite or delete Git-tracked files, except the stage's declared
   * metrics, which are kept in Git and rewritten by every run.
   */
  private guardFor(stage: Stage): Guard {
    const repo = this.repo;
    const metrics = new Set(stage.metrics);
    return new Guard(repo.root, {
      protect: (rel, dir) => {
        const tracked = repo.gitTracked();
        const own = repo.gitPath(rel);
        const hit = dir ? tracked.firstUnder(own) : tracked.has(own) ? own : undefined;
        // A declared metric Git tracks is rewritten by every run, but only as the regular file
        // a run wrote: a committed symlink (or other thing) there is not the stage's to delete.
        if (hit === undefined || (hit === own && metrics.has(rel) && regularOrAbsent(path.join(repo.root, rel)))) return undefined;
        return hit === own ? 'it is tracked by Git' : `it contains ${hit}, which is tracked by Git`;
      },
    });
  }

  /**
   * Restores a run record's outputs through the checkout engine; false (the
   * stage then runs) when the record does not name exactly the declared
   * outputs and metrics, or an object is missing. A record is data from the
   * cache or a remote: every path it names goes through the stage's guard.
   */
  private async restore(stage: Stage, key: string, entry: RunEntry, guard: Guard): Promise<boolean> {
    const source = `run record ${key.slice(0, 8)}`;
    const wrong = recordMismatch(stage, entry);
    if (wrong !== undefined) {
      this.repo.reporter.warn?.(`${source}: ${wrong}; not restoring from it, the stage runs instead`);
      return false;
    }
    const ctx = await workspaceContext(this.repo, { guard });
    // Metrics are plain files kept in Git: copies, never links into the cache.
    const metricsCtx = { ...ctx, linkTypes: ['copy' as const] };
    const target = (o: LockedPath): CheckoutTarget => ({ rel: o.path, oid: o.sha256, size: o.size, nfiles: o.nfiles, source });
    // The stage owns its declared outputs (a run would delete them): what is there is no conflict.
    const outs = await planCheckout(ctx, entry.outs.map(target), { force: true });
    const metrics = await planCheckout(metricsCtx, entry.metrics.map(target), { force: true });
    if (outs.missing.length > 0 || metrics.missing.length > 0) return false;
    await applyCheckout(ctx, outs);
    await applyCheckout(metricsCtx, metrics);
    for (const o of entry.outs) addGitignoreEntry(guard, o.path);
    return true;
  }
}

/** The last lines of a stage's log (in `.tdv/`), for the failure message. */
function tail(own: Guard, rel: string, n = 10): string[] {
  try {
    const text = own.readText(rel) ?? '';
    return text.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1).slice(-n);
  } catch {
    return [];
  }
}

function regularOrAbsent(abs: string): boolean {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  return st === undefined || st.isFile();
}
