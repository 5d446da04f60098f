import fs from 'node:fs';
import { TdvError } from '../../errors.js';
import { quotePath } from '../../formats/paths.js';
import { isProtected } from '../../workspace/link.js';
import { lstatOrUndefined } from '../../util/fs.js';
import { FILES_SHARD } from '../../cache/statcache.js';
import { sameStat } from '../../cache/tasks.js';
import { entryPath } from '../../cache/walk.js';
import { compareTarget, type Differs, hashTarget, type HashOptions, type TargetState } from '../../cache/workspace.js';
import type { Oid } from '../../formats/oid.js';
import { type Guard, UnsafePathError } from '../../workspace/guard.js';
import { type CheckoutContext, ignoredUnder, linkFiles, recordDirectory } from '../../workspace/checkout.js';
import { damagedMessage } from '../../cache/linked.js';
import type { Selected } from './pointers.js';
import type { Repo } from '../repo.js';
import type { Progress } from '../../util/progress.js';

/**
 * The checkout engine's context for the workspace: its guard (or `over.guard`,
 * a guard with other protections), cache, stat cache (recorded and saved),
 * link types and `.tdvignore`.
 */
export async function workspaceContext(repo: Repo, over: Partial<CheckoutContext> = {}): Promise<CheckoutContext> {
  return {
    guard: repo.guard,
    store: repo.store,
    statCache: repo.statCache,
    record: true,
    // The effective types: as root, links are left out unless cache.allow_root_links (Repo.linker warns).
    linkTypes: repo.linker().types,
    ignore: await repo.ignore(),
    onWarn: (m) => repo.reporter.warn?.(m),
    ...over,
  };
}

/** Hashes a selected output's workspace copy; writes nothing to the cache unless `extra.write` says so. */
export async function hashWorkspace(repo: Repo, s: Pick<Selected, 'abs' | 'rel'> & { ptr?: { file: string } }, extra: Partial<HashOptions> = {}): Promise<TargetState> {
  return blockedAt(repo, s) ?? hashTarget(s.abs, s.rel, await hashOptions(repo, s, extra));
}

/**
 * `hashWorkspace` for a status: a changed directory may be answered by how it
 * differs from version `want` instead of its own id (see `compareTarget`).
 */
export async function compareWorkspace(repo: Repo, s: Pick<Selected, 'abs' | 'rel'> & { ptr?: { file: string } }, want: Oid): Promise<TargetState | Differs> {
  return blockedAt(repo, s) ?? compareTarget(s.abs, s.rel, want, await hashOptions(repo, s));
}

/** What to report instead of hashing when the path is reached only through a symlink (or is not legal). */
function blockedAt(repo: Repo, s: Pick<Selected, 'abs' | 'rel'> & { ptr?: { file: string } }): TargetState | undefined {
  // A path in the workspace is read only along real directories: a pointer (or a stage) naming a
  // path through a symlink must not make status or diff read, or walk, whatever it points at.
  // It is then "something else in the way" (a blocker, which status and diff name with the fix).
  if (s.abs === repo.guard.abs(s.rel)) {
    try {
      repo.guard.resolve(s.rel, 'inspect', s.ptr ? quotePath(repo.rel(s.ptr.file)) : undefined);
    } catch (err) {
      // (Whether anything is there at all decides deleted or in the way; nothing is read.)
      if (err instanceof UnsafePathError) return fs.existsSync(s.abs) ? { kind: 'other' } : { kind: 'missing' };
      throw err;
    }
  }
  return undefined;
}

async function hashOptions(repo: Repo, s: Pick<Selected, 'rel'>, extra: Partial<HashOptions> = {}): Promise<HashOptions> {
  return {
    statCache: repo.statCache,
    store: repo.store,
    ignored: ignoredUnder(await repo.ignore(), s.rel),
    onSkip: (p, why) => repo.reporter.warn?.(`skipped ${quotePath(repo.rel(p))}: ${why}`),
    onDamaged: (p, oid, moved) => repo.reporter.warn?.(damagedMessage(quotePath(repo.rel(p)), oid, moved && repo.rel(moved))),
    ...extra,
  };
}

