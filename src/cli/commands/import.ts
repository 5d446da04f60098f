import path from 'node:path';
import { maskUrl } from '../../formats/config.js';
import { formatBytes, plural } from '../../ui/output.js';
import { type CliContext, examples, parseJobs, parseLimitRate, type Program } from '../context.js';
import { q, shs } from '../render.js';
import { progressFor } from '../transfer.js';

export function registerImport(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('import')
    .description("download data another tdv repository tracks (or a Git file of it) from that repository's remote, and track it here: `tdv update` moves it to newer versions")
    .argument('<url>', 'the source repository: a path, file://, ssh:// or https:// URL')
    .argument('<path>', 'the file or directory in the source repository')
    .option('--rev <rev>', 'a branch, tag, commit id or date (@2016-07-31) of the source (default: its default branch)')
    .option('-o, --out <path>', 'where to put it; an existing directory: inside it (default: the last component of <path>, in the current directory)')
    .option('-r, --remote <name>', "the source's remote to read the data from (default: the source's default remote)")
    .option('-f, --force', 'replace what is already at the destination (what the cache lacks of it is lost)')
    .option('-j, --jobs <n>', 'parallel downloads', parseJobs)
    .option('--limit-rate <rate>', 'at most this many bytes per second from the remote, e.g. 500k or 4M', parseLimitRate)
    .option('--json', 'print one JSON object: path, pointer, import (url, path, rev, commit), oid, size, nfiles, fetch, gitFiles')
    .addHelpText('after', examples('tdv import https://github.com/acme/datasets data/trips.csv', 'tdv import ../registry images --rev v2 -o data/images', 'git add data/images.tdv data/.gitignore'));
  ctx.action(cmd, async ({ out, repo, args: [url, srcPath], opts, resolve, show }) => {
    const { importData } = await import('../../repo/import.js');
    const progress = await progressFor(out, 'import');
    const res = await importData(repo, {
      url,
      cwd: ctx.io.cwd,
      path: srcPath,
      rev: opts.rev,
      out: resolve(opts.out ?? path.posix.basename(srcPath.replace(/\/+$/, ''))),
      remote: opts.remote,
      force: opts.force,
      jobs: opts.jobs,
      limitRate: opts.limitRate,
      progress,
    }).finally(() => progress?.finish());
    show(res, (res) => {
      const what = res.nfiles === undefined ? formatBytes(res.size) : `${plural(res.nfiles, 'file')}, ${formatBytes(res.size)}`;
      const at = `${res.import.rev ?? 'HEAD'} (${res.import.commit.slice(0, 12)})`;
      out.info(`Imported ${q(res.import.path)} of ${maskUrl(res.import.url)} at ${at} into ${q(res.path)} (${what}) -> ${q(res.pointer)}`);
      if (repo.git) out.info(`\nTo track it with Git, run:\n  git add ${shs(res.gitFiles)}`);
    });
  });
}
