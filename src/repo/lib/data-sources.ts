import type { Dag } from '../../stages/graph.js';
import { type PointerOut, serializePointer } from '../../formats/pointer.js';
import path from 'node:path';
import { LOCK_FILE, type LockFile } from '../../stages/lock.js';
import { applyCheckout, planCheckout } from '../../workspace/checkout.js';
import { cacheTarget, type Hashed, hashWorkspace, workspaceContext } from './hashing.js';
import { allOuts, findPointers, type Selected } from './pointers.js';
import type { Repo } from '../repo.js';

const inside = (parent: string, child: string) => child === parent || child.startsWith(`${parent}/`);

/**
 * The pipeline's data sources: data tracked by a `.tdv` pointer that one of
 * the `names` stages reads (a dep that is the tracked path, lies inside it, or
 * contains it). As in DVC, where `foo.dvc` is a stage of the pipeline, these
 * are checked before the stages that read them.
 */
export async function dataSources(repo: Repo, dag: Dag, names: readonly string[]): Promise<Selected[]> {
  const deps = names.flatMap((n) => dag.stages.get(n)!.deps);
  if (deps.length === 0) return [];
  const outs = allOuts(repo, await findPointers(repo, { withLock: false })).filter((o) => repo.rel(o.ptr.file) !== LOCK_FILE);
  return outs.filter((o) => deps.some((d) => inside(o.rel, d) || inside(d, o.rel)));
}

/**
 * Outputs tdv.lock records for the `names` stages that the workspace lacks
 * (a fresh clone): `repro --pull` fetches and checks them out too, so an
 * unchanged stage is up to date without running, as with DVC's `repro --pull`.
 */
export async function missingOutputs(repo: Repo, lock: LockFile, names: readonly string[]): Promise<Selected[]> {
  const file = path.join(repo.root, LOCK_FILE);
  const out: Selected[] = [];
  for (const n of names) {
    for (const o of lock.get(n)?.outs ?? []) {
      const s: Selected = {
        ptr: { file, outs: [] },
        out: { path: o.path, sha256: o.sha256, size: o.size, ...(o.nfiles !== undefined ? { nfiles: o.nfiles } : {}) },
        abs: path.join(repo.root, o.path),
        rel: o.path,
      };
      if ((await hashWorkspace(repo, s)).kind === 'missing') out.push(s);
    }
  }
  return out;
}

export interface SourceState {
  /** Repo-relative path of the tracked data. */
  path: string;
  /** Repo-relative path of its pointer file. */
  pointer: string;
}

/**
 * Splits data sources into those whose workspace copy differs from their
 * pointer (`changed`) and those not in the workspace at all (`missing`: a
 * fresh clone, before `tdv pull`). Read-only but for the stat cache.
 */
export async function sourceStates(repo: Repo, sources: readonly Selected[]): Promise<{ changed: Selected[]; missing: Selected[] }> {
  const changed: Selected[] = [];
  const missing: Selected[] = [];
  for (const s of sources) {
    const ws = await hashWorkspace(repo, s);
    if (ws.kind === 'missing') missing.push(s);
    // Something else in the way (a symlink, a device) is not data to commit: the stage's own
    // dep check reports it.
    else if (ws.kind !== 'other' && (ws.oid !== s.out.sha256 || (ws.kind === 'file' && ws.isexec !== (s.out.isexec === true)))) changed.push(s);
  }
  return { changed, missing };
}

/**
 * Commits changed data sources as `tdv add` would: caches the workspace
 * content and rewrites the pointer with its new hash (the stages that read
 * it then run on, and record, the new version). DVC's `repro` does the same
 * for a changed `foo.dvc`. The pointer is left for the user to commit with Git.
 */
export async function commitSources(repo: Repo, changed: readonly Selected[]): Promise<SourceState[]> {
  const done: SourceState[] = [];
  // A pointer may track several outputs: each rewrite keeps the others' latest versions.
  const current = new Map<string, PointerOut[]>();
  for (const s of changed) {
    const pointer = repo.rel(s.ptr.file);
    const state = await cacheTarget(repo, repo.guard.resolve(s.rel, 'write', pointer), s.rel, { source: pointer });
    const out = toOut(s.out.path, state);
    const outs = (current.get(pointer) ?? s.ptr.outs).map((o) => (o.path === s.out.path ? out : o));
    current.set(pointer, outs);
    repo.guard.writeControlFile(pointer, serializePointer(outs));
    done.push({ path: s.rel, pointer });
  }
  return done;
}

/**
 * Checks out data sources the workspace lacks through the checkout engine
 * (what `tdv checkout` does for them), each whose objects are all cached; the
 * others stay missing, and the stage reading them says how to get them.
 * Returns the paths written.
 */
export async function restoreSources(repo: Repo, missing: readonly Selected[]): Promise<string[]> {
  const ctx = await workspaceContext(repo);
  const restored: string[] = [];
  for (const s of missing) {
    const source = repo.rel(s.ptr.file);
    const plan = await planCheckout(ctx, [{ rel: s.rel, oid: s.out.sha256, isexec: s.out.isexec, size: s.out.size, nfiles: s.out.nfiles, source }]);
    if (plan.missing.length > 0 || plan.conflicts.length > 0) continue;
    await applyCheckout(ctx, plan);
    restored.push(...[...plan.writes, ...plan.chmods].map((w) => w.rel));
  }
  return restored;
}

function toOut(name: string, s: Hashed): PointerOut {
  if (s.kind === 'dir') return { path: name, sha256: s.oid, size: s.size, nfiles: s.nfiles };
  return s.isexec ? { path: name, sha256: s.oid, size: s.size, isexec: true } : { path: name, sha256: s.oid, size: s.size };
}
