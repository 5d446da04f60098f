import { fetchWithRuns } from './lib/run-sync.js';
import type { TransferOptions, TransferResult } from './lib/transfer.js';
import { fetchWithImports } from './lib/imports.js';
import { selectForTransfer } from './lib/revision.js';
import { expandStageTargets } from './lib/stage-targets.js';
import type { Repo } from './repo.js';

/** Downloads the objects the selected pointers reference that the cache lacks. */
export async function fetch(repo: Repo, opts: TransferOptions = {}): Promise<TransferResult> {
  return repo.withLock('fetch', async () => {
    const { targets } = await expandStageTargets(repo, opts.targets ?? [], opts);
    const selected = await selectForTransfer(repo, { ...opts, targets });
    // Imported outputs come from their sources' remotes (lib/imports.ts).
    return fetchWithImports(repo, selected, opts, (remote, sel) => fetchWithRuns(repo, remote, sel, opts));
  });
}
