import path from 'node:path';
import { buildDag, type Dag } from '../../stages/graph.js';
import { loadPipeline } from '../../stages/load.js';
import type { LockedPath } from '../../stages/lock.js';
import { hashWorkspace } from './hashing.js';
import { allOuts, findPointers } from './pointers.js';
import type { Repo } from '../repo.js';

/** Hashes a stage's dep or output as tdv.lock records it (through the stat cache); undefined when absent. */
export function stageHasher(repo: Repo): (rel: string) => Promise<LockedPath | undefined> {
  return async (rel) => {
    const st = await hashWorkspace(repo, { abs: path.join(repo.root, rel), rel });
    if (st.kind === 'missing' || st.kind === 'other') return undefined;
    return st.kind === 'dir' ? { path: rel, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: rel, sha256: st.oid, size: st.size };
  };
}

/** Loads tdv.yaml and builds its DAG, checking outputs against the pointers. Undefined without a pipeline. */
export async function loadDag(repo: Repo): Promise<Dag | undefined> {
  const pipeline = await loadPipeline(repo.root);
  if (!pipeline) return undefined;
  const tracked = new Map(allOuts(repo, await findPointers(repo, { withLock: false })).map((o) => [o.rel, repo.rel(o.ptr.file)]));
  return buildDag(pipeline, tracked);
}

