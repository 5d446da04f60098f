import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { errnoCode } from '../errors.js';
import { writeFileAtomicSync } from '../util/fs.js';
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
      const e = JSON.parse(fs.readFileSync(this.file(key), 'utf8')) as RunEntry;
      return Array.isArray(e.outs) && Array.isArray(e.metrics) ? e : undefined;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT' || err instanceof SyntaxError) return undefined; // absent, or damaged: just rerun
      throw err;
    }
  }

  put(key: string, entry: RunEntry): void {
    const f = this.file(key);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    writeFileAtomicSync(f, JSON.stringify(entry));
  }
}
