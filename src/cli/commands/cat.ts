import path from 'node:path';
import { TdvError, UsageError } from '../../errors.js';
import type { Repo } from '../../repo/repo.js';
import { toPosix } from '../../util/fs.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerCat(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('cat')
    .description("write one file's bytes at a revision to stdout, from the cache or the remote, verified by hash")
    .argument('<path>', 'the file (data or Git), relative to where tdv runs; with --url, to the top of that repository')
    .option('--rev <rev>', 'the revision: a branch, tag, commit or date (@2016-07-31); default: HEAD')
    .option('--url <url>', 'read from another repository (a path, file://, ssh:// or https:// URL)')
    .option('-r, --remote <name>', 'the remote a missing object comes from (default: the default remote)')
    .addHelpText(
      'after',
      '\nA cache object is hashed while it streams: if it turns out damaged, tdv cat fails (exit 1) after writing it; `tdv fsck` finds such objects.\n' +
        examples('tdv cat --rev v1 data/trips.csv | head', 'tdv cat --rev @2016-07-31 params.yaml', 'tdv cat --url https://github.com/org/registry models/model.onnx > model.onnx'),
    );
  ctx.action(cmd, { repo: false }, async ({ out, args: [file], opts }) => {
    let repo: Repo | undefined;
    try {
      repo = await ctx.openRepo(out);
    } catch (err) {
      // Outside any repository `tdv cat --url` still works.
      if (!(err instanceof TdvError && err.code === 'NOT_A_REPO') || opts.url === undefined) throw err;
    }
    let rel = file;
    if (opts.url === undefined) {
      const r = toPosix(path.relative(repo!.root, ctx.resolve(file)));
      if (r === '..' || r.startsWith('../') || path.isAbsolute(r)) throw new UsageError(`${file} is outside the repository (${repo!.root})`);
      rel = r;
    }
    const { cat } = await import('../../repo/cat.js');
    await cat(repo, { path: rel, rev: opts.rev, url: opts.url, remote: opts.remote, cwd: ctx.io.cwd }, ctx.io.stdout);
  });
}
