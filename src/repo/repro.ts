import fs from 'node:fs';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { TDV_DIR } from '../formats/layout.js';
import { type Dag, withDownstream, withUpstream } from '../stages/graph.js';
import { type Stage, stageCommands } from '../stages/load.js';
import { type LockedPath, type LockedStage, lockedStage, type LockFile, readLock, writeLock } from '../stages/lock.js';
import { ParamsReader } from '../stages/params.js';
import { RunCache, type RunEntry, recordMismatch } from '../stages/run-cache.js';
import { schedule } from '../stages/schedule.js';
import { Reaper, sweepRunning } from '../stages/reaper.js';
import { metricsProblem } from '../stages/values.js';
import type { DockerImages, RunResult, StageRunner } from '../stages/runner.js';
import { type CheckContext, checkStage, type StageInputs } from '../stages/status.js';
import { stagesNamed } from '../stages/template.js';
import { Guard, UnsafePathError } from '../workspace/guard.js';
import { quotePath } from '../formats/paths.js';
import { applyCheckout, type CheckoutTarget, planCheckout } from '../workspace/checkout.js';
import { addGitignoreEntry, removeGitignoreEntry } from '../workspace/gitignore.js';
import { unprotectTree } from '../workspace/link.js';
import { inTheWay } from './lib/blocker.js';
import { cacheTarget, hashWorkspace, workspaceContext } from './lib/hashing.js';
import type { Repo } from './repo.js';
import { loadDag, stageHasher } from './lib/pipeline.js';
import { commitSources, dataSources, missingOutputs, restoreSources, type SourceState, sourceStates } from './lib/data-sources.js';
import type { Selected } from './lib/pointers.js';
import type { Progress } from '../util/progress.js';
import { LOCAL_RUNNER } from '../formats/config.js';
import type { CleanupAction, JobRunner } from '../stages/job.js';
import { type ChosenRunner, chooseRunner, cloneId, createRunner } from './lib/runners.js';
import { ingestOutputs, jobIO, newStaging, stageJob } from './lib/job.js';
import type { ItemsOutcome } from './lib/items.js';

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
  /**
   * First fetch, from `remote`, the tracked inputs not in the workspace (a
   * fresh clone) and the run-cache, as `tdv pull` would (DVC's `repro --pull`).
   */
  pull?: boolean;
  remote?: string;
  signal?: AbortSignal;
  onEvent?: (e: ReproEvent) => void;
  /** Hears of the selected stages, and of each one settled (not with `dry`). */
  progress?: Progress;
  /** Injectable runners (tests, other back ends). */
  runners?: { local?: StageRunner; docker?: StageRunner & DockerImages };
  /**
   * `--runner NAME`: every selected stage runs there (`local`: this machine),
   * over tdv.yaml's `runner:` and `core.runner`.
   */
  runner?: string;
  /**
   * Job runners by name, used instead of creating the configured ones (tests,
   * embedders); a name here counts as configured.
   */
  jobRunners?: Record<string, JobRunner>;
  /**
   * Hook point for the reaper (stages/reaper.ts): registers how to stop what
   * a runner started, should tdv die before the job ends, and returns
   * `done`. Handed to runners as `JobIO.onCleanup`.
   */
  cleanup?: (action: CleanupAction) => () => void;
  /**
   * After stages ran on other runners, push the run-cache (their records and
   * outputs' objects) to the remote (`remote`, else the default one, if any),
   * so another clone restores instead of rerunning. Default true (`--no-push-runs`).
   */
  pushRuns?: boolean;
}

/** Where and when a stage ran on a runner other than this machine (ReproResult.runs, the `done` event). */
export interface RanOn {
  /** The runner's configured name. */
  runner: string;
  /** Where the engine says it ran (a Docker host, a node and pod). */
  where: string;
  /** ISO 8601 times, as the engine saw them. */
  started: string;
  ended: string;
}

export type ReproEvent =
  | { type: 'plan'; stage: string; reasons: string[]; frozen?: boolean; items?: ItemCounts }
  /** A tracked input's pointer updated to its changed workspace content (with `dry`: would be). */
  | { type: 'source'; path: string; pointer: string; dry: boolean }
  | { type: 'pulled'; files: number; runs: number }
  | { type: 'skip'; stage: string; frozen?: boolean }
  | { type: 'start'; stage: string; reasons: string[]; where: 'local' | 'docker' | 'runner'; runner?: string }
  | { type: 'output'; stage: string; chunk: Buffer; stream: 'stdout' | 'stderr' }
  | { type: 'debug'; stage: string; line: string }
  | { type: 'restored'; stage: string }
  | ({ type: 'done'; stage: string; seconds: number; items?: ItemCounts } & Partial<RanOn>)
  | { type: 'failed'; stage: string; message: string; logTail: string[] };

/** A per-item stage's items: how many there are, ran, came from the run-cache, were unchanged, and earlier ones whose results left. */
export type ItemCounts = ItemsOutcome['counts'];

const SETTLED = new Set<ReproEvent['type']>(['skip', 'restored', 'done', 'failed']);

