import type { WalkOptions } from '../cache/walk.js';
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
