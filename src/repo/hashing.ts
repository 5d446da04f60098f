import fs from 'node:fs';
import type { ManifestEntry } from '../cache/manifest.js';
import type { Oid } from '../cache/oid.js';
import { type StatKey, walkFingerprint } from '../cache/statcache.js';
import type { CacheStamp } from '../cache/store.js';
import { walkDir, type WalkEntry, type WalkOptions } from '../cache/walk.js';
import { hashTarget, type HashOptions, type TargetState } from '../cache/workspace.js';
import type { Selected } from './pointers.js';
import type { Repo } from './repo.js';

/** The `.tdvignore` matcher re-rooted at the tracked directory `rel`. */
export async function ignoredUnder(repo: Repo, rel: string): Promise<WalkOptions['ignored']> {
  const ignore = await repo.ignore();
  return ignore ? (r, isDir) => ignore(`${rel}/${r}`, isDir) : undefined;
}

/** Hashes a selected output's workspace copy; writes nothing to the cache unless `extra.write` says so. */
export async function hashWorkspace(repo: Repo, s: Pick<Selected, 'abs' | 'rel'>, extra: Partial<HashOptions> = {}): Promise<TargetState> {
  return hashTarget(s.abs, s.rel, {
    statCache: repo.statCache,
    store: repo.store,
    ignored: await ignoredUnder(repo, s.rel),
    onSkip: (p, why) => repo.reporter.warn?.(`skipped ${repo.rel(p)}: ${why}`),
    ...extra,
  });
}

/**
 * Records a tracked directory as it now is in the workspace, after tdv made it
 * match version `v` (checkout, or add relinking it): its shard gets the files
 * `trusted` vouches for (written just now, or verified unchanged), and the
 * directory gets its fingerprint only if every file is accounted for, so the
 * next status is one walk. `complete` is a cache stamp at which every object of
 * `v` was seen present.
 */
export async function recordDirectory(
  repo: Repo,
  target: Pick<Selected, 'abs' | 'rel'>,
  v: { oid: Oid; size: number; nfiles: number; entries: readonly ManifestEntry[] },
  complete: CacheStamp | undefined,
  trusted: (e: WalkEntry) => boolean,
): Promise<void> {
  fs.mkdirSync(target.abs, { recursive: true });
  const walk = walkDir(target.abs, { ignored: await ignoredUnder(repo, target.rel), objectsDir: repo.store.objectsDir });
  const oids = new Map(v.entries.map((e) => [e.relpath, e.sha256]));
  const records: [string, StatKey, string][] = [];
  for (const e of walk) {
    const oid = oids.get(e.rel);
    if (oid && trusted(e)) records.push([e.rel, e, oid]);
  }
  repo.statCache.replaceShard(target.rel, records);
  if (records.length === walk.length && walk.length === oids.size) {
    const { fp, newestMs } = walkFingerprint(walk);
    repo.statCache.setDir(target.rel, { fp, oid: v.oid, size: v.size, nfiles: v.nfiles, newestMs, complete });
  }
}
