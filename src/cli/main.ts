import { createRequire } from 'node:module';
import { Command, CommanderError } from '@commander-js/extra-typings';
import { causeChain, describeFsError, ExitCode, isSystemError, TdvError } from '../errors.js';
import { maskUrl } from '../formats/config.js';
import { escapeLine, ignoreClosedReader } from '../ui/output.js';
import { CliContext, type CliIO, globalOptions } from './context.js';
import { registerCommands } from './commands/index.js';

const require = createRequire(import.meta.url);

function version(): string {
  return (require('../../package.json') as { version: string }).version;
}

/**
 * Runs one tdv invocation and returns its exit code: 0 success, 1 operation
 * failed, 2 usage error, 130 interrupted (143/129 for SIGTERM/SIGHUP). The only place that turns errors
 * into exit codes, by the table in src/errors.ts.
 */
export async function main(argv: string[], io?: Partial<CliIO>): Promise<number> {
  const ctx = new CliContext({
    cwd: io?.cwd ?? process.cwd(),
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    stdin: io?.stdin ?? process.stdin,
    env: io?.env ?? process.env,
  });
  ctx.argv = argv.slice(2);
  ignoreClosedReader(ctx.io.stdout);
  ignoreClosedReader(ctx.io.stderr);
  // Output that cannot be written (`tdv ls > /dev/full`): one error line and exit 1 when the
  // command ends, not an uncaught stream error with a stack trace. A reader that went away
  // (EPIPE) is not an error (see ignoreClosedReader).
  let outputFailed: NodeJS.ErrnoException | undefined;
  const onOutputError = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'EIO' && err.code !== 'ERR_STREAM_DESTROYED') outputFailed ??= err;
  };
  ctx.io.stdout.on('error', onOutputError);
  const outputResult = async (code: number): Promise<number> => {
    // A failed write is reported on a later turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    ctx.io.stdout.off('error', onOutputError);
    if (outputFailed === undefined || code !== ExitCode.ok) return code;
    ctx.io.stderr.write(`error: cannot write the output: ${escapeLine(outputFailed.message)}\n`);
    return ExitCode.failed;
  };
  const program = globalOptions(new Command('tdv').description('Version data files and pipelines alongside your Git repository.').version(version(), '-V, --version'))
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .addHelpText('after', '\nExit codes: 0 success, 1 the operation failed, 2 usage error, 130 interrupted (Ctrl-C; 143 SIGTERM, 129 SIGHUP).\nRun `tdv <command> --help` for examples.\n');
  registerCommands(program, ctx);
  try {
    await program.parseAsync(argv);
    ctx.lastOutput?.finish();
    return await outputResult(ExitCode.ok);
  } catch (err) {
    return await outputResult(report(err, ctx));
  }
}

function report(err: unknown, ctx: CliContext): number {
  const json = ctx.lastOutput ? ctx.lastOutput.json : wantsJson(ctx.argv);
  /** With --json, the failure is also the one document on stdout (see Output.finish). */
  const document = (code: string, message: string, data?: unknown) => {
    if (!json) return;
    if (ctx.lastOutput) ctx.lastOutput.finish({ code, message, data });
    else ctx.io.stdout.write(`${JSON.stringify({ error: { code, message, data: data ?? null } }, null, 2)}\n`);
  };
  if (err instanceof CommanderError) {
    // Commander has printed its message already.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    if (err.exitCode === 0) return ExitCode.ok;
    document('USAGE', err.message.replace(/^error: /, ''), { commander: err.code });
    return ExitCode.usage;
  }
  const write = (s: string) => ctx.io.stderr.write(s);
  const out = ctx.lastOutput;
  if (err instanceof TdvError) {
    if (out) out.error(err.message);
    else write(`error: ${escapeLine(err.message)}\n`);
    // A library's stack may quote a URL with its user:password@ (an endpoint's credentials).
    if (out?.verbose) for (const line of causeChain(err)) write(`${maskUrl(line)}\n`);
    document(err.code, err.message, err.data);
    return err.exitCode;
  }
  if (isSystemError(err)) {
    // The operating system refused something: its message names the call and the file.
    const described = describeFsError(err, err.path ?? '');
    const msg = described instanceof TdvError ? described.message : err.message;
    if (out) out.error(msg);
    else write(`error: ${escapeLine(msg)}\n`);
    if (out?.verbose) for (const line of causeChain({ cause: err })) write(`${maskUrl(line)}\n`);
    document(described instanceof TdvError ? described.code : (err.code ?? 'SYSTEM'), msg, err.path === undefined ? undefined : { path: err.path });
    return ExitCode.failed;
  }
  const e = err as Error;
  const msg = maskUrl(e?.message ?? String(err));
  write(`error: unexpected failure, this is a bug in tdv: ${escapeLine(msg)}\n`);
  write(`${maskUrl(e?.stack ?? '')}\nPlease report it with the command you ran.\n`);
  document('INTERNAL', `unexpected failure, this is a bug in tdv: ${msg}`);
  return ExitCode.failed;
}

/** Whether the arguments ask for --json (before a `--`): for errors before the command's output exists. */
function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}
