import { unprotectTree } from '../workspace/link.js';
import { UsageError } from '../errors.js';
import { findPointers, selectTargets } from './lib/pointers.js';
import type { Repo } from './repo.js';

/** Turns linked (read-only) workspace files into editable copies. Returns how many files changed. */
export async function unprotect(repo: Repo, targets: string[]): Promise<{ files: number }> {
  if (targets.length === 0) throw new UsageError('name the tracked files or directories to make editable, e.g. `tdv unprotect data/`');
  return repo.withLock('unprotect', async () => {
    const selected = selectTargets(repo, await findPointers(repo), targets);
    let files = 0;
    // Through the workspace guard: a symlink on the way (a committed one, say) is refused, never copied through.
    for (const s of selected) files += unprotectTree(repo.guard, s.sub ? `${s.rel}/${s.sub}` : s.rel, repo.store.objectsDir, repo.rel(s.ptr.file));
    return { files };
  });
}
