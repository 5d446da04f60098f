import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Command, CommandUnknownOpts, OptionValues } from '@commander-js/extra-typings';
import { UsageError } from '../errors.js';
import { parseRate, RATE_SYNTAX } from '../formats/rate.js';
import type { Repo } from '../repo/repo.js';
import { Output } from '../ui/output.js';
import { sh } from './render.js';

export interface CliIO {
  cwd: string;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  stdin: Readable & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
}

/**
 * The options `tdv` takes before a command's name (`tdv -q push`), which every
 * command's Output follows. Declared here, not in main.ts, so that the
 * commands' types know them (`Program`) without importing main.
 */
export function globalOptions(program: Command) {
  return program.option('-q, --quiet', 'print only errors').option('-v, --verbose', 'print debugging details');
}

/** The program the commands are registered on; commander types each command's options from their declarations. */
export type Program = ReturnType<typeof globalOptions>;

/**
 * What a command's action gets from `CliContext.action`: everything its
 * preamble used to build by hand, so that the action is "call the porcelain,
 * render the result".
 */
export interface Action<Args extends unknown[], Opts, R> {
  /** Where to print, from the global options and the command's `--json`. */
  out: Output;
  /** The repository tdv runs in (none for commands registered with `{ repo: false }`). */
  repo: R;
  /** The command's arguments, typed from its `.argument()`s (a variadic one is a string[]). */
  args: Args;
  /** The command's options, typed from its `.option()`s. */
  opts: Opts;
  /** A path as the user typed it (relative to where tdv runs), made absolute. */
  resolve(p: string): string;
  resolve(ps: readonly string[]): string[];
  /** The result as the `--json` document, or, without `--json`, rendered by `render`. */
  show<T>(res: T, render: (res: T, out: Output) => void): void;
}

/**
 * A command's flags, checked as options of the porcelain (`P`) they are passed
 * to: every flag but `--json` (the CLI's) must be one of P's options, else the
 * type names the strays. Spreading flags into P's options type-checks the
 * values of the keys both have, but a flag P does not know (a typo, a flag
 * the CLI handles itself) would be passed on silently and do nothing.
 */
export type FlagsOf<P, Flags> = [Exclude<keyof Flags, keyof P | 'json'>] extends [never] ? Flags : { 'flags the porcelain does not take': Exclude<keyof Flags, keyof P | 'json'> };

/** An action as `CliContext.action` takes it, with or without the repository. */
type Run<Args extends unknown[], Opts> = ((a: Action<Args, Opts, Repo>) => Promise<void>) | ((a: Action<Args, Opts, undefined>) => Promise<void> | void);

/** How `CliContext.action` prepares an action. */
export interface ActionSetup<Args extends unknown[], Opts> {
  /** Usage checks of the options, made before the repository is opened (a usage error wins over "not a repository"). */
  check?: (opts: Opts, args: Args) => void;
  /** The directory to open the repository from, if not where tdv runs (as the user typed it). */
  at?: (args: Args) => string | undefined;
}

/** What every command action gets: the streams, and helpers to open the repo and talk to the user. */
export class CliContext {
  lastOutput?: Output;
  /** The arguments after `tdv`, as given. */
  argv: readonly string[] = [];

  constructor(readonly io: CliIO) {}

