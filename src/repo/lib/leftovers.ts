import fs from 'node:fs';
import type { Guard } from '../../workspace/guard.js';
import { allOuts, findPointers } from './pointers.js';
import type { Repo } from '../repo.js';

/**
 * Removes the temp files a tdv command that died holding the repository lock
 * left behind: partial objects in the cache's temp directory, `.tdvtmp` files
 * beside workspace files, pointers and tdv.lock, and beside cache objects.
 * Every tdv temp name carries its writer's pid (see tmpSuffix), so only that
 * process's files are touched; the caller holds the lock the dead one held.
 * Workspace directories are found from pointers, so they are swept through
 * the guard: never through a symlink. Returns how many were removed.
 */
export async function removeLeftovers(repo: Repo, pid: number): Promise<number> {
  const mine = new RegExp(`^(?:obj|\\.tdvtmp|\\.tmp|lock)\\.${pid}\\.[0-9a-f]+$`);
  let removed = repo.store.removeTempFiles(mine);
  const sweep = (guard: Guard, rel: string, recurse: boolean): void => {
    removed += sweepFiles(guard, rel, recurse, (e) => mine.test(e.name));
  };
  sweep(repo.own, 'tmp', false);
  // A chunk being written into the download spool (tmp/chunks/ab/) when the pull died.
  sweep(repo.own, 'tmp/chunks', true);
  // Staging directories of jobs run elsewhere (repo/lib/job.ts: `<stage>-<pid>-<hex>`), whole.
  const staging = new RegExp(`-${pid}-[0-9a-f]+$`);
  try {
    for (const e of fs.readdirSync(repo.own.resolve('tmp/jobs', 'inspect'), { withFileTypes: true })) {
      if (e.isDirectory() && staging.test(e.name) && repo.own.remove(`tmp/jobs/${e.name}`)) removed++;
    }
  } catch {
    /* none, or not a directory tdv may touch */
  }
  sweep(repo.guard, '', false);
  let pointers;
  try {
    pointers = await findPointers(repo, { everything: true });
  } catch {
    return removed; // a broken pointer: the command about to run will say so
  }
  const dirs = new Set<string>();
  const parent = (rel: string) => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
  for (const p of pointers) dirs.add(parent(repo.rel(p.file)));
  for (const s of allOuts(repo, pointers)) {
    dirs.add(parent(s.rel));
    sweep(repo.guard, s.rel, true);
  }
  dirs.delete('');
  for (const d of dirs) sweep(repo.guard, d, false);
  return removed;
}

/**
 * Removes the files below `rel` ('' for the guard's root) that `match` picks,
 * through the guard: never through a symlink, never into `.git`. With
 * `recurse`, in subdirectories too. A directory that is gone, is not one or
 * is not a path tdv may touch is skipped. Returns how many were removed.
 */
export function sweepFiles(guard: Guard, rel: string, recurse: boolean, match: (e: fs.Dirent) => boolean): number {
  let removed = 0;
  let ents: fs.Dirent[];
  try {
    ents = fs.readdirSync(rel === '' ? guard.root : guard.resolve(rel, 'inspect'), { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of ents) {
    const child = rel === '' ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) {
      if (recurse && e.name !== '.git') removed += sweepFiles(guard, child, true, match);
    } else if (match(e)) {
      guard.removeQuiet(child);
      removed++;
    }
  }
  return removed;
}
