import path from 'node:path';
import { TdvError } from '../errors.js';
import { quotePath } from '../formats/paths.js';
import type { Oid } from '../formats/oid.js';
import { isInside, toPosix } from '../util/fs.js';
import { cleanPath } from './lib/registry.js';
import type { Repo } from './repo.js';
import type { Snapshot, SnapshotEntry } from './lib/snapshot.js';

/**
 * `tdv ls`: the files of a revision, data and Git alike, of this repository or
 * of another one, without reading any data (a tracked directory's manifest is
 * the one object it may fetch, verified, to list inside it).
 */

export interface LsOptions {
  /** Another repository (anything `git clone` takes); undefined: this one. */
  url?: string;
  /** The path to list: repo-relative POSIX ('' or undefined: the root). */
  path?: string;
  /** The revision (default HEAD: the last commit, or the source's default branch). */
  rev?: string;
  /** Every file below, tracked directories expanded. */
  recursive?: boolean;
  /** Sizes of Git files too (reads their blobs). */
  long?: boolean;
  /** The remote a tracked directory's manifest is fetched from, if it is not cached. */
  remote?: string;
}

/** One entry of a listing. */
export interface LsEntry {
  /** Relative to the listed directory (for a listed file: its name). */
  path: string;
  kind: 'file' | 'dir';
  /** 'data': tdv tracks it (a tracked file or directory, or a file inside one); 'git': Git does. */
  source: 'data' | 'git';
  /** Bytes: a data file's, a tracked directory's total; a Git file's with `long`. */
  size?: number;
  /** A data file's or tracked directory's object id. */
  oid?: Oid;
  /** Set when the executable bit is recorded. */
  isexec?: boolean;
}

export interface LsResult {
  /** The repository listed: this one's root, or the URL. */
  repository: string;
  /** The revision as given (HEAD by default). */
  rev: string;
  commit: string;
  /** The path listed ('' for the root). */
  path: string;
  entries: LsEntry[];
}

/** Lists a revision's files: see LsOptions. `here` is the repository tdv runs in (needed without `url`). */
export async function ls(here: Repo | undefined, opts: LsOptions = {}): Promise<LsResult> {
  const target = cleanPath(opts.path ?? '');
  if (opts.url === undefined) {
    if (!here) throw new TdvError('NOT_A_REPO', 'not a tdv repository (or any parent directory); give a repository URL (`tdv ls URL [PATH]`)');
    const { openLocalSnapshot } = await import('./lib/local-source.js');
    const rev = opts.rev ?? 'HEAD';
    const { snap, close } = await openLocalSnapshot(here, opts.rev, opts.remote, 'ls');
    try {
      return { repository: here.root, rev, commit: snap.commit, path: target, entries: await listAt(snap, target, opts) };
    } finally {
      await close();
    }
  }
  const { openExternal } = await import('./lib/external.js');
  const ext = await openExternal(opts.url, { rev: opts.rev, here, remote: opts.remote });
  try {
    const snap = await ext.snapshot();
    // Masked: a token in an https URL's user info must not reach the terminal, a notebook or a log.
    const { maskUrl } = await import('../formats/config.js');
    return { repository: maskUrl(ext.url), rev: opts.rev ?? 'HEAD', commit: ext.commit, path: target, entries: await listAt(snap, target, opts) };
  } finally {
    await ext.close();
  }
}

async function listAt(snap: Snapshot, target: string, opts: LsOptions): Promise<LsEntry[]> {
  const at = await snap.stat(target);
  if (!at) throw new TdvError('NOT_FOUND', `${quotePath(target === '' ? '.' : target)} does not exist at ${snap.label} (${snap.commit.slice(0, 12)}) of ${snap.source.label}`);
  const prefix = target === '' ? '' : `${target}/`;
  const found: SnapshotEntry[] = at.kind === 'file' ? [at] : ((await snap.list(target, { recursive: opts.recursive })) ?? []);
  return found.map((e) => {
    const rel = at.kind === 'file' ? path.posix.basename(e.path) : e.path.slice(prefix.length);
    let size = e.size;
    if (size === undefined && opts.long && e.kind === 'file' && e.blob !== undefined) size = snap.source.history.blob(e.blob).length;
    return {
      path: rel,
      kind: e.kind,
      source: e.source,
      ...(size !== undefined ? { size } : {}),
      ...(e.oid !== undefined ? { oid: e.oid } : {}),
      ...(e.isexec ? { isexec: true } : {}),
    };
  });
}

/**
 * What `tdv ls A [B]` names, as documented in the README:
 *
 *   tdv ls                 this repository, its root
 *   tdv ls URL [PATH]      another repository (`.` is this one), PATH in it
 *   tdv ls PATH            a path of this repository when it lies inside it
 *                          (relative to where tdv runs), else a repository URL
 *
 * One argument is a URL when it has a scheme (`file://`, `ssh://`,
 * `https://`), is scp-like (`host:path`), or is a directory outside this
 * repository (or there is no repository here). With two arguments the first
 * is always the repository, as in `dvc ls`.
 */
export function lsTarget(args: readonly (string | undefined)[], cwd: string, repoRoot: string | undefined): { url?: string; path: string } {
  const [a, b] = args;
  const inRepo = (p: string) => repoRoot !== undefined && isInside(repoRoot, path.resolve(cwd, p));
  const relToRoot = (p: string) => toPosix(path.relative(repoRoot!, path.resolve(cwd, p)));
  if (a === undefined) return { path: repoRoot !== undefined ? relToRoot('.') : '' };
  const looksLikeUrl = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(a) || /^[A-Za-z][A-Za-z0-9+.-]*::/.test(a) || (/^[^/]*:/.test(a) && !a.startsWith('.')) || a.startsWith('-');
  if (b !== undefined) {
    if (a === '.' || (!looksLikeUrl && repoRoot !== undefined && path.resolve(cwd, a) === repoRoot)) {
      if (!repoRoot) throw new TdvError('NOT_A_REPO', 'not a tdv repository (or any parent directory), so `.` names none; give a repository URL');
      return { path: b };
    }
    return { url: looksLikeUrl ? a : path.resolve(cwd, a), path: b };
  }
  if (!looksLikeUrl && inRepo(a)) return { path: relToRoot(a) };
  // A local path is made absolute here: git runs elsewhere.
  return { url: looksLikeUrl ? a : path.resolve(cwd, a), path: '' };
}
