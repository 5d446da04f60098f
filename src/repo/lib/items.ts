/**
 * Running a per-item stage (`foreach-file`, stages/items.ts): which items
 * need their command run, running them in batches (one process or one
 * container per batch, up to `jobs` at once), caching each item's result as
 * it comes, and the output directory's manifest made of every item's result.
 *
 *   items now ──┬─ unchanged since tdv.lock ──> their files in the old output (kept)
 *               ├─ in the run-cache (same stage key, path, content) ──> restored
 *               └─ otherwise ──> batches ──> each item's ${out} cached, recorded per item
 *   items gone or changed: their files leave the output (named by their run records)
 *
 * The workspace is not touched here: the caller checks the result out through
 * the checkout engine and records it in tdv.lock.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../../errors.js';
import { UnsafePathError } from '../../workspace/guard.js';
import { isDirOid } from '../../formats/oid.js';
import { type ManifestEntry, serializeManifest, sortEntries } from '../../formats/manifest.js';
import { posixShellWord, quotePath, relPathProblem } from '../../formats/paths.js';
import { batchScript, type BatchItem, type Item, itemKey, itemsStageKey, itemVars, parseStatus, selectItems } from '../../stages/items.js';
import { type Stage, stageCommands } from '../../stages/load.js';
import type { LockedPath, LockedStage } from '../../stages/lock.js';
import type { RunCache, RunEntry } from '../../stages/run-cache.js';
import type { RunResult } from '../../stages/runner.js';
import type { JobFile, JobResult, JobSpec } from '../../stages/job.js';
import { checkStaged } from '../../stages/job-spec.js';
import type { StageInputs } from '../../stages/status.js';
import { hashWorkspace } from './hashing.js';
import { newStaging } from './job.js';
import type { Repo } from '../repo.js';

export interface ItemsOptions {
  runCache: RunCache;
  /** Use the run-cache and what tdv.lock says is unchanged (false with --force / --no-run-cache). */
  reuse: boolean;
  /** Read per-item results from the run-cache (false with --no-run-cache). */
  restore: boolean;
  jobs: number;
  keepGoing: boolean;
  /** Only count: `ran` is then how many items would run (`--dry`); nothing runs or is written. */
  dry?: boolean;
  signal?: AbortSignal;
  /** How a batch runs: `shellBatches` (here, or in a local container) or `jobBatches` (a runner elsewhere). */
  batches: BatchRunner;
  /** Log lines of tdv's own (which batch runs which items). */
  onNote?(line: string): void;
}

export interface ItemsOutcome {
  /** The output directory as tdv.lock records it (its manifest is in the cache). */
  out?: LockedPath;
  /** How many items ran, came from the run-cache, were unchanged, and how many earlier items' results left. */
  counts: { items: number; ran: number; restored: number; unchanged: number; dropped: number };
  /** Why the stage failed (items failed or the run was interrupted); results of items that succeeded are kept in the run-cache. */
  failure?: string;
}

interface Result {
  item: Item;
  entries: ManifestEntry[];
}

/**
 * Decides, runs and assembles a per-item stage. `locked` is what tdv.lock
 * recorded for it (the cheap path for "10 new of 100,000": only changed
 * items are looked up); `log` names the stage's log for messages.
 */
