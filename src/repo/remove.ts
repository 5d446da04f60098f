import path from 'node:path';
import { quotePath, shellWord } from '../formats/paths.js';
import { UnsafePathError } from '../workspace/guard.js';
import { TdvError, UsageError } from '../errors.js';
import { gitignoreFor, removeGitignoreEntry } from '../workspace/gitignore.js';
import { allOuts, findPointers, type Selected, selectTargets } from './lib/pointers.js';
import { unprotectTree } from '../workspace/link.js';
import type { Repo } from './repo.js';
import type { Pointer } from '../formats/pointer.js';

const LOCK_FILE = 'tdv.lock';
const PIPELINE_FILE = 'tdv.yaml';

/** One thing to stop tracking: a path (pointer file or tracked data) or, as given, a stage name. */
export interface RemoveTarget {
  /** The target as an absolute path. */
  path: string;
  /** The target as the user typed it: a stage name when no pointer tracks `path`. */
  name: string;
}

export interface RemoveResult {
  /** Repo-relative pointer files deleted. */
  removed: string[];
  /** Stages removed from tdv.yaml and tdv.lock (their outputs stay, untracked). */
  stages: string[];
  /** Repo-relative pipeline files edited (tdv.yaml, tdv.lock) or deleted (a tdv.lock left without stages). */
  pipelineFiles: { path: string; deleted: boolean }[];
  /** Repo-relative .gitignore files edited, or deleted because tdv's line was all they held. */
  gitignores: { path: string; deleted: boolean }[];
}

/**
 * Stops tracking: deletes the pointer and its .gitignore line and keeps the
 * data, turning links into the cache into plain copies so they survive a gc.
 * A target no pointer tracks may name a stage: it leaves tdv.yaml and
 * tdv.lock (the other stages stay as they are) and its outputs' .gitignore
 * lines go, the outputs stay. A stage output named by its path is refused
 * with the stage's name (tdv.lock is not a pointer to delete whole), and a
 * target that is neither is a usage error.
 */
export async function remove(repo: Repo, targets: readonly RemoveTarget[]): Promise<RemoveResult> {
  if (targets.length === 0) throw new UsageError('name the pointer files or tracked paths to stop tracking, e.g. `tdv remove data.tdv`, or a stage of tdv.yaml');
  return repo.withLock('remove', async () => {
    const lockFile = path.join(repo.root, LOCK_FILE);
    const all = await findPointers(repo);
    const pointersOnly = all.filter((p) => p.file !== lockFile);
    const lockPtr = all.find((p) => p.file === lockFile);
    const pipeline = await readPipelineStages(repo);
    const selected: Selected[] = [];
    const stages = new Set<string>();
    for (const t of targets) {
      const found = trySelect(repo, pointersOnly, t.path);
      if (found) {
        selected.push(...found);
        continue;
      }
      if (pipeline.lock.has(t.name) || pipeline.yaml.has(t.name)) {
        stages.add(t.name);
        continue;
      }
      throw notRemovable(repo, t, lockPtr, pipeline.lock);
    }
    const partial = selected.find((s) => s.sub !== undefined);
    if (partial) throw new UsageError(`${partial.rel}/${partial.sub} is inside tracked ${partial.rel}; remove the whole ${repo.rel(partial.ptr.file)}`);
    const removed = new Set<string>();
    const gitignores: RemoveResult['gitignores'] = [];
    const released: string[] = [];
    const release = (rel: string, source: string) => {
      released.push(rel);
      try {
        unprotectTree(repo.guard, rel, repo.store.objectsDir, source);
        const changed = removeGitignoreEntry(repo.guard, rel);
        if (changed) {
          // One entry per file, its last state: a .gitignore edited for one output and deleted
          // for the next is deleted (listed twice, the Git hint would `git add` a deleted file).
          const file = gitignoreFor(rel);
          const seen = gitignores.find((g) => g.path === file);
          if (seen) seen.deleted = changed === 'deleted';
          else gitignores.push({ path: file, deleted: changed === 'deleted' });
        }
      } catch (err) {
        // A hostile pointer (its path through a symlink, say) must still be removable: its data
        // and .gitignore are left alone, and only the pointer goes.
        if (!(err instanceof UnsafePathError)) throw err;
        repo.reporter.warn?.(`left ${quotePath(rel)} and its .gitignore line as they are: ${err.message}`);
      }
      repo.statCache.forget(rel);
    };
    // A pointer is removed whole: every output it tracks is released, not just the one named.
    const pointers = [...new Set(selected.map((s) => s.ptr))];
    // Every write and delete through the workspace guard: a symlinked .gitignore or a
    // symlink on the way to the data is refused, never followed.
    for (const s of allOuts(repo, pointers)) release(s.rel, repo.rel(s.ptr.file));
    for (const p of pointers) {
      // A pointer is a control file: Git tracks it, and it is deleted only as a regular file.
      repo.guard.removeControlFile(repo.rel(p.file));
      removed.add(p.file);
    }
    const pipelineFiles = stages.size > 0 ? await removeStages(repo, [...stages].sort(), pipeline, release) : [];
    repo.statCache.save();
    // No longer tdv's: a later checkout must never clean these up.
    const { updatePlaced } = await import('./lib/placed.js');
    updatePlaced(repo, [], released);
    return { removed: [...removed].map((f) => repo.rel(f)), stages: [...stages].sort(), pipelineFiles, gitignores };
  });
}

