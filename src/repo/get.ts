import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import type { ManifestEntry } from '../formats/manifest.js';
import type { Oid } from '../formats/oid.js';
import { quotePath } from '../formats/paths.js';
import { POINTER_EXT } from '../formats/pointer.js';
import { isInside, processGone, toPosix, tmpSuffix } from '../util/fs.js';
import { Guard } from '../workspace/guard.js';
import { userCacheDir } from './lib/external.js';
import { sweepFiles } from './lib/leftovers.js';
import type { Repo } from './repo.js';
import type { SnapshotEntry } from './lib/snapshot.js';

/**
 * `tdv get`: downloads a file or directory another repository tracks (or a
 * Git file of it) from that repository's remote, without tracking it here.
 *
 * Everything is fetched and verified into a cache first (this repository's,
 * or the per-user one outside any), then written by the checkout engine
 * through a guard of the destination: one file at a time, each to a temp file
 * renamed into place, never through a symlink, never over a file Git tracks
 * here. An object that cannot be fetched, or fails its hash, stops the
 * command before anything is written. An existing output is refused unless
 * `force`.
 */

export interface GetOptions {
  /** The source repository (anything `git clone` takes). */
  url: string;
  /** The file or directory in it, relative to its root. */
  path: string;
  rev?: string;
  /** Where to write (absolute); default: the path's last component in `cwd`. */
  out?: string;
  /** Replace an existing output. */
  force?: boolean;
  /** The source's remote to read from (default: its default remote). */
  remote?: string;
  /** Parallel downloads (default 8). */
  jobs?: number;
  /** `--limit-rate`: bytes per second from the source's remote. */
  limitRate?: number;
}

export interface GetResult {
  url: string;
  commit: string;
  path: string;
  /** Where it was written (absolute). */
  out: string;
  kind: 'file' | 'dir';
  /** Files written. */
  files: number;
  bytes: number;
}

/** Downloads `opts.path` of another repository: see GetOptions. `here` is the repository tdv runs in, if any. */
export async function get(here: Repo | undefined, opts: GetOptions, cwd: string): Promise<GetResult> {
  // Inside a repository, as `fetch` and `checkout` do: gc must not delete what this fetched before it is written.
  return here ? here.withLock('get', () => getUnlocked(here, opts, cwd)) : getUnlocked(undefined, opts, cwd);
}

