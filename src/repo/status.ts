import { isDirOid } from '../cache/oid.js';
import { diffManifests, type ManifestDiff } from '../cache/workspace.js';
import { hashWorkspace } from './hashing.js';
import { findPointers, selectTargets } from './pointers.js';
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
}

export interface StatusResult {
  /** True when nothing needs attention. */
  clean: boolean;
  /** Only outputs with something to report. */
  data: DataStatus[];
}

export interface StatusOptions {
  /** Absolute paths of targets; none means every pointer. */
  targets?: string[];
}

/** Compares the workspace and the cache with the pointers. Read-only, except for the stat cache. */
export async function status(repo: Repo, opts: StatusOptions = {}): Promise<StatusResult> {
  const selected = selectTargets(repo, await findPointers(repo), opts.targets ?? []);
  const data: DataStatus[] = [];
  const store = repo.store;
  const stamp = store.stamp(); // before any presence check, so a removal after it is noticed next time
  for (const s of selected) {
    const want = s.out.sha256;
    let ws = await hashWorkspace(repo, s);
    let workspace: DataStatus['workspace'] = 'unchanged';
    let files: ManifestDiff | undefined;
    if (ws.kind === 'missing') workspace = 'deleted';
    else if (ws.kind === 'other') workspace = 'modified';
    else if (ws.oid !== want || (ws.kind === 'file' && ws.isexec !== (s.out.isexec === true))) {
      workspace = 'modified';
      if (ws.kind === 'dir' && isDirOid(want) && store.has(want)) {
        if (!ws.entries) ws = await hashWorkspace(repo, s, { needEntries: true });
        if (ws.kind === 'dir' && ws.entries) files = diffManifests(store.readManifest(want), ws.entries);
      }
    }
    const cached = (store.has(want) && repo.statCache.isComplete(s.rel, want, stamp)) || store.hasAll(want);
    if (cached && workspace === 'unchanged') repo.statCache.markComplete(s.rel, want, stamp);
    if (workspace !== 'unchanged' || !cached) {
      data.push({ path: s.rel, pointer: repo.rel(s.ptr.file), workspace, cache: cached ? 'ok' : 'missing', ...(files ? { files } : {}) });
    }
  }
  repo.statCache.save();
  return { clean: data.length === 0, data };
}
