import { isDirOid, type Oid } from '../cache/oid.js';
import { errnoCode, TdvError, UsageError } from '../errors.js';
import { findPointers, allOuts } from './pointers.js';
import type { Repo } from './repo.js';

export interface GcOptions {
  /** Keep what the workspace's pointers reference (the only scope so far, and required). */
  workspace?: boolean;
  dry?: boolean;
  /** Asked before deleting; return false to cancel. Not given means "do not delete". */
  confirm?: (plan: GcPlan) => Promise<boolean>;
}

export interface GcPlan {
  /** Objects no pointer references, with their sizes. */
  unused: { oid: Oid; size: number }[];
  bytes: number;
  kept: number;
}

export interface GcResult extends GcPlan {
  removed: boolean;
}

/** Deletes cache objects that no pointer in the workspace references. */
export async function gc(repo: Repo, opts: GcOptions): Promise<GcResult> {
  if (!opts.workspace) throw new UsageError('say what to keep: `tdv gc --workspace` keeps the data the workspace pointers reference');
  return repo.withLock('gc', async () => {
    const plan = await planGc(repo);
    if (opts.dry || plan.unused.length === 0) return { ...plan, removed: false };
    if (!opts.confirm || !(await opts.confirm(plan))) return { ...plan, removed: false };
    const failed = repo.store.remove(plan.unused.map((u) => u.oid));
    if (failed.length > 0) {
      throw new TdvError('GC_INCOMPLETE', `could not delete ${failed.length} of ${plan.unused.length} unused objects (first: ${failed[0]}); check the cache's permissions`);
    }
    return { ...plan, removed: true };
  });
}

export async function planGc(repo: Repo): Promise<GcPlan> {
  const store = repo.store;
  const keep = new Set<Oid>();
  for (const s of allOuts(repo, await findPointers(repo, { everything: true }))) {
    keep.add(s.out.sha256);
    if (!isDirOid(s.out.sha256)) continue;
    if (!store.has(s.out.sha256)) {
      // Without the manifest, which file objects belong to this directory is unknown.
      throw new TdvError('MISSING_OBJECTS', `cannot tell which objects ${s.rel} uses: its manifest ${s.out.sha256} is not in the cache; run \`tdv pull\` first, or \`tdv remove ${repo.rel(s.ptr.file)}\` if it is no longer needed`);
    }
    for (const e of store.readManifest(s.out.sha256)) keep.add(e.sha256);
  }
  const unused: GcPlan['unused'] = [];
  let bytes = 0;
  let kept = 0;
  for (const oid of store.list()) {
    if (keep.has(oid)) {
      kept++;
      continue;
    }
    let size = 0;
    try {
      size = store.sizeOf(oid);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      continue;
    }
    unused.push({ oid, size });
    bytes += size;
  }
  return { unused, bytes, kept };
}
