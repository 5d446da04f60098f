import { TdvError } from '../../errors.js';
import type { Oid } from '../../formats/oid.js';
import type { ImportRecord } from '../../formats/pointer.js';
import type { Remote } from '../../remote/remote.js';
import type { Repo } from '../repo.js';
import { closingRemote } from './registry.js';
import type { Snapshot, SnapshotSource } from './snapshot.js';

/**
 * The snapshot source of a repository opened here (ls, cat, serve): its Git
 * history, its cache, its remote, and its imports' sources. Apart from
 * snapshot.ts, which must not import the modules that read other
 * repositories (they read snapshots themselves).
 */

/** A snapshot source for a repository opened here: its cache, and its default remote or `remoteName`. */
export async function localSource(repo: Repo, remoteName?: string): Promise<SnapshotSource> {
  const { openHistory } = await import('./revision.js');
  const history = openHistory(repo);
  let remote: Promise<Remote> | undefined;
  return {
    label: repo.root,
    root: repo.root,
    git: repo.git!,
    history,
    store: repo.store,
    // Loaded only when an object is missing: reading what is cached needs no remote code.
    // A failure is not kept: the next request tries again (a long-running `tdv serve` must not keep one error for its life).
    openRemote: () =>
      (remote ??= import('./remotes.js')
        .then(({ openRemote }) => openRemote(repo, remoteName))
        .catch((err: unknown) => {
          remote = undefined;
          throw err;
        })),
    async fetchImported(imp: ImportRecord, outPath: string): Promise<Oid> {
      const { openExternal } = await import('./external.js');
      const { fetchSourceData } = await import('./imports.js');
      const ext = await openExternal(imp.url, { rev: imp.commit, here: repo, remote: imp.remote });
      try {
        return (await fetchSourceData(repo, ext, imp.path, outPath, {})).sha256;
      } finally {
        await ext.close();
      }
    },
  };
}

/**
 * A revision of this repository: `rev`, or HEAD. A repository without a
 * commit yet has no revision to read: said so, instead of "unknown revision HEAD".
 */
export async function openLocalSnapshot(here: Repo, rev: string | undefined, remote: string | undefined, verb: string): Promise<{ snap: Snapshot; close(): Promise<void> }> {
  const { Snapshot } = await import('./snapshot.js');
  const { source, close } = closingRemote(await localSource(here, remote));
  try {
    if (rev === undefined && !source.history.hasCommits()) {
      throw new TdvError('NO_COMMITS', `this repository has no commits yet, and \`tdv ${verb}\` reads committed revisions; commit first`);
    }
    return { snap: await Snapshot.open(source, rev ?? 'HEAD'), close };
  } catch (err) {
    await close();
    throw err;
  }
}
