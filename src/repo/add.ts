import fs from 'node:fs';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { isProtected } from '../cache/link.js';
import type { Oid } from '../cache/oid.js';
import { FILES_SHARD, sameVersion } from '../cache/statcache.js';
import { entryPath, objectLinkOid } from '../cache/walk.js';
import type { TargetState } from '../cache/workspace.js';
import { gitTrackedPaths } from '../git/git.js';
import { isInside, lstatOrUndefined, toPosix, writeFileAtomicSync } from '../util/fs.js';
import { addGitignoreEntry } from './gitignore.js';
import { hashWorkspace, recordDirectory } from './hashing.js';
import { pointerFileFor, POINTER_EXT, type PointerOut, serializePointer } from './pointer.js';
import { allOuts, findPointers, readPointer } from './pointers.js';
import type { Repo } from './repo.js';
import { TDV_DIR } from './repo.js';

export type Hashed = Extract<TargetState, { kind: 'file' | 'dir' }>;

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
        if (changed) writeFileAtomicSync(ptrFile, serializePointer([out]));
        addGitignoreEntry(path.dirname(abs), path.basename(abs));
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

function toOut(name: string, s: Hashed): PointerOut {
  if (s.kind === 'dir') return { path: name, sha256: s.oid, size: s.size, nfiles: s.nfiles };
  return s.isexec ? { path: name, sha256: s.oid, size: s.size, isexec: true } : { path: name, sha256: s.oid, size: s.size };
}

/** With hardlink/symlink cache types, replaces workspace files by links to their objects. */
async function relink(repo: Repo, abs: string, rel: string, state: Hashed): Promise<void> {
  const linker = repo.linker();
  // Each file must still be the one hashed (our own chmod of the object changed only its ctime):
  // a file replaced or rewritten meanwhile is never overwritten by a link to the old content.
  const unchanged = (file: string, then: { ino: number; mtimeMs: number; size: number }) => {
    const now = lstatOrUndefined(file);
    if (!now || now.ino !== then.ino || now.mtimeMs !== then.mtimeMs || now.size !== then.size) {
      throw new TdvError('CHANGED_WHILE_ADDING', `${repo.rel(file)} changed while it was being added; run the command again when nothing writes to it`);
    }
  };
  if (state.kind === 'file') {
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

