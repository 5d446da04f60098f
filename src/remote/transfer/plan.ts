import fs from 'node:fs';
import type { ManifestEntry } from '../../formats/manifest.js';
import { type Oid, shortOid } from '../../formats/oid.js';
import type { ObjectStore } from '../../cache/store.js';
import { damagedPushMessage, LinkedObjectCheck } from '../../cache/linked.js';
import type { Remote } from '../remote.js';
import { adapterFor } from './adapters.js';
import { type Job, remoteHas, type TransferFailure, type TransferProgress } from './executor.js';

/** A tracked directory a transfer concerns: its manifest and the files selected in it. */
export interface WantedDir {
  oid: Oid;
  /** Repo-relative path of the directory. */
  path: string;
  size: number;
  /** The manifest's entries, when the manifest is at hand. */
  entries?: ManifestEntry[];
  /** The selected files (all, or those under the target inside it). */
  children: Job[];
  /** A target named only part of the directory. */
  partial: boolean;
}

/** The objects a set of selected outputs references, deduplicated (repo/lib/wanted.ts collects them). */
export interface Wanted {
  /** File objects: single-file outputs and the selected files of directories. */
  files: Map<Oid, Job>;
  dirs: WantedDir[];
}

/**
 * What a push will do, decided before a byte moves: `push --dry` is this
 * plan, printed. Files first; manifests last, each only once every file it
 * names is on the remote (a partial target's manifest is held back until
 * then), so nobody ever pulls a directory whose files are not there yet.
 */
export interface PushPlan {
  /** File objects to upload. */
  uploads: Job[];
  /** Manifests to upload after the files (each once). */
  manifests: WantedDir[];
  /** Objects already on the remote. */
  skipped: number;
  /** Known up front: a directory whose manifest is neither cached nor on the remote. */
  failed: TransferFailure[];
  /** Objects known to be on the remote (grows as files upload). */
  onRemote: Set<Oid>;
}

export interface PushPlanOptions {
  jobs: number;
  /** Plan everything, as if the remote had nothing (`push --repair`). */
  repair?: boolean;
  /** Manifests found corrupt in the cache, with why. */
  corrupt?: ReadonlyMap<Oid, string>;
}

/**
 * Plans a push: asks the remote (through its adapter's cheapest way) which
 * objects it holds, cheapest first: a directory whose manifest is there is
 * there whole.
 */
export async function planPush(remote: Remote, wanted: Wanted, opts: PushPlanOptions): Promise<PushPlan> {
  const has = (oids: Oid[]) => (opts.repair ? Promise.resolve(new Set<Oid>()) : remoteHas(remote, oids, opts.jobs));
  const plan: PushPlan = { uploads: [], manifests: [], skipped: 0, failed: [], onRemote: new Set() };
  const manifestsThere = await has(wanted.dirs.map((d) => d.oid));
  const complete = new Set<Oid>();
  for (const d of wanted.dirs) {
    if (!manifestsThere.has(d.oid)) continue;
    complete.add(d.oid);
    for (const c of d.children) plan.onRemote.add(c.oid);
  }
  const unknown = [...wanted.files.keys()].filter((o) => !plan.onRemote.has(o));
  for (const o of await has(unknown)) plan.onRemote.add(o);
  for (const [oid, job] of wanted.files) {
    if (plan.onRemote.has(oid)) plan.skipped++;
    else plan.uploads.push(job);
  }
  // The same directory content may be tracked at several paths: one manifest each.
  const seen = new Set<Oid>();
  for (const d of wanted.dirs) {
    if (seen.has(d.oid)) {
      // (The first was skipped as complete, or failed: then there is no job to widen.)
      const job = plan.manifests.find((m) => m.oid === d.oid);
      if (job && !d.partial) job.partial = false;
      continue;
    }
    seen.add(d.oid);
    if (complete.has(d.oid)) plan.skipped++;
    else if (!d.entries)
      plan.failed.push({ oid: d.oid, path: d.path, error: opts.corrupt?.get(d.oid) ?? `the manifest of ${d.path} (${shortOid(d.oid)}) is not in the cache, nor on remote "${remote.name}"` });
    else plan.manifests.push({ ...d });
  }
  return plan;
}

/** What executing a push did. */
export interface PushOutcome {
  transferred: number;
  bytes: number;
  /** Bytes sent: `bytes` in the plain layout; in the packed one, what went into packs and indexes. */
  sent: number;
  failed: TransferFailure[];
  heldBack?: { path: string; missing: number }[];
}

export interface ExecuteOptions {
  jobs: number;
  progress?: TransferProgress;
  repair?: boolean;
  /** Called before the first upload when the push uses any object on the remote. */
  beforeUpload?: () => Promise<void>;
}

