import fs from 'node:fs';
import { unprotectFile } from '../cache/link.js';
import { entryPath, walkDir } from '../cache/walk.js';
import { UsageError } from '../errors.js';
import { findPointers, selectTargets } from './pointers.js';
import type { Repo } from './repo.js';

/** Turns linked (read-only) workspace files into editable copies. Returns how many files changed. */
export async function unprotect(repo: Repo, targets: string[]): Promise<{ files: number }> {
  if (targets.length === 0) throw new UsageError('name the tracked files or directories to make editable, e.g. `tdv unprotect data/`');
  return repo.withLock('unprotect', async () => {
    const selected = selectTargets(repo, await findPointers(repo), targets);
    let files = 0;
    for (const s of selected) files += unprotectTree(s.sub ? `${s.abs}/${s.sub}` : s.abs, repo.store.objectsDir);
    return { files };
  });
}

/** Replaces hard links and symlinks to the cache under `abs` by editable copies. Returns how many. */
export function unprotectTree(abs: string, objectsDir: string): number {
  const st = fs.lstatSync(abs, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return unprotectFile(abs) ? 1 : 0;
  let n = 0;
  for (const e of walkDir(abs, { objectsDir })) if (unprotectFile(entryPath(abs, e.rel))) n++;
  return n;
}
