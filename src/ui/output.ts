import type { Writable } from 'node:stream';

export interface Paint {
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

const plain: Paint = { red: (s) => s, green: (s) => s, yellow: (s) => s, bold: (s) => s, dim: (s) => s };

export interface OutputOptions {
  quiet?: boolean;
  verbose?: boolean;
  json?: boolean;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env?: NodeJS.ProcessEnv;
}

/**
 * Where commands print. Results go to stdout, diagnostics to stderr. `--json`
 * silences human output so stdout holds one JSON document; `-q` keeps only
 * errors; `-v` adds debug lines. Colour only on a terminal, never with NO_COLOR.
 */
export class Output {
  paint: Paint = plain;
  readonly quiet: boolean;
  readonly verbose: boolean;
  readonly json: boolean;

  constructor(private readonly o: OutputOptions) {
    this.quiet = o.quiet === true;
    this.verbose = o.verbose === true && !this.quiet;
    this.json = o.json === true;
  }

  /** Loads chalk only when colour will actually be shown. */
  async initColor(): Promise<void> {
    const env = this.o.env ?? process.env;
    if (!this.o.stdout.isTTY || (env.NO_COLOR ?? '') !== '' || env.TERM === 'dumb') return;
    const { Chalk } = await import('chalk');
    const c = new Chalk({ level: 1 });
    this.paint = { red: c.red, green: c.green, yellow: c.yellow, bold: c.bold, dim: c.dim };
  }

  /** Where diagnostics and progress bars go. */
  get stderrStream(): Writable & { isTTY?: boolean } {
    return this.o.stderr;
  }

  get isTTY(): boolean {
    return this.o.stderr.isTTY === true;
  }

  /** The environment of this invocation (TDV_PROGRESS, CI, NO_COLOR...). */
  get env(): NodeJS.ProcessEnv {
    return this.o.env ?? process.env;
  }

  /** A line of human output (stdout). */
  info(msg: string): void {
    if (!this.quiet && !this.json) this.o.stdout.write(`${msg}\n`);
  }

  /** A warning: one line, whatever its text holds (see `escapeLine`). */
  warn(msg: string): void {
    if (!this.quiet) this.o.stderr.write(`${this.paint.yellow('warning:')} ${escapeLine(msg)}\n`);
  }

  /** An error: one line, whatever its text holds (see `escapeLine`). */
  error(msg: string): void {
    this.o.stderr.write(`${this.paint.red('error:')} ${escapeLine(msg)}\n`);
  }

  debug(msg: string): void {
    if (this.verbose) this.o.stderr.write(`${this.paint.dim(`debug: ${escapeLine(msg)}`)}\n`);
  }

  private document?: { value: unknown };

  /**
   * The one JSON document of a `--json` command. Held until the command ends
   * (`finish`): when it fails, the document printed is the error's, with this
   * one's fields beside it (see `finish`), so stdout always holds one document.
   */
  data(value: unknown): void {
    this.document = { value };
  }

  /**
   * Prints the `--json` document: the command's (success), or, after `error`,
   * `{"error": {"code", "message", "data"}}` followed by the fields of the
   * document the command made before it failed (an object's fields; anything
   * else as `result`), so CI reads `.error` on every failure and the partial
   * result is not lost.
   */
  finish(error?: { code: string; message: string; data?: unknown }): void {
    const doc = this.document;
    this.document = undefined;
    if (error === undefined) {
      if (doc) this.o.stdout.write(`${JSON.stringify(doc.value, null, 2)}\n`);
      return;
    }
    const result = doc === undefined ? {} : typeof doc.value === 'object' && doc.value !== null && !Array.isArray(doc.value) ? doc.value : { result: doc.value };
    const value = { error: { code: error.code, message: error.message, data: error.data ?? null }, ...result };
    this.o.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }
}

const tolerant = new WeakSet<Writable>();

/**
 * A reader that stops reading early (`tdv log | head -1`, `tdv status | true`)
 * is not a failure: writes to the closed pipe fail with EPIPE, and, as with
 * git, nothing is printed about it. The command still finishes what it was
 * doing (a checkout or pull never stops halfway because nobody reads its
 * summary) and exits with its own code; what it prints goes nowhere. Without
 * a listener, Node turns the stream's `error` event into a stack trace and
 * exit 1. Other stream errors are thrown as before.
 */
export function ignoreClosedReader(stream: Writable): void {
  if (tolerant.has(stream)) return;
  tolerant.add(stream);
  stream.on('error', (err: NodeJS.ErrnoException) => {
    // ERR_STREAM_DESTROYED: a write after the EPIPE that closed the stream. EIO: the
    // terminal hung up (SIGHUP), and `repro` still reports how it stopped its stages.
    if (err.code === 'EPIPE' || err.code === 'EIO' || err.code === 'ERR_STREAM_DESTROYED') return;
    // A command that streams its own output (tdv cat) listens too and reports the failure as one line;
    // thrown here, a full disk behind `tdv cat > file` was an uncaught exception with a stack trace.
    if (stream.listenerCount('error') > 1) return;
    throw err;
  });
}

// C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]/g;

/**
 * A message as one line: newlines, carriage returns, terminal escapes and the
 * other control characters escaped (`\n`, `\r`, `\u001b`). Errors and warnings
 * pass through it, so a file name inside one, however it got there, can never
 * end the line, overwrite it or forge a line of its own ("error: ..."). Paths
 * are quoted where messages are built (formats/paths.ts `quotePath`); this is
 * the net under them. Lines of results (`info`) are built by renderers that
 * quote every path, as they may hold colour and intended line breaks.
 */
export function escapeLine(s: string): string {
  return s.replace(CONTROL, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
