import fs from 'node:fs';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { isProtected } from '../workspace/link.js';
import type { Oid } from '../formats/oid.js';
import { FILES_SHARD, sameVersion } from '../cache/statcache.js';
import { entryPath, objectLinkOid } from '../cache/walk.js';
import type { TargetState } from '../cache/workspace.js';
import { gitTrackedPaths } from '../git/git.js';
import { isInside, lstatOrUndefined, toPosix } from '../util/fs.js';
import { addGitignoreEntry } from '../workspace/gitignore.js';
import { cacheTarget, type Hashed, relink } from './lib/hashing.js';
import { pointerFileFor, POINTER_EXT, type PointerOut, serializePointer } from '../formats/pointer.js';
import { allOuts, findPointers, readPointer } from './lib/pointers.js';
import type { Repo } from './repo.js';
import { TDV_DIR } from '../formats/layout.js';

export type { Hashed } from './lib/hashing.js';

export interface AddOptions {
  /** Absolute paths to track. */
  paths: string[];
  jobs?: number;
  onBytes?: (n: number) => void;
}

export interface AddedTarget {
  path: string;
  pointer: string;
  oid: Oid;
  size: number;
  nfiles?: number;
  /** False when the target was already tracked with this content (a no-op). */
  changed: boolean;
}

export interface AddResult {
  added: AddedTarget[];
  /** Repo-relative files the user should `git add`. */
  gitFiles: string[];
}

/**
 * Tracks files and directories: stores their content in the cache, writes
 * `<path>.tdv` pointers, git-ignores the data, and links the workspace copy
 * from the cache. Every target is validated before anything is written.
 */
export async function add(repo: Repo, opts: AddOptions): Promise<AddResult> {
  return repo.withLock('add', async () => {
    const targets = await validate(repo, opts.paths);
    const linker = repo.linker();
    const move = isProtected(linker.current);
    const result: AddResult = { added: [], gitFiles: [] };
    const sc = repo.statCache;
    try {
      for (const abs of targets) {
        const rel = repo.rel(abs);
        const state = await cacheTarget(repo, abs, rel, { jobs: opts.jobs, onBytes: opts.onBytes, relink: false });
        const ptrFile = pointerFileFor(abs);
        const out = toOut(path.basename(abs), state);
        const previous = fs.existsSync(ptrFile) ? (await readPointer(repo, ptrFile)).outs : undefined;
        const changed = !(previous?.length === 1 && previous[0]!.sha256 === out.sha256 && previous[0]!.path === out.path && !previous[0]!.isexec === !out.isexec);
        if (changed) repo.guard.writeControlFile(repo.rel(ptrFile), serializePointer([out]));
        addGitignoreEntry(repo.guard, rel);
        if (move) await relink(repo, abs, rel, state);
        result.added.push({ path: rel, pointer: repo.rel(ptrFile), oid: out.sha256, size: out.size, nfiles: out.nfiles, changed });
        const dir = path.dirname(ptrFile);
        result.gitFiles.push(repo.rel(ptrFile), repo.rel(path.join(dir, '.gitignore')));
      }
    } finally {
      sc.save();
    }
    result.gitFiles = [...new Set(result.gitFiles)];
    return result;
  });
}

function toOut(name: string, s: Hashed): PointerOut {
  if (s.kind === 'dir') return { path: name, sha256: s.oid, size: s.size, nfiles: s.nfiles };
  return s.isexec ? { path: name, sha256: s.oid, size: s.size, isexec: true } : { path: name, sha256: s.oid, size: s.size };
}

/** Checks every target before anything is written; the first problem is the error. */
async function validate(repo: Repo, paths: string[]): Promise<string[]> {
  if (paths.length === 0) throw new UsageError('nothing to add: name at least one file or directory, e.g. `tdv add data/`');
  const tdvDir = path.join(repo.root, TDV_DIR);
  const abss = [...new Set(paths.map((p) => path.resolve(p).replace(/[\\/]+$/, '') || '/'))];
  const pointers = await findPointers(repo);
  const outs = allOuts(repo, pointers);
  const ignore = await repo.ignore();
  for (const abs of abss) {
    const shown = repo.rel(abs);
    if (!isInside(repo.root, abs)) throw new UsageError(`${abs} is outside the repository ${repo.root}; tdv tracks only files inside it`);
    if (abs === repo.root) throw new UsageError('cannot add the repository root; add its data directories instead');
    if (isInside(tdvDir, abs)) throw new UsageError(`${shown} is inside ${TDV_DIR}/, tdv's own directory; add your data instead`);
    if (repo.git && isInside(path.join(repo.git.root, '.git'), abs)) throw new UsageError(`${shown} is inside .git/`);
    const st = lstatOrUndefined(abs);
    if (!st) throw new UsageError(`${shown} does not exist; check the path`);
    // Resolve symlinked parent directories: data must really be inside the repository.
    const real = fs.realpathSync.native(path.dirname(abs));
    if (!isInside(fs.realpathSync.native(repo.root), real)) throw new UsageError(`${shown} lies behind a symlink that leaves the repository; add the real path`);
    if (abs.endsWith(POINTER_EXT) && st.isFile()) throw new UsageError(`${shown} is a tdv pointer file; add the data it tracks (${shown.slice(0, -POINTER_EXT.length)}) instead`);
    const ownLink = st.isSymbolicLink() && objectLinkOid(abs, repo.store.objectsDir) !== undefined;
    if (!st.isFile() && !st.isDirectory() && !ownLink) throw new UsageError(`${shown} is not a regular file or directory; tdv does not track symlinks or special files`);
    if (ignore?.(shown, st.isDirectory())) throw new UsageError(`${shown} is ignored by .tdvignore; remove the pattern first`);
    for (const o of outs) {
      if (o.abs === abs) continue;
      if (isInside(o.abs, abs)) throw new UsageError(`${shown} is inside ${o.rel}, which ${repo.rel(o.ptr.file)} already tracks; run \`tdv add ${o.rel}\` to update it`);
      if (isInside(abs, o.abs)) throw new UsageError(`${shown} contains ${o.rel}, already tracked by ${repo.rel(o.ptr.file)}; run \`tdv remove ${repo.rel(o.ptr.file)}\` first`);
    }
    for (const other of abss) {
      if (other !== abs && isInside(other, abs)) throw new UsageError(`${shown} is inside ${repo.rel(other)}, which is also being added; add only one of them`);
    }
  }
  if (repo.git) {
    const gitRoot = repo.git.root;
    const tracked = await gitTrackedPaths(repo.git);
    for (const abs of abss) {
      const g = toPosix(path.relative(gitRoot, abs));
      const hit = tracked.find((t) => t === g || t.startsWith(`${g}/`));
      if (hit) {
        const what = hit === g ? `${repo.rel(abs)} is tracked by Git` : `${repo.rel(abs)} contains ${hit}, which is tracked by Git`;
        throw new UsageError(`${what}; run \`git rm -r --cached ${repo.rel(abs)}\` to stop tracking it with Git, then add it again`);
      }
    }
  }
  return abss;
}

