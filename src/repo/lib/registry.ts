import type { Remote } from '../../remote/remote.js';
import { TdvError, UsageError } from '../../errors.js';
import { quotePath } from '../../formats/paths.js';
import { toPosix } from '../../util/fs.js';
import type { Repo } from '../repo.js';
import type { Snapshot, SnapshotSource } from './snapshot.js';

/**
 * Small helpers `tdv ls`, `cat` and `get` share, kept apart from external.ts
 * so that `tdv cat` of this repository loads nothing of Git cloning.
 */

/** A path as typed (`./data/`, `.`) in the form snapshots name paths (`data`, ''). */
export function cleanPath(p: string): string {
  const parts = toPosix(p)
    .split('/')
    .filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new UsageError(`${quotePath(p)} leaves the repository; give a path inside it`);
  return parts.join('/');
}

/**
 * `source` with a `close` that releases its remote if one was opened (a
 * snapshot opens it only when an object is missing).
 */
export function closingRemote(source: SnapshotSource): { source: SnapshotSource; close(): Promise<void> } {
  let opened: Promise<Remote> | undefined;
  return {
    source: { ...source, openRemote: () => (opened ??= source.openRemote()) },
    async close() {
      if (opened) (await opened.catch(() => undefined))?.close();
    },
  };
}
