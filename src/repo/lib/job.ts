/**
 * The repository's side of a stage run elsewhere (see stages/job.ts): its
 * inputs put into the cache and listed by hash, the JobIO a runner reads
 * them through and writes results into, and what came back verified and
 * cached, ready for the checkout engine and tdv.lock.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { TdvError } from '../../errors.js';
import { TDV_DIR } from '../../formats/layout.js';
import { type ManifestEntry, serializeManifest, sortEntries } from '../../formats/manifest.js';
import { quotePath } from '../../formats/paths.js';
import { checkStaged, jobSpec } from '../../stages/job-spec.js';
import type { CleanupAction, JobExchange, JobFile, JobIO, JobResult, JobSpec } from '../../stages/job.js';
import type { Stage } from '../../stages/load.js';
import type { LockedPath } from '../../stages/lock.js';
import type { StageInputs } from '../../stages/status.js';
import { metricsProblem } from '../../stages/values.js';
import { hashWorkspace } from './hashing.js';
import type { Repo } from '../repo.js';

/**
 * Every file `stage` reads, stored in the cache (a script Git tracks is
 * copied there like data), as `[path, sha256, size, exec]`: its deps (a
 * directory expanded through its manifest), its params files, and the
 * current files of outputs that persist. A dep whose hash is not the one
 * the change check recorded (`inputs`) changed meanwhile: refused.
 */
export async function gatherInputs(repo: Repo, stage: Stage, inputs: StageInputs): Promise<JobFile[]> {
  const checked = new Map(inputs.deps.map((d) => [d.path, d.sha256]));
  const files: JobFile[] = [];
  const add = async (rel: string, want?: string, optional = false) => {
    const st = await hashWorkspace(repo, { abs: repo.guard.abs(rel), rel }, { write: 'store' });
    if (st.kind === 'missing' && optional) return;
    if (st.kind !== 'file' && st.kind !== 'dir')
      throw new TdvError('DEPS_MISSING', `stage "${stage.name}": ${quotePath(rel)} is missing or not a regular file or directory; it cannot be sent to a runner`);
    if (want !== undefined && st.oid !== want)
      throw new TdvError('CHANGED_WHILE_ADDING', `stage "${stage.name}": ${quotePath(rel)} changed while the stage was being prepared; run again when nothing writes to it`);
    if (st.kind === 'file') files.push({ path: rel, sha256: st.oid, size: st.size, ...(st.isexec ? { exec: true } : {}) });
    else for (const e of repo.store.readManifest(st.oid)) files.push(entryFile(rel, e));
  };
  for (const d of stage.deps) await add(d, checked.get(d));
  for (const p of stage.params) await add(p.file, undefined, true);
  for (const o of stage.persist ?? []) await add(o, undefined, true);
  return files;
}

function entryFile(dir: string, e: ManifestEntry): JobFile {
  return { path: `${dir}/${e.relpath}`, sha256: e.sha256, size: e.size, ...(e.isexec ? { exec: true } : {}) };
}

/** The build context of a `build:` stage, stored in the cache, as job files (repo-relative). */
export async function buildContext(repo: Repo, stage: Stage): Promise<NonNullable<Extract<JobSpec['image'], { build: unknown }>>> {
  const b = stage.build!;
  const files: JobFile[] = [];
  const st = await hashWorkspace(repo, { abs: repo.guard.abs(b.context), rel: b.context }, { write: 'store' });
  if (st.kind !== 'dir') throw new TdvError('BUILD_CONTEXT_MISSING', `${stage.where}: build context ${quotePath(b.context)} of stage "${stage.name}" is not a directory`);
  for (const e of repo.store.readManifest(st.oid)) files.push(entryFile(b.context, e));
  return { build: { context: files, dir: b.context, ...(b.dockerfile !== undefined ? { dockerfile: b.dockerfile } : {}) } };
}

/** The job spec of a stage for a runner elsewhere. */
export async function stageJob(repo: Repo, stage: Stage, inputs: StageInputs, imageId: string | undefined): Promise<JobSpec> {
  const image: JobSpec['image'] = stage.image !== undefined ? { ref: stage.image, ...(imageId ? { id: imageId } : {}) } : stage.build ? await buildContext(repo, stage) : undefined;
  const spec = jobSpec(stage, await gatherInputs(repo, stage, inputs), image);
  // Every input's object must be there and of its size: a runner would send a damaged copy on.
  for (const f of [...spec.inputs, ...(spec.image && 'build' in spec.image ? spec.image.build.context : [])]) {
    const st = fs.statSync(repo.store.pathOf(f.sha256), { throwIfNoEntry: false });
    if (!st?.isFile() || st.size !== f.size) {
      throw new TdvError(
        'DAMAGED_OBJECT',
        `stage "${stage.name}": the cached copy of ${quotePath(f.path)} (${f.sha256.slice(0, 12)}) is ${st ? 'damaged' : 'missing'}; run \`tdv fsck\` to find and remove damaged objects, then run again`,
        {
          data: { stage: stage.name, path: f.path, oid: f.sha256 },
        },
      );
    }
  }
  return spec;
}

