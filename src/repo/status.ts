import fs from 'node:fs';
import path from 'node:path';
import { isDirOid } from '../formats/oid.js';
import { diffManifests, type ManifestDiff } from '../cache/workspace.js';
import { type Blocker, blockerAt, inTheWay } from './lib/blocker.js';
import { compareWorkspace, hashWorkspace } from './lib/hashing.js';
import { findPointers, selectTargets } from './lib/pointers.js';
import { expandStageTargets } from './lib/stage-targets.js';
import type { ImportStatus } from './lib/imports.js';
import type { Repo } from './repo.js';

export interface DataStatus {
  /** Repo-relative path of the tracked data. */
  path: string;
  /** Repo-relative path of its pointer file. */
  pointer: string;
  /** How the workspace differs from the pointer. */
  workspace: 'unchanged' | 'modified' | 'deleted';
  /** Whether the cache holds every object of the recorded version. */
  cache: 'ok' | 'missing';
  /** For a modified directory whose recorded manifest is cached: the files that differ. */
  files?: ManifestDiff;
  /** A symlink or special file where the data should be, or on the way to it (a dangling link, say). */
  blocker?: Blocker;
}

export interface StageStatus {
  name: string;
  /** Why `tdv repro` would run it; for a frozen stage, "frozen" first and what no longer matches tdv.lock. */
  reasons: string[];
  /** `frozen: true` in tdv.yaml: repro does not run it. */
  frozen?: boolean;
}

export interface StatusResult {
  /** True when nothing needs attention. */
  clean: boolean;
  /** Only outputs with something to report. */
  data: DataStatus[];
  /** Pipeline stages that changed (only when tdv.yaml exists and no targets were given). */
  stages?: StageStatus[];
  /** Imported data (only when some is selected): whether its source has moved (see lib/imports.ts). */
  imports?: ImportStatus[];
}

export interface StatusOptions {
  /** Absolute paths of targets (or stage names, see expandStageTargets); none means every pointer. */
  targets?: string[];
  /** Stage targets (and path targets a stage writes) bring the stages upstream too. */
  withDeps?: boolean;
}

/** Compares the workspace and the cache with the pointers. Read-only, except for the stat cache. */
export async function status(repo: Repo, opts: StatusOptions = {}): Promise<StatusResult> {
  const given = opts.targets ?? [];
  const expanded = given.length ? await expandStageTargets(repo, given, opts) : { targets: [], stages: [] };
  const selected = selectTargets(repo, await findPointers(repo), expanded.targets);
  const data: DataStatus[] = [];
  const store = repo.store;
  const stamp = store.stamp(); // before any presence check, so a removal after it is noticed next time
  for (const s of selected) {
    const want = s.out.sha256;
    // A changed directory may come back as how it differs from `want` (from the stat cache), not its own id.
    const ws = await compareWorkspace(repo, s, want);
    let workspace: DataStatus['workspace'] = 'unchanged';
    let files: ManifestDiff | undefined;
    if (ws.kind === 'differs') {
      workspace = 'modified';
      // Listed, as below, when the recorded manifest is cached.
      if (store.has(want)) files = ws.files;
    } else if (ws.kind === 'missing') workspace = 'deleted';
    else if (ws.kind === 'other') workspace = 'modified';
    else if (ws.oid !== want || (ws.kind === 'file' && ws.isexec !== (s.out.isexec === true))) {
      workspace = 'modified';
      if (ws.kind === 'dir' && isDirOid(want) && store.has(want)) {
        const full = ws.entries ? ws : await hashWorkspace(repo, s, { needEntries: true });
        if (full.kind === 'dir' && full.entries) files = diffManifests(store.readManifest(want), full.entries);
      }
    }
    const blocker = ws.kind === 'other' || ws.kind === 'missing' ? blockerAt(repo.root, s.rel) : undefined;
    const cached = (store.has(want) && repo.statCache.isComplete(s.rel, want, stamp)) || store.hasAll(want);
    // Remembered whatever the workspace holds (a modified directory keeps the mark of its recorded version).
    if (cached && ws.kind !== 'missing' && ws.kind !== 'other') repo.statCache.markComplete(s.rel, want, stamp);
    if (workspace !== 'unchanged' || !cached) {
      data.push({ path: s.rel, pointer: repo.rel(s.ptr.file), workspace, cache: cached ? 'ok' : 'missing', ...(files ? { files } : {}), ...(blocker ? { blocker } : {}) });
    }
  }
  // With targets, only the stages they named are reported (the rest of the pipeline is not asked about).
  const named = new Set(expanded.stages);
  const stages = !given.length ? await stageStatus(repo) : named.size ? (await stageStatus(repo))?.filter((s) => named.has(s.name)) : undefined;
  repo.statCache.save();
  // Imports ask their sources (network): only when there are any, so status without imports costs nothing more.
  const imported = selected.filter((s) => s.ptr.import !== undefined);
  const imports = imported.length > 0 ? await (await import('./lib/imports.js')).checkImports(repo, imported) : undefined;
  // A frozen stage is listed, as a reminder, but only its other reasons make the status unclean.
  const dirty = stages?.some((s) => !s.frozen || s.reasons.length > 1) ?? false;
  const moved = imports?.some((i) => i.state === 'moved') ?? false;
  return { clean: data.length === 0 && !dirty && !moved, data, ...(stages ? { stages } : {}), ...(imports ? { imports } : {}) };
}

/**
 * Stages `tdv repro` would run, and why. Docker is not asked: the image ID
 * recorded in tdv.lock is taken as current (`tdv repro --dry` checks images).
 */
async function stageStatus(repo: Repo): Promise<StageStatus[] | undefined> {
  if (!fs.existsSync(path.join(repo.root, 'tdv.yaml'))) return undefined; // no pipeline: load nothing more
  const { loadDag, stageHasher } = await import('./lib/pipeline.js');
  const dag = await loadDag(repo);
  if (!dag) return undefined;
  const { readLock } = await import('../stages/lock.js');
  const { ParamsReader } = await import('../stages/params.js');
  const { checkStage } = await import('../stages/status.js');
  const lock = await readLock(repo.root);
  const params = new ParamsReader(repo.root);
  const out: StageStatus[] = [];
  const changed = new Set<string>();
  for (const name of dag.order) {
    const stage = dag.stages.get(name)!;
    const locked = lock.get(name);
    const check = await checkStage(stage, locked, { params, hashPath: stageHasher(repo), imageId: async () => locked?.image, inTheWay: (rel) => inTheWay(repo.root, rel) }, true);
    // A dep another stage produces is not "missing": repro will make it.
    const unproduced = check.missingDeps.filter((d) => ![...dag.producers.keys()].some((o) => d === o || d.startsWith(`${o}/`)));
    const reasons = check.reasons.filter((r) => !r.startsWith('deps missing:'));
    if (unproduced.length) reasons.push(`deps missing: ${unproduced.join(', ')}`);
    if (stage.frozen) {
      // Never run by repro: nothing downstream changes because of it.
      out.push({ name, reasons, frozen: true });
      continue;
    }
    const up = [...dag.upstream.get(name)!].filter((u) => changed.has(u));
    if (!reasons.length && up.length) reasons.push(`upstream changed: ${up.join(', ')}`);
    if (reasons.length) {
      changed.add(name);
      out.push({ name, reasons });
    }
  }
  return out;
}
