import fs from 'node:fs';
import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { quotePath, shellWord } from '../formats/paths.js';
import { gitIgnoredBy } from '../git/check-ignore.js';
import { loadPipeline } from '../stages/load.js';
import { LOCK_FILE, readLock } from '../stages/lock.js';
import { isProtected } from '../workspace/link.js';
import type { Oid } from '../formats/oid.js';
import { FILES_SHARD, sameVersion } from '../cache/statcache.js';
import { entryPath, objectLinkOid } from '../cache/walk.js';
import type { TargetState } from '../cache/workspace.js';
import { isInside, lstatOrUndefined, toPosix } from '../util/fs.js';
import { addGitignoreEntry } from '../workspace/gitignore.js';
import { cacheTarget, type Hashed, relink } from './lib/hashing.js';
import { pointerFileFor, POINTER_EXT, type PointerOut, serializePointer } from '../formats/pointer.js';
import { allOuts, findPointers, readPointer } from './lib/pointers.js';
import type { Repo } from './repo.js';
import { reservedProblem } from './lib/cache-dir.js';
import { TDV_DIR } from '../formats/layout.js';
import type { Progress } from '../util/progress.js';

export type { Hashed } from './lib/hashing.js';

export interface AddOptions {
  /** Absolute paths to track. */
  paths: string[];
  jobs?: number;
  /** Hears of the files to hash and store, and of the files and bytes done. */
  progress?: Progress;
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
        const state = await cacheTarget(repo, abs, rel, { jobs: opts.jobs, progress: opts.progress, relink: false });
        const ptrFile = pointerFileFor(abs);
        const out = toOut(path.basename(abs), state);
        const old = fs.existsSync(ptrFile) ? await readPointer(repo, ptrFile) : undefined;
        const previous = old?.outs;
        const changed = !(previous?.length === 1 && previous[0]!.sha256 === out.sha256 && previous[0]!.path === out.path && !previous[0]!.isexec === !out.isexec);
        // The user's `desc` and `meta` (the pointer's, and its out's) stay across a new version.
        const kept = previous?.find((p) => p.path === out.path);
        const text = serializePointer([{ ...out, ...(kept?.desc !== undefined ? { desc: kept.desc } : {}), ...(kept?.meta !== undefined ? { meta: kept.meta } : {}) }], {
          desc: old?.desc,
          meta: old?.meta,
        });
        if (changed) repo.guard.writeControlFile(repo.rel(ptrFile), text);
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
    // What tdv now tracks there: a later branch switch that drops the pointer lets checkout clean it up.
    const { updatePlaced } = await import('./lib/placed.js');
    updatePlaced(
      repo,
      result.added.map((a) => ({ rel: a.path, oid: a.oid, by: a.pointer })),
    );
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
  // Only "/" separates on POSIX: a trailing backslash is part of the name.
  const abss = [...new Set(paths.map((p) => path.resolve(p).replace(path.sep === '/' ? /\/+$/ : /[\\/]+$/, '') || '/'))];
  const pointers = await findPointers(repo);
  const lockFile = path.join(repo.root, LOCK_FILE);
  // Stage outputs are the pipeline's (checked below by stage); the rest are pointers' outputs.
  const outs = allOuts(repo, pointers).filter((o) => o.ptr.file !== lockFile);
  const stageOuts = await stageOutputs(repo);
  const ignore = await repo.ignore();
  for (const abs of abss) {
    const shown = q(repo.rel(abs));
    if (!isInside(repo.root, abs)) throw new UsageError(`${quotePath(abs)} is outside the repository ${quotePath(repo.root)}; tdv tracks only files inside it`);
    if (abs === repo.root) throw new UsageError('cannot add the repository root; add its data directories instead');
    if (isInside(tdvDir, abs)) throw new UsageError(`${shown} is inside ${TDV_DIR}/, tdv's own directory; add your data instead`);
    if (repo.git && isInside(path.join(repo.git.root, '.git'), abs)) throw new UsageError(`${shown} is inside .git/`);
    const rel = repo.rel(abs);
    // tdv git-ignores the data with a line `/<name>` in .gitignore, which has no escape for a
    // line break: such a name would end the line and write a rule of its own.
    if (/[\n\r]/.test(path.basename(abs))) throw new UsageError(`${shown} has a line break in its name, which a .gitignore line cannot hold; rename it, or add the directory holding it`);
    const own =
      (Object.hasOwn(OWN_FILES, rel) ? OWN_FILES[rel] : undefined) ??
      (CONTROL_FILES.has(path.basename(abs)) ? `is a ${path.basename(abs)} file, which holds Git's or tdv's rules; commit it with Git` : undefined);
    if (own !== undefined) throw new UsageError(`${shown} ${own}`);
    // Parents must be real directories, as the guard requires for every write: data behind
    // a symlink is somewhere else, and its pointer would name a path tdv never writes through.
    symlinkOnTheWay(repo, rel);
    const st = lstatOrUndefined(abs);
    if (!st) throw new UsageError(`${shown} does not exist; check the path`);
    if (abs.endsWith(POINTER_EXT) && st.isFile()) throw new UsageError(`${shown} is a tdv pointer file; add the data it tracks (${q(rel.slice(0, -POINTER_EXT.length))}) instead`);
    // Its pointer would name a path ending in .tdv, which every later read refuses as a pointer file.
    if (abs.endsWith(POINTER_EXT)) throw new UsageError(`${shown} ends in ${POINTER_EXT}, the ending of tdv's pointer files; rename it before adding it`);
    const reserved = reservedProblem(repo.root, repo.config, abs);
    if (reserved !== undefined) throw new UsageError(`${shown} ${reserved}; add your data, not tdv's storage`);
    const ownLink = st.isSymbolicLink() && objectLinkOid(abs, repo.store.objectsDir) !== undefined;
    if (st.isSymbolicLink() && !ownLink)
      throw symlinkError(
        repo,
        abs,
        outs.find((o) => o.abs === abs),
      );
    if (!st.isFile() && !st.isDirectory() && !ownLink) throw new UsageError(`${shown} is not a regular file or directory; tdv does not track special files`);
    if (ignore?.(rel, st.isDirectory())) throw new UsageError(`${shown} is ignored by .tdvignore; remove the pattern first`);
    for (const so of stageOuts) {
      const how = so.rel === rel ? 'is' : isInside(so.abs, abs) ? `is inside ${q(so.rel)},` : isInside(abs, so.abs) ? `contains ${q(so.rel)},` : undefined;
      if (how === undefined) continue;
      throw new UsageError(
        `${shown} ${how} an output of stage "${so.stage}" (${so.where}); \`tdv repro\` caches and tracks it, so it cannot be added too. Change the stage's outputs in tdv.yaml first`,
      );
    }
    for (const o of outs) {
      // Its pointer records where it comes from: a new version of it is `tdv update`'s to bring.
      if (o.ptr.import && (o.abs === abs || isInside(o.abs, abs)))
        throw new UsageError(
          `${shown} is imported from ${o.ptr.import.url} (${q(repo.rel(o.ptr.file))}); run \`tdv update ${shellWord(repo.rel(o.ptr.file))}\` to bring its new version, or \`tdv remove ${shellWord(repo.rel(o.ptr.file))}\` first to track your own`,
        );
      if (o.abs === abs) continue;
      if (isInside(o.abs, abs)) throw new UsageError(`${shown} is inside ${q(o.rel)}, which ${q(repo.rel(o.ptr.file))} already tracks; run \`tdv add ${shellWord(o.rel)}\` to update it`);
      if (isInside(abs, o.abs)) throw new UsageError(`${shown} contains ${q(o.rel)}, already tracked by ${q(repo.rel(o.ptr.file))}; run \`tdv remove ${shellWord(repo.rel(o.ptr.file))}\` first`);
    }
    for (const other of abss) {
      if (other !== abs && isInside(other, abs)) throw new UsageError(`${shown} is inside ${q(repo.rel(other))}, which is also being added; add only one of them`);
    }
  }
  if (repo.git) {
    const tracked = repo.gitTracked();
    for (const abs of abss) {
      const g = repo.gitPath(repo.rel(abs));
      const hit = tracked.firstUnder(g);
      if (hit !== undefined) {
        const what = hit === g ? `${q(repo.rel(abs))} is tracked by Git` : `${q(repo.rel(abs))} contains ${q(hit.slice(g.length - repo.rel(abs).length))}, which is tracked by Git`;
        throw new UsageError(`${what}; run \`git rm -r --cached ${shellWord(repo.rel(abs))}\` to stop tracking it with Git, then add it again`);
      }
    }
    // The pointer is what Git must commit: a rule that ignores it (other than tdv's own
    // "/<name>" line, which names the data) would leave the data unrestorable from a clone.
    const ptrs = new Map(abss.map((abs) => [repo.gitPath(repo.rel(pointerFileFor(abs))), abs]));
    const rule = gitIgnoredBy(repo.git.root, [...ptrs.keys()])[0];
    if (rule) {
      const abs = ptrs.get(rule.path)!;
      const ptr = repo.rel(pointerFileFor(abs));
      throw new UsageError(
        `${q(repo.rel(abs))} cannot be added: Git ignores its pointer ${q(ptr)} (rule ${JSON.stringify(rule.pattern)} in ${quotePath(rule.source)}:${rule.line}), so it could not be committed; ` +
          `change that rule, or add a line !/${q(path.basename(ptr))} after it in ${q(repo.rel(path.join(path.dirname(abs), '.gitignore')))}`,
      );
    }
  }
  return abss;
}

