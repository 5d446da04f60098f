import { createRequire } from 'node:module';
import { Command, CommanderError } from 'commander';
import { causeChain, describeFsError, ExitCode, isSystemError, TdvError } from '../errors.js';
import { maskUrl } from '../formats/config.js';
import { escapeLine } from '../ui/output.js';
import { CliContext, type CliIO } from './context.js';
import { registerCommands } from './commands/index.js';

const require = createRequire(import.meta.url);

function version(): string {
  return (require('../../package.json') as { version: string }).version;
}

/**
 * Runs one tdv invocation and returns its exit code: 0 success, 1 operation
 * failed, 2 usage error, 130 interrupted. The only place that turns errors
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
  const program = new Command('tdv')
    .description('Version data files and pipelines alongside your Git repository.')
    .version(version(), '-V, --version')
    .option('-q, --quiet', 'print only errors')
    .option('-v, --verbose', 'print debugging details')
    .showSuggestionAfterError()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .addHelpText(
      'after',
      '\nExit codes: 0 success, 1 the operation failed, 2 usage error, 130 interrupted (Ctrl-C).\nRun `tdv <command> --help` for examples.\n',
    );
  registerCommands(program, ctx);
  try {
    await program.parseAsync(argv);
    return ExitCode.ok;
  } catch (err) {
    return report(err, ctx);
  }
}

function report(err: unknown, ctx: CliContext): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message already.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
    return err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  }
  const write = (s: string) => ctx.io.stderr.write(s);
  const out = ctx.lastOutput;
  if (err instanceof TdvError) {
    if (out) out.error(err.message);
    else write(`error: ${escapeLine(err.message)}\n`);
    // A library's stack may quote a URL with its user:password@ (an endpoint's credentials).
    if (out?.verbose) for (const line of causeChain(err)) write(`${maskUrl(line)}\n`);
    return err.exitCode;
  }
  if (isSystemError(err)) {
    // The operating system refused something: its message names the call and the file.
    const described = describeFsError(err, err.path ?? '');
    const msg = described instanceof TdvError ? described.message : err.message;
    if (out) out.error(msg);
    else write(`error: ${escapeLine(msg)}\n`);
    if (out?.verbose) for (const line of causeChain({ cause: err })) write(`${maskUrl(line)}\n`);
    return ExitCode.failed;
  }
  const e = err as Error;
  write(`error: unexpected failure, this is a bug in tdv: ${escapeLine(maskUrl(e?.message ?? String(err)))}\n`);
  write(`${maskUrl(e?.stack ?? '')}\nPlease report it with the command you ran.\n`);
  return ExitCode.failed;
}
