/**
 * Where the cache is, and what that means for deleting from it.
 *
 * The cache is normally `.tdv/cache`, a directory only this repository uses.
 * Two configurations change that:
 *   - `cache.dir` (or a `.tdv/cache` symlink) leading outside the repository:
 *     other repositories may keep their objects there too, and `gc` sees only
 *     this repository's pointers, so it must not collect such a cache unasked;
 *   - `cache.dir` inside data tdv tracks: `tdv add` would hash the cache into
 *     the data, and a checkout of that data would replace the cache, losing
 *     objects. That is a configuration error, found when the repository opens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../../errors.js';
import { type Config, resolveRemoteUrl } from '../../formats/config.js';
import { TDV_DIR } from '../../formats/layout.js';
import { POINTER_EXT } from '../../formats/pointer.js';
import { LOCK_FILE, parseLock } from '../../stages/lock.js';
import { isInside, readTextOrUndefined, toPosix } from '../../util/fs.js';

/**
 * The real path of `p` with every symlink resolved, also when `p` (or some of
 * its parents) does not exist yet: the longest existing prefix is resolved and
 * the rest appended, so a directory a command would create is placed where it
 * would really be.
 */
export function realpathLoose(p: string): string {
  const abs = path.resolve(p);
  const rest: string[] = [];
  for (let dir = abs; ;) {
    try {
      return path.join(fs.realpathSync(dir), ...rest.reverse());
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return abs;
      rest.push(path.basename(dir));
      dir = parent;
    }
  }
}

/**
 * Refuses a `cache.dir` (or a `.tdv/cache` symlink) that leads into data a
 * pointer or tdv.lock tracks, or to a tracked path itself. Cheap enough for
 * every command: a few lstat calls, and tdv.lock read only when the cache
 * is inside the repository.
 */
export async function checkCacheDir(root: string, config: Config): Promise<void> {
  const configured = config.cache.dir !== undefined;
  const cache = realpathLoose(config.cache.dir ?? path.join(root, TDV_DIR, 'cache'));
  const realRoot = realpathLoose(root);
  const what = configured ? `cache.dir (${config.cache.dir})` : `${TDV_DIR}/cache, a symlink to ${cache},`;
  const fix = configured ? 'set cache.dir to a directory outside the repository (or unset it to use .tdv/cache)' : `make ${TDV_DIR}/cache a real directory`;
  // The cache as (or around) the repository: its objects would be workspace files, and the workspace cache data.
  if (isInside(cache, realRoot)) {
    throw new TdvError(
      'CONFIG_INVALID',
      `${what} ${cache === realRoot ? 'is' : 'contains'} the repository ${realRoot}: the cache's objects would be workspace data that add, checkout and git add take in or delete; ${fix}`,
      { data: { cache } },
    );
  }
  if (!isInside(realRoot, cache)) return;
  const rel = toPosix(path.relative(realRoot, cache));
  if (rel === `${TDV_DIR}/cache` || isInside(path.join(realRoot, TDV_DIR), cache)) return;
  const parts = rel.split('/');
  for (let i = 1; i <= parts.length; i++) {
    const tracked = parts.slice(0, i).join('/');
    if (fs.lstatSync(path.join(realRoot, `${tracked}${POINTER_EXT}`), { throwIfNoEntry: false })?.isFile()) {
      throw cacheInData(what, tracked, `${tracked}${POINTER_EXT}`, fix);
    }
  }
  const lockText = readTextOrUndefined(path.join(realRoot, LOCK_FILE), undefined, LOCK_FILE, { follow: false });
  if (lockText !== undefined) {
    for (const [stage, s] of await parseLock(lockText, LOCK_FILE)) {
      for (const o of [...s.outs, ...s.metrics]) {
        if (rel === o.path || rel.startsWith(`${o.path}/`)) throw cacheInData(what, o.path, `${LOCK_FILE} (stage "${stage}")`, fix);
      }
    }
  }
  if (configured) {
    // Anywhere else in the work tree the cache is untracked data: `git add -A` would commit it, `tdv add` could take it in.
    throw new TdvError(
      'CONFIG_INVALID',
      `${what} is inside the repository (${rel}), outside ${TDV_DIR}/: the cache would be untracked data that \`git add -A\` commits and \`tdv add\` takes in; ${fix}`,
      { data: { cache } },
    );
  }
}

