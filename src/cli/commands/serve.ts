import { UsageError } from '../../errors.js';
import { type CliContext, examples, type Program } from '../context.js';

export function registerServe(program: Program, ctx: CliContext): void {
  const cmd = program
    .command('serve')
    .description("serve every revision's data, read-only: an S3 API, plain HTTP, and a web view of the history")
    .option('--port <n>', 'port to listen on (0 picks a free one)', '8765')
    .option('--host <address>', 'address to listen on; any but loopback needs a token', '127.0.0.1')
    .option('--token <token>', 'a secret every request must present (generated and printed when binding off loopback); TDV_SERVE_TOKEN in the environment keeps it out of the process list')
    .option('-r, --remote <name>', 'remote to fetch objects missing from the cache from (default: the default remote)')
    .option('--bucket <name>', "the S3 bucket name (default: the repository directory's name)")
    .addHelpText(
      'after',
      examples(
        'tdv serve',
        'tdv serve --port 9000',
        'curl http://127.0.0.1:8765/main/data/',
        'aws --endpoint-url http://127.0.0.1:8765 s3 ls s3://BUCKET/main/',
        'TDV_SERVE_TOKEN="$(openssl rand -base64 32)" tdv serve --host 0.0.0.0',
      ),
    );
  // The environment's token: other users of the machine read a command line (`ps`), not an environment.
  const tokenOf = (opts: ReturnType<typeof cmd.opts>): string | undefined => opts.token ?? (ctx.io.env.TDV_SERVE_TOKEN || undefined);
  const check = (opts: ReturnType<typeof cmd.opts>) => {
    if (!/^\d{1,5}$/.test(opts.port) || Number(opts.port) > 65535) throw new UsageError(`--port must be a number from 0 to 65535, got "${opts.port}"`);
    // An empty address makes Node listen on every interface, and the URL printed would be `http://:PORT`.
    if (opts.host.trim() === '') throw new UsageError('--host must be an address (127.0.0.1 for this machine only, 0.0.0.0 for every interface), got ""');
    const token = tokenOf(opts);
    if (token !== undefined && !/^[\x21-\x7e]{16,512}$/.test(token)) {
      throw new UsageError(`${opts.token !== undefined ? '--token' : 'TDV_SERVE_TOKEN'} must be 16 to 512 printable ASCII characters without spaces (it is sent in headers, URLs and cookies)`);
    }
    if (opts.bucket !== undefined && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(opts.bucket)) {
      throw new UsageError(`--bucket must be a valid S3 bucket name (3 to 63 lower-case letters, digits, dots and hyphens), got "${opts.bucket}"`);
    }
  };
  ctx.action(cmd, { check }, async ({ out, repo, opts }) => {
    const { startServer } = await import('../../serve/server.js');
    const { generateToken, isLoopback } = await import('../../serve/auth.js');
    // Off loopback a token is required: a generated one is printed, as Jupyter does.
    const given = tokenOf(opts);
    const generated = given === undefined && !isLoopback(opts.host) ? generateToken() : undefined;
    const token = given ?? generated;
    const served = await startServer(repo, {
      host: opts.host,
      port: Number(opts.port),
      token,
      remote: opts.remote,
      bucket: opts.bucket,
      onError: (m) => out.warn(m),
    });
    // Listening for the stop signals before saying where it serves: whoever reads that line may signal at once.
    const stopped = new Promise<void>((resolve) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
    });
    for (const note of served.notes) out.warn(note);
    out.info(`Serving ${repo.root} at ${served.url} (bucket ${served.bucket})`);
    if (generated) out.info(`Token: ${generated} (send it as "Authorization: Bearer TOKEN", open ${served.url}/?token=TOKEN, or use it as the S3 secret access key)`);
    await stopped;
    await served.close();
  });
}
