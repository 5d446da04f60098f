import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import type { ObjectStore } from '../../cache/store.js';
import { gitCommonDir } from '../../git/git.js';
import { isInside, toPosix } from '../../util/fs.js';
import { POINTER_EXT } from '../../formats/pointer.js';
import { maskUrl, type RemoteConfig, resolveRemoteUrl } from '../../formats/config.js';
import { parseRate } from '../../formats/rate.js';
import { TokenBucket } from '../../remote/rate.js';
import type { Repo } from '../repo.js';
import { realpathLoose } from './cache-dir.js';

/**
 * Why a directory remote at `dir` (absolute) must not be used, or undefined.
 * Symlinks are resolved first: a remote that is, or is inside, the
 * repository's `.git` or `.tdv` would have push write objects among Git's or
 * tdv's own files and `gc --cloud` delete there; the repository root (or the
 * Git work tree's) would fill the workspace with objects.
 */
export function localRemoteProblem(repo: Repo, dir: string): string | undefined {
  const real = realpathLoose(dir);
  const shown = real === path.resolve(dir) ? '' : ` (${real} after symlinks)`;
  if (real === realpathLoose(repo.root)) return `is the repository itself${shown}`;
  if (repo.git && real === realpathLoose(repo.git.root)) return `is the Git work tree itself${shown}`;
  const own: [string, string][] = [['.tdv', repo.tdvDir]];
  if (repo.git) {
    own.push(['.git', path.join(repo.git.root, '.git')], ['.git', repo.git.gitdir]);
    const common = gitCommonDir(repo.git.gitdir);
    if (common !== undefined) own.push(['.git', common]);
  }
  for (const [name, d] of own) {
    if (isInside(realpathLoose(d), real)) return `is ${real === realpathLoose(d) ? '' : 'inside '}the repository's ${name}${shown}`;
  }
  // The cache itself (a .tdv/cache symlink or cache.dir leading there): every add would "push", and gc
  // of the cache would delete the remote's objects (found by the attack suite).
  const cache = realpathLoose(repo.config.cache.dir ?? path.join(repo.tdvDir, 'cache'));
  if (isInside(cache, real)) return `is ${real === cache ? '' : 'inside '}the repository's cache (${cache})${shown}`;
  // Inside data tdv tracks, the remote would be hashed into that data, and a checkout of it would delete the remote.
  const realRoot = realpathLoose(repo.root);
  if (isInside(realRoot, real)) {
    const parts = toPosix(path.relative(realRoot, real)).split('/');
    for (let i = 1; i <= parts.length; i++) {
      const tracked = parts.slice(0, i).join('/');
      if (fs.lstatSync(path.join(realRoot, `${tracked}${POINTER_EXT}`), { throwIfNoEntry: false })?.isFile()) return `is inside ${tracked}, data that ${tracked}${POINTER_EXT} tracks${shown}`;
    }
  }
  return undefined;
}

/**
 * The remote named `name`, or the default one: its implementation chosen by URL. `jobs` sizes its
 * connection pool; `limitRate` (bytes per second, `--limit-rate`) overrides its `limit_rate`.
 */
export async function openRemote(repo: Repo, name?: string, jobs?: number, limitRate?: number): Promise<Remote> {
  const chosen = name ?? repo.config.core.remote;
  const known = Object.keys(repo.config.remote);
  if (chosen === undefined) {
    const hint =
      known.length > 0
        ? `pass -r NAME (known: ${known.join(', ')}) or set a default with \`tdv remote default NAME\``
        : 'add one with `tdv remote add -d NAME URL` (a directory, or s3://bucket/prefix)';
    throw new TdvError('NO_REMOTE', `no remote configured; ${hint}`);
  }
  const cfg = repo.config.remote[chosen];
  if (!cfg) {
    const where = name === undefined ? ` (core.remote in ${path.join('.tdv', 'config.yaml')})` : '';
    // A name on the command line is a usage error; a wrong core.remote is a configuration error.
    throw new TdvError(
      name === undefined ? 'UNKNOWN_DEFAULT_REMOTE' : 'UNKNOWN_REMOTE',
      `unknown remote "${chosen}"${where}; ${known.length > 0 ? `known remotes: ${known.join(', ')}` : 'no remotes are configured: add one with `tdv remote add NAME URL`'}`,
    );
  }
  const loc = resolveRemoteUrl(repo.root, cfg.url);
  const bps = limitRate ?? (cfg.limit_rate === undefined ? undefined : parseRate(cfg.limit_rate));
  const rate = bps === undefined ? undefined : new TokenBucket(bps); // one per opened remote, shared by its transfers
  if (loc.kind === 'local') {
    // Checked again here, not only by `tdv remote add`: a committed config may be hand-edited,
    // and a symlink on the way may have been made (or committed) since.
    const problem = localRemoteProblem(repo, loc.path);
    if (problem !== undefined) {
      throw new TdvError('BAD_REMOTE', `remote "${chosen}" (${maskUrl(cfg.url)}) ${problem}; point it at a directory outside the repository with \`tdv remote modify ${chosen} url PATH\``, {
        data: { remote: chosen },
      });
    }
    const { LocalRemote } = await import('../../remote/local.js');
    return layoutOf(new LocalRemote(chosen, loc.path, { rate }), cfg, repo.store, jobs);
  }
  const { createS3Remote } = await import('../../remote/s3.js');
  return layoutOf(await createS3Remote(chosen, cfg, { bucket: loc.bucket, prefix: loc.prefix }, { jobs, rate }), cfg, repo.store, jobs);
}

/**
 * The remote as its layout reads and writes it (remote/packed.ts): packed
 * (chunks, compression, packs) unless `layout: plain`; every remote is read
 * in both layouts.
 */
export async function layoutOf(raw: Remote, cfg: RemoteConfig, store: ObjectStore, jobs?: number): Promise<Remote> {
  const { PackedRemote } = await import('../../remote/packed.js');
  const { parseCompression } = await import('../../remote/transfer/codec.js');
  const settings = { layout: cfg.layout, chunking: cfg.chunking ?? true, compression: parseCompression(cfg.compression ?? 'auto') ?? { mode: 'auto' as const, level: 3 } };
  return new PackedRemote(raw, settings, store, jobs ?? cfg.jobs ?? raw.defaultJobs);
}

/** Parallel transfers: `-j`, else the remote's `jobs`, else its default. */
export function remoteJobs(repo: Repo, remote: Remote, jobs?: number): number {
  return jobs ?? repo.config.remote[remote.name]?.jobs ?? remote.defaultJobs;
}
