import type { Stage } from './load.js';
import type { LockedPath, LockedStage } from './lock.js';
import type { ParamsReader } from './params.js';

/** What a stage's inputs and outputs are now, gathered for the change check and for tdv.lock. */
export interface StageInputs {
  image?: string;
  deps: LockedPath[];
  params: Record<string, Record<string, unknown>>;
}

export interface CheckContext {
  params: ParamsReader;
  /** The hash of a repo-relative path now, or undefined when it does not exist. */
  hashPath(rel: string): Promise<LockedPath | undefined>;
  /** The image ID the stage would run in (resolving or building it), or undefined for a local stage. */
  imageId(stage: Stage): Promise<string | undefined>;
  /**
   * For a path `hashPath` found no data at: what stands there instead ("a
   * symlink", "a special file"), or undefined when nothing does. Without it,
   * every such output is reported missing.
   */
  inTheWay?(rel: string): string | undefined;
}

export interface StageCheck {
  /** Why the stage must run; empty when it is up to date. */
  reasons: string[];
  /** Inputs as they are now (to record after a run). Undefined when the check stopped early. */
  inputs?: StageInputs;
  /** Deps that do not exist. */
  missingDeps: string[];
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
const samePath = (a: LockedPath | undefined, b: LockedPath | undefined) => a?.sha256 === b?.sha256 && a?.size === b?.size;

/**
 * Decides whether a stage changed since `locked`, cheapest check first: the
 * command and the lists of paths (free), params (a YAML read), the image ID (a
 * docker call), then deps and outputs (hashes, mostly from the stat cache).
 * With `all`, every reason is collected (for status and --dry); otherwise the
 * first one decides, except that inputs are always gathered so they can be
 * recorded.
 */
export async function checkStage(stage: Stage, locked: LockedStage | undefined, ctx: CheckContext, all = false): Promise<StageCheck> {
  const reasons: string[] = [];
  const enough = () => !all && reasons.length > 0;
  // Frozen: its deps, params and image are not looked at (repro never runs it); status still
  // tells when tdv.yaml or the outputs no longer match what tdv.lock records.
  if (stage.frozen) return { reasons: await frozenReasons(stage, locked, ctx), missingDeps: [] };
  if (stage.alwaysChanged) reasons.push('always changed');
  if (!locked) reasons.push('never run');
  else {
    if (!sameJson(locked.cmd, stage.cmd)) reasons.push('cmd changed');
    if (!sameJson(locked.deps.map((d) => d.path).sort(), [...stage.deps].sort())) reasons.push('deps list changed');
    if (!sameJson(locked.outs.map((d) => d.path).sort(), [...stage.outs].sort()) || !sameJson(locked.metrics.map((d) => d.path).sort(), [...stage.metrics].sort())) {
      reasons.push('outs list changed');
    } else {
      // An output switched between cached and kept in Git (`cache: false`) is recorded anew.
      const switched = locked.outs.filter((o) => (o.cache === false) !== (stage.uncached?.has(o.path) === true)).map((o) => o.path);
      if (switched.length) reasons.push(`outs cache changed: ${switched.join(', ')}`);
    }
  }
  const params: StageInputs['params'] = {};
  for (const p of stage.params) params[p.file] = await ctx.params.values(p.file, p.keys, stage.name);
  if (locked && !enough()) {
    const changed = Object.entries(params).flatMap(([f, kv]) => Object.keys(kv).filter((k) => !sameJson(kv[k], locked.params[f]?.[k])));
    if (changed.length || !sameJson(Object.keys(locked.params).sort(), Object.keys(params).sort())) reasons.push(`params changed: ${changed.join(', ') || 'files'}`);
  }
  // Whether the stage runs in a container at all is in tdv.yaml and tdv.lock: status (which does
  // not ask Docker) and repro decide it alike. Which image is then Docker's answer.
  const docker = stage.image !== undefined || stage.build !== undefined;
  const gainedOrLost = locked !== undefined && docker !== (locked.image !== undefined);
  if (locked && !enough() && gainedOrLost) reasons.push(docker ? `image added: ${stage.image ?? `build ${stage.build!.context}`}` : 'image removed');
  const image = await ctx.imageId(stage);
  if (locked && !enough() && !gainedOrLost && docker && locked.image !== image) reasons.push(`image changed: now ${image?.slice(0, 19)}`);
  const deps: LockedPath[] = [];
  const missingDeps: string[] = [];
  const changedDeps: string[] = [];
  const lockedDeps = new Map((locked?.deps ?? []).map((d) => [d.path, d]));
  for (const d of stage.deps) {
    const now = await ctx.hashPath(d);
    if (!now) missingDeps.push(d);
    else deps.push(now);
    if (locked && now && !samePath(now, lockedDeps.get(d))) changedDeps.push(d);
  }
  if (missingDeps.length) reasons.push(`deps missing: ${missingDeps.join(', ')}`);
  if (changedDeps.length && locked) reasons.push(`deps changed: ${changedDeps.join(', ')}`);
  if (locked && !enough()) reasons.push(...(await outsReasons(stage, locked, ctx)));
  return { reasons, inputs: { ...(image ? { image } : {}), deps, params }, missingDeps };
}

/** How the outputs on disk differ from what tdv.lock records for them. */
async function outsReasons(stage: Stage, locked: LockedStage, ctx: CheckContext): Promise<string[]> {
  const reasons: string[] = [];
  const lockedOuts = new Map([...locked.outs, ...locked.metrics].map((o) => [o.path, o]));
  const missing: string[] = [];
  const modified: string[] = [];
  // A symlink left where an output was is not "missing": said once, as what it is.
  const replaced = new Map<string, string[]>();
  for (const o of [...stage.outs, ...stage.metrics]) {
    const now = await ctx.hashPath(o);
    const instead = now ? undefined : ctx.inTheWay?.(o);
    if (instead !== undefined) replaced.set(instead, [...(replaced.get(instead) ?? []), o]);
    else if (!now) missing.push(o);
    else if (!samePath(now, lockedOuts.get(o))) modified.push(o);
  }
  if (missing.length) reasons.push(`outs missing: ${missing.join(', ')}`);
  for (const [instead, outs] of replaced) reasons.push(`outs replaced by ${instead}: ${outs.join(', ')}`);
  if (modified.length) reasons.push(`outs modified: ${modified.join(', ')}`);
  return reasons;
}

/** A frozen stage: "frozen", then what no longer matches tdv.lock (the command, the outputs). */
async function frozenReasons(stage: Stage, locked: LockedStage | undefined, ctx: CheckContext): Promise<string[]> {
  const reasons = ['frozen'];
  if (!locked) return [...reasons, 'never run'];
  if (!sameJson(locked.cmd, stage.cmd)) reasons.push('cmd changed');
  return [...reasons, ...(await outsReasons(stage, locked, ctx))];
}
