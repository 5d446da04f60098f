import fs from 'node:fs';
import path from 'node:path';
import { quotePath, shellWord } from '../../formats/paths.js';
import { buildDag, type Dag } from '../../stages/graph.js';
import { loadPipeline, type OutputCheck, PIPELINE_FILE } from '../../stages/load.js';
import { LOCK_FILE, type LockedPath, readLock } from '../../stages/lock.js';
import { readUtf8OrUndefined } from '../../util/fs.js';
import { hashWorkspace } from './hashing.js';
import { allOuts, findPointers } from './pointers.js';
import type { Repo } from '../repo.js';
import { reservedProblem } from './cache-dir.js';

/**
 * tdv.yaml's text for an edit (freeze, stage add), read as loadPipeline reads
 * it: a regular file, never through a link, and strictly UTF-8. Read
 * leniently, a byte that is not UTF-8 would be written back as U+FFFD.
 */
export function readPipelineText(repo: Repo): string | undefined {
  return readUtf8OrUndefined(repo.guard.resolve(PIPELINE_FILE, 'control'), PIPELINE_FILE, { follow: false });
}

/** Hashes a stage's dep or output as tdv.lock records it (through the stat cache); undefined when absent. */
export function stageHasher(repo: Repo): (rel: string) => Promise<LockedPath | undefined> {
  return async (rel) => {
    // Through the guard: a dep is never read through a symlink on its way (tdv.yaml refuses
    // one it can see at load time; this holds for one made since).
    const st = await hashWorkspace(repo, { abs: repo.guard.abs(rel), rel });
    if (st.kind === 'missing' || st.kind === 'other') return undefined;
    return st.kind === 'dir' ? { path: rel, sha256: st.oid, size: st.size, nfiles: st.nfiles } : { path: rel, sha256: st.oid, size: st.size };
  };
}

/**
 * Loads tdv.yaml and builds its DAG, checking outputs against what the
 * repository keeps otherwise (Git-tracked files, .tdvignore, the pointers)
 * before any command deletes one. Undefined without a pipeline. With `text`,
 * that text is checked as tdv.yaml (an edit, before it is written).
 */
export async function loadDag(repo: Repo, text?: string): Promise<Dag | undefined> {
  if (text === undefined && !fs.existsSync(path.join(repo.root, 'tdv.yaml'))) return undefined;
  const pipeline = await loadPipeline(repo.root, { checkOutput: await outputCheck(repo), ...(text !== undefined ? { text } : {}) });
  if (!pipeline) return undefined;
  const tracked = new Map(allOuts(repo, await findPointers(repo, { withLock: false })).map((o) => [o.rel, repo.rel(o.ptr.file)]));
  return buildDag(pipeline, tracked);
}

/**
 * Why a stage may not own an output, as only the repository knows: Git tracks
 * it or something below it (repro deletes outputs before a run: code in Git
 * would go), or .tdvignore leaves it out (tdv could not cache it). A metric is
 * a small file kept in Git by design, so a Git-tracked metric is accepted once
 * tdv.lock records it as a metric (tdv wrote it, and the user committed it);
 * so is an output declared `cache: false` once tdv.lock records it as one.
 */
export async function outputCheck(repo: Repo): Promise<OutputCheck> {
  const tracked = repo.gitTracked();
  const ignore = await repo.ignore();
  const lockedMetrics = new Set<string>();
  const lockedKept = new Set<string>();
  if (tracked.size > 0 && fs.existsSync(path.join(repo.root, LOCK_FILE))) {
    for (const s of (await readLock(repo.root)).values()) {
      for (const m of s.metrics) lockedMetrics.add(m.path);
      for (const o of s.outs) if (o.cache === false) lockedKept.add(o.path);
    }
  }
  return (rel, key, _stage, flags) => {
    const reserved = reservedProblem(repo.root, repo.config, path.join(repo.root, rel));
    if (reserved !== undefined) return { problem: `${reserved}, which tdv would delete before the stage runs`, fix: 'Name a path of its own for the output' };
    const g = repo.gitPath(rel);
    const hit = tracked.firstUnder(g);
    // Likewise an output declared `cache: false` (kept in Git), file or directory, once tdv.lock records it so.
    const kept = key === 'outs' && flags?.cache === false && lockedKept.has(rel);
    if (hit !== undefined && !kept && !(hit === g && key === 'metrics' && lockedMetrics.has(rel))) {
      const fix = `Name a path of its own, or, if the stage should own it, stop tracking it with Git: \`git rm -r --cached ${shellWord(rel)}\``;
      if (hit === g) return { problem: 'is tracked by Git, and tdv deletes an output before its stage runs', fix };
      // Shown repo-relative: the repository may be a subdirectory of the Git work tree.
      return { problem: `contains ${quotePath(hit.slice(g.length - rel.length))}, which is tracked by Git, and tdv deletes an output before its stage runs`, fix };
    }
    if (ignore) {
      // Which kind it will be is up to the stage: a pattern for either kind hides it.
      const st = fs.lstatSync(path.join(repo.root, rel), { throwIfNoEntry: false });
      const hidden = st ? ignore(rel, st.isDirectory()) : ignore(rel, false) || ignore(rel, true);
      if (hidden) return { problem: 'is ignored by .tdvignore, so tdv could not cache it', fix: 'Remove the pattern from .tdvignore, or name another path' };
    }
    return undefined;
  };
}
