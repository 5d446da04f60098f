import fs from 'node:fs';
import { TdvError } from '../../errors.js';
import { isProtected } from '../../workspace/link.js';
import { lstatOrUndefined } from '../../util/fs.js';
import type { ManifestEntry } from '../../formats/manifest.js';
import type { Oid } from '../../formats/oid.js';
import { FILES_SHARD, sameVersion, type StatKey, walkFingerprint } from '../../cache/statcache.js';
import type { CacheStamp } from '../../cache/store.js';
import { entryPath, walkDir, type WalkEntry, type WalkOptions } from '../../cache/walk.js';
import { hashTarget, type HashOptions, type TargetState } from '../../cache/workspace.js';
import { damagedMessage } from '../../cache/linked.js';
import type { Selected } from './pointers.js';
import type { Repo } from '../repo.js';

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
    onDamaged: (p, oid, moved) => repo.reporter.warn?.(damagedMessage(repo.rel(p), oid, moved && repo.rel(moved))),
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

export type Hashed = Extract<TargetState, { kind: 'file' | 'dir' }>;

/**
 * Stores a file or directory in the cache and returns what it hashed to. With
 * `relink` (default) and a hardlink/symlink cache type, the workspace copy is
 * then replaced by links to the objects, as `tdv add` does after writing the
 * pointer. Used by `add` and by `repro` for stage outputs.
 */
export async function cacheTarget(repo: Repo, abs: string, rel: string, opts: { jobs?: number; onBytes?: (n: number) => void; relink?: boolean } = {}): Promise<Hashed> {
  const move = isProtected(repo.linker().current);
  const state = await hashWorkspace(repo, { abs, rel }, { write: move ? 'move' : 'store', needEntries: move, jobs: opts.jobs, onBytes: opts.onBytes });
  if (state.kind === 'missing' || state.kind === 'other') throw new TdvError('NOT_FOUND', `${rel} disappeared or was replaced while it was being added; run the command again`);
  if (move && opts.relink !== false) await relink(repo, abs, rel, state);
  return state;
}

/** With hardlink/symlink cache types, replaces workspace files by links to their objects. */
export async function relink(repo: Repo, abs: string, rel: string, state: Hashed): Promise<void> {
  const linker = repo.linker();
  // Each file must still be the one hashed (our own chmod of the object changed only its ctime):
  // a file replaced or rewritten meanwhile is never overwritten by a link to the old content.
  const unchanged = (file: string, then: { ino: number; mtimeMs: number; size: number }) => {
    const now = lstatOrUndefined(file);
    if (!now || now.ino !== then.ino || now.mtimeMs !== then.mtimeMs || now.size !== then.size) {
      throw new TdvError('CHANGED_WHILE_ADDING', `${repo.rel(file)} changed while it was being added; run the command again when nothing writes to it`);
    }
  };
  // Files another process holds open for writing stay as they are (see TargetState.inUse).
  if (state.kind === 'file') {
    if (state.inUse) return;
    unchanged(abs, state.st);
    linker.link(repo.store.pathOf(state.oid), abs, state.isexec);
    repo.statCache.setFile(FILES_SHARD, rel, fs.lstatSync(abs), state.oid);
    return;
  }
  const entries = state.entries ?? repo.store.readManifest(state.oid);
  if (!state.walk) throw new Error('hashTarget returned no walk for a write');
  const before = new Map(state.walk.map((w) => [w.rel, w]));
  const linked = new Map<string, fs.Stats>();
  for (const e of entries) {
    if (state.inUse?.has(e.relpath)) continue;
    const dest = entryPath(abs, e.relpath);
    const then = before.get(e.relpath);
    if (then) unchanged(dest, then);
    linker.link(repo.store.pathOf(e.sha256), dest, e.isexec);
    linked.set(e.relpath, fs.lstatSync(dest));
  }
  // Every object was just stored, so a stamp taken now proves them present.
  await recordDirectory(repo, { abs, rel }, { ...state, entries }, repo.store.stamp(), (w) => {
    const st = linked.get(w.rel);
    return st !== undefined && sameVersion(st, w);
  });
}