export async function runItems(repo: Repo, stage: Stage, inputs: StageInputs, locked: LockedStage | undefined, o: ItemsOptions, log: string): Promise<ItemsOutcome> {
  const spec = stage.items!;
  const outDir = stage.outs[0]!;
  const items = selectItems(await inputEntries(repo, stage, inputs), spec.pattern);
  const key = itemsStageKey(stage, spec, inputs);
  const counts = { items: items.length, ran: 0, restored: 0, unchanged: 0, dropped: 0 };

  // Files of the output that stay as they are, and the items still to get a result for.
  let kept: ManifestEntry[] = [];
  let todo: Item[] = items;
  const cheap = o.reuse ? unchangedSinceLock(repo, stage, locked, items, key, o.runCache) : undefined;
  if (cheap) {
    kept = cheap.kept;
    todo = cheap.todo;
    counts.unchanged = items.length - todo.length;
    counts.dropped = cheap.dropped;
  }
  const results: Result[] = [];
  const toRun: Item[] = [];
  for (const item of todo) {
    const hit = o.restore && o.reuse ? recorded(repo, o.runCache, itemKey(key, item), outDir) : undefined;
    if (hit) {
      results.push({ item, entries: hit });
      counts.restored++;
    } else toRun.push(item);
  }
  if (o.dry) return { counts: { ...counts, ran: toRun.length } };
  const failure = toRun.length ? await runBatches(repo, stage, toRun, key, o, results, log) : undefined;
  counts.ran = results.length - counts.restored;
  if (failure) return { counts, failure };

  // The output: what stays, plus every new result; two items writing one name is an error.
  const owner = new Map<string, string>();
  for (const e of kept) owner.set(e.relpath, '');
  const all = [...kept];
  for (const r of results) {
    for (const e of r.entries) {
      const other = owner.get(e.relpath);
      if (other !== undefined) {
        const by = other === '' ? 'an unchanged item' : `item ${quotePath(other)}`;
        return {
          counts,
          failure: `stage "${stage.name}": item ${quotePath(`${spec.dir}/${r.item.rel}`)} wrote ${quotePath(`${outDir}/${e.relpath}`)}, which ${by} wrote too; make each item's output names its own (e.g. \${out}/\${item.stem}.png) (log: ${log})`,
        };
      }
      owner.set(e.relpath, `${spec.dir}/${r.item.rel}`);
      all.push(e);
    }
  }
  // One item's file where another item's files have their directory (x and x/y): no directory
  // can hold both, so refused here by name, before such a manifest is written into the cache.
  for (const e of all) {
    for (let i = e.relpath.indexOf('/'); i !== -1; i = e.relpath.indexOf('/', i + 1)) {
      const file = owner.get(e.relpath.slice(0, i));
      if (file === undefined) continue;
      const who = (o: string) => (o === '' ? 'an unchanged item' : `item ${quotePath(o)}`);
      const by = owner.get(e.relpath)!;
      return {
        counts,
        failure: `stage "${stage.name}": ${who(by)} wrote ${quotePath(`${outDir}/${e.relpath}`)}, but ${who(file)} wrote ${quotePath(`${outDir}/${e.relpath.slice(0, i)}`)} as a file; make each item's output names its own (e.g. \${out}/\${item.stem}.png) (log: ${log})`,
      };
    }
  }
  const sorted = sortEntries(all);
  const oid = repo.store.addBufferSync(serializeManifest(sorted), true);
  return { counts, out: { path: outDir, sha256: oid, size: sorted.reduce((n, e) => n + e.size, 0), nfiles: sorted.length } };
}

/**
 * The input directory's files: from its manifest when the change check's hash
 * of it is in the cache (a tracked directory, or one hashed before), else by
 * hashing it again with its entries (one more walk). Either way the hash is
 * the one checked and recorded, or the directory changed meanwhile: refused.
 */
async function inputEntries(repo: Repo, stage: Stage, inputs: StageInputs): Promise<ManifestEntry[]> {
  const dir = stage.items!.dir;
  const checked = inputs.deps.find((d) => d.path === dir)?.sha256;
  if (checked !== undefined && isDirOid(checked) && repo.store.has(checked)) return repo.store.readManifest(checked);
  const st = await hashWorkspace(repo, { abs: repo.guard.abs(dir), rel: dir }, { needEntries: true });
  if (st.kind !== 'dir') {
    throw new TdvError('NOT_A_DIRECTORY', `${stage.where}: "foreach-file" dir ${quotePath(dir)} of stage "${stage.name}" is not a directory; name the directory whose files are the items`);
  }
  if (checked !== undefined && st.oid !== checked) {
    throw new TdvError('CHANGED_WHILE_ADDING', `stage "${stage.name}": ${quotePath(dir)} changed while the stage was being prepared; run again when nothing writes to it`);
  }
  return st.entries ?? repo.store.readManifest(st.oid);
}

