import * as v from 'valibot';
import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { isLegalRelPath, quotePath } from '../formats/paths.js';
import { isDirOid, isOid } from '../formats/oid.js';
import { errnoCode } from '../errors.js';
import type { ObjectStore } from '../cache/store.js';
import type { Stage } from './load.js';
import type { StageInputs } from './status.js';

const count = v.custom<number>((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0);

/**
 * A run record: what a run produced, enough to restore its outputs from the
 * cache. It comes from the cache or from a remote, and its paths are written
 * to on a restore: legal relative paths, object IDs, counts. Keys it does not
 * know are dropped, so a record is stored and pushed on as tdv wrote it.
 */
const RunPath = v.object({ path: v.custom<string>(isLegalRelPath), sha256: v.custom<string>(isOid), size: count, nfiles: v.optional(count) });
const RunEntrySchema = v.object({ outs: v.array(RunPath), metrics: v.array(RunPath) });

/** What a run produced (see RunEntrySchema). */
export type RunEntry = v.InferOutput<typeof RunEntrySchema>;

/**
 * The run-cache: for every successful run, the hash of exactly what went in
 * (command, image ID, deps, params, env, wdir, declared outputs) names a
 * small record of what came out. The same inputs again, on another branch or
 * after a revert, restore those outputs from the cache instead of rerunning.
 * Lives beside the objects, at `<cache>/runs/ab/cdef...`; the object store
 * reads and writes the records.
 */
export class RunCache {
  constructor(private readonly store: ObjectStore) {}

  static key(stage: Stage, inputs: StageInputs): string {
    const canonical = JSON.stringify({
      cmd: stage.cmd,
      image: inputs.image ?? null,
      wdir: stage.wdir,
      env: Object.entries(stage.env).sort(),
      deps: inputs.deps.map((d) => [d.path, d.sha256]).sort(),
      params: Object.entries(inputs.params)
        .sort()
        .map(([f, kv]) => [f, Object.entries(kv).sort()]),
      outs: [...stage.outs].sort(),
      metrics: [...stage.metrics].sort(),
    });
    return createHash('sha256').update(canonical).digest('hex');
  }

  /** The record of a run, or undefined when there is none or it is malformed (the stage then simply runs). */
  get(key: string): RunEntry | undefined {
    const text = this.store.readRun(key);
    return text === undefined ? undefined : parseRunEntry(text);
  }

  /** Every run key in the cache. */
  list(): string[] {
    const out: string[] = [];
    const dir = this.store.runsDir;
    let prefixes: string[] = [];
    try {
      prefixes = fs.readdirSync(dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return out;
      throw err;
    }
    for (const p of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      for (const n of fs.readdirSync(`${dir}/${p}`)) if (/^[0-9a-f]{62}$/.test(n)) out.push(p + n);
    }
    return out.sort();
  }

  /**
   * Why a run record's sizes must not be believed, or undefined when they may:
   * each output and metric present in the cache must have the size (and, for a
   * directory, the file count) the record states. A restore copies these into
   * tdv.lock, so a record from a remote claiming `size: 99` for a 3-byte
   * object would make `status` report the output modified forever and `push`
   * count the wrong bytes. A file object is checked by one stat; a directory by
   * its manifest (content-addressed, so its sizes are the data's own): the sum
   * of its entries' sizes and their number. Objects not in the cache are left
   * to the restore, which then finds them missing.
   */
  sizeMismatch(entry: RunEntry): string | undefined {
    for (const o of [...entry.outs, ...entry.metrics]) {
      if (!this.store.has(o.sha256)) continue;
      let size: number;
      let nfiles: number | undefined;
      if (isDirOid(o.sha256)) {
        const entries = this.store.readManifest(o.sha256);
        size = entries.reduce((n, e) => n + e.size, 0);
        nfiles = entries.length;
      } else {
        size = this.store.sizeOf(o.sha256);
      }
      if (o.size !== size) return `it says ${quotePath(o.path)} is ${o.size} bytes, but its object in the cache is ${size} bytes`;
      if (o.nfiles !== undefined && nfiles !== undefined && o.nfiles !== nfiles) return `it says ${quotePath(o.path)} holds ${o.nfiles} files, but its object in the cache lists ${nfiles}`;
      if (o.nfiles !== undefined && nfiles === undefined) return `it gives ${quotePath(o.path)} a file count, but its object in the cache is a file`;
    }
    return undefined;
  }

  put(key: string, entry: RunEntry): void {
    this.store.writeRun(key, JSON.stringify(entry));
  }
}

/**
 * A run record, validated: it comes from the cache or from a remote, and its
 * paths are written to on a restore. Undefined for anything malformed (the
 * stage then simply runs).
 */
export function parseRunEntry(text: string): RunEntry | undefined {
  let e: unknown;
  try {
    e = JSON.parse(text);
  } catch {
    return undefined;
  }
  const r = v.safeParse(RunEntrySchema, e, { abortEarly: true });
  return r.success ? r.output : undefined;
}

/**
 * Why a run record must not be applied to `stage`, or undefined when it may:
 * its outputs and its metrics must be exactly the paths tdv.yaml declares
 * (the same set, each once). A record comes from the cache or a remote, so it
 * is data, not an instruction: one naming other paths would make a restore
 * delete or overwrite files the stage does not own.
 */
export function recordMismatch(stage: Pick<Stage, 'name' | 'outs' | 'metrics'>, entry: RunEntry): string | undefined {
  const parts = [
    ['outputs', entry.outs.map((o) => o.path), stage.outs],
    ['metrics', entry.metrics.map((m) => m.path), stage.metrics],
  ] as const;
  for (const [what, got, declared] of parts) {
    if (!samePaths(got, declared)) return `its ${what} (${shownList(got)}) are not the ${what} tdv.yaml declares for stage "${stage.name}" (${shownList(declared)})`;
  }
  return undefined;
}

function samePaths(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return a.length === b.length && sa.size === a.length && sb.size === b.length && b.every((p) => sa.has(p));
}

function shownList(paths: readonly string[]): string {
  if (paths.length === 0) return 'none';
  const shown = paths.slice(0, 5).map((p) => quotePath(p.length > 200 ? `${p.slice(0, 200)}...` : p));
  return paths.length > 5 ? `${shown.join(', ')} and ${paths.length - 5} more` : shown.join(', ');
}
