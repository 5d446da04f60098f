import { checkout, type CheckoutResult } from './checkout.js';
import { fetchWithRuns } from './lib/run-sync.js';
import { fetchWithImports } from './lib/imports.js';
import { selectForTransfer } from './lib/revision.js';
import { expandStageTargets } from './lib/stage-targets.js';
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
  /** What was checked out: everything the cache holds; what could not be fetched is in its `missing`. */
  checkout: CheckoutResult;
}

/**
 * Fetch, then checkout, under one lock so nothing changes the cache in between.
 * Objects that could not be fetched hold back only their own files: the rest
 * is checked out (a problem of the whole remote stops before, at the fetch).
 * With `scope`, the fetch covers the data of those commits (and `--rev`'s or
 * the workspace's); the checkout is always of the workspace's pointers, or `rev`'s.
 */
export async function pull(repo: Repo, opts: PullOptions = {}): Promise<PullResult> {
  return repo.withLock('pull', async () => {
    const { targets } = await expandStageTargets(repo, opts.targets ?? [], opts);
    // `scope` (--all-branches, ...): fetched for those commits too; what is checked out stays the workspace's (or --rev's).
    const selected = await selectForTransfer(repo, { targets, scope: opts.scope ?? (opts.rev === undefined ? undefined : { revs: [opts.rev] }) });
    const fetched = await fetchWithImports(repo, selected, opts, (remote, sel) => fetchWithRuns(repo, remote, sel, opts));
    opts.progress?.phase('checkout');
    return { fetch: fetched, checkout: await checkout(repo, { targets, force: opts.force, rev: opts.rev, progress: opts.progress }) };
  });
}
