import { checkout, type CheckoutResult } from './checkout.js';
import { fetchWithRuns } from './lib/run-sync.js';
import { withRemote } from './lib/transfer.js';
import { selectForTransfer } from './lib/revision.js';
import type { TransferOptions, TransferResult } from './lib/transfer.js';
import type { Repo } from './repo.js';

export interface PullOptions extends TransferOptions {
  /** Passed to checkout: discard workspace changes that are not cached. */
  force?: boolean;
  /** Fetch and check out the data of this revision instead of the workspace pointers'. */
  rev?: string;
}

export interface PullResult {
  fetch: TransferResult;
  /** Absent when the fetch failed: nothing is checked out from an incomplete cache. */
  checkout?: CheckoutResult;
}

/** Fetch, then checkout, under one lock so nothing changes the cache in between. */
export async function pull(repo: Repo, opts: PullOptions = {}): Promise<PullResult> {
  return repo.withLock('pull', async () => {
    const selected = await selectForTransfer(repo, { targets: opts.targets, scope: opts.rev === undefined ? undefined : { revs: [opts.rev] } });
    const fetched = await withRemote(repo, opts, (remote) => fetchWithRuns(repo, remote, selected, opts));
    if (fetched.failed.length > 0) return { fetch: fetched };
    opts.progress?.phase('checkout');
    return { fetch: fetched, checkout: await checkout(repo, { targets: opts.targets, force: opts.force, rev: opts.rev, progress: opts.progress }) };
  });
}
