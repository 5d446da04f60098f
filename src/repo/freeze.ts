import { TdvError, UsageError } from '../errors.js';
import { setFrozen } from '../stages/edit.js';
import { PIPELINE_FILE } from '../stages/load.js';
import { stagesNamed } from '../stages/template.js';
import { loadDag, readPipelineText } from './lib/pipeline.js';
import type { Repo } from './repo.js';

export interface FreezeResult {
  /** Stages whose `frozen` changed. */
  changed: string[];
  /** Stages that were already frozen (freeze) or not frozen (unfreeze). */
  unchanged: string[];
}

/** `tdv freeze`: marks stages `frozen: true` in tdv.yaml, so repro never runs them. */
export function freeze(repo: Repo, names: string[]): Promise<FreezeResult> {
  return setFrozenStages(repo, names, true);
}

/** `tdv unfreeze`: removes `frozen` from stages in tdv.yaml. */
export function unfreeze(repo: Repo, names: string[]): Promise<FreezeResult> {
  return setFrozenStages(repo, names, false);
}

/**
 * Edits `frozen` of the named stages in tdv.yaml, keeping its comments and
 * layout. The pipeline is validated before and after the edit; nothing is
 * written when a name is unknown or the file has an error.
 */
async function setFrozenStages(repo: Repo, names: string[], frozen: boolean): Promise<FreezeResult> {
  const verb = frozen ? 'freeze' : 'unfreeze';
  if (names.length === 0) throw new UsageError(`name the stages to ${verb}, e.g. \`tdv ${verb} train\``);
  return repo.withLock(verb, async () => {
    const text = readPipelineText(repo);
    if (text === undefined) throw new TdvError('NO_PIPELINE', `no ${PIPELINE_FILE} in ${repo.root}; declare stages there first (\`tdv stage add\`)`);
    const dag = await loadDag(repo, text);
    for (const n of names) {
      // A foreach/matrix group's name (`fit` for fit@a, fit@b) is accepted, as repro accepts it.
      const known = dag?.stages.has(n) || stagesNamed(dag?.stages.keys() ?? [], n).some((s) => dag?.stages.has(s));
      if (!known) throw new UsageError(`unknown stage "${n}"; stages in ${PIPELINE_FILE}: ${[...(dag?.stages.keys() ?? [])].join(', ') || '(none)'}`);
    }
    const unique = [...new Set(names)];
    const edit = await setFrozen(text, unique, frozen);
    if (edit.changed.length) {
      await loadDag(repo, edit.text);
      repo.guard.writeControlFile(PIPELINE_FILE, edit.text);
    }
    return { changed: edit.changed, unchanged: unique.filter((n) => !edit.changed.includes(n)) };
  });
}