/** The pointers' outputs `target` selects, or undefined when none does. */
function trySelect(repo: Repo, pointers: readonly Pointer[], target: string): Selected[] | undefined {
  try {
    return selectTargets(repo, pointers, [target]);
  } catch (err) {
    if (err instanceof TdvError && err.code === 'NOT_TRACKED') return undefined;
    throw err;
  }
}

/** The error for a target that is no pointer's data and no stage: a stage output says which stage, anything else says what remove takes. */
function notRemovable(repo: Repo, t: RemoveTarget, lockPtr: Pointer | undefined, lock: ReadonlyMap<string, readonly string[]>): UsageError {
  const rel = repo.rel(t.path);
  const out = lockPtr ? trySelect(repo, [lockPtr], t.path)?.[0] : undefined;
  if (out) {
    const stage = [...lock].find(([, outs]) => outs.includes(out.rel))?.[0];
    if (stage !== undefined) {
      return new UsageError(
        `${quotePath(rel)} is an output of stage "${stage}" (tdv.lock), not data a pointer tracks; \`tdv remove ${shellWord(stage)}\` removes the stage from tdv.yaml and tdv.lock and keeps its outputs`,
      );
    }
  }
  return new UsageError(`${quotePath(rel)} is neither data a pointer tracks nor a stage of tdv.yaml; \`tdv remove\` takes pointer files (data.tdv), the paths they track, or stage names`);
}

interface PipelineStages {
  /** Stage name to the repo-relative outputs tdv.lock records for it. */
  lock: Map<string, string[]>;
  /** Stage names written as keys of tdv.yaml's `stages`. */
  yaml: Set<string>;
}

async function readPipelineStages(repo: Repo): Promise<PipelineStages> {
  const lock = new Map<string, string[]>();
  if (repo.guard.readControlFile(LOCK_FILE) !== undefined) {
    const { readLock } = await import('../stages/lock.js');
    for (const [name, s] of await readLock(repo.root))
      lock.set(
        name,
        s.outs.map((o) => o.path),
      );
  }
  const yaml = new Set<string>();
  const doc = await pipelineDocument(repo);
  const stages = doc?.get('stages');
  if (stages && typeof stages === 'object' && 'items' in stages && Array.isArray(stages.items)) {
    for (const pair of stages.items as { key?: { value?: unknown } }[]) if (typeof pair.key?.value === 'string') yaml.add(pair.key.value);
  }
  return { lock, yaml };
}