function cacheInData(what: string, tracked: string, by: string, fix: string): TdvError {
  return new TdvError('CONFIG_INVALID', `${what} is inside ${tracked}, which ${by} tracks: adding or checking out that data would take in or replace the cache; ${fix}`, { data: { tracked } });
}

/** A cache other repositories may share, and why tdv thinks so. */
export interface SharedCache {
  /** The cache's real path. */
  dir: string;
  /** How it is configured, for messages: `cache.dir` or "the .tdv/cache symlink". */
  via: string;
  /** The repository whose own `.tdv/cache` it is, when it is one. */
  owner?: string;
}

/**
 * The cache, when it is outside this repository: set by `cache.dir` or by
 * `.tdv/cache` being a symlink. Undefined for a cache only this repository uses.
 */
export function sharedCache(root: string, config: Config): SharedCache | undefined {
  const link = path.join(root, TDV_DIR, 'cache');
  const cacheRoot = config.cache.dir ?? link;
  // A symlink inside the cache's own layout leads its objects (or run records) elsewhere just as well.
  const inner = ['files', 'files/sha256', 'runs'].find((d) => fs.lstatSync(path.join(cacheRoot, d), { throwIfNoEntry: false })?.isSymbolicLink());
  let via: string;
  let target = cacheRoot;
  if (config.cache.dir !== undefined) via = 'cache.dir';
  else if (fs.lstatSync(link, { throwIfNoEntry: false })?.isSymbolicLink()) via = `the ${TDV_DIR}/cache symlink`;
  else if (inner !== undefined) {
    via = `the ${TDV_DIR}/cache/${inner} symlink`;
    target = path.join(cacheRoot, inner);
  } else return undefined;
  const dir = realpathLoose(target);
  if (inner === undefined && isInside(realpathLoose(root), dir)) return undefined;
  // Another project's own cache (`<project>/.tdv/cache`): name that project.
  const owner = path.basename(dir) === 'cache' && path.basename(path.dirname(dir)) === TDV_DIR ? path.dirname(path.dirname(dir)) : undefined;
  return { dir, via, ...(owner !== undefined ? { owner } : {}) };
}

/**
 * Directories a stage output or an added path must neither be, contain, nor lie
 * in: tdv's own directory, the cache, and every directory remote. An output
 * there would be deleted before its stage runs (taking the cache or a remote
 * with it), and added data would take them in.
 */
export function reservedDirs(root: string, config: Config): { dir: string; what: string }[] {
  const out = [
    { dir: realpathLoose(path.join(root, TDV_DIR)), what: `tdv's own directory ${TDV_DIR}` },
    { dir: realpathLoose(config.cache.dir ?? path.join(root, TDV_DIR, 'cache')), what: config.cache.dir !== undefined ? `the cache (cache.dir ${config.cache.dir})` : 'the cache' },
  ];
  for (const [name, r] of Object.entries(config.remote)) {
    if (!r.url || (/^[a-z][a-z0-9+.-]*:\/\//i.test(r.url) && !r.url.startsWith('file://'))) continue;
    try {
      const loc = resolveRemoteUrl(root, r.url);
      if (loc.kind === 'local') out.push({ dir: realpathLoose(loc.path), what: `remote "${name}" (${loc.path})` });
    } catch {
      /* a url loadConfig refused already */
    }
  }
  return out;
}

/** Why the path `abs` may not be data (an output, an added path): it is, holds or lies in a reserved directory. */
export function reservedProblem(root: string, config: Config, abs: string): string | undefined {
  // The path itself is not followed: a workspace symlink into the cache (cache.type symlink) is data.
  const real = path.join(realpathLoose(path.dirname(abs)), path.basename(abs));
  for (const r of reservedDirs(root, config)) {
    if (isInside(r.dir, real)) return `${real === r.dir ? 'is' : 'is inside'} ${r.what}`;
    if (isInside(real, r.dir)) return `contains ${r.what}`;
  }
  return undefined;
}