async function getUnlocked(here: Repo | undefined, opts: GetOptions, cwd: string): Promise<GetResult> {
  const { cleanPath } = await import('./lib/registry.js');
  const target = cleanPath(opts.path);
  if (target === '') throw new UsageError('name a file or directory of the repository to get (to copy all of it, use `git clone` and `tdv pull`)');
  const out = path.resolve(cwd, opts.out ?? path.posix.basename(target));
  if (path.basename(out) === '' || out === path.parse(out).root) throw new UsageError(`cannot write to ${out}; pass -o with a file or directory name`);
  const existing = fs.lstatSync(out, { throwIfNoEntry: false });
  if (existing?.isDirectory()) {
    // `-o .` or `-o ~` (as `dvc get -o DIR` puts the data inside DIR): replacing would delete
    // everything in the directory tdv runs in, the home directory or the repository.
    const held = holdsWhereWeAre(out, cwd, here);
    if (held) {
      const inside = path.join(out, path.posix.basename(target));
      throw new UsageError(`will not replace ${out}: it is ${held}, and replacing it would delete everything in it; to put ${quotePath(target)} inside it, pass -o ${inside}`);
    }
  }
  if (existing && !opts.force) {
    const what = existing.isDirectory() ? 'pass --force to replace it (everything in it is deleted)' : 'pass --force to replace it';
    throw new TdvError('EXISTS', `${out} already exists; choose another output with -o, or ${what}`, { data: { out } });
  }
  const { openExternal } = await import('./lib/external.js');
  const ext = await openExternal(opts.url, { rev: opts.rev, here, remote: opts.remote, cwd, limitRate: opts.limitRate });
  try {
    const snap = await ext.snapshot();
    const at = await snap.stat(target);
    if (!at) throw new TdvError('NOT_FOUND', `${quotePath(target)} does not exist at ${ext.rev ?? 'HEAD'} (${ext.commit.slice(0, 12)}) of ${ext.source.label}`);
    // A directory: its files, less the pointer files (they describe data this copy does not track).
    const files: SnapshotEntry[] = at.kind === 'file' ? [at] : ((await snap.list(target, { recursive: true })) ?? []).filter((e) => !(e.source === 'git' && e.path.endsWith(POINTER_EXT)));
    // A data file named like a pointer: `tdv add` never records one (it would read it as a pointer), so only a
    // hand-made manifest holds it, and written here it would be a pointer file tracking whatever it says.
    const fake = files.find((e) => e.source === 'data' && e.path.endsWith(POINTER_EXT));
    if (fake) {
      throw new TdvError(
        'UNSAFE_PATH',
        `${ext.source.label}@${ext.commit.slice(0, 12)}: ${quotePath(fake.path)} is tracked data named like a tdv pointer file, which tdv never records and will not write; get the files beside it one by one, or another revision`,
      );
    }
    if (files.length === 0) throw new TdvError('NOT_FOUND', `${quotePath(target)} holds no files at ${ext.rev ?? 'HEAD'} of ${ext.source.label}`);
    const { store } = ext.source;
    // Every object into the cache, verified, before anything is written.
    const oids = new Map<SnapshotEntry, Oid>();
    const queue = files.filter((f) => f.source === 'data');
    const jobs = Math.max(1, opts.jobs ?? 8);
    await Promise.all(
      Array.from({ length: Math.min(jobs, queue.length) }, async () => {
        for (let f = queue.shift(); f; f = queue.shift()) await snap.ensureObject(f.oid!, f.size, f.path);
      }),
    );
    for (const f of files) oids.set(f, f.source === 'data' ? f.oid! : store.addBufferSync(snap.source.history.blob(f.blob!)));
    const size = (f: SnapshotEntry) => (f.source === 'data' ? f.size! : snap.source.history.blob(f.blob!).length);
    const bytes = files.reduce((n, f) => n + size(f), 0);
    const prefix = at.kind === 'dir' ? `${target}/` : '';
    let oid: Oid;
    if (at.kind === 'file') {
      oid = oids.get(at)!;
    } else {
      const entries: ManifestEntry[] = files.map((f) => ({ relpath: f.path.slice(prefix.length), sha256: oids.get(f)!, size: size(f), ...(f.isexec ? { isexec: true } : {}) }));
      oid = store.writeManifest(entries);
    }
    const { guard, rel } = destination(here, out);
    removeDeadTemps(guard, rel);
    const { StatCache } = await import('../cache/statcache.js');
    const { applyCheckout, planCheckout } = await import('../workspace/checkout.js');
    const ctx = {
      guard,
      store,
      // Never saved: the output is nobody's workspace.
      statCache: new StatCache(path.join(here?.tmpDir ?? userCacheDir(), `unsaved.${tmpSuffix()}`), () => {}),
      record: false,
      // Copies (or reflinks): a hard link or symlink would let an edit of the output reach the cache.
      linkTypes: ['reflink', 'copy'] as const,
      onWarn: here ? (m: string) => here.reporter.warn?.(m) : undefined,
    };
    const source = `${ext.source.label}@${ext.commit.slice(0, 12)}:${target}`;
    const plan = await planCheckout(ctx, [{ rel, oid, size: bytes, ...(at.kind === 'dir' ? { nfiles: files.length } : {}), ...(at.isexec ? { isexec: true } : {}), source }], { force: true });
    if (plan.missing.length > 0) throw new TdvError('MISSING_OBJECT', `${plan.missing.length} object(s) of ${quotePath(target)} are not in the cache after fetching them; run the command again`);
    await applyCheckout(ctx, plan);
    // Masked: a token in an https URL's user info must not reach the terminal, a notebook or a log.
    const { maskUrl } = await import('../formats/config.js');
    return { url: maskUrl(ext.url), commit: ext.commit, path: target, out, kind: at.kind, files: files.length, bytes };
  } finally {
    await ext.close();
  }
}

