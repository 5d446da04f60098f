import type { ManifestEntry } from '../../formats/manifest.js';
import { isDirOid, type Oid } from '../../formats/oid.js';
import type { Job } from '../../remote/transfer/executor.js';
import { TdvError } from '../../errors.js';
import type { Selected } from './pointers.js';
import type { Wanted, WantedDir } from '../../remote/transfer/plan.js';

export type { Wanted, WantedDir } from '../../remote/transfer/plan.js';

/**
 * Collects the objects behind `selected`. `manifest` returns a directory's
 * entries, or undefined when they cannot be had (not cached).
 */
export async function collectWanted(selected: readonly Selected[], manifest: (oid: Oid) => Promise<ManifestEntry[] | undefined>): Promise<Wanted> {
  const files = new Map<Oid, Job>();
  const dirs = new Map<string, WantedDir>();
  for (const s of selected) {
    const oid = s.out.sha256;
    if (!isDirOid(oid)) {
      if (!files.has(oid)) files.set(oid, { oid, size: s.out.size, path: s.rel });
      continue;
    }
    const key = `${s.rel}\0${oid}`;
    let d = dirs.get(key);
    if (!d) {
      d = { oid, path: s.rel, size: s.out.size, entries: await manifest(oid), children: [], partial: s.sub !== undefined };
      dirs.set(key, d);
    } else if (s.sub === undefined) d.partial = false;
    if (!d.entries) continue;
    const sub = s.sub;
    let matched = 0;
    for (const e of d.entries) {
      if (sub !== undefined && e.relpath !== sub && !e.relpath.startsWith(`${sub}/`)) continue;
      matched++;
      const job = { oid: e.sha256, size: e.size, path: `${s.rel}/${e.relpath}` };
      d.children.push(job);
      if (!files.has(e.sha256)) files.set(e.sha256, job);
    }
    if (sub !== undefined && matched === 0) {
      throw new TdvError('NOT_TRACKED', `${s.rel}/${sub} is not in the recorded version of ${s.rel}; check the path (\`tdv status ${s.rel}\` shows what changed)`);
    }
  }
  return { files, dirs: [...dirs.values()] };
}
