import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
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

/** What every command action gets: the streams, and helpers to open the repo and talk to the user. */
export class CliContext {
  lastOutput?: Output;
  /** The arguments after `tdv`, as given. */
  argv: readonly string[] = [];

  constructor(readonly io: CliIO) {}

  /** The Output for this invocation, from the global and command options. */
  async output(cmd: Command): Promise<Output> {
    const o = cmd.optsWithGlobals() as { quiet?: boolean; verbose?: boolean; json?: boolean };
    const out = new Output({ quiet: o.quiet, verbose: o.verbose, json: o.json, stdout: this.io.stdout, stderr: this.io.stderr, env: this.io.env });
    await out.initColor();
    this.lastOutput = out;
    return out;
  }

  async openRepo(out: Output): Promise<Repo> {
    const { Repo } = await import('../repo/repo.js');
    return Repo.open(this.io.cwd, { warn: (m) => out.warn(m), debug: (m) => out.debug(m) });
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

export function parsePositiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`${name} must be a whole number >= 1, got "${v}"`);
    return n;
  };
}
