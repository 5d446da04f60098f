import { type ManifestEntry, parseManifest } from '../../formats/manifest.js';
import type { Oid } from '../../formats/oid.js';
import { RemoteError, TdvError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import { readVerified, remoteHas } from '../../remote/transfer/executor.js';
import { withRemote } from './transfer.js';
import { findPointers, selectTargets } from './pointers.js';
import { expandStageTargets } from './stage-targets.js';
import { remoteJobs } from './remotes.js';
import type { Repo } from '../repo.js';
import { collectWanted } from './wanted.js';

export interface RemoteDataStatus {
  path: string;
  pointer: string;
  /** Objects this target references (its manifest and files, for a directory). */
  objects: number;
  /** Referenced objects the remote lacks: `tdv push` would upload them (if cached). */
  missingOnRemote: number;
  /** Referenced objects the cache lacks: `tdv fetch` would download them (if on the remote). */
  missingLocally: number;
  /** A directory whose manifest is neither cached nor readable from the remote: its files are unknown. */
  unknownFiles?: boolean;
  /** Why the manifest could not be read from the remote (corrupt, ...), when it is there. */
  manifestError?: string;
}

export interface RemoteStatusResult {
  remote: string;
  /** True when cache and remote both hold everything. */
  clean: boolean;
  data: RemoteDataStatus[];
}

/**
 * Compares the cache and a remote for each selected target. Read-only: a
 * manifest only the remote holds is read (and hash-checked) in memory.
 * Unlike push, it checks every file of a directory, not just its manifest,
 * so it also reports a remote damaged behind tdv's back.
 */
export async function remoteStatus(repo: Repo, opts: { targets?: string[]; remote?: string; jobs?: number; withDeps?: boolean } = {}): Promise<RemoteStatusResult> {
  const { targets } = await expandStageTargets(repo, opts.targets ?? [], opts);
  // Imported data lives on its source's remote, which push never sends it to (lib/imports.ts).
  const selected = selectTargets(repo, await findPointers(repo), targets).filter((s) => s.ptr.import === undefined);
  return withRemote(repo, opts, async (remote) => {
    const store = repo.store;
    const failures = new Map<Oid, string>();
    const cached = new Map<Oid, Promise<ManifestEntry[] | undefined>>();
    const manifest = (oid: Oid) => {
      if (!cached.has(oid)) cached.set(oid, manifestOf(repo, remote, oid, failures));
      return cached.get(oid)!;
    };
    const data: RemoteDataStatus[] = [];
    const perTarget: { sel: (typeof selected)[number]; oids: Oid[]; unknown: boolean; error?: string }[] = [];
    const all = new Set<Oid>();
    for (const s of selected) {
      const w = await collectWanted([s], manifest);
      const oids = [...w.dirs.map((d) => d.oid), ...w.files.keys()];
      for (const o of oids) all.add(o);
      perTarget.push({ sel: s, oids, unknown: w.dirs.some((d) => !d.entries), error: w.dirs.map((d) => failures.get(d.oid)).find(Boolean) });
    }
    const there = await remoteHas(remote, [...all], remoteJobs(repo, remote, opts.jobs));
    for (const t of perTarget) {
      const missingOnRemote = t.oids.filter((o) => !there.has(o)).length;
      const missingLocally = t.oids.filter((o) => !store.has(o)).length;
      if (missingOnRemote === 0 && missingLocally === 0 && !t.unknown) continue;
      data.push({
        path: t.sel.rel,
        pointer: repo.rel(t.sel.ptr.file),
        objects: t.oids.length,
        missingOnRemote,
        missingLocally,
        ...(t.unknown ? { unknownFiles: true } : {}),
        ...(t.error ? { manifestError: t.error } : {}),
      });
    }
    return { remote: remote.name, clean: data.length === 0, data };
  });
}

/**
 * A directory's manifest: from the cache, else read from the remote (verified,
 * with retries) without storing it, so status changes nothing. Undefined when
 * neither has it; a failure to read it is recorded in `failures`.
 */
async function manifestOf(repo: Repo, remote: Remote, oid: Oid, failures: Map<Oid, string>): Promise<ManifestEntry[] | undefined> {
  const store = repo.store;
  if (store.has(oid)) return store.readManifest(oid);
  try {
    return parseManifest((await readVerified(remote, store, oid)).toString('utf8'), `${remote.url} ${oid}`);
  } catch (err) {
    if (!(err instanceof TdvError) || (err instanceof RemoteError && err.wide)) throw err;
    if (!(err instanceof RemoteError && err.code === 'OBJECT_NOT_ON_REMOTE')) failures.set(oid, err.message);
    return undefined;
  }
}