export interface ReproResult {
  ran: string[];
  restored: string[];
  skipped: string[];
  failed: { stage: string; error: string; log?: string }[];
  /** Not run because a stage they depend on failed, or the run was interrupted. */
  blocked: string[];
  /** The stages of `ran` that ran on another runner: which, where and when. */
  runs?: ({ stage: string } & RanOn)[];
  /** The per-item (`foreach-file`) stages of `ran`, with their item counts. */
  items?: ({ stage: string } & ItemCounts)[];
  /** With `dry`: every selected stage with the reasons it would run (empty: up to date, or frozen). */
  plan?: { stage: string; reasons: string[]; frozen?: boolean; items?: ItemCounts }[];
  /**
   * Tracked inputs (data with a `.tdv` pointer that a selected stage reads)
   * whose workspace content changed: cached, and their pointer rewritten with
   * the new hash, as `tdv add` would (with `dry`: to be). Commit them with Git.
   */
  updated: SourceState[];
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
    if (!opts.dry) await sweepKilledRuns(repo);
    const dag = await loadDag(repo);
    if (!dag) throw new TdvError('NO_PIPELINE', `no ${'tdv.yaml'} in ${repo.root}; declare stages there first (see \`tdv repro --help\`)`);
    // A foreach or matrix name (`fit`) names every stage it made (`fit@a`, `fit@b`), as in DVC.
    if (opts.stages?.length) opts = { ...opts, stages: opts.stages.flatMap((n) => stagesNamed(dag.stages.keys(), n)) };
    for (const n of opts.stages ?? []) {
      if (!dag.stages.has(n)) throw new UsageError(`unknown stage "${n}"; stages in tdv.yaml: ${[...dag.stages.keys()].join(', ') || '(none)'}`);
    }
    // A frozen stage is not run, so what is upstream of it only is not needed (as DVC prunes there).
    const frozen = (n: string) => dag.stages.get(n)!.frozen === true;
    const names = opts.stages?.length ? (opts.downstream ? withDownstream(dag, opts.stages) : withUpstream(dag, opts.stages, frozen)) : dag.order;
    const emit = opts.onEvent ?? (() => {});
    // A frozen stage's inputs are not looked at, so not committed either.
    const sources = await dataSources(
      repo,
      dag,
      names.filter((n) => !frozen(n)),
    );
    let states = await sourceStates(repo, sources);
    const lock = await readLock(repo.root);
    if (opts.pull && !opts.dry) {
      const outs = await missingOutputs(repo, lock, names);
      emit({ type: 'pulled', ...(await pullInputs(repo, states.missing, outs, opts)) });
      states = await sourceStates(repo, sources);
    }
    let updated: SourceState[];
    if (opts.dry) updated = states.changed.map((s) => ({ path: s.rel, pointer: repo.rel(s.ptr.file) }));
    else updated = await commitSources(repo, states.changed);
    for (const u of updated) emit({ type: 'source', ...u, dry: opts.dry === true });
    // Progress counts the selected stages as they settle (unchanged, restored, done or failed).
    const progress = opts.dry ? undefined : opts.progress;
    progress?.plan(names.length, 0);
    const onEvent = progress && ((e: ReproEvent) => (SETTLED.has(e.type) && progress.files(), opts.onEvent?.(e)));
    // Every selected stage's runner, named before anything runs: an unknown name stops here.
    const chosen = new Map<string, ChosenRunner>();
    const given = new Set(Object.keys(opts.jobRunners ?? {}));
    for (const n of names) if (!frozen(n)) chosen.set(n, chooseRunner(repo.config, dag.stages.get(n)!, opts.runner, given));
    const reaper = new Reaper({ own: repo.own, debug: (l) => repo.reporter.debug?.(l) });
    // Runners elsewhere register what they start (a container on a host, a Job) with the same watchdog.
    const runOpts: ReproOptions = { ...opts, cleanup: opts.cleanup ?? reaper.register, ...(onEvent ? { onEvent } : {}) };
    const run = new Run(repo, dag, lock, runOpts, states.missing, chosen, reaper);
    try {
      const res = opts.dry ? await run.plan(names) : await run.execute(names);
      return { ...res, updated };
    } finally {
      reaper.close();
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
  /** Runners elsewhere by name, made once per run. */
  private readonly jobRunners = new Map<string, Promise<JobRunner>>();
  /** Whether a stage ran on a runner elsewhere (its run-cache is then pushed). */
  private ranElsewhere = false;
  private readonly emit: (e: ReproEvent) => void;

  constructor(
    private readonly repo: Repo,
    private readonly dag: Dag,
    private readonly lock: LockFile,
    private readonly opts: ReproOptions,
    /** Tracked inputs not in the workspace: a stage reading one says how to get it. */
    private readonly unpulled: readonly Selected[] = [],
    /** Each selected stage's runner (none: local). */
    private readonly chosen: ReadonlyMap<string, ChosenRunner> = new Map(),
    /** Stops what the runners started if tdv dies: their `onCleanup` (stages/reaper.ts). */
    private readonly reaper?: Reaper,
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
      inTheWay: (rel) => inTheWay(this.repo.root, rel),
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

  /** The runner a stage runs on, when it is not this machine. */
  private elsewhere(stage: string): string | undefined {
    const c = this.chosen.get(stage);
    return c && c.name !== LOCAL_RUNNER ? c.name : undefined;
  }

  /** Runner `name` (injected, or made from its configuration), once per run. */
  private jobRunner(name: string): Promise<JobRunner> {
    let r = this.jobRunners.get(name);
    if (!r) {
      const given = this.opts.jobRunners?.[name];
      r = given ? Promise.resolve(given) : createRunner(this.repo, name);
      this.jobRunners.set(name, r);
    }
    return r;
  }

  /**
   * The image ID a stage on a runner elsewhere runs in: what that runner
   * says `image:` names there, when it can tell before running; otherwise
   * the digest of a reference pinned by one (`name@sha256:...`), or nothing
   * (the ID the run reports is then recorded).
   *
   * A `build:` stage is built where it runs, after the check: its identity
   * is `sha256:` + the hash of its build context (as DockerRunner tags local
   * builds), recorded in tdv.lock in place of an image ID. The ID of that
   * build would be known only by running, so a changed Dockerfile would go
   * unnoticed, and the run-cache would restore outputs of the old image.
   */
  private async remoteImageId(stage: Stage, runner: string): Promise<string | undefined> {
    if (stage.build) {
      const b = stage.build;
      const key = `context:${b.context}:${b.dockerfile ?? ''}`;
      let id = this.images.get(key);
      if (!id) {
        id = (async () => {
          const { hashContext } = await import('../stages/runners/docker.js');
          const dir = this.repo.guard.resolve(b.context, 'read', stage.where);
          const dockerfile = path.resolve(dir, b.dockerfile ?? 'Dockerfile');
          if (!fs.lstatSync(dockerfile, { throwIfNoEntry: false })?.isFile() || !fs.lstatSync(dir, { throwIfNoEntry: false })?.isDirectory()) {
            throw new TdvError(
              'BUILD_CONTEXT_MISSING',
              `${stage.where}: stage "${stage.name}" builds from ${quotePath(b.context)}, which has no Dockerfile ${quotePath(b.dockerfile ?? 'Dockerfile')}; add it or fix \`build:\``,
            );
          }
          return `sha256:${await hashContext(dir, dockerfile)}`;
        })();
        this.images.set(key, id);
      }
      return id;
    }
    const r = await this.jobRunner(runner);
    if (stage.image !== undefined && r.resolveImage) {
      const key = `${runner}\0image:${stage.image}`;
      let id = this.images.get(key) as Promise<string | undefined> | undefined;
      if (!id) {
        id = r.resolveImage(stage.image, this.opts.signal);
        this.images.set(key, id as Promise<string>);
      }
      const got = await id;
      if (got !== undefined) return got;
    }
    // Not resolvable before running: a reference pinned by digest names its image for good, so
    // the digest stands for it (and changes exactly when the reference does). An unpinned one
    // is unknown until the run reports what it ran: the stage then runs every time.
    const pinned = stage.image !== undefined ? /@(sha256:[0-9a-f]{64})$/.exec(stage.image) : null;
    return pinned ? pinned[1] : undefined;
  }

  /** The image ID a stage runs in: resolved (`image`) or built (`build`) once per run. */
  private imageId(stage: Stage, _dry: boolean): Promise<string | undefined> {
    if (!stage.image && !stage.build) return Promise.resolve(undefined);
    const away = this.elsewhere(stage.name);
    if (away !== undefined) return this.remoteImageId(stage, away);
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
    const plan: NonNullable<ReproResult['plan']> = [];
    const willRun = new Set<string>();
    for (const n of names) {
      const stage = this.dag.stages.get(n)!;
      if (stage.frozen) {
        plan.push({ stage: n, reasons: [], frozen: true });
        this.emit({ type: 'plan', stage: n, reasons: [], frozen: true });
        continue;
      }
      const check = this.opts.force ? { reasons: ['forced'] } : await checkStage(stage, this.lock.get(n), this.ctx(true), true);
      const reasons = [...check.reasons];
      const up = [...this.dag.upstream.get(n)!].filter((u) => willRun.has(u));
      if (up.length && !reasons.length) reasons.push(`upstream will run: ${up.join(', ')}`);
      if (reasons.length) willRun.add(n);
      // A per-item stage whose inputs are known now: how many of its items would run.
      const inputs = 'inputs' in check ? check.inputs : undefined;
      const items = reasons.length && stage.items && inputs && !up.length ? await this.itemsPlan(stage, inputs) : undefined;
      plan.push({ stage: n, reasons, ...(items ? { items } : {}) });
      this.emit({ type: 'plan', stage: n, reasons, ...(items ? { items } : {}) });
    }
    return { ran: [], restored: [], skipped: plan.filter((p) => !p.reasons.length).map((p) => p.stage), failed: [], blocked: [], plan, updated: [] };
  }

  /** --dry of a per-item stage: its item counts, `ran` being how many would run; undefined when they cannot be told. */
  private async itemsPlan(stage: Stage, inputs: StageInputs): Promise<ItemCounts | undefined> {
    const { runItems, shellBatches } = await import('./lib/items.js');
    try {
      const never = () => Promise.reject(new Error('bug: --dry ran a batch'));
      const o = { runCache: this.runCache, reuse: !this.opts.force, restore: this.opts.runCache !== false, jobs: 1, keepGoing: false, dry: true, batches: shellBatches(this.repo, never, false) };
      return (await runItems(this.repo, stage, inputs, this.lock.get(stage.name), o, '')).counts;
    } catch (err) {
      if (err instanceof TdvError) return undefined;
      throw err;
    }
  }

  /** Runs the selected stages through the scheduler; each one is checked, then skipped, restored or run by `stage`. */
  async execute(names: string[]): Promise<ReproResult> {
    const res: ReproResult = { ran: [], restored: [], skipped: [], failed: [], blocked: [], updated: [] };
    const jobs = Math.max(1, this.opts.jobs ?? (await import('node:os')).availableParallelism());
    await this.sweep(names);
    try {
      const { blocked } = await schedule(this.dag, names, (n) => this.stage(n, res), { jobs, keepGoing: this.opts.keepGoing, signal: this.opts.signal });
      res.blocked.push(...blocked);
      if (this.ranElsewhere && this.opts.pushRuns !== false && !this.opts.signal?.aborted) await this.pushRuns();
    } finally {
      for (const r of this.jobRunners.values()) await r.then((x) => x.close?.()).catch(() => {});
    }
    return res;
  }

  /**
   * Once per runner elsewhere the run uses, before any stage runs: stops
   * what earlier runs of this clone left running there (a killed repro's
   * containers or Jobs), reported as a warning.
   */
  private async sweep(names: string[]): Promise<void> {
    const runners = new Set(names.map((n) => this.elsewhere(n)).filter((r): r is string => r !== undefined));
    for (const name of runners) {
      try {
        const r = await this.jobRunner(name);
        const stopped = (await r.sweep?.(cloneId(this.repo))) ?? [];
        if (stopped.length) this.repo.reporter.warn?.(`runner ${name}: stopped ${stopped.length} left over from an earlier run of this clone: ${stopped.join(', ')}`);
      } catch (err) {
        // A runner that cannot be reached fails its stages with the reason; the sweep only says so.
        if (!(err instanceof TdvError)) throw err;
        this.repo.reporter.warn?.(`runner ${name}: could not look for leftovers of earlier runs: ${err.message}`);
      }
    }
  }

  /**
   * Pushes the run-cache to the remote after stages ran elsewhere, as `tdv
   * push --run-cache` would, so another clone restores them. No remote: nothing
   * to do. A failure is a warning: the stages did run and are recorded here.
   */
  private async pushRuns(): Promise<void> {
    const name = this.opts.remote ?? this.repo.config.core.remote;
    if (name === undefined) return;
    const retry = `\`tdv push --run-cache${this.opts.remote ? ` -r ${this.opts.remote}` : ''}\` retries`;
    try {
      const { withRemote } = await import('./lib/transfer.js');
      const { pushRuns } = await import('./lib/run-sync.js');
      const pushed = await withRemote(this.repo, { remote: name, jobs: this.opts.jobs }, (remote) => pushRuns(this.repo, remote, {}));
      if (pushed.failed.length) this.repo.reporter.warn?.(`could not push ${pushed.failed.length} object(s) of run records to remote ${name}; ${retry}`);
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
      this.repo.reporter.warn?.(`could not push the run-cache to remote ${name}: ${err.message}; ${retry}`);
    }
  }

  /** Checks, then skips, restores or runs one stage. True when it ends up up to date. */
  /** The remote a Kubernetes runner moves bytes through: `-r`, else its `remote` key, else the default remote. */
  private exchangeRemote(runnerName: string): string | undefined {
    if (this.opts.remote) return this.opts.remote;
    const key = this.repo.config.runner?.[runnerName]?.remote;
    return typeof key === 'string' ? key : undefined;
  }

  private async stage(name: string, res: ReproResult): Promise<boolean> {
    const stage = this.dag.stages.get(name)!;
    if (stage.frozen) {
      // Frozen: never run, whatever changed, even with --force (`tdv unfreeze` to run it again).
      res.skipped.push(name);
      this.emit({ type: 'skip', stage: name, frozen: true });
      return true;
    }
    const locked = this.lock.get(name);
    const check = await checkStage(stage, locked, this.ctx(false));
    if (check.missingDeps.length) {
      const msg = this.missingMessage(name, check.missingDeps);
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
    const cacheable = runCacheable(stage);
    if (cacheable && this.opts.runCache !== false && !this.opts.force) {
      const hit = this.runCache.get(key);
      if (hit && (await this.restore(stage, key, hit, guard))) {
        await this.record(stage, inputs, hit.outs, hit.metrics);
        res.restored.push(name);
        this.emit({ type: 'restored', stage: name });
        return true;
      }
    }
    const away = this.elsewhere(name);
    if (stage.items) return this.itemsStage(stage, inputs, reasons, locked, key, res, away);
    if (away !== undefined) return this.runElsewhere(stage, away, inputs, reasons, res);
    const started = Date.now();
    const where = inputs.image ? 'docker' : 'local';
    this.emit({ type: 'start', stage: name, reasons, where });
    // Outputs are removed before the run (a stage must not see stale ones), through the guard:
    // never through a symlink, never a Git-tracked file other than a declared metric or
    // `cache: false` output. A `persist: true` output stays: the stage updates it.
    // A metrics file is a file: a directory at its path holds something else (found by the attack
    // suite: a stage naming an existing directory of user files as its metrics), never deleted.
    for (const m of stage.metrics) {
      if (guard.lstat(m, stage.where)?.isDirectory())
        throw new TdvError('NOT_A_FILE', `${stage.where}: metrics ${quotePath(m)} of stage "${name}" is a directory; a metrics file is one JSON, YAML or TOML file: name a file of its own`);
    }
    for (const o of [...stage.outs, ...stage.metrics]) {
      // A persisting output linked into the cache becomes an editable copy first: a stage that
      // appends to it must never write through a hardlink into the cached object.
      if (stage.persist?.has(o)) unprotectTree(guard, o, this.repo.store.objectsDir, stage.where);
      else guard.remove(o, stage.where);
      if (o.includes('/')) guard.mkdirp(o.slice(0, o.lastIndexOf('/')), stage.where);
    }
    const { logShown, write: writeLog, close: closeLog, fail } = this.openStageLog(name, res);
    let result: RunResult | undefined;
    const cmds = stageCommands(stage);
    let which = '';
    try {
      const runner = inputs.image ? await this.dockerRunner() : await this.localRunner();
      // List-form cmd: each command by its own shell, in order; the first that fails stops the stage.
      for (const [i, cmd] of cmds.entries()) {
        if (cmds.length > 1) which = `command ${i + 1} of ${cmds.length} `;
        result = await runner.run({
          stage: name,
          cmd,
          root: this.repo.root,
          cwd: path.join(this.repo.root, stage.wdir),
          env: stage.env,
          image: inputs.image,
          signal: this.opts.signal,
          onCleanup: this.reaper?.register,
          onDebug: (line) => this.emit({ type: 'debug', stage: name, line }),
          onOutput: (chunk, stream) => {
            writeLog(chunk);
            this.emit({ type: 'output', stage: name, chunk, stream });
          },
        });
        if (result.exitCode !== 0 || this.opts.signal?.aborted) break;
      }
    } catch (err) {
      closeLog();
      if (!(err instanceof TdvError)) throw err;
      return fail(err.message);
    }
    closeLog();
    if (this.opts.signal?.aborted) return fail(`stage "${name}" was interrupted; nothing was recorded for it`);
    if (!result) throw new Error(`bug: stage ${name} has no command`);
    if (result.exitCode !== 0) return fail(`stage "${name}" failed: ${which}${result.signal ? `killed by ${result.signal}` : `exit code ${result.exitCode}`} (log: ${logShown})`);
    // The command may have changed anything it can write, a directory on an output's way into a
    // symlink included (even from inside a container): a fresh guard checks every path again.
    const after = this.guardFor(stage);
    const outs: LockedPath[] = [];
    const metrics: LockedPath[] = [];
    try {
      const missing = [...stage.outs, ...stage.metrics].filter((o) => after.lstat(o, stage.where) === undefined);
      if (missing.length) return fail(`stage "${name}" did not produce ${missing.map(quotePath).join(', ')}, which tdv.yaml declares (log: ${logShown})`);
      for (const o of stage.outs) {
        if (stage.uncached?.has(o)) {
          // Kept in Git by the user: hashed for tdv.lock, left as it is (not linked, not ignored).
          // A copy goes into the cache, as for metrics, so the run-cache can restore it.
          const st = await hashWorkspace(this.repo, { abs: after.resolve(o, 'read', stage.where), rel: o }, { write: 'store' });
          if (st.kind !== 'file' && st.kind !== 'dir') return fail(`stage "${name}" left ${quotePath(o)} as something tdv cannot hash (log: ${logShown})`);
          outs.push(st.kind === 'dir' ? { path: o, sha256: st.oid, size: st.size, nfiles: st.nfiles, cache: false } : { path: o, sha256: st.oid, size: st.size, cache: false });
          // Once cached, now kept in Git: the line an earlier run added would hide it from `git add`.
          removeGitignoreEntry(after, o);
          continue;
        }
        const st = await cacheTarget(this.repo, after.resolve(o, 'write', stage.where), o, { guard: after, source: stage.where });
        outs.push(st.kind === 'dir' ? { path: o, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: o, sha256: st.oid, size: st.size });
        addGitignoreEntry(after, o);
      }
      // Metrics stay plain files in Git; a copy goes into the cache so the run-cache can restore them.
      for (const m of stage.metrics) {
        const st = await hashWorkspace(this.repo, { abs: after.resolve(m, 'read', stage.where), rel: m }, { write: 'store' });
        if (st.kind !== 'file') return fail(`metrics ${quotePath(m)} of stage "${name}" must be a file`);
        // Checked now, not when someone runs `metrics show`: a run that wrote a metrics file nobody can read failed.
        const bad = await metricsProblem(after.readText(m, { source: stage.where }) ?? '', m);
        if (bad) return fail(`stage "${name}" wrote a metrics file tdv cannot read: ${bad}; nothing was recorded for it (log: ${logShown})`);
        metrics.push({ path: m, sha256: st.oid, size: st.size });
      }
    } catch (err) {
      if (err instanceof UnsafePathError) return fail(`stage "${name}" left an output tdv will not take: ${err.message}; nothing was recorded for it`);
      throw err;
    }
    await this.record(stage, inputs, outs, metrics);
    if (cacheable) this.runCache.put(key, { outs, metrics });
    res.ran.push(name);
    this.emit({ type: 'done', stage: name, seconds: (Date.now() - started) / 1000 });
    return true;
  }

  /**
   * A stage's log, `.tdv/logs/<stage>.log`, opened afresh: `write` appends
   * (nothing once closed), `fail` closes it, records the failure in `res` and
   * reports it with the log's last lines.
   */
  private openStageLog(name: string, res: ReproResult) {
    const own = this.repo.own;
    own.mkdirp('logs');
    addGitignoreEntry(own, 'logs');
    const logRel = `logs/${name}.log`;
    const logShown = `${TDV_DIR}/${logRel}`;
    const fd = own.openForWrite(logRel);
    let open = true;
    const close = () => {
      if (open) fs.closeSync(fd);
      open = false;
    };
    return {
      logShown,
      write: (data: string | Buffer) => {
        if (open) fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      },
      close,
      fail: (message: string) => {
        close();
        res.failed.push({ stage: name, error: message, log: logShown });
        this.emit({ type: 'failed', stage: name, message, logTail: tail(own, logRel) });
        return false;
      },
    };
  }

  /**
   * Runs a per-item stage (`foreach-file`, lib/items.ts): the items that
   * changed run in batches (a shell or a container each), each item's result
   * cached as its batch ends; the output directory made of every item's
   * result is then checked out through the checkout engine (files of items
   * that are gone leave it) and recorded in tdv.lock and the run-cache.
   */
  private async itemsStage(stage: Stage, inputs: StageInputs, reasons: string[], locked: LockedStage | undefined, key: string, res: ReproResult, away: string | undefined): Promise<boolean> {
    const name = stage.name;
    const started = Date.now();
    this.emit(away !== undefined ? { type: 'start', stage: name, reasons, where: 'runner', runner: away } : { type: 'start', stage: name, reasons, where: inputs.image ? 'docker' : 'local' });
    const { logShown, write: writeLog, close: closeLog, fail } = this.openStageLog(name, res);
    let outcome: ItemsOutcome;
    const onOutput = (chunk: Buffer, stream: 'stdout' | 'stderr') => {
      writeLog(chunk);
      this.emit({ type: 'output', stage: name, chunk, stream });
    };
    const onDebug = (line: string) => this.emit({ type: 'debug', stage: name, line });
    try {
      const { runItems, shellBatches, jobBatches } = await import('./lib/items.js');
      let batches;
      if (away !== undefined) {
        // A runner elsewhere: each batch is a job reading the stage's other inputs and its items.
        const runner = await this.jobRunner(away);
        const others: Stage = { ...stage, deps: stage.deps.filter((d) => d !== stage.items!.dir) };
        const base = await stageJob(this.repo, others, { ...inputs, deps: inputs.deps.filter((d) => d.path !== stage.items!.dir) }, inputs.image);
        const exchange = runner.type === 'kubernetes' ? await (await import('./lib/exchange.js')).openExchange(this.repo, this.exchangeRemote(away)) : undefined;
        batches = jobBatches(this.repo, base, away, (spec, staging) =>
          runner.run(spec, jobIO(this.repo, { staging, onOutput, onDebug, signal: this.opts.signal, onCleanup: this.opts.cleanup, exchange })),
        );
        this.ranElsewhere = true;
      } else {
        const runner = inputs.image ? await this.dockerRunner() : await this.localRunner();
        const cwd = path.join(this.repo.root, stage.wdir);
        batches = shellBatches(
          this.repo,
          (cmd) => runner.run({ stage: name, cmd, root: this.repo.root, cwd, env: stage.env, image: inputs.image, signal: this.opts.signal, onCleanup: this.reaper?.register, onDebug, onOutput }),
          inputs.image !== undefined,
        );
      }
      const jobs = Math.max(1, this.opts.jobs ?? (await import('node:os')).availableParallelism());
      outcome = await runItems(
        this.repo,
        stage,
        inputs,
        locked,
        {
          runCache: this.runCache,
          reuse: !this.opts.force,
          restore: this.opts.runCache !== false,
          jobs,
          keepGoing: this.opts.keepGoing === true,
          signal: this.opts.signal,
          onNote: (line) => {
            writeLog(`${line}\n`);
            onDebug(line);
          },
          batches,
        },
        logShown,
      );
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
      return fail(err.message);
    }
    closeLog();
    if (outcome.failure || !outcome.out) return fail(outcome.failure ?? `stage "${name}" produced no output; bug`);
    try {
      const guard = this.guardFor(stage);
      const entry: RunEntry = { outs: [outcome.out], metrics: [] };
      if (!(await this.materialise(stage, entry, guard, away !== undefined ? `runner ${away}` : `stage ${name}`)))
        return fail(`stage "${name}": the results of its items are not all in the cache; run it again with --force`);
      await this.record(stage, inputs, entry.outs, []);
      this.runCache.put(key, entry);
    } catch (err) {
      if (err instanceof UnsafePathError) return fail(`stage "${name}": ${err.message}; nothing was recorded for it`);
      throw err;
    }
    res.ran.push(name);
    if (away !== undefined) {
      const now = new Date().toISOString();
      (res.runs ??= []).push({ stage: name, runner: away, where: away, started: new Date(started).toISOString(), ended: now });
    }
    (res.items ??= []).push({ stage: name, ...outcome.counts });
    this.emit({ type: 'done', stage: name, seconds: (Date.now() - started) / 1000, items: outcome.counts });
    return true;
  }

  /**
   * Runs a stage on a runner elsewhere: its job spec (inputs by hash from
   * the cache), the runner's run with a staging directory of its own, then
   * what came back verified and cached (lib/job.ts), checked out through the
   * checkout engine with the stage's guard, and recorded in tdv.lock and the
   * run-cache exactly as a local run is. The workspace is not touched until
   * everything that came back was accepted.
   */
  private async runElsewhere(stage: Stage, runnerName: string, inputs: StageInputs, reasons: string[], res: ReproResult): Promise<boolean> {
    const name = stage.name;
    const clock = Date.now();
    this.emit({ type: 'start', stage: name, reasons, where: 'runner', runner: runnerName });
    const { logShown, write: writeLog, close: closeLog, fail } = this.openStageLog(name, res);
    let staging: ReturnType<typeof newStaging> | undefined;
    try {
      const runner = await this.jobRunner(runnerName);
      const spec = await stageJob(this.repo, stage, inputs, inputs.image);
      staging = newStaging(this.repo, name);
      const exchange = runner.type === 'kubernetes' ? await (await import('./lib/exchange.js')).openExchange(this.repo, this.exchangeRemote(runnerName)) : undefined;
      const io = jobIO(this.repo, {
        staging: staging.abs,
        onOutput: (chunk, stream) => {
          writeLog(chunk);
          this.emit({ type: 'output', stage: name, chunk, stream });
        },
        onDebug: (line) => this.emit({ type: 'debug', stage: name, line }),
        signal: this.opts.signal,
        onCleanup: this.opts.cleanup,
        exchange,
      });
      const result = await runner.run(spec, io);
      closeLog();
      if (this.opts.signal?.aborted) return fail(`stage "${name}" was interrupted; nothing was recorded for it`);
      if (result.exitCode !== 0) {
        return fail(
          `stage "${name}" failed on runner ${runnerName} (${result.where}): ${result.signal ? `killed by ${result.signal}` : result.exitCode === null ? 'lost' : `exit code ${result.exitCode}`} (log: ${logShown})`,
        );
      }
      const got = await ingestOutputs(this.repo, stage, staging.abs, result, runnerName, logShown);
      const guard = this.guardFor(stage);
      for (const m of stage.metrics) {
        if (guard.lstat(m, stage.where)?.isDirectory())
          return fail(`${stage.where}: metrics ${quotePath(m)} of stage "${name}" is a directory; a metrics file is one JSON, YAML or TOML file: name a file of its own`);
      }
      if (!(await this.materialise(stage, got, guard, `runner ${runnerName}`))) return fail(`stage "${name}": outputs from runner ${runnerName} are not all in the cache; bug`);
      // The image it ran in: as resolved before, else as the engine reports it (an image ID only).
      // (Engines write it as `sha256:...`, `docker-pullable://name@sha256:...` or the like.)
      const image = inputs.image ?? /(sha256:[0-9a-f]{64})$/.exec(result.image ?? '')?.[1];
      const ran: StageInputs = { ...inputs, ...(image ? { image } : {}) };
      await this.record(stage, ran, got.outs, got.metrics);
      if (runCacheable(stage)) this.runCache.put(RunCache.key(stage, ran), got);
      this.ranElsewhere = true;
      const on: RanOn = { runner: runnerName, where: result.where, started: result.started, ended: result.ended };
      res.ran.push(name);
      (res.runs ??= []).push({ stage: name, ...on });
      this.emit({ type: 'done', stage: name, seconds: (Date.now() - clock) / 1000, ...on });
      return true;
    } catch (err) {
      if (err instanceof UnsafePathError) return fail(`stage "${name}": runner ${runnerName} returned an output tdv will not take: ${err.message}; nothing was recorded for it`);
      if (!(err instanceof TdvError)) throw err;
      return fail(err.message);
    } finally {
      closeLog();
      try {
        staging?.remove();
      } catch {
        /* a leftover under .tdv/tmp: removed by the next command that cleans up */
      }
    }
  }

  /**
   * Why a stage cannot run for lack of deps, and the fix: data a pointer
   * tracks but the workspace lacks (a fresh clone) is fetched by `tdv pull`.
   */
  private missingMessage(name: string, missing: string[]): string {
    const inside = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);
    const tracked = this.unpulled.filter((s) => missing.some((d) => inside(s.rel, d) || inside(d, s.rel)));
    const untracked = missing.filter((d) => !tracked.some((s) => inside(s.rel, d) || inside(d, s.rel)));
    const parts: string[] = [];
    if (tracked.length) {
      const paths = tracked.map((s) => quotePath(s.rel));
      const ptrs = tracked.map((s) => quotePath(this.repo.rel(s.ptr.file)));
      parts.push(
        `${paths.join(', ')} ${tracked.length === 1 ? 'is' : 'are'} tracked by ${ptrs.join(', ')} but not in the workspace; ` +
          `\`tdv pull ${paths.join(' ')}\` fetches ${tracked.length === 1 ? 'it' : 'them'} (or run \`tdv repro --pull\`)`,
      );
    }
    if (untracked.length) parts.push(`${untracked.map(quotePath).join(', ')} ${untracked.length === 1 ? 'does' : 'do'} not exist and no stage produces ${untracked.length === 1 ? 'it' : 'them'}`);
    return `stage "${name}": ${parts.join('; ')}`;
  }

  private async record(stage: Stage, inputs: StageInputs, outs: LockedPath[], metrics: LockedPath[]): Promise<void> {
    this.lock.set(stage.name, lockedStage(stage, inputs, outs, metrics));
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
    const uncached = [...(stage.uncached ?? [])];
    return new Guard(repo.root, {
      protect: (rel, dir) => {
        const tracked = repo.gitTracked();
        const own = repo.gitPath(rel);
        const hit = dir ? tracked.firstUnder(own) : tracked.has(own) ? own : undefined;
        // A `cache: false` output is kept in Git by design and rewritten by every run, inside
        // too when it is a directory; but a committed symlink there is still not the stage's.
        if (hit !== undefined && uncached.some((u) => rel === u || rel.startsWith(`${u}/`)) && realOrAbsent(path.join(repo.root, rel))) return undefined;
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
   * outputs and metrics, states sizes its objects do not have (they would go
   * into tdv.lock), or an object is missing. A record is data from the
   * cache or a remote: every path it names goes through the stage's guard.
   */
  private async restore(stage: Stage, key: string, entry: RunEntry, guard: Guard): Promise<boolean> {
    const source = `run record ${key.slice(0, 8)}`;
    const wrong = recordMismatch(stage, entry) ?? this.runCache.sizeMismatch(entry);
    if (wrong !== undefined) {
      this.repo.reporter.warn?.(`${source}: ${wrong}; not restoring from it, the stage runs instead`);
      return false;
    }
    return this.materialise(stage, entry, guard, source);
  }

  /**
   * Checks a run's outputs out into the workspace through the checkout
   * engine with the stage's guard (metrics and `cache: false` outputs as
   * copies, the rest as the cache's link types); false when an object is missing.
   */
  private async materialise(stage: Stage, entry: RunEntry, guard: Guard, source: string): Promise<boolean> {
    const ctx = await workspaceContext(this.repo, { guard });
    // Metrics are plain files kept in Git: copies, never links into the cache.
    const metricsCtx = { ...ctx, linkTypes: ['copy' as const] };
    const target = (o: LockedPath): CheckoutTarget => ({ rel: o.path, oid: o.sha256, size: o.size, nfiles: o.nfiles, source });
    // The stage owns its declared outputs (a run would delete them): what is there is no conflict.
    // Outputs kept in Git (`cache: false`) are restored as copies, like metrics, and not git-ignored.
    const kept = (o: LockedPath) => stage.uncached?.has(o.path) === true;
    const outs = await planCheckout(ctx, entry.outs.filter((o) => !kept(o)).map(target), { force: true });
    const metrics = await planCheckout(metricsCtx, [...entry.outs.filter(kept), ...entry.metrics].map(target), { force: true });
    if (outs.missing.length > 0 || metrics.missing.length > 0) return false;
    await applyCheckout(ctx, outs);
    await applyCheckout(metricsCtx, metrics);
    for (const o of entry.outs) {
      if (kept(o)) removeGitignoreEntry(guard, o.path);
      else addGitignoreEntry(guard, o.path);
    }
    return true;
  }
}

/**
 * `repro --pull`: fetches the tracked inputs and the recorded outputs the
 * workspace lacks, and the run-cache (records and their outputs' objects),
 * then checks those inputs and outputs out, as `tdv pull` would.
 */
async function pullInputs(repo: Repo, missing: readonly Selected[], outs: readonly Selected[], opts: ReproOptions): Promise<{ files: number; runs: number }> {
  const { withRemote } = await import('./lib/transfer.js');
  const { fetchWithRuns } = await import('./lib/run-sync.js');
  const fetched = await withRemote(repo, { remote: opts.remote, jobs: opts.jobs }, (remote) => fetchWithRuns(repo, remote, [...missing, ...outs], { runCache: true }));
  if (fetched.failed.length) {
    const paths = [...new Set(fetched.failed.map((f) => quotePath(f.path)))];
    repo.reporter.warn?.(
      `repro --pull: ${fetched.failed.length} object${fetched.failed.length === 1 ? '' : 's'} could not be fetched, of ${paths.slice(0, 3).join(', ')}${paths.length > 3 ? ', ...' : ''}`,
    );
  }
  // Outputs recorded in tdv.lock come back as `tdv pull` would restore them: the stage is then
  // up to date; one whose objects the remote lacks is left to the run-cache or a run.
  const files = (await restoreSources(repo, [...missing, ...outs])).length;
  return { files, runs: 'runs' in fetched ? (fetched as { runs: number }).runs : 0 };
}

/**
 * Stops what killed runs left running (a stage's processes, a container, a
 * Job), found in their journals, and says so in one line per run: their tdv
 * and reaper died before they could (kill -9 of both, a reboot).
 */
async function sweepKilledRuns(repo: Repo): Promise<void> {
  const swept = await sweepRunning(repo.own, { debug: (l) => repo.reporter.debug?.(l) });
  for (const s of swept.stopped) repo.reporter.warn?.(`a killed ${s} left running; stopped it now`);
  for (const f of swept.failed) repo.reporter.warn?.(`could not stop what a killed tdv left running: ${f}`);
}

/** The last lines of a stage's log (in `.tdv/`), for the failure message. */
function tail(own: Guard, rel: string, n = 10): string[] {
  try {
    const text = own.readText(rel) ?? '';
    return text
      .split('\n')
      .filter((l, i, a) => l !== '' || i < a.length - 1)
      .slice(-n);
  } catch {
    return [];
  }
}

/**
 * Whether a stage's run may be recorded in, and restored from, the run-cache:
 * not when it must run every time (`always_changed`), nor when an output
 * persists across runs (`persist`: the result depends on what was there).
 */
function runCacheable(stage: Stage): boolean {
  return !stage.alwaysChanged && !stage.persist?.size;
}

/** A regular file, a real directory, or nothing: what a run writes (never a symlink or special file). */
function realOrAbsent(abs: string): boolean {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  return st === undefined || st.isFile() || st.isDirectory();
}

function regularOrAbsent(abs: string): boolean {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  return st === undefined || st.isFile();
}
