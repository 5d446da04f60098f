import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { removeGitignoreEntry } from '../workspace/gitignore.js';
import { allOuts, findPointers, selectTargets } from './lib/pointers.js';
import { unprotectTree } from '../workspace/link.js';
import type { Repo } from './repo.js';

export interface RemoveResult {
  /** Repo-relative pointer files deleted. */
  removed: string[];
  /** Repo-relative .gitignore files edited, or deleted because tdv's line was all they held. */
  gitignores: { path: string; deleted: boolean }[];
}

/**
 * Stops tracking: deletes the pointer and its .gitignore line and keeps the
 * data, turning links into the cache into plain copies so they survive a gc.
 */
export async function remove(repo: Repo, targets: string[]): Promise<RemoveResult> {
  if (targets.length === 0) throw new UsageError('name the pointer files or tracked paths to stop tracking, e.g. `tdv remove data.tdv`');
  return repo.withLock('remove', async () => {
    const selected = selectTargets(repo, await findPointers(repo), targets);
    const partial = selected.find((s) => s.sub !== undefined);
    if (partial) throw new UsageError(`${partial.rel}/${partial.sub} is inside tracked ${partial.rel}; remove the whole ${repo.rel(partial.ptr.file)}`);
    const removed = new Set<string>();
    const gitignores: RemoveResult['gitignores'] = [];
    // A pointer is removed whole: every output it tracks is released, not just the one named.
    const pointers = [...new Set(selected.map((s) => s.ptr))];
    for (const s of allOuts(repo, pointers)) {
      unprotectTree(s.abs, repo.store.objectsDir);
      const changed = removeGitignoreEntry(path.dirname(s.abs), path.basename(s.abs));
      if (changed) gitignores.push({ path: repo.rel(path.join(path.dirname(s.abs), '.gitignore')), deleted: changed === 'deleted' });
      repo.statCache.forget(s.rel);
    }
    for (const p of pointers) {
      fs.rmSync(p.file, { force: true });
      removed.add(p.file);
    }
    repo.statCache.save();
    return { removed: [...removed].map((f) => repo.rel(f)), gitignores };
  });
}