/**
 * The cheap path: when tdv.lock recorded this stage with the same stage key,
 * and the cache still has the old input and output manifests, only items
 * added, changed or removed since are looked at. The files of removed and
 * changed items are found through their run records; without one, undefined
 * (every item is then looked up in the run-cache instead).
 */
function unchangedSinceLock(
  repo: Repo,
  stage: Stage,
  locked: LockedStage | undefined,
  items: Item[],
  key: string,
  runCache: RunCache,
): { kept: ManifestEntry[]; todo: Item[]; dropped: number } | undefined {
  const spec = stage.items!;
  if (!locked) return undefined;
  const lockedKey = itemsStageKey({ ...stage, cmd: locked.cmd }, spec, { ...(locked.image ? { image: locked.image } : {}), deps: locked.deps, params: locked.params });
  if (lockedKey !== key) return undefined;
  const oldDir = locked.deps.find((d) => d.path === spec.dir)?.sha256;
  const oldOut = locked.outs.find((d) => d.path === stage.outs[0])?.sha256;
  if (!oldDir || !oldOut || !isDirOid(oldDir) || !isDirOid(oldOut) || !repo.store.has(oldDir) || !repo.store.has(oldOut)) return undefined;
  let before: Item[];
  let out: ManifestEntry[];
  try {
    before = selectItems(repo.store.readManifest(oldDir), spec.pattern);
    out = repo.store.readManifest(oldOut);
  } catch (err) {
    if (err instanceof TdvError) return undefined;
    throw err;
  }
  const now = new Map(items.map((i) => [i.rel, i.sha256]));
  const gone = new Set<string>();
  let dropped = 0;
  for (const b of before) {
    if (now.get(b.rel) === b.sha256) continue;
    const files = recorded(repo, runCache, itemKey(key, b), stage.outs[0]!, true);
    if (!files) return undefined;
    for (const f of files) gone.add(f.relpath);
    dropped++;
  }
  const was = new Map(before.map((b) => [b.rel, b.sha256]));
  return { kept: out.filter((e) => !gone.has(e.relpath)), todo: items.filter((i) => was.get(i.rel) !== i.sha256), dropped };
}

/**
 * The files an item's run record names (its result directory's manifest),
 * or undefined when there is no usable record: none, malformed, or its
 * manifest not in the cache. A record is data (it may come from a remote):
 * its manifest's names are checked like any manifest's.
 */
function recorded(repo: Repo, runCache: RunCache, key: string, outDir: string, namesOnly = false): ManifestEntry[] | undefined {
  const entry = runCache.get(key);
  const o = entry?.outs[0];
  if (!entry || entry.outs.length !== 1 || entry.metrics.length || o?.path !== outDir || !isDirOid(o.sha256) || !repo.store.has(o.sha256)) return undefined;
  try {
    const files = repo.store.readManifest(o.sha256);
    // Which names an earlier result had (to take them out of the output) needs no file of it:
    // gc keeps run records' manifests, not always their files.
    if (namesOnly) return files;
    if (files.some((f) => !repo.store.has(f.sha256))) return undefined;
    // Sizes go into tdv.lock (the output directory's size): a record or manifest stating sizes
    // its objects do not have is not used, as for a whole stage's run record (found by the
    // adversarial pass: a tampered item record put a size of 99,999 for 2 bytes into tdv.lock).
    const wrong = files.find((f) => repo.store.sizeOf(f.sha256) !== f.size);
    const total = files.reduce((n, f) => n + f.size, 0);
    if (wrong !== undefined || o.size !== total || (o.nfiles !== undefined && o.nfiles !== files.length)) {
      const what =
        wrong !== undefined
          ? `it says ${quotePath(wrong.relpath)} is ${wrong.size} bytes, but its object in the cache is ${repo.store.sizeOf(wrong.sha256)} bytes`
          : `its size or file count is not its manifest's`;
      repo.reporter.warn?.(`run record ${key.slice(0, 8)}: ${what}; not restoring an item from it, the item runs instead`);
      return undefined;
    }
    return files;
  } catch (err) {
    if (err instanceof TdvError) return undefined;
    throw err;
  }
}