/** Paths of the repository that are tdv's own files, never data. */
const OWN_FILES: Record<string, string> = {
  'tdv.yaml': 'is the pipeline file; commit it with Git',
  [LOCK_FILE]: "is tdv's record of the pipeline's runs; commit it with Git",
};
const CONTROL_FILES = new Set(['.gitignore', '.gitattributes', '.tdvignore']);

/** A path for a message: escaped as git does, so a name cannot forge an output line. */
const q = quotePath;

/** Every output of the pipeline: declared in tdv.yaml, or recorded in tdv.lock by an earlier run. */
async function stageOutputs(repo: Repo): Promise<{ rel: string; abs: string; stage: string; where: string }[]> {
  const out: { rel: string; abs: string; stage: string; where: string }[] = [];
  const pipeline = await loadPipeline(repo.root);
  for (const s of pipeline?.stages.values() ?? []) {
    for (const o of [...s.outs, ...s.metrics]) out.push({ rel: o, abs: path.join(repo.root, o), stage: s.name, where: s.origins.get(o) ?? s.where });
  }
  if (fs.existsSync(path.join(repo.root, LOCK_FILE))) {
    for (const [name, s] of await readLock(repo.root)) {
      for (const o of [...s.outs, ...s.metrics]) out.push({ rel: o.path, abs: path.join(repo.root, o.path), stage: name, where: LOCK_FILE });
    }
  }
  return out;
}

