import fs from 'node:fs';
import path from 'node:path';
import { rmQuiet } from '../../workspace/raw.js';
import { allOuts, findPointers } from './pointers.js';
import type { Repo } from '../repo.js';

/**
 * Removes the temp files a tdv command that died holding the repository lock
 * left behind: partial objects in the cache's temp directory, `.tdvtmp` files
 * beside workspace files, pointers and tdv.lock, and beside cache objects.
 * Every tdv temp name carries its writer's pid (see tmpSuffix), so only that
 * process's files are touched; the caller holds the lock the dead one held.
 * Returns how many were removed.
 */
export async function removeLeftovers(repo: Repo, pid: number): Promise<number> {
  const mine = new RegExp(`^(?:obj|\\.tdvtmp|\\.tmp|lock)\\.${pid}\\.[0-9a-f]+$`);
  let removed = 0;
  const sweep = (dir: string, recurse: boolean): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // gone, or not a directory
    }
    for (const e of ents) {
      if (e.isDirectory()) {
        if (recurse && e.name !== '.git') sweep(path.join(dir, e.name), true);
      } else if (mine.test(e.name)) {
        rmQuiet(path.join(dir, e.name));
        removed++;
      }
    }
  };
  sweep(repo.tmpDir, false);
  sweep(repo.store.tmpDir, false);
  sweep(repo.root, false);
  // Object prefix directories: copies made beside an object when the cache is on another file system.
  sweep(repo.store.objectsDir, true);
  let pointers;
  try {
    pointers = await findPointers(repo, { everything: true });
  } catch {
    return removed; // a broken pointer: the command about to run will say so
  }
  const dirs = new Set<string>();
  for (const p of pointers) dirs.add(path.dirname(p.file));
  for (const s of allOuts(repo, pointers)) {
    dirs.add(path.dirname(s.abs));
    if (fs.lstatSync(s.abs, { throwIfNoEntry: false })?.isDirectory()) sweep(s.abs, true);
  }
  for (const d of dirs) sweep(d, false);
  return removed;
}