/** What running one batch gave: how it ended, each item's exit status (by index), and where each item's files are. */
export interface BatchRun {
  result: Pick<RunResult, 'exitCode' | 'signal'>;
  status: Map<number, number>;
  dirOf(index: number): string;
}

/** How batches of items run: here (a shell, or a container of the local Docker), or as jobs on a runner elsewhere. */
export interface BatchRunner {
  /** Items in one batch at most. */
  readonly maxItems: number;
  /** Batches are costly to start (containers, jobs): fewer, bigger ones. */
  readonly costly: boolean;
  /** Items are read from the workspace as the batch runs (here, or a container mounting it), not from copies sent with a job. */
  readonly readsWorkspace?: boolean;
  run(items: readonly { index: number; item: Item }[], ctx: { stage: Stage; staging: { rel: string; abs: string }; batch: number; keepGoing: boolean }): Promise<BatchRun>;
}

/**
 * Batches run by `sh SCRIPT` in the stage's working directory, locally or in
 * the stage's container (which mounts the repository at its own path, so the
 * script, `${out}` and the status file under .tdv/tmp are where they are here).
 */
export function shellBatches(repo: Repo, runScript: (cmd: string) => Promise<RunResult>, container: boolean): BatchRunner {
  return {
    maxItems: container ? 2000 : 256,
    costly: container,
    readsWorkspace: true,
    async run(items, { stage, staging, batch, keepGoing }) {
      const spec = stage.items!;
      const out = (index: number) => path.join(staging.abs, 'o', String(index));
      const list: BatchItem[] = items.map(({ index, item }) => ({ index, vars: itemVars(spec.dir, item.rel, stage.wdir, out(index)) }));
      const statusRel = `${staging.rel}/b${batch}.status`;
      const scriptRel = `${staging.rel}/b${batch}.sh`;
      for (const it of list) repo.own.mkdirp(`${staging.rel}/o/${it.index}`);
      repo.own.writeFile(scriptRel, batchScript(stageCommands(stage), list, repo.own.abs(statusRel), keepGoing));
      const result = await runScript(`sh ${posixShellWord(repo.own.abs(scriptRel))}`);
      return { result, status: parseStatus(repo.own.readText(statusRel) ?? ''), dirOf: out };
    },
  };
}

/** A job's script travels as an argument (docker create, a pod spec): a batch's script stays under this. */
const JOB_SCRIPT_BYTES = 96 * 1024;

/**
 * Batches run as jobs on a runner elsewhere (stages/job.ts): each job reads
 * the stage's other inputs (`base.inputs`) and its batch's items, runs the
 * batch script (each item's results under `<out>/<index>`, the statuses in
 * `<out>/tdv-status`, in the job's own workspace), and brings `<out>` back
 * into a staging directory of its own, checked as any job's outputs are.
 */
export function jobBatches(repo: Repo, base: JobSpec, runner: string, runJob: (spec: JobSpec, staging: string) => Promise<JobResult>): BatchRunner {
  return {
    maxItems: 200,
    costly: true,
    async run(items, { stage, staging, batch, keepGoing }) {
      const spec = stage.items!;
      const outDir = stage.outs[0]!;
      const fromWdir = (rel: string) => path.posix.relative(stage.wdir === '.' ? '' : stage.wdir, rel);
      const list: BatchItem[] = items.map(({ index, item }) => ({ index, vars: itemVars(spec.dir, item.rel, stage.wdir, fromWdir(`${outDir}/${index}`)) }));
      const script = batchScript(stageCommands(stage), list, fromWdir(`${outDir}/tdv-status`), keepGoing, { mkdirs: true, stopWithZero: true });
      if (Buffer.byteLength(script) > JOB_SCRIPT_BYTES * 2)
        throw new TdvError('STAGE_FAILED', `stage "${stage.name}": the script of a batch of ${items.length} items is ${Buffer.byteLength(script)} bytes; shorten the command or item names`);
      const files: JobFile[] = [];
      for (const { item } of items) files.push(await itemFile(repo, stage, item));
      const dir = repo.own.mkdirp(`${staging.rel}/j${batch}`);
      const result = await runJob({ ...base, cmd: [script], inputs: [...base.inputs, ...files], outputs: [outDir] }, dir);
      checkStaged(dir, [outDir], result, runner, stage.name);
      const statusFile = path.join(dir, outDir, 'tdv-status');
      const status = parseStatus(fs.lstatSync(statusFile, { throwIfNoEntry: false })?.isFile() ? fs.readFileSync(statusFile, 'utf8') : '');
      return { result, status, dirOf: (index) => path.join(dir, outDir, String(index)) };
    },
  };
}