/** A fresh directory of its own under `.tdv/tmp` for a runner to write a job's outputs into. */
export function newStaging(repo: Repo, stage: string): { rel: string; abs: string; remove(): void } {
  const rel = `tmp/jobs/${stage.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64)}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const abs = repo.own.mkdirp(rel);
  return { rel, abs, remove: () => void repo.own.remove(rel) };
}

export interface JobIOOptions {
  staging: string;
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  onDebug?(line: string): void;
  signal?: AbortSignal;
  onCleanup?: (a: CleanupAction) => () => void;
  exchange?: JobExchange;
}

/** The JobIO of one job: inputs read from the cache object store. */
export function jobIO(repo: Repo, o: JobIOOptions): JobIO {
  return {
    openInput: (f) => fs.createReadStream(repo.store.pathOf(f.sha256)),
    inputPath: (f) => repo.store.pathOf(f.sha256),
    staging: o.staging,
    onOutput: o.onOutput,
    ...(o.onDebug ? { onDebug: o.onDebug } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    ...(o.onCleanup ? { onCleanup: o.onCleanup } : {}),
    ...(o.exchange ? { exchange: o.exchange } : {}),
  };
}

/** What came back, cached: outputs and metrics as tdv.lock records them. */
export interface Ingested {
  outs: LockedPath[];
  metrics: LockedPath[];
}

/**
 * Checks what a runner left in `staging` (checkStaged: declared paths only,
 * regular files and directories only, every file claimed), then copies each
 * file into the cache, hashing as it copies, and compares that hash with the
 * result's claim: what is cached is exactly what was hashed, and a claim
 * that is not the truth refuses the job. A declared output that did not
 * come back is the same failure as for a local run.
 */
export async function ingestOutputs(repo: Repo, stage: Stage, staging: string, result: JobResult, runner: string, log: string): Promise<Ingested> {
  const staged = checkStaged(staging, [...stage.outs, ...stage.metrics], result, runner, stage.name);
  if (staged.missing.length) {
    throw new TdvError('OUTS_MISSING', `stage "${stage.name}" did not produce ${staged.missing.map(quotePath).join(', ')}, which tdv.yaml declares (log: ${log})`, { data: { stage: stage.name } });
  }
  const claims = new Map(result.outputs.map((o) => [o.path, o.sha256]));
  const stored = new Map<string, { sha256: string; size: number; exec: boolean }>();
  for (const f of staged.files) {
    const oid = await repo.store.addFileCopy(f.abs, { ino: f.st.ino, mtimeMs: f.st.mtimeMs, ctimeMs: f.st.ctimeMs, size: f.st.size, mode: f.st.mode });
    if (claims.get(f.rel) !== oid) {
      throw new TdvError(
        'JOB_OUTPUT_REFUSED',
        `stage "${stage.name}": runner ${runner} returned ${quotePath(f.rel)} with content that is not the ${claims.get(f.rel)?.slice(0, 12)} its result claims; nothing was recorded for it`,
        {
          data: { stage: stage.name, runner, path: f.rel },
        },
      );
    }
    stored.set(f.rel, { sha256: oid, size: f.st.size, exec: (f.st.mode & 0o100) !== 0 });
  }
  const locked = (o: string): LockedPath => {
    const file = stored.get(o);
    const keep = stage.uncached?.has(o) ? { cache: false as const } : {};
    if (file) return { path: o, sha256: file.sha256, size: file.size, ...keep };
    const entries: ManifestEntry[] = [];
    for (const [rel, s] of stored) {
      if (rel.startsWith(`${o}/`)) entries.push({ relpath: rel.slice(o.length + 1), sha256: s.sha256, size: s.size, ...(s.exec ? { isexec: true } : {}) });
    }
    const sorted = sortEntries(entries);
    const oid = repo.store.addBufferSync(serializeManifest(sorted), true);
    return { path: o, sha256: oid, size: sorted.reduce((n, e) => n + e.size, 0), nfiles: sorted.length, ...keep };
  };
  const metrics: LockedPath[] = [];
  for (const m of stage.metrics) {
    const file = staged.files.find((f) => f.rel === m);
    if (!file) throw new TdvError('NOT_A_FILE', `metrics ${quotePath(m)} of stage "${stage.name}" must be a file`);
    const bad = await metricsProblem(fs.readFileSync(file.abs, 'utf8'), m);
    if (bad) throw new TdvError('BAD_METRICS', `stage "${stage.name}" wrote a metrics file tdv cannot read: ${bad}; nothing was recorded for it (log: ${log})`);
    metrics.push({ path: m, sha256: stored.get(m)!.sha256, size: stored.get(m)!.size });
  }
  return { outs: stage.outs.map(locked), metrics };
}

/** The log path as messages show it. */
export function logShown(name: string): string {
  return `${TDV_DIR}/logs/${name}.log`;
}
