import { pushSelected, type PushOptions, type TransferResult } from './lib/transfer.js';
import { selectForTransfer } from './lib/revision.js';
import { expandStageTargets } from './lib/stage-targets.js';
import { openRemote } from './lib/remotes.js';
import { markRemote } from './lib/remote-owner.js';
import type { Repo } from './repo.js';

export type { PushOptions, TransferOptions, TransferResult } from './lib/transfer.js';

/**
 * Uploads the objects the selected pointers reference that the remote lacks.
 * For a directory, every file first and its manifest last, and the manifest
 * only when all of its files are on the remote: a remote never holds a
 * manifest whose files are missing. That invariant is also what lets a push
 * skip a directory whose manifest the remote has without looking at its files.
 * The remote is first marked as used by this repository (`repos/<id>`), which
 * `gc --cloud` reads.
 */
export async function push(repo: Repo, opts: PushOptions = {}): Promise<TransferResult> {
  return repo.withLock('push', async () => {
    const { targets } = await expandStageTargets(repo, opts.targets ?? [], opts);
    // Imported data stays on its source's remote (see lib/imports.ts): never pushed here.
    const selected = (await selectForTransfer(repo, { ...opts, targets })).filter((s) => s.ptr.import === undefined);
    const remote = await openRemote(repo, opts.remote, opts.jobs, opts.limitRate);
    try {
      // The remote names this repository (see remote-owner.ts) once the push knows it uses objects
      // there, before any arrive: also when they are all there already (another repository's).
      let marked: Promise<void> | undefined;
      const withMark: PushOptions = { ...opts, beforeUpload: () => (marked ??= markRemote(repo, remote)) };
      const res = await pushSelected(repo, remote, selected, withMark);
      if (!opts.runCache || opts.dry) return res;
      const { pushRuns, mergeTransfers } = await import('./lib/run-sync.js');
      return mergeTransfers(res, await pushRuns(repo, remote, { ...withMark, progress: undefined }));
    } finally {
      remote.close();
    }
  });
}