/** An item as a job's input: its object in the cache (copied there from the workspace if it is not, hashed as copied). */
async function itemFile(repo: Repo, stage: Stage, item: Item): Promise<JobFile> {
  const rel = `${stage.items!.dir}/${item.rel}`;
  if (!repo.store.has(item.sha256)) {
    const abs = repo.guard.resolve(rel, 'read', stage.where);
    const st = fs.lstatSync(abs);
    const oid = await repo.store.addFileCopy(abs, { ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, size: st.size, mode: st.mode });
    if (oid !== item.sha256) throw new TdvError('CHANGED_WHILE_ADDING', `stage "${stage.name}": ${quotePath(rel)} changed while the stage was being prepared; run again when nothing writes to it`);
  }
  return { path: rel, sha256: item.sha256, size: item.size };
}

/** Items per batch: a shell per few dozen items, a costly batch per `jobs`-th of them, within the runner's maximum. */
function batchSize(n: number, jobs: number, b: BatchRunner): number {
  return Math.min(b.maxItems, Math.max(1, Math.ceil(n / (b.costly ? jobs : jobs * 4))));
}

/**
 * Runs `items` in batches, up to `jobs` at once, caching each item's result
 * as its batch ends (so a failure or Ctrl-C keeps what finished). Returns why
 * the stage failed, or undefined. Unless `keepGoing`, no batch starts after
 * an item failed.
 */
async function runBatches(repo: Repo, stage: Stage, items: Item[], key: string, o: ItemsOptions, results: Result[], log: string): Promise<string | undefined> {
  const spec = stage.items!;
  const staging = newStaging(repo, stage.name);
  const size = batchSize(items.length, o.jobs, o.batches);
  const batches: Item[][] = [];
  for (let i = 0; i < items.length; i += size) batches.push(items.slice(i, i + size));
  const failed: { item: Item; why: string }[] = [];
  let next = 0;
  let stop = false;
  const one = async (b: number): Promise<void> => {
    const batch = batches[b]!;
    const base = b * size;
    o.onNote?.(`tdv: batch ${b + 1} of ${batches.length}: ${batch.length} item${batch.length === 1 ? '' : 's'} from ${quotePath(`${spec.dir}/${batch[0]!.rel}`)}`);
    const {
      result: res,
      status,
      dirOf,
    } = await o.batches.run(
      batch.map((item, i) => ({ index: base + i, item })),
      { stage, staging, batch: b, keepGoing: o.keepGoing },
    );
    // An item without a status did not run: after an item of its batch failed (not an error of
    // its own), or because its batch ended early (killed, or something in it ended the shell):
    // the first such item fails with the batch, whatever the batch's exit status says.
    const stoppedByItem = !o.keepGoing && batch.some((_, i) => (status.get(base + i) ?? 0) !== 0);
    let reported = false;
    for (const [i, item] of batch.entries()) {
      const s = status.get(base + i);
      if (s === undefined) {
        if (!reported && !stoppedByItem && !o.signal?.aborted) {
          failed.push({ item, why: res.signal ? `its batch was killed by ${res.signal} before it finished` : `its batch ended with exit code ${res.exitCode} before it finished` });
          reported = true;
        }
        continue;
      }
      if (s !== 0) {
        failed.push({ item, why: `exit code ${s}` });
        continue;
      }
      // The command read the item in the workspace, and its result is recorded under the content
      // hashed before the batch: an item written to meanwhile would put the result of other bytes
      // under that key (found by the adversarial pass: a result of "SWAPPED" recorded for the
      // original content and restored for it later). The stat cache makes this a stat per item.
      if (o.batches.readsWorkspace && !(await unchanged(repo, stage, item))) {
        failed.push({ item, why: 'it changed while the stage ran; run again when nothing writes to it' });
        continue;
      }
      try {
        const entries = await ingestItem(repo, dirOf(base + i));
        const oid = repo.store.addBufferSync(serializeManifest(entries), true);
        const record: RunEntry = { outs: [{ path: stage.outs[0]!, sha256: oid, size: entries.reduce((n, e) => n + e.size, 0), nfiles: entries.length }], metrics: [] };
        o.runCache.put(itemKey(key, item), record);
        results.push({ item, entries });
      } catch (err) {
        if (!(err instanceof TdvError)) throw err;
        failed.push({ item, why: err.message });
      }
    }
    if (failed.length && !o.keepGoing) stop = true;
  };
  const worker = async () => {
    while (!stop && !o.signal?.aborted && next < batches.length) await one(next++);
  };
  try {
    await Promise.all(Array.from({ length: Math.min(o.jobs, batches.length) }, worker));
  } finally {
    try {
      staging.remove();
    } catch {
      /* a leftover under .tdv/tmp, removed by a later cleanup */
    }
  }
  const kept = results.length ? `; the ${results.length} item result${results.length === 1 ? '' : 's'} that succeeded ${results.length === 1 ? 'is' : 'are'} kept for the rerun` : '';
  if (o.signal?.aborted) return `stage "${stage.name}" was interrupted; nothing was recorded for it${kept}`;
  if (!failed.length) return undefined;
  const shown = failed.slice(0, 3).map((f) => `${quotePath(`${spec.dir}/${f.item.rel}`)} (${f.why})`);
  const more = failed.length > 3 ? ` and ${failed.length - 3} more` : '';
  return `stage "${stage.name}": ${failed.length === 1 ? 'item' : `${failed.length} items failed:`} ${shown.join(', ')}${more}${failed.length === 1 ? ' failed' : ''}${kept} (log: ${log})`;
}