/** A tdv temp file's name; its writer's pid is the first number (see tmpSuffix). */
const TMP_NAME = /^\.tdvtmp\.(\d+)\.[0-9a-f]+$/;

/**
 * Removes the temp files an earlier `tdv get` that was killed while writing
 * left beside the output and inside it (a partial copy of a large file each,
 * under a hidden name, that no later command would ever clean: outside a
 * repository nothing sweeps them). Only files of processes that are gone;
 * never through a symlink (the guard's `resolve`).
 */
function removeDeadTemps(guard: Guard, rel: string): void {
  const dead = (e: fs.Dirent) => {
    const m = e.isFile() ? TMP_NAME.exec(e.name) : null;
    return m !== null && processGone(Number(m[1]));
  };
  sweepFiles(guard, rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '', false, dead);
  sweepFiles(guard, rel, true, dead);
}

/**
 * What the existing directory `out` holds that `tdv get --force` must never
 * replace: the directory tdv runs in, the home directory, this repository
 * (or a directory above one of them). Undefined otherwise.
 */
function holdsWhereWeAre(out: string, cwd: string, here: Repo | undefined): string | undefined {
  const real = (p: string) => {
    try {
      return fs.realpathSync.native(p);
    } catch {
      return path.resolve(p);
    }
  };
  const o = real(out);
  if (isInside(o, real(cwd))) return 'the directory tdv runs in (or holds it)';
  if (isInside(o, real(os.homedir()))) return 'the home directory (or holds it)';
  if (here && isInside(o, real(here.root))) return 'this repository (or holds it)';
  if (here && isInside(o, real(here.cacheDir))) return "this repository's cache (or holds it)";
  if (isInside(o, real(userCacheDir()))) return "tdv's per-user cache (or holds it)";
  return undefined;
}

/**
 * The guard the output is written through, and its path relative to it:
 * inside this repository's work tree, the repository's own guard (never
 * into `.git` or `.tdv`, never over a file Git tracks); elsewhere a guard of
 * the output's parent directory, which must exist.
 */
function destination(here: Repo | undefined, out: string): { guard: Guard; rel: string } {
  const parent = path.dirname(out);
  const st = fs.statSync(parent, { throwIfNoEntry: false });
  if (!st?.isDirectory()) throw new UsageError(`${parent} is not a directory; create it first, or choose another output with -o`);
  const real = path.join(fs.realpathSync.native(parent), path.basename(out));
  if (here) {
    // The cache (wherever cache.dir puts it) holds objects only: files written there would be taken for them.
    const cache = fs.existsSync(here.cacheDir) ? fs.realpathSync.native(here.cacheDir) : path.resolve(here.cacheDir);
    if (isInside(cache, real)) throw new UsageError(`cannot write to ${out}: it is inside the cache (${cache}); choose another output with -o`);
  }
  // The per-user cache (clones of other repositories, objects read outside any repository) likewise.
  const users = fs.existsSync(userCacheDir()) ? fs.realpathSync.native(userCacheDir()) : userCacheDir();
  if (isInside(users, real)) throw new UsageError(`cannot write to ${out}: it is inside tdv's per-user cache (${users}); choose another output with -o`);
  if (here) {
    const root = fs.realpathSync.native(here.root);
    if (isInside(root, real)) return { guard: here.guard, rel: toPosix(path.relative(root, real)) };
  }
  return { guard: new Guard(path.dirname(real), { label: path.dirname(real) }), rel: path.basename(real) };
}