/** tdv.yaml as an editable document (comments kept), or undefined when there is none. */
async function pipelineDocument(repo: Repo) {
  // Strictly UTF-8, as every tdv.yaml read: a byte read as U+FFFD would be written back so.
  const { readPipelineText } = await import('./lib/pipeline.js');
  const text = readPipelineText(repo);
  if (text === undefined) return undefined;
  const { parseDocument } = await import('yaml');
  const doc = parseDocument(text);
  if (doc.errors.length > 0) throw new TdvError('BAD_FORMAT', `${PIPELINE_FILE}: invalid YAML (${doc.errors[0]!.message.split('\n')[0]}); fix it, then run \`tdv remove\` again`);
  return doc;
}

/**
 * Takes `names` out of tdv.yaml (its other stages and comments as they were)
 * and tdv.lock (deleted when no stage is left), and releases their recorded
 * outputs (.gitignore lines, links into the cache); the files stay.
 */
async function removeStages(repo: Repo, names: readonly string[], pipeline: PipelineStages, release: (rel: string, source: string) => void): Promise<RemoveResult['pipelineFiles']> {
  const files: RemoveResult['pipelineFiles'] = [];
  if (names.some((n) => pipeline.yaml.has(n))) {
    const { readPipelineText } = await import('./lib/pipeline.js');
    repo.guard.writeControlFile(PIPELINE_FILE, await withoutStages(readPipelineText(repo)!, names));
    files.push({ path: PIPELINE_FILE, deleted: false });
  }
  if (names.some((n) => pipeline.lock.has(n))) {
    const { readLock, writeLock } = await import('../stages/lock.js');
    const lock = await readLock(repo.root);
    for (const n of names) for (const o of lock.get(n)?.outs ?? []) release(o.path, LOCK_FILE);
    for (const n of names) lock.delete(n);
    if (lock.size === 0) repo.guard.removeControlFile(LOCK_FILE);
    else await writeLock(repo.root, lock);
    files.push({ path: LOCK_FILE, deleted: lock.size === 0 });
  }
  return files;
}

/**
 * tdv.yaml's text without the stages `names`: in a block map their lines are
 * cut out (from the key to the end of the value, comments before the next
 * stage stay), so the rest of the file stays byte for byte as the user wrote
 * it; a flow map is edited through the YAML document instead. A map left
 * empty becomes `stages: {}`.
 */
async function withoutStages(text: string, names: readonly string[]): Promise<string> {
  const { parseDocument: parse, isMap, isScalar } = await import('yaml');
  // Numbers the edit does not touch are written back as they were written (stages/edit.ts).
  const { EDIT_OPTIONS } = await import('../stages/edit.js');
  const parseDocument = (t: string) => parse(t, EDIT_OPTIONS);
  let out = text;
  for (const name of names) {
    const doc = parseDocument(out);
    const stages = doc.get('stages', true);
    if (!isMap(stages)) break;
    const i = stages.items.findIndex((p) => isScalar(p.key) && p.key.value === name);
    if (i < 0) continue;
    const pair = stages.items[i]!;
    const keyStart = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    const valueEnd = (pair.value as { range?: [number, number, number] } | null)?.range?.[1] ?? (isScalar(pair.key) ? pair.key.range?.[1] : undefined);
    if (stages.flow || keyStart === undefined || valueEnd === undefined) {
      doc.deleteIn(['stages', name]);
      out = String(doc);
      continue;
    }
    const from = out.lastIndexOf('\n', keyStart - 1) + 1;
    const nl = out.indexOf('\n', Math.max(valueEnd - 1, keyStart));
    out = out.slice(0, from) + (nl < 0 ? '' : out.slice(nl + 1));
  }
  let doc = parseDocument(out);
  if (doc.errors.length > 0) {
    // The cut left something YAML does not read (an odd layout): edit the document instead.
    doc = parseDocument(text);
    for (const name of names) doc.deleteIn(['stages', name]);
    out = String(doc);
  }
  const stages = doc.get('stages', true);
  if ((isMap(stages) && stages.items.length === 0) || stages === null || (isScalar(stages) && stages.value === null)) {
    doc.set('stages', doc.createNode({}));
    return String(doc);
  }
  return out;
}
