import { TdvError } from '../../errors.js';
import type { GetResult } from '../../repo/get.js';
import type { Repo } from '../../repo/repo.js';
import { formatBytes, type Output, plural } from '../../ui/output.js';
import { q } from '../render.js';
import { type CliContext, examples, parseJobs, parseLimitRate, type Program } from '../context.js';

export function registerGet(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('get')
    .description("download a file or directory another repository tracks (or a Git file of it) from that repository's remote, without tracking it here")
    .argument('<url>', 'the repository: a path, file://, ssh:// or https:// URL')
    .argument('<path>', 'the file or directory in it, relative to its top')
    .option('--rev <rev>', 'the revision: a branch, tag, commit or date (@2016-07-31); default: its default branch')
    .option('-o, --out <path>', 'where to write (default: the last component of <path>, here)')
    .option('-f, --force', 'replace an existing output')
    .option('-r, --remote <name>', "the repository's remote to read from (default: its default remote)")
    .option('-j, --jobs <n>', 'parallel downloads', parseJobs)
    .option('--limit-rate <rate>', 'at most this many bytes per second from the remote, e.g. 500k or 4M', parseLimitRate)
    .option('--json', 'print one JSON object (schema in README)')
    .addHelpText(
      'after',
      '\nWorks inside a tdv repository (its cache is shared; .tdv/config.local.yaml credentials for a remote of the same name and URL apply) and outside any.\n' +
        examples(
          'tdv get https://github.com/org/registry datasets/cities',
          'tdv get ../registry models/model.onnx --rev v2 -o model.onnx',
          'tdv get file:///srv/registry data/trips.csv --rev @2016-07-31',
        ),
    );
  ctx.action(cmd, { repo: false }, async ({ out, args: [url, file], opts, show }) => {
    let repo: Repo | undefined;
    try {
      repo = await ctx.openRepo(out);
    } catch (err) {
      if (!(err instanceof TdvError && err.code === 'NOT_A_REPO')) throw err;
    }
    const { get } = await import('../../repo/get.js');
    const res = await get(
      repo,
      { url, path: file, rev: opts.rev, out: opts.out === undefined ? undefined : ctx.resolve(opts.out), force: opts.force, remote: opts.remote, jobs: opts.jobs, limitRate: opts.limitRate },
      ctx.io.cwd,
    );
    show(res, render);
  });
}

function render(r: GetResult, out: Output): void {
  const what = r.kind === 'dir' ? `${plural(r.files, 'file')}, ${formatBytes(r.bytes)}` : formatBytes(r.bytes);
  // Quoted: a source's file names, the URL and -o are anyone's bytes, and must not forge lines or colour.
  out.info(`Downloaded ${q(r.path)} (${what}) of ${q(r.url)} at ${r.commit.slice(0, 12)} to ${q(r.out)}`);
}
