import { quotePath } from '../formats/paths.js';
import { UnsafePathError } from '../workspace/guard.js';
import { UsageError } from '../errors.js';
import { gitignoreFor, removeGitignoreEntry } from '../workspace/gitignore.js';
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
    // Every write and delete through the workspace guard: a symlinked .gitignore or a
    // symlink on the way to the data is refused, never followed.
    for (const s of allOuts(repo, pointers)) {
      try {
        unprotectTree(repo.guard, s.rel, repo.store.objectsDir, repo.rel(s.ptr.file));
        const changed = removeGitignoreEntry(repo.guard, s.rel);
        if (changed) gitignores.push({ path: gitignoreFor(s.rel), deleted: changed === 'deleted' });
      } catch (err) {
        // A hostile pointer (its path through a symlink, say) must still be removable: its data
        // and .gitignore are left alone, and only the pointer goes.
        if (!(err instanceof UnsafePathError)) throw err;
        repo.reporter.warn?.(`left ${quotePath(s.rel)} and its .gitignore line as they are: ${err.message}`);
      }
      repo.statCache.forget(s.rel);
    }
    for (const p of pointers) {
      // A pointer is a control file: Git tracks it, and it is deleted only as a regular file.
      repo.guard.removeControlFile(repo.rel(p.file));
      removed.add(p.file);
    }
    repo.statCache.save();
    return { removed: [...removed].map((f) => repo.rel(f)), gitignores };
  });
}
