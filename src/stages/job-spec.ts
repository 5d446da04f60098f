/**
 * A stage as a job spec for a runner elsewhere, and the check of what such a
 * runner brought back (see job.ts). Plumbing: no repository, no writes; the
 * caller (repo/lib/job.ts) stores inputs and outputs in the cache.
 *
 *   stage + its dep files (hashed, cached)  ->  jobSpec()         ->  JobSpec
 *   staging dir after the run + JobResult    ->  checkStaged()     ->  files to cache, or a refusal
 */
import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../errors.js';
import { quotePath, relPathProblem } from '../formats/paths.js';
import type { JobFile, JobResult, JobSpec } from './job.js';
import { type Stage, stageCommands } from './load.js';

/** The job spec of `stage`: its commands, env, wdir, resources, the files it may read, and the paths it may write. */
export function jobSpec(stage: Stage, inputs: readonly JobFile[], image: JobSpec['image']): JobSpec {
  return {
    stage: stage.name,
    ...(image ? { image } : {}),
    cmd: stageCommands(stage),
    env: { ...stage.env },
    wdir: stage.wdir,
    inputs: mergeInputs(inputs),
    outputs: [...stage.outs, ...stage.metrics],
    ...(stage.resources ? { resources: { ...stage.resources } } : {}),
    ...(stage.persist?.size ? { persist: [...stage.persist] } : {}),
  };
}

/**
 * Inputs sorted by path, each once. Two deps may name the same file (a
 * directory and a file in it): the same path must then be the same content,
 * which it is unless the workspace changed while it was being hashed.
 */
export function mergeInputs(inputs: readonly JobFile[]): JobFile[] {
  const byPath = new Map<string, JobFile>();
  for (const f of inputs) {
    const had = byPath.get(f.path);
    if (had && had.sha256 !== f.sha256) {
      throw new TdvError('CHANGED_WHILE_ADDING', `${quotePath(f.path)} changed while the stage's inputs were being gathered; run again when nothing writes to it`, { data: { path: f.path } });
    }
    byPath.set(f.path, had ?? f);
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** A regular file found under the staging directory, at its repo-relative path. */
export interface StagedFile {
  rel: string;
  abs: string;
  st: fs.Stats;
}

/** What a runner brought back, checked: its files by declared output (a file output has one entry, `rel` equal to it). */
export interface Staged {
  files: StagedFile[];
  /** Declared outputs the runner did not bring back. */
  missing: string[];
}

/**
 * Walks `staging` (never following a link) and checks what a runner left
 * there against the declared `outputs`: every path must be a declared output,
 * inside one, or a directory on the way to one; nothing may be a symlink or a
 * special file; a declared file output must be a file. Every file must be
 * claimed by `result.outputs` with the size found (hashes are compared by the
 * caller, which hashes as it caches). A refusal is JOB_OUTPUT_REFUSED naming
 * the path and the runner.
 */
export function checkStaged(staging: string, outputs: readonly string[], result: Pick<JobResult, 'outputs'>, runner: string, stage: string): Staged {
  const refuse = (rel: string, why: string) =>
    new TdvError('JOB_OUTPUT_REFUSED', `stage "${stage}": runner ${runner} returned ${quotePath(rel)}, ${why}; nothing was recorded for it`, { data: { stage, runner, path: rel } });
  const declared = new Set(outputs);
  const inside = (rel: string) => {
    for (let d = rel; d.includes('/');) {
      d = d.slice(0, d.lastIndexOf('/'));
      if (declared.has(d)) return true;
    }
    return false;
  };
  const onTheWay = (rel: string) => outputs.some((o) => o.startsWith(`${rel}/`));
  const files: StagedFile[] = [];
  const walk = (dir: string, rel: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, name);
      const problem = relPathProblem(r);
      if (problem !== undefined) throw refuse(r, `whose name ${problem}`);
      const st = fs.lstatSync(abs);
      const mine = declared.has(r) || inside(r);
      if (st.isSymbolicLink()) throw refuse(r, 'a symlink (tdv takes only regular files and directories from a runner)');
      if (st.isDirectory()) {
        if (!mine && !onTheWay(r)) throw refuse(r, 'which the stage does not declare as an output');
        walk(abs, r);
      } else if (st.isFile()) {
        if (!mine) throw refuse(r, onTheWay(r) ? 'a file where a declared output needs a directory' : 'which the stage does not declare as an output');
        files.push({ rel: r, abs, st });
      } else throw refuse(r, 'a special file (FIFO, socket or device)');
    }
  };
  walk(staging, '');
  const claims = new Map(result.outputs.map((o) => [o.path, o]));
  for (const f of files) {
    const c = claims.get(f.rel);
    if (!c) throw refuse(f.rel, 'which its result does not list');
    if (c.size !== f.st.size) throw refuse(f.rel, `whose size (${f.st.size} bytes) is not the ${c.size} its result claims`);
  }
  const found = new Set(files.map((f) => f.rel));
  for (const c of result.outputs) if (!found.has(c.path)) throw refuse(c.path, 'which its result lists but it did not bring back');
  const present = (o: string) => files.some((f) => f.rel === o || f.rel.startsWith(`${o}/`)) || fs.lstatSync(path.join(staging, o), { throwIfNoEntry: false })?.isDirectory() === true;
  return { files, missing: outputs.filter((o) => !present(o)) };
}