export type Hashed = Extract<TargetState, { kind: 'file' | 'dir' }>;

/**
 * Why a path that exists cannot be cached: a symlink (never followed: it could
 * name any file on the machine) or a FIFO, socket or device. Running the
 * command again does not help, so the message says what to change instead.
 */
function notDataError(abs: string, rel: string): TdvError {
  const st = lstatOrUndefined(abs);
  if (!st) return new TdvError('NOT_FOUND', `${rel} disappeared or was replaced while it was being added; run the command again`);
  const what = st.isSymbolicLink() ? 'a symlink' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : 'a device or other special file';
  return new UnsafePathError(
    `${quotePath(rel)} is ${what}; tdv caches only regular files and directories and never follows links. Write the data itself at ${quotePath(rel)} (for a stage output: make the command write a file, not a link)`,
    { path: rel },
  );
}

/**
 * Stores a file or directory in the cache and returns what it hashed to. With
 * `relink` (default) and a hardlink/symlink cache type, the workspace copy is
 * then replaced by links to the objects, as `tdv add` does after writing the
 * pointer. Used by `add` and by `repro` for stage outputs. `abs` is `rel`
 * resolved by the guard (`opts.guard`, by default the workspace's).
 */
export async function cacheTarget(repo: Repo, abs: string, rel: string, opts: { jobs?: number; progress?: Progress; relink?: boolean; guard?: Guard; source?: string } = {}): Promise<Hashed> {
  const move = isProtected(repo.linker().current);
  const state = await hashWorkspace(repo, { abs, rel }, { write: move ? 'move' : 'store', needEntries: move, jobs: opts.jobs, progress: opts.progress });
  if (state.kind === 'other') throw notDataError(abs, rel);
  if (state.kind === 'missing') throw new TdvError('NOT_FOUND', `${rel} disappeared or was replaced while it was being added; run the command again`);
  if (move && opts.relink !== false) await relink(repo, abs, rel, state, opts);
  return state;
}

/**
 * With hardlink/symlink cache types, replaces workspace files by links to
 * their objects, through the checkout engine (every path resolved by the
 * guard, the links made on two threads).
 */
export async function relink(repo: Repo, abs: string, rel: string, state: Hashed, opts: { guard?: Guard; source?: string } = {}): Promise<void> {
  const ctx = await workspaceContext(repo, opts.guard ? { guard: opts.guard } : {});
  const source = opts.source ?? rel;
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
    const [[ino, mtimeMs, ctimeMs, size]] = (await linkFiles(ctx, [{ rel, oid: state.oid, isexec: state.isexec, source }])) as [[number, number, number, number]];
    repo.statCache.setFile(FILES_SHARD, rel, { ino, mtimeMs, ctimeMs, size, mode: 0 }, state.oid);
    return;
  }
  const entries = state.entries ?? repo.store.readManifest(state.oid);
  if (!state.walk) throw new Error('hashTarget returned no walk for a write');
  const before = new Map(state.walk.map((w) => [w.rel, w]));
  const toLink = state.inUse ? entries.filter((e) => !state.inUse!.has(e.relpath)) : entries;
  for (const e of toLink) {
    const then = before.get(e.relpath);
    if (then) unchanged(entryPath(abs, e.relpath), then);
  }
  const stats = await linkFiles(
    ctx,
    toLink.map((e) => ({ rel: `${rel}/${e.relpath}`, oid: e.sha256, isexec: e.isexec === true, source })),
  );
  const linked = new Map(toLink.map((e, i) => [e.relpath, stats[i]!]));
  // Every object was just stored, so a stamp taken now proves them present.
  await recordDirectory(ctx, rel, { ...state, entries }, repo.store.stamp(), (w) => {
    const st = linked.get(w.rel);
    return st !== undefined && sameStat(st, w);
  });
}