/**
 * Whether item `item`'s file in the workspace still has the content the stage was prepared with:
 * by the input directory's stat-cache records when its stat key is known there (one lstat),
 * else by hashing it again (a file written just before the run, whose record is racy). Nothing
 * is recorded: 100,000 items would otherwise add as many records to the stat cache.
 */
async function unchanged(repo: Repo, stage: Stage, item: Item): Promise<boolean> {
  const dir = stage.items!.dir;
  let abs: string;
  try {
    abs = repo.guard.resolve(`${dir}/${item.rel}`, 'read', stage.where);
  } catch (err) {
    if (err instanceof UnsafePathError) return false;
    throw err;
  }
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st?.isFile() || st.size !== item.size) return false;
  const known = repo.statCache.getFile(dir, item.rel, st);
  if (known !== undefined) return known === item.sha256;
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(abs)) h.update(chunk as Buffer);
  return h.digest('hex') === item.sha256;
}

/**
 * What one item left in its `${out}`: regular files and directories only (a
 * symlink or special file fails the item), each file moved into the cache
 * (hashed as it is moved: what is cached is what was hashed).
 */
async function ingestItem(repo: Repo, dir: string): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    let names: string[];
    try {
      names = fs.readdirSync(abs).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && rel === '') return;
      throw err;
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const problem = relPathProblem(r);
      if (problem !== undefined) throw new TdvError('JOB_OUTPUT_REFUSED', `it wrote ${quotePath(r)}, whose name ${problem}`);
      const p = path.join(abs, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) await walk(p, r);
      else if (st.isFile()) {
        const oid = await repo.store.addFileMove(p, { ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, size: st.size, mode: st.mode });
        entries.push({ relpath: r, sha256: oid, size: st.size, ...((st.mode & 0o100) !== 0 ? { isexec: true } : {}) });
      } else throw new TdvError('JOB_OUTPUT_REFUSED', `it left ${quotePath(r)}, ${st.isSymbolicLink() ? 'a symlink' : 'a special file'}: tdv takes only regular files and directories`);
    }
  };
  await walk(dir, '');
  return sortEntries(entries);
}
