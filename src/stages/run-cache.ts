import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { isLegalRelPath } from '../formats/paths.js';
import { isOid } from '../formats/oid.js';
import { errnoCode } from '../errors.js';
import { writeFileAtomicSync } from '../workspace/raw.js';
import type { Stage } from './load.js';
import type { LockedPath } from './lock.js';
import type { StageInputs } from './status.js';

/** What a run produced: enough to restore its outputs from the cache. */
export interface RunEntry {
  outs: LockedPath[];
  metrics: LockedPath[];
}

/**
 * The run-cache: for every successful run, the hash of exactly what went in
 * (command, image ID, deps, params, env, wdir, declared outputs) names a
 * small record of what came out. The same inputs again, on another branch or
 * after a revert, restore those outputs from the cache instead of rerunning.
 * Lives beside the objects, at `<cache>/runs/ab/cdef...`.
 */
export class RunCache {
  constructor(private readonly dir: string) {}

  static key(stage: Stage, inputs: StageInputs): string {
    const canonical = JSON.stringify({
      cmd: stage.cmd,
      image: inputs.image ?? null,
      wdir: stage.wdir,
      env: Object.entries(stage.env).sort(),
      deps: inputs.deps.map((d) => [d.path, d.sha256]).sort(),
      params: Object.entries(inputs.params).sort().map(([f, kv]) => [f, Object.entries(kv).sort()]),
      outs: [...stage.outs].sort(),
      metrics: [...stage.metrics].sort(),
    });
    return createHash('sha256').update(canonical).digest('hex');
  }

  private file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), key.slice(2));
  }

  get(key: string): RunEntry | undefined {
    try {
      return parseRunEntry(fs.readFileSync(this.file(key), 'utf8'));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Every run key in the cache. */
  list(): string[] {
    const out: string[] = [];
    let prefixes: string[] = [];
    try {
      prefixes = fs.readdirSync(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return out;
      throw err;
    }
    for (const p of prefixes) {
      if (!/^[0-9a-f]{2}$/.test(p)) continue;
      for (const n of fs.readdirSync(path.join(this.dir, p))) if (/^[0-9a-f]{62}$/.test(n)) out.push(p + n);
    }
    return out.sort();
  }

  put(key: string, entry: RunEntry): void {
    const f = this.file(key);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    writeFileAtomicSync(f, JSON.stringify(entry));
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
  const ok = (l: unknown): l is LockedPath[] =>
    Array.isArray(l) &&
    l.every(
      (p) =>
        typeof p === 'object' &&
        p !== null &&
        isLegalRelPath((p as LockedPath).path) &&
        isOid((p as LockedPath).sha256) &&
        Number.isSafeInteger((p as LockedPath).size) &&
        (p as LockedPath).size >= 0,
    );
  const r = e as RunEntry;
  return typeof e === 'object' && e !== null && ok(r.outs) && ok(r.metrics) ? { outs: r.outs, metrics: r.metrics } : undefined;
}
