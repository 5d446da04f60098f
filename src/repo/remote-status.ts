import { createHash } from 'node:crypto';
import { type ManifestEntry, parseManifest } from '../cache/manifest.js';
import type { Oid } from '../cache/oid.js';
import { RemoteError } from '../errors.js';
import type { Remote } from '../remote/remote.js';
import { remoteHas } from '../remote/transfer.js';
import { withRemote } from './fetch.js';
import { findPointers, selectTargets } from './pointers.js';
import { remoteJobs } from './remotes.js';
import type { Repo } from './repo.js';
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
  /** A directory whose manifest is neither cached nor on the remote: its files are unknown. */
  unknownFiles?: boolean;
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
export async function remoteStatus(repo: Repo, opts: { targets?: string[]; remote?: string; jobs?: number } = {}): Promise<RemoteStatusResult> {
  const selected = selectTargets(repo, await findPointers(repo), opts.targets ?? []);
  return withRemote(repo, opts.remote, async (remote) => {
    const store = repo.store;
    const manifest = async (oid: Oid): Promise<ManifestEntry[] | undefined> => (store.has(oid) ? store.readManifest(oid) : readRemoteManifest(remote, oid));
    const data: RemoteDataStatus[] = [];
    const perTarget: { sel: (typeof selected)[number]; oids: Oid[]; unknown: boolean }[] = [];
    const all = new Set<Oid>();
    for (const s of selected) {
      const w = await collectWanted([s], manifest);
      const oids = [...w.dirs.map((d) => d.oid), ...w.files.keys()];
      for (const o of oids) all.add(o);
      perTarget.push({ sel: s, oids, unknown: w.dirs.some((d) => !d.entries) });
    }
    const there = await remoteHas(remote, [...all], remoteJobs(repo, remote, opts.jobs));
    for (const t of perTarget) {
      const missingOnRemote = t.oids.filter((o) => !there.has(o)).length;
      const missingLocally = t.oids.filter((o) => !store.has(o)).length;
      if (missingOnRemote === 0 && missingLocally === 0 && !t.unknown) continue;
      data.push({ path: t.sel.rel, pointer: repo.rel(t.sel.ptr.file), objects: t.oids.length, missingOnRemote, missingLocally, ...(t.unknown ? { unknownFiles: true } : {}) });
    }
    return { remote: remote.name, clean: data.length === 0, data };
  });
}

/** A manifest from the remote, into memory, verified; undefined when the remote lacks it. */
async function readRemoteManifest(remote: Remote, oid: Oid): Promise<ManifestEntry[] | undefined> {
  let body: AsyncIterable<Uint8Array>;
  try {
    body = await remote.get(oid);
  } catch (err) {
    if (err instanceof RemoteError && err.code === 'OBJECT_NOT_ON_REMOTE') return undefined;
    throw err;
  }
  const chunks: Uint8Array[] = [];
  for await (const c of body) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  if (`${createHash('sha256').update(bytes).digest('hex')}.dir` !== oid) {
    throw new RemoteError('CORRUPT_ON_REMOTE', `manifest ${oid} on remote "${remote.name}" (${remote.url}) is corrupt; push it again from a clone that has it`);
  }
  return parseManifest(bytes.toString('utf8'), `${remote.url} ${oid}`);
}
