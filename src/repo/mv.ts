import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, TdvError, UsageError } from '../errors.js';
import { TDV_DIR } from '../formats/layout.js';
import { quotePath, relPathProblem, shellWord } from '../formats/paths.js';
import { POINTER_EXT, pointerFileFor, serializePointer } from '../formats/pointer.js';
import { loadPipeline, PIPELINE_FILE } from '../stages/load.js';
import { LOCK_FILE, readLock } from '../stages/lock.js';
import { isInside } from '../util/fs.js';
import { addGitignoreEntry, gitignoreFor, removeGitignoreEntry } from '../workspace/gitignore.js';
import { UnsafePathError } from '../workspace/guard.js';
import { reservedProblem } from './lib/cache-dir.js';
import { allOuts, findPointers, selectTargets } from './lib/pointers.js';
import type { Repo } from './repo.js';

export interface MoveResult {
  /** Repo-relative tracked path before and after. */
  from: string;
  to: string;
  /** Repo-relative pointer files before and after. */
  pointerFrom: string;
  pointerTo: string;
  /** Whether the data was in the workspace (and moved); otherwise only its pointer moved. */
  movedData: boolean;
  /** .gitignore files edited or created (the new line), and those deleted (the old line was all they held). */
  gitignores: string[];
  gitignoresDeleted: string[];
  /** Whether Git tracks the old pointer (the hint then says `git rm --cached` it). */
  pointerWasTracked: boolean;
}

const q = quotePath;

/**
 * Moves tracked data and its pointer: `src` (the data or its pointer) to
 * `dst`, or into `dst` when that is an existing directory, as `mv` does. The
 * pointer `src.tdv` becomes `dst.tdv` and the `.gitignore` lines follow. A
 * destination that exists is refused, as is a stage's output (tdv.yaml names
 * it). Nothing is staged in Git: the caller prints the hint.
 */
export async function move(repo: Repo, src: string, dst: string): Promise<MoveResult> {
  return repo.withLock('mv', async () => {
    const pointers = await findPointers(repo);
    const lockFile = path.join(repo.root, LOCK_FILE);
    const selected = selectTargets(repo, pointers, [src]);
    const s = selected[0]!;
    if (selected.length > 1 || selected.some((x) => x.ptr.file !== s.ptr.file)) {
      throw new UsageError(`${q(repo.rel(src))} is not one tracked path but holds ${selected.length} of them; move each (\`tdv mv <data> <dest>\`)`);
    }
    // A directory holding one pointer is not that pointer's data: moving it is `mv` and `git mv` of the directory.
    if (s.sub === undefined && s.abs !== src && s.ptr.file !== src) {
      throw new UsageError(`${q(repo.rel(src))} is not tracked data itself but holds ${q(s.rel)}; move that (\`tdv mv ${shellWord(s.rel)} <dest>\`)`);
    }
    if (s.sub !== undefined) throw new UsageError(`${q(`${s.rel}/${s.sub}`)} is inside tracked ${q(s.rel)}; tdv mv moves the whole ${q(s.rel)}`);
    if (s.ptr.file === lockFile) {
      throw new UsageError(`${q(s.rel)} is an output of a stage (recorded in ${LOCK_FILE}); rename it in ${PIPELINE_FILE} (its outs and cmd), then run \`tdv repro\``);
    }
    if (s.ptr.outs.length !== 1) throw new UsageError(`${q(repo.rel(s.ptr.file))} tracks ${s.ptr.outs.length} paths; tdv mv moves a pointer that tracks one`);

    let target = dst.replace(/\/+$/, '') || '/';
    const outs = allOuts(repo, pointers);
    const dstSt = lstatLoose(target);
    // Into an existing directory, as `mv` does; tracked data there is a destination that exists.
    if (dstSt?.isDirectory() && !outs.some((o) => o.abs === target)) target = path.join(target, path.basename(s.abs));
    else if (target.endsWith(POINTER_EXT) && dstSt === undefined) target = target.slice(0, -POINTER_EXT.length); // the pointer named: its data
    checkDestination(repo, s.abs, target);
    const rel = repo.rel(target);
    for (const o of outs) {
      if (o.abs === target) throw new UsageError(`${q(rel)} is already tracked by ${q(repo.rel(o.ptr.file))}; remove it first or name another destination`);
      if (isInside(o.abs, target)) throw new UsageError(`${q(rel)} is inside ${q(o.rel)}, which ${q(repo.rel(o.ptr.file))} tracks; name a destination outside tracked data`);
      if (isInside(target, o.abs) && o.abs !== s.abs) throw new UsageError(`${q(rel)} would contain ${q(o.rel)}, tracked by ${q(repo.rel(o.ptr.file))}; name another destination`);
    }
    for (const so of await stageOutputs(repo)) {
      if (so === rel || isInside(path.join(repo.root, so), target) || isInside(target, path.join(repo.root, so))) {
        throw new UsageError(`${q(rel)} overlaps ${q(so)}, an output of the pipeline (${PIPELINE_FILE}); name another destination`);
      }
    }
    if ((await repo.ignore())?.(rel, lstatLoose(s.abs)?.isDirectory() ?? s.out.nfiles !== undefined)) {
      throw new UsageError(`${q(rel)} is ignored by .tdvignore, so tdv would not see its pointer; name another destination or change .tdvignore`);
    }
    if (lstatLoose(target) !== undefined) throw new TdvError('EXISTS', `${q(rel)} exists; tdv mv will not replace it. Move it away or name another destination`);
    const ptrFrom = repo.rel(s.ptr.file);
    const ptrTo = repo.rel(pointerFileFor(target));
    if (lstatLoose(pointerFileFor(target)) !== undefined) throw new UsageError(`${q(ptrTo)} exists; move it away or name another destination`);

    const guard = repo.guard;
    const movedData = guard.lstat(s.rel, ptrFrom) !== undefined;
    if (movedData) guard.move(s.rel, rel, ptrFrom);
    const gitignores: string[] = [];
    const gitignoresDeleted: string[] = [];
    let wrotePointer = false;
    try {
      guard.writeControlFile(ptrTo, serializePointer([{ ...s.out, path: path.basename(target) }], { desc: s.ptr.desc, meta: s.ptr.meta, import: s.ptr.import }));
      wrotePointer = true;
      if (addGitignoreEntry(guard, rel)) gitignores.push(gitignoreFor(rel));
    } catch (err) {
      // Undone: the data goes back where its pointer still says it is, and the new pointer goes.
      if (wrotePointer) guard.removeControlFile(ptrTo);
      if (movedData) guard.move(rel, s.rel);
      throw err;
    }
    guard.removeControlFile(ptrFrom);
    // The move is done: an old .gitignore tdv may not edit (a symlink now) keeps a stale line, said as a warning.
    let old: ReturnType<typeof removeGitignoreEntry>;
    try {
      old = removeGitignoreEntry(guard, s.rel);
    } catch (err) {
      if (!(err instanceof UnsafePathError)) throw err;
      repo.reporter.warn?.(`left the line for ${q(s.rel)} in ${q(gitignoreFor(s.rel))}: ${err.message}`);
    }
    if (old === 'edited' && !gitignores.includes(gitignoreFor(s.rel))) gitignores.push(gitignoreFor(s.rel));
    if (old === 'deleted') gitignoresDeleted.push(gitignoreFor(s.rel));
    repo.statCache.forget(s.rel);
    repo.statCache.save();
    const pointerWasTracked = repo.git !== undefined && repo.gitTracked().has(repo.gitPath(ptrFrom));
    return { from: s.rel, to: rel, pointerFrom: ptrFrom, pointerTo: ptrTo, movedData, gitignores, gitignoresDeleted, pointerWasTracked };
  });
}