/**
 * Executes a push plan with the remote's transfer adapter: refuses objects
 * damaged in the cache, uploads the files, then the manifests whose files
 * are all there.
 */
export async function executePush(remote: Remote, store: ObjectStore, plan: PushPlan, opts: ExecuteOptions): Promise<PushOutcome> {
  const out: PushOutcome = { transferred: 0, bytes: 0, sent: 0, failed: [...plan.failed] };
  const { onRemote } = plan;
  let uploads = plan.uploads;
  // An object hard-linked into a workspace may have been written through the link: its
  // bytes are checked before they are published under its name (the others go on).
  const damaged = damagedObjects(store, uploads);
  if (damaged.length > 0) {
    const bad = new Set(damaged.map((f) => f.oid));
    out.failed.push(...damaged);
    uploads = uploads.filter((j) => !bad.has(j.oid));
  }
  if (uploads.length + plan.manifests.length + plan.skipped > 0) await opts.beforeUpload?.();

  const total = uploads.reduce((n, j) => n + j.size, 0) + plan.manifests.reduce((n, d) => n + store.sizeOf(d.oid), 0);
  opts.progress?.plan(uploads.length + plan.manifests.length, total);
  const adapter = adapterFor(remote);
  const files = await adapter.upload(remote, store, uploads, opts);
  for (const j of files.done) {
    onRemote.add(j.oid);
    out.bytes += j.size;
  }
  out.sent += files.sent ?? files.done.reduce((n, j) => n + j.size, 0);
  out.transferred += files.done.length;
  // No cache check per object up front: a missing source is rare, and explained here.
  for (const f of files.failed) {
    if (!store.has(f.oid)) f.error = `${f.path} is not in the cache, nor on remote "${remote.name}"; \`tdv add\` it again where the data exists`;
  }
  out.failed.push(...files.failed);

  // Manifests last, and only over complete directories. A partial target's manifest needs every file there.
  const ready: Job[] = [];
  for (const d of plan.manifests) {
    let absent = d.entries!.filter((e) => !onRemote.has(e.sha256)).map((e) => e.sha256);
    if (absent.length > 0 && d.partial) {
      const found = await remoteHas(remote, absent, opts.jobs);
      absent = absent.filter((o) => !found.has(o));
    }
    if (absent.length === 0) {
      ready.push({ oid: d.oid, size: store.sizeOf(d.oid), path: d.path });
      continue;
    }
    opts.progress?.files();
    if (!d.partial) out.failed.push({ oid: d.oid, path: d.path, error: `manifest of ${d.path} not uploaded: ${absent.length} of its files are not on the remote` });
    else (out.heldBack ??= []).push({ path: d.path, missing: absent.length });
  }
  const manifests = await adapter.upload(remote, store, ready, opts);
  out.transferred += manifests.done.length;
  for (const j of manifests.done) out.bytes += j.size;
  out.sent += manifests.sent ?? manifests.done.reduce((n, j) => n + j.size, 0);
  out.failed.push(...manifests.failed);
  return out;
}

/**
 * The uploads whose cache object has other hard links (it is linked into a
 * workspace) and no longer hashes to its name: modified in place, so refused,
 * naming the workspace file. One lstat per object; a re-hash only for linked
 * ones (LinkedObjectCheck, as the checkout's linker does).
 */
function damagedObjects(store: ObjectStore, uploads: readonly Job[]): TransferFailure[] {
  const check = new LinkedObjectCheck();
  const out: TransferFailure[] = [];
  for (const j of uploads) {
    const file = store.pathOf(j.oid);
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    // Absent: the upload fails and says so; not a regular file: the remote refuses to read it.
    if (!st?.isFile() || st.nlink < 2) continue;
    if (!check.intact(file, st)) out.push({ oid: j.oid, path: j.path, error: damagedPushMessage(j.path, j.oid) });
  }
  return out;
}

/**
 * What a fetch will get, in two rounds: first the manifests of directories
 * the cache lacks (they say which files a directory has), then, once they
 * are read, every file object the cache lacks.
 */
export function planFetchManifests(store: ObjectStore, dirs: readonly { oid: Oid; path: string }[]): Job[] {
  const out = new Map<Oid, Job>();
  for (const d of dirs) if (!store.has(d.oid) && !out.has(d.oid)) out.set(d.oid, { oid: d.oid, size: 0, path: d.path });
  return [...out.values()];
}

/** The second round: the file objects of `wanted` the cache lacks, and how many it has. */
export function planFetch(store: ObjectStore, wanted: Wanted): { downloads: Job[]; skipped: number } {
  const downloads: Job[] = [];
  let skipped = 0;
  for (const [oid, job] of wanted.files) {
    if (store.has(oid)) skipped++;
    else downloads.push({ ...job });
  }
  return { downloads, skipped };
}
