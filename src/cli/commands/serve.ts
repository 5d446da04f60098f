import { UsageError } from '../../errors.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerServe(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('serve')
    .description("serve every revision's data, read-only: an S3 API, plain HTTP, and a web view of the history")
    .option('--port <n>', 'port to listen on (0 picks a free one)', '8765')
    .option('--host <address>', 'address to listen on; any but loopback needs a token', '127.0.0.1')
    .option('--token <token>', 'a secret every request must present (generated and printed when binding off loopback)')
    .option('-r, --remote <name>', 'remote to fetch objects missing from the cache from (default: the default remote)')
    .option('--bucket <name>', "the S3 bucket name (default: the repository directory's name)")
    .addHelpText('after', examples('tdv serve', 'tdv serve --port 9000', 'aws --endpoint-url http://127.0.0.1:8765 s3 ls s3://BUCKET/main/'));
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if (!/^\d{1,5}$/.test(opts.port) || Number(opts.port) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got "${opts.port}"`);
  };
  ctx.action(cmd, { check }, async ({ out, repo, opts }) => {
    const { startServer } = await import('../../serve/server.js');
    const served = await startServer(repo, { host: opts.host, port: Number(opts.port), token: opts.token, remote: opts.remote, bucket: opts.bucket });
    out.info(`Serving ${repo.root} at ${served.url} (Ctrl-C stops)`);
    await new Promise<void>((resolve) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
    });
    await served.close();
  });
}
