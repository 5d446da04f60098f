import { UsageError } from '../errors.js';
import { posixShellWord } from '../formats/paths.js';
import { addStage, type NewStage } from '../stages/edit.js';
import { PIPELINE_FILE } from '../stages/load.js';
import { checkStageNameArg } from '../stages/names.js';
import { loadDag, readPipelineText } from './lib/pipeline.js';
import type { Repo } from './repo.js';

export interface StageAddOptions {
  name: string;
  /** The command's words: one is taken as written, several are joined with shell quoting. */
  cmd: string[];
  deps?: string[];
  /** `key`, `key1,key2` (params.yaml) or `file:key1,key2`, as `dvc stage add -p`. */
  params?: string[];
  outs?: string[];
  /** Outputs not cached (`cache: false`): kept in Git. */
  outsNoCache?: string[];
  /** Outputs not deleted before the stage runs (`persist: true`). */
  outsPersist?: string[];
  metrics?: string[];
  image?: string;
  wdir?: string;
  desc?: string;
  alwaysChanged?: boolean;
  /** Replace a stage of the same name. */
  force?: boolean;
}

export interface StageAddResult {
  name: string;
  /** True when a stage of that name was replaced (--force). */
  replaced: boolean;
  /** Whether tdv.yaml was created. */
  created: boolean;
}

/**
 * `tdv stage add`: writes one stage into tdv.yaml (creating it if needed)
 * without running it, as `dvc stage add`. The whole pipeline, with the new
 * stage, is validated as `tdv repro` would before anything is written.
 */
export async function stageAdd(repo: Repo, opts: StageAddOptions): Promise<StageAddResult> {
  // Checked here, not only when tdv.yaml is loaded: the name comes from -n, not from a line of the file.
  checkStageNameArg(opts.name, '-n');
  if (opts.cmd.length === 0) throw new UsageError('give the command the stage runs, e.g. `tdv stage add -n train -d data -o model python train.py`');
  const stage: NewStage = {
    ...(opts.desc !== undefined ? { desc: opts.desc } : {}),
    cmd: opts.cmd.length === 1 ? opts.cmd[0]! : opts.cmd.map(posixShellWord).join(' '),
    ...(opts.image !== undefined ? { image: opts.image } : {}),
    ...(opts.wdir !== undefined ? { wdir: opts.wdir } : {}),
    deps: opts.deps ?? [],
    params: parseParamsFlags(opts.params ?? []),
    outs: [
      ...(opts.outs ?? []).map((p) => ({ path: p })),
      ...(opts.outsNoCache ?? []).map((p) => ({ path: p, cache: false as const })),
      ...(opts.outsPersist ?? []).map((p) => ({ path: p, persist: true as const })),
    ],
    metrics: opts.metrics ?? [],
    ...(opts.alwaysChanged ? { alwaysChanged: true } : {}),
  };
  return repo.withLock('stage add', async () => {
    const before = readPipelineText(repo);
    const edit = await addStage(before, opts.name, stage, opts.force === true);
    // Every check repro makes (names, paths, outputs Git tracks, overlaps, cycles) before writing.
    await loadDag(repo, edit.text);
    repo.guard.writeControlFile(PIPELINE_FILE, edit.text);
    return { name: opts.name, replaced: edit.replaced, created: before === undefined };
  });
}

/** `-p` values as tdv.yaml's params list: `a,b` for params.yaml, `file:a,b` for another file. */
export function parseParamsFlags(flags: readonly string[]): NewStage['params'] {
  const out: NewStage['params'] = [];
  const byFile = new Map<string, string[]>();
  for (const f of flags) {
    const colon = f.lastIndexOf(':');
    const file = colon >= 0 ? f.slice(0, colon) : undefined;
    const keys = (colon >= 0 ? f.slice(colon + 1) : f).split(',').map((k) => k.trim());
    if (keys.some((k) => k === '') || file === '') throw new UsageError(`-p ${JSON.stringify(f)}: write keys as key1,key2 or file.yaml:key1,key2`);
    if (file === undefined) out.push(...keys.filter((k) => !out.includes(k)));
    else {
      let list = byFile.get(file);
      if (!list) byFile.set(file, (list = []));
      list.push(...keys.filter((k) => !list!.includes(k)));
    }
  }
  for (const [file, keys] of byFile) out.push({ [file]: keys });
  return out;
}
