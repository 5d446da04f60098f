import path from 'node:path';
import { ExitCode, TdvError } from '../../errors.js';
import type { Remote } from '../../remote/remote.js';
import { isInside } from '../../util/fs.js';
import { resolveRemoteUrl } from '../../formats/config.js';
import type { Repo } from '../repo.js';

/** The remote named `name`, or the default one: its implementation chosen by URL. `jobs` sizes its connection pool. */
export async function openRemote(repo: Repo, name?: string, jobs?: number): Promise<Remote> {
  const chosen = name ?? repo.config.core.remote;
  const known = Object.keys(repo.config.remote);
  if (chosen === undefined) {
    const hint = known.length > 0 ? `pass -r NAME (known: ${known.join(', ')}) or set a default with \`tdv remote default NAME\`` : 'add one with `tdv remote add -d NAME URL` (a directory, or s3://bucket/prefix)';
    throw new TdvError('NO_REMOTE', `no remote configured; ${hint}`);
  }
  const cfg = repo.config.remote[chosen];
  if (!cfg) {
    const where = name === undefined ? ` (core.remote in ${path.join('.tdv', 'config.yaml')})` : '';
    throw new TdvError(
      'UNKNOWN_REMOTE',
      `unknown remote "${chosen}"${where}; ${known.length > 0 ? `known remotes: ${known.join(', ')}` : 'no remotes are configured: add one with `tdv remote add NAME URL`'}`,
      { exitCode: name === undefined ? ExitCode.failed : ExitCode.usage },
    );
  }
  const loc = resolveRemoteUrl(repo.root, cfg.url);
  if (loc.kind === 'local') {
    // Checked again here, not only by `tdv remote add`: a committed config may be hand-edited.
    if (loc.path === repo.root || isInside(repo.tdvDir, loc.path)) {
      throw new TdvError('BAD_REMOTE', `remote "${chosen}" points at ${loc.path}, the repository root or inside .tdv/; fix it with \`tdv remote modify ${chosen} url PATH\``);
    }
    const { LocalRemote } = await import('../../remote/local.js');
    return new LocalRemote(chosen, loc.path);
  }
  const { createS3Remote } = await import('../../remote/s3.js');
  return createS3Remote(chosen, cfg, { bucket: loc.bucket, prefix: loc.prefix }, { jobs });
}

/** Parallel transfers: `-j`, else the remote's `jobs`, else its default. */
export function remoteJobs(repo: Repo, remote: Remote, jobs?: number): number {
  return jobs ?? repo.config.remote[remote.name]?.jobs ?? remote.defaultJobs;
}
