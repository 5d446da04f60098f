/**
 * Placeholder until the Kubernetes change lands (issue 15): the byte exchange
 * through the repository's S3 remote that Kubernetes Jobs fetch inputs from
 * and push outputs to. Keep the signature: repro calls it for runners of
 * type kubernetes.
 */
import type { JobExchange } from '../../stages/job.js';
import type { Repo } from '../repo.js';

/** The exchange on remote `remote` (default: the default remote), or undefined when there is none to use. */
export async function openExchange(_repo: Repo, _remote?: string): Promise<JobExchange | undefined> {
  return undefined;
}
