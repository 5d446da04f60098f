import type { JobExchange } from '../../stages/job.js';
import type { Repo } from '../repo.js';
import { openRemote } from './remotes.js';

/**
 * The byte exchange for jobs on engines that fetch their own inputs
 * (Kubernetes): the remote `remote` (default core.remote) when it is on S3,
 * else undefined. The remote is opened under its layout; the exchange uses
 * the raw S3 remote beneath it (remote/exchange.ts keeps its own keys).
 */
export async function openExchange(repo: Repo, remote?: string): Promise<JobExchange | undefined> {
  const opened = await openRemote(repo, remote);
  const raw = 'raw' in opened ? (opened as { raw: unknown }).raw : opened;
  const { S3Remote } = await import('../../remote/s3.js');
  if (!(raw instanceof S3Remote)) {
    opened.close();
    return undefined;
  }
  const { S3Exchange } = await import('../../remote/exchange.js');
  return new S3Exchange(raw);
}