  /**
   * Makes `run` the action of `cmd`: the one preamble of every command. It
   * builds the Output from the global options and `--json`, runs
   * `setup.check`, opens the repository (unless `setup.repo` is false: init,
   * doctor, completion) and hands `run` the arguments and options, typed from
   * the command's declarations, with helpers to resolve paths and to print
   * the result as JSON or for people. Errors go up to main, the one place
   * that turns them into lines and exit codes.
   */
  action<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(cmd: Command<Args, Opts, Globals>, run: (a: Action<Args, Opts, Repo>) => Promise<void>): void;
  action<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(
    cmd: Command<Args, Opts, Globals>,
    setup: ActionSetup<Args, Opts> & { repo?: true },
    run: (a: Action<Args, Opts, Repo>) => Promise<void>,
  ): void;
  action<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(
    cmd: Command<Args, Opts, Globals>,
    setup: ActionSetup<Args, Opts> & { repo: false },
    run: (a: Action<Args, Opts, undefined>) => Promise<void> | void,
  ): void;
  action<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(
    cmd: Command<Args, Opts, Globals>,
    ...given: [Run<Args, Opts>] | [ActionSetup<Args, Opts> & { repo?: boolean }, Run<Args, Opts>]
  ): void {
    const [setup, run] = given.length === 1 ? [{}, given[0]] : given;
    // Commander calls an action with the arguments, the options, then the command itself.
    cmd.action(async (...values: unknown[]) => {
      const args = values.slice(0, -2) as Args;
      const opts = values.at(-2) as Opts;
      const out = await this.output(cmd);
      setup.check?.(opts, args);
      const at = setup.at?.(args);
      const repo = setup.repo === false ? undefined : await this.openRepo(out, at === undefined ? undefined : this.resolve(at));
      const resolve = ((p: string | readonly string[]) => (typeof p === 'string' ? this.resolve(p) : p.map((x) => this.resolve(x)))) as Action<Args, Opts, Repo>['resolve'];
      const show = <T>(res: T, render: (res: T, out: Output) => void) => (out.json ? out.data(res) : render(res, out));
      // The overloads tie `repo` to `setup.repo`: a Repo unless { repo: false }.
      await (run as (a: Action<Args, Opts, Repo | undefined>) => Promise<void> | void)({ out, repo, args, opts, resolve, show });
    });
  }

  /** The Output for this invocation, from the global and command options. */
  async output(cmd: CommandUnknownOpts): Promise<Output> {
    const o = cmd.optsWithGlobals() as { quiet?: boolean; verbose?: boolean; json?: boolean };
    const out = new Output({ quiet: o.quiet, verbose: o.verbose, json: o.json, stdout: this.io.stdout, stderr: this.io.stderr, env: this.io.env });
    await out.initColor();
    this.lastOutput = out;
    return out;
  }

  /** Opens the repository that holds `dir` (default: where tdv runs), reporting through `out`. */
  async openRepo(out: Output, dir = this.io.cwd): Promise<Repo> {
    const { Repo } = await import('../repo/repo.js');
    return Repo.open(dir, { warn: (m) => out.warn(m), debug: (m) => out.debug(m) });
  }

  /**
   * The command line as it was typed, shell-quoted (`tdv checkout --rev v1
   * --to /tmp/x --pull`), for hints that say to run the same command again:
   * every argument the user gave is kept.
   */
  commandLine(): string {
    return ['tdv', ...this.argv].map(sh).join(' ');
  }

  resolve(p: string): string {
    return path.resolve(this.io.cwd, p);
  }

  /** Asks a yes/no question on a terminal; refuses (UsageError naming `flag`) when not interactive. */
  async confirm(question: string, flag: string): Promise<boolean> {
    if (!this.io.stdin.isTTY || !this.io.stderr.isTTY) {
      throw new UsageError(`not asking for confirmation without a terminal; pass ${flag} to proceed`);
    }
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: this.io.stdin, output: this.io.stderr });
    try {
      const answer = await rl.question(`${question} [y/N] `);
      return /^y(es)?$/i.test(answer.trim());
    } finally {
      rl.close();
    }
  }
}

/** Help text listing examples, shown after the options. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}

export function parsePositiveInt(name: string, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    // Decimal digits only: Number() would also take "0x10", "1e3" and " 4 ".
    const n = /^[0-9]{1,16}$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number >= 1, got "${v}"`);
    if (n > max) throw new UsageError(`${name} must be at most ${max}, got "${v}"`);
    return n;
  };
}

/** `--limit-rate`: bytes per second, as curl reads them (500k, 4M). */
export function parseLimitRate(v: string): number {
  const n = parseRate(v);
  if (n === undefined) throw new UsageError(`--limit-rate must be ${RATE_SYNTAX}, got "${v}"`);
  return n;
}

/** `-j/--jobs`: parallel requests, workers or stages; more than 1024 only exhausts file descriptors. */
export const parseJobs = parsePositiveInt('--jobs', 1024);