/** Refuses a destination tdv cannot or must not track. */
function checkDestination(repo: Repo, srcAbs: string, abs: string): void {
  const shown = q(isInside(repo.root, abs) ? repo.rel(abs) : abs);
  if (!isInside(repo.root, abs) || abs === repo.root) throw new UsageError(`${shown} is not inside the repository ${q(repo.root)}; tdv mv moves data within it`);
  if (abs === srcAbs) throw new UsageError(`${shown} is where the data already is`);
  if (isInside(srcAbs, abs)) throw new UsageError(`${shown} is inside ${q(repo.rel(srcAbs))}, the data being moved`);
  const rel = repo.rel(abs);
  const problem = relPathProblem(rel);
  if (problem !== undefined) throw new UsageError(`${shown} ${problem}; name another destination`);
  if (isInside(path.join(repo.root, TDV_DIR), abs)) throw new UsageError(`${shown} is inside ${TDV_DIR}/, tdv's own directory`);
  if (/[\n\r]/.test(path.basename(abs))) throw new UsageError(`${shown} has a line break in its name, which a .gitignore line cannot hold; name another destination`);
  const base = path.basename(abs);
  if (base.endsWith(POINTER_EXT) || ['.gitignore', '.gitattributes', '.tdvignore'].includes(base) || rel === PIPELINE_FILE || rel === LOCK_FILE) {
    throw new UsageError(`${shown} is a name tdv or Git keeps for its own files; name another destination`);
  }
  const reserved = reservedProblem(repo.root, repo.config, abs);
  if (reserved !== undefined) throw new UsageError(`${shown} ${reserved}; name another destination`);
}

/** Every path the pipeline writes: declared in tdv.yaml, or recorded in tdv.lock. */
async function stageOutputs(repo: Repo): Promise<string[]> {
  const out: string[] = [];
  const pipeline = await loadPipeline(repo.root);
  for (const st of pipeline?.stages.values() ?? []) out.push(...st.outs, ...st.metrics);
  if (fs.existsSync(path.join(repo.root, LOCK_FILE))) for (const st of (await readLock(repo.root)).values()) out.push(...[...st.outs, ...st.metrics].map((o) => o.path));
  return out;
}

/** lstat, or undefined when nothing is there (also when a parent is a file: ENOTDIR). */
function lstatLoose(abs: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(abs, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}
