import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, TdvError, UsageError } from '../../errors.js';
import { isInside } from '../../util/fs.js';
import { PIPELINE_FILE } from '../../stages/load.js';
import { LOCK_FILE } from '../../stages/lock.js';
import { findPointers, selectTargets } from './pointers.js';
import type { Repo } from '../repo.js';

/** Command-line targets with stage names replaced by the paths of the stages' outputs. */
export interface StageTargets {
  /** Absolute paths: the path targets as given, and every cached output of the named stages. */
  targets: string[];
  /** The stages the targets named (with `withDeps`, and their upstream stages), in DAG order. */
  stages: string[];
}

/**
 * Resolves stage names among `targets` (absolute paths, as the CLI resolves
 * every argument): a target that names no path in the workspace and no
 * tracked path, but a stage of tdv.yaml (`train`, or `tdv.yaml:train` from
 * any directory), stands for that stage's outputs as tdv.lock records them. A
 * target that is both a path and a stage name is the path, as in DVC. With
 * `withDeps`, the outputs of every stage upstream of a named stage (or of the
 * stage producing a path target) are added.
 *
 * The cheapest check comes first: without tdv.yaml, or when every target
 * exists and `withDeps` is off, nothing is loaded.
 */
export async function expandStageTargets(repo: Repo, targets: readonly string[], opts: { withDeps?: boolean } = {}): Promise<StageTargets> {
  if (opts.withDeps && targets.length === 0) throw new UsageError('--with-deps needs targets: stage names or stage outputs');
  // Only a missing target without a "/" (stage names have none), or `tdv.yaml:<name>`, may name a stage.
  const missing = targets.filter((t) => stageName(repo, t) !== undefined && !exists(t));
  const asPaths = { targets: [...targets], stages: [] };
  if (!fs.existsSync(path.join(repo.root, PIPELINE_FILE)) || (missing.length === 0 && !opts.withDeps)) return asPaths;
  const { loadPipeline } = await import('../../stages/load.js');
  const { buildDag, withUpstream } = await import('../../stages/graph.js');
  const { readLock } = await import('../../stages/lock.js');
  let pipeline: Awaited<ReturnType<typeof loadPipeline>>;
  try {
    pipeline = await loadPipeline(repo.root);
  } catch (err) {
    // A tdv.yaml that does not load is the pipeline's problem, not a path target's: said only
    // when the command needs the pipeline (--with-deps, or a target written `tdv.yaml:<stage>`).
    if (opts.withDeps || targets.some((t) => path.basename(t).startsWith(`${PIPELINE_FILE}:`))) throw err;
    return asPaths;
  }
  if (!pipeline) return asPaths;
  const dag = buildDag(pipeline);
  const lock = fs.existsSync(path.join(repo.root, LOCK_FILE)) ? await readLock(repo.root) : new Map();
  // A missing path some pointer tracks (deleted data) is a path: it wins over a stage of its name.
  const pointers = missing.length > 0 ? await findPointers(repo) : [];
  const tracked = (t: string) => {
    try {
      return selectTargets(repo, pointers, [t]).length > 0;
    } catch {
      return false;
    }
  };

  const out: string[] = [];
  const named: string[] = [];
  const upstreamOf: string[] = [];
  for (const t of targets) {
    const name = exists(t) || tracked(t) ? undefined : stageName(repo, t);
    if (name === undefined || !dag.stages.has(name)) {
      out.push(t);
      if (opts.withDeps) {
        // A path a stage writes: the stages upstream of that one (the path itself is the target).
        const rel = isInside(repo.root, t) ? repo.rel(t) : undefined;
        const producer = rel === undefined ? undefined : [...dag.producers].find(([o]) => rel === o || rel.startsWith(`${o}/`))?.[1];
        if (producer !== undefined) upstreamOf.push(...[...dag.upstream.get(producer)!]);
      }
      continue;
    }
    if (!lock.has(name)) {
      throw new TdvError('NOT_TRACKED', `stage "${name}" has not run yet: ${LOCK_FILE} records no outputs of it; run \`tdv repro ${name}\` first`);
    }
    named.push(name);
  }
  const stages = opts.withDeps ? withUpstream(dag, [...named, ...upstreamOf]) : named;
  for (const name of stages) {
    // Upstream stages that have not run have no data to transfer or restore.
    for (const o of lock.get(name)?.outs ?? []) out.push(path.join(repo.root, ...o.path.split('/')));
  }
  if (out.length === 0) {
    throw new TdvError('NOT_TRACKED', `stage${named.length === 1 ? '' : 's'} ${named.map((n) => `"${n}"`).join(', ')} ${named.length === 1 ? 'has' : 'have'} no cached outputs (metrics stay in Git)`);
  }
  return { targets: [...new Set(out)], stages };
}

/** The stage name a target may be: its repository-relative path when that has no "/", or what follows `tdv.yaml:`. */
function stageName(repo: Repo, t: string): string | undefined {
  const base = path.basename(t);
  if (base.startsWith(`${PIPELINE_FILE}:`)) return base.slice(PIPELINE_FILE.length + 1);
  if (!isInside(repo.root, t) || t === repo.root) return undefined;
  const rel = repo.rel(t);
  return rel.includes('/') ? undefined : rel;
}

function exists(abs: string): boolean {
  try {
    return fs.lstatSync(abs, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return false;
    throw err;
  }
}