/** Refuses a path whose parent directories include a symlink (lstat, component by component, as the guard does). */
function symlinkOnTheWay(repo: Repo, rel: string): void {
  let dir = '';
  for (const part of rel.split('/').slice(0, -1)) {
    dir = dir === '' ? part : `${dir}/${part}`;
    const abs = path.join(repo.root, dir);
    const st = lstatOrUndefined(abs);
    if (st === undefined || st.isDirectory()) continue;
    if (!st.isSymbolicLink()) return; // a file: the lstat of the target says it does not exist
    let fix = 'replace the link with a real directory, or add the data where it really is';
    try {
      const r = fs.realpathSync.native(abs);
      if (isInside(repo.root, r)) fix = `add ${q(repo.rel(path.join(r, path.relative(abs, path.join(repo.root, rel)))))} instead`;
    } catch {
      fix = `the link leads nowhere; ${fix}`;
    }
    throw new UsageError(`${q(rel)} lies behind the symlink ${q(dir)} (-> ${q(readlink(abs))}); tdv never reads or writes through a symlink: ${fix}`);
  }
}

function readlink(abs: string): string {
  try {
    return fs.readlinkSync(abs);
  } catch {
    return '?';
  }
}

/** A symlink where data should be: a tracked path replaced by a link (often dangling), or a link to add. */
function symlinkError(repo: Repo, abs: string, tracked: { rel: string; ptr: { file: string } } | undefined): UsageError {
  const rel = repo.rel(abs);
  const target = readlink(abs);
  const dangling = !fs.existsSync(abs);
  const link = `${q(rel)} is a symlink (-> ${q(target)}${dangling ? ', which does not exist' : ''})`;
  if (tracked) {
    const ptr = q(repo.rel(tracked.ptr.file));
    return new UsageError(
      `${link}, not the data ${ptr} tracks; run \`tdv checkout --force ${shellWord(rel)}\` to restore the data, or \`tdv remove ${shellWord(repo.rel(tracked.ptr.file))}\` to stop tracking it`,
    );
  }
  return new UsageError(`${link}; tdv tracks regular files and directories, not symlinks: add the path it points to instead`);
}
