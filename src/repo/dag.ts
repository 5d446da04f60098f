import { TdvError } from '../errors.js';
import type { Dag } from '../stages/graph.js';
import { loadDag } from './lib/pipeline.js';
import type { Repo } from './repo.js';

/** The pipeline of tdv.yaml as a DAG, for `tdv dag` to draw. */
export async function dag(repo: Repo): Promise<Dag> {
  const d = await loadDag(repo);
  if (!d) throw new TdvError('NO_PIPELINE', `no tdv.yaml in ${repo.root}; there is no pipeline to show`);
  return d;
}
