import { fetchWithRuns } from './lib/run-sync.js';
import { type TransferOptions, type TransferResult, withRemote } from './lib/transfer.js';
import { selectForTransfer } from './lib/revision.js';
import { expandStageTargets } from './lib/stage-targets.js';
import type { Repo } from './repo.js';

/** Downloads the objects the selected pointers reference that the cache lacks. */
export async function fetch(repo: Repo, opts: TransferOptions = {}): Promise<TransferResult> {
  return repo.withLock('fetch', async () => {
    const { targets } = await expandStageTargets(repo, opts.targets ?? [], opts);
    const selected = await selectForTransfer(repo, { ...opts, targets });
    return withRemote(repo, opts, (remote) => fetchWithRuns(repo, remote, selected, opts));
  });
}
