/**
 * One error hierarchy for tdv. Every error a user can cause is a TdvError with a
 * stable `code`, an actionable one-line message and an exit code from one table.
 * Anything else reaching the CLI is a bug and is reported as such.
 */

/**
 * Exit codes, decided here only (by the family of an error's code, below): 0
 * success, 1 the operation failed, 2 usage (the command line asked for something
 * impossible), 130 interrupted (128 + SIGINT, as shells report a Ctrl-C). A
 * command stopped by SIGTERM or SIGHUP after cleaning up exits as a shell
 * reports that signal: 143 (`terminated`) or 129 (`hangup`).
 */
export const ExitCode = { ok: 0, failed: 1, usage: 2, interrupted: 130, hangup: 129, terminated: 143 } as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * What kind of failure an error is, which says what the user does about it
 * (git-lfs classifies errors the same way): fix the command line, fetch what
 * is missing, resolve a conflict, fix a path, retry a transfer, fix a stage,
 * fix the configuration, repair damaged data, fix the environment, or run
 * again after an interruption.
 */
export type ErrorFamily = 'usage' | 'not-found' | 'conflict' | 'unsafe-path' | 'transfer' | 'stage' | 'config' | 'damaged' | 'system' | 'interrupted';

/** The exit code of each family: the one place exit codes are decided. */
export const FAMILY_EXIT: Readonly<Record<ErrorFamily, ExitCodeValue>> = {
  usage: ExitCode.usage,
  'not-found': ExitCode.failed,
  conflict: ExitCode.failed,
  'unsafe-path': ExitCode.failed,
  transfer: ExitCode.failed,
  stage: ExitCode.failed,
  config: ExitCode.failed,
  damaged: ExitCode.failed,
  system: ExitCode.failed,
  interrupted: ExitCode.interrupted,
};

/**
 * The error table: every code tdv throws, and its family. A code is part of the
 * `--json` error document, so scripts may match on it: add codes, never rename.
 */
export const ERROR_CODES = {
  // The command line asked for something impossible or unknown (exit 2).
  USAGE: 'usage',
  UNKNOWN_REVISION: 'usage',
  NOT_TRACKED: 'usage',
  UNKNOWN_REMOTE: 'usage',
  REMOTE_EXISTS: 'usage',
  /** A runner name no `runner.<name>` section defines (`--runner`, `runner:` in tdv.yaml, core.runner). */
  UNKNOWN_RUNNER: 'usage',
  RUNNER_EXISTS: 'usage',
  /** A destination that exists (`tdv mv`), which tdv never replaces. */
  EXISTS: 'usage',
  BAD_CONFIG_CHANGE: 'usage',
  // Something the operation needs is not there.
  NOT_FOUND: 'not-found',
  NOT_A_REPO: 'not-found',
  NOT_A_GIT_REPO: 'not-found',
  NOT_GIT_ROOT: 'not-found',
  NOT_A_FILE: 'not-found',
  NOT_A_DIRECTORY: 'not-found',
  NO_PIPELINE: 'not-found',
  NO_COMMITS: 'not-found',
  SHALLOW_CLONE: 'not-found',
  MISSING_OBJECTS: 'not-found',
  MISSING_OBJECT: 'not-found',
  DEPS_MISSING: 'not-found',
  OUTS_MISSING: 'not-found',
  GIT_OBJECT_MISSING: 'not-found',
  OBJECT_NOT_ON_REMOTE: 'not-found',
  NO_REMOTE: 'not-found',
  NO_DEFAULT_REMOTE: 'not-found',
  // Someone else's work, or unsaved data, is in the way.
  CONFLICT: 'conflict',
  CHANGED_WHILE_ADDING: 'conflict',
  ALREADY_INITIALIZED: 'conflict',
  LOCK_TIMEOUT: 'conflict',
  MERGE_CONFLICT: 'conflict',
  MERGE_EMPTY: 'conflict',
  // A path from a file or the command line is not safe to use.
  UNSAFE_PATH: 'unsafe-path',
  // A remote refused or failed.
  TRANSFER_FAILED: 'transfer',
  REMOTE_FAILED: 'transfer',
  REMOTE_NOT_FOUND: 'transfer',
  REMOTE_ACCESS_DENIED: 'transfer',
  REMOTE_NO_CREDENTIALS: 'transfer',
  REMOTE_UNREACHABLE: 'transfer',
  REMOTE_WRONG_REGION: 'transfer',
  REMOTE_CLOCK_SKEW: 'transfer',
  REMOTE_CHECKSUM_UNSUPPORTED: 'transfer',
  BAD_LISTING: 'transfer',
  BAD_KEY: 'transfer',
  CORRUPT_ON_REMOTE: 'transfer',
  REMOTE_LAYOUT_UNSUPPORTED: 'transfer',
  DOWNLOAD_FAILED: 'transfer',
  // A pipeline stage could not run or failed.
  STAGE_FAILED: 'stage',
  STAGE_START_FAILED: 'stage',
  STAGE_WDIR_MISSING: 'stage',
  STAGE_WDIR_OUTSIDE: 'stage',
  BAD_STAGE_ENV: 'stage',
  BAD_IMAGE_REF: 'stage',
  IMAGE_NOT_FOUND: 'stage',
  BUILD_FAILED: 'stage',
  BUILD_ABORTED: 'stage',
  BUILD_CONTEXT_MISSING: 'stage',
  DOCKER_NOT_INSTALLED: 'stage',
  DOCKER_DAEMON_DOWN: 'stage',
  DOCKER_PERMISSION: 'stage',
  DOCKER_FAILED: 'stage',
  /** A runner's engine cannot be used: not configured right, not reachable, or not built for this type. */
  RUNNER_UNAVAILABLE: 'stage',
  /** The connection to a runner's engine was lost mid-stage (SSH cut, API gone): nothing was recorded. */
  RUNNER_LOST: 'stage',
  /** A job's result named a path the stage does not declare, or a file whose bytes are not what it claims. */
  JOB_OUTPUT_REFUSED: 'stage',
  /** The engine refused or failed the job itself (a Kubernetes API error, a Job that could not be scheduled). */
  JOB_FAILED: 'stage',
  /** An image a runner needs pinned by digest (Kubernetes pulls by reference) is not. */
  IMAGE_NOT_PINNED: 'stage',
  BAD_METRICS: 'stage',
  NOT_DATA: 'stage',
  // A configuration or format tdv reads is wrong.
  CONFIG_INVALID: 'config',
  UNKNOWN_DEFAULT_REMOTE: 'config',
  BAD_REMOTE: 'config',
  BAD_FORMAT: 'config',
  GIT_IGNORES_TDV: 'config',
  SECRET_IN_TRACKED_FILE: 'config',
  TOO_LARGE: 'config',
  HOOK_DAMAGED: 'config',
  HOOK_DISABLED: 'config',
  HOOK_NOT_FILE: 'config',
  HOOK_NOT_SHELL: 'config',
  // Stored data is damaged.
  DAMAGED_OBJECT: 'damaged',
  FSCK_FAILED: 'damaged',
  GIT_CORRUPT: 'damaged',
  GIT_BAD_OID: 'damaged',
  // The system refused: disk, permissions, Git, threads.
  NO_SPACE: 'system',
  PERMISSION: 'system',
  READ_ONLY_FS: 'system',
  NAME_TOO_LONG: 'system',
  SYMLINK_LOOP: 'system',
  IO_ERROR: 'system',
  UNREADABLE: 'system',
  WORKER_FAILED: 'system',
  GIT_FAILED: 'system',
  GIT_UNSUPPORTED: 'system',
  GC_INCOMPLETE: 'system',
  // Ctrl-C (or SIGTERM) stopped the command after it cleaned up.
  INTERRUPTED: 'interrupted',
} as const satisfies Record<string, ErrorFamily>;

/** Every error code tdv uses: a union, so a typo is a compile error. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The codes of one family. */
export type CodeOf<F extends ErrorFamily> = { [C in ErrorCode]: (typeof ERROR_CODES)[C] extends F ? C : never }[ErrorCode];

/** Whether `s` is a code of the table (a code that crossed a thread or process boundary as a string). */
export function isErrorCode(s: unknown): s is ErrorCode {
  return typeof s === 'string' && Object.hasOwn(ERROR_CODES, s);
}

/** The family of a code. */
export function familyOf(code: ErrorCode): ErrorFamily {
  return ERROR_CODES[code];
}

/** The exit code of an error code, from its family. */
export function exitCodeOf(code: ErrorCode): ExitCodeValue {
  return FAMILY_EXIT[ERROR_CODES[code]];
}

export class TdvError extends Error {
  readonly code: ErrorCode;
  readonly data?: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, opts: { data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TdvError';
    this.code = code;
    this.data = opts.data;
  }

  /** What kind of failure this is (from the table). */
  get family(): ErrorFamily {
    return familyOf(this.code);
  }

  /** The process exit code (from the table, by family). */
  get exitCode(): ExitCodeValue {
    return exitCodeOf(this.code);
  }
}

/** Bad command-line usage or an invalid combination of options: exit 2. */
export class UsageError extends TdvError {
  constructor(message: string, data?: Record<string, unknown>, code: CodeOf<'usage'> = 'USAGE') {
    super(code, message, { data });
    this.name = 'UsageError';
  }
}

/** Something the operation needs (a file, an object, a repository, a remote) is not there. */
export class NotFoundError extends TdvError {
  constructor(code: CodeOf<'not-found'>, message: string, opts: { data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, opts);
    this.name = 'NotFoundError';
  }
}

/** Not inside a tdv repository (or not inside a Git work tree for `init`). */
export class NotARepoError extends NotFoundError {
  constructor(message: string) {
    super('NOT_A_REPO', message);
  }
}

/** A configuration value is wrong; the message names the file and the fix. */
export class ConfigError extends TdvError {
  constructor(code: CodeOf<'config'>, message: string, opts: { data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, opts);
    this.name = 'ConfigError';
  }
}

/** A file tdv reads (pointer, manifest, config) is malformed. */
export class FormatError extends ConfigError {
  constructor(file: string, detail: string, fix = '') {
    super('BAD_FORMAT', `${file}: ${detail}${fix ? `. ${fix}` : ''}`, { data: { file } });
  }
}

/** The repo lock could not be taken in time. */
export class LockTimeoutError extends TdvError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('LOCK_TIMEOUT', message, { data });
  }
}

/** Cache objects needed by an operation are absent. */
export class MissingObjectsError extends NotFoundError {
  constructor(
    message: string,
    readonly paths: string[],
  ) {
    super('MISSING_OBJECTS', message, { data: { paths } });
  }
}

/** Workspace files whose content is not cached would be overwritten or deleted. */
export class ConflictError extends TdvError {
  constructor(
    message: string,
    readonly paths: string[],
  ) {
    super('CONFLICT', message, { data: { paths } });
  }
}

/**
 * A remote refused or failed an operation. `wide` errors (missing bucket or
 * directory, access denied, no credentials, unreachable endpoint) concern every
 * object, so a transfer stops at the first one instead of repeating it per object.
 */
export class RemoteError extends TdvError {
  readonly wide: boolean;
  constructor(code: ErrorCode, message: string, opts: { wide?: boolean; cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(code, message, { cause: opts.cause, data: opts.data });
    this.name = 'RemoteError';
    this.wide = opts.wide === true;
  }
}

/** A pipeline stage could not start, failed, or its runner (Docker) refused. */
export class StageError extends TdvError {
  constructor(code: CodeOf<'stage'>, message: string, opts: { data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, opts);
    this.name = 'StageError';
  }
}

/** The signals a command stops on, cleaning up first: Ctrl-C, a kill (CI cancel, `timeout`), a closed terminal. */
export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

/**
 * Ctrl-C (SIGINT), SIGTERM or SIGHUP stopped a command; it cleaned up (temp
 * files removed, finished work recorded) before throwing this. It exits as a
 * shell reports that signal: 130 (SIGINT, the default), 143 (SIGTERM) or 129
 * (SIGHUP).
 */
export class InterruptedError extends TdvError {
  /** The signal that stopped the command. */
  readonly signal: StopSignal;
  constructor(message = 'interrupted', signal: StopSignal = 'SIGINT') {
    super('INTERRUPTED', message, signal === 'SIGINT' ? {} : { data: { signal } });
    this.name = 'InterruptedError';
    this.signal = signal;
  }

  override get exitCode(): ExitCodeValue {
    return this.signal === 'SIGTERM' ? ExitCode.terminated : this.signal === 'SIGHUP' ? ExitCode.hangup : ExitCode.interrupted;
  }
}

/**
 * The causes behind an error, outermost first, as `-v` prints them: each one's
 * code (when it has one) and message, then the innermost one's stack, which is
 * where the failure really happened. Stops at a cycle and after 10 levels.
 */
export function causeChain(err: unknown): string[] {
  const lines: string[] = [];
  const seen = new Set<unknown>([err]);
  let cause = (err as { cause?: unknown } | undefined)?.cause;
  let last: unknown;
  while (cause !== undefined && cause !== null && !seen.has(cause) && lines.length < 10) {
    seen.add(cause);
    const code = errnoCode(cause);
    const msg = cause instanceof Error ? cause.message : String(cause);
    lines.push(`caused by: ${code ? `[${code}] ` : ''}${msg}`);
    last = cause;
    cause = (cause as { cause?: unknown }).cause;
  }
  if (last instanceof Error && last.stack) lines.push(last.stack);
  return lines;
}

/** Node system errors carry `code` (ENOENT, EXDEV, ...). */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string' ? (err as { code: string }).code : undefined;
}

/** A file that was listed a moment ago and is gone now: someone else is changing the workspace. */
export function vanished(path: string, cause?: unknown): TdvError {
  return new TdvError('NOT_FOUND', `${path} disappeared while tdv was working on it; run the command again when nothing else changes it`, { cause });
}

/**
 * A Node system error (errno code, syscall, path): the environment refused
 * something (permissions, a vanished file, a full disk), not a bug in tdv.
 */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && typeof (err as NodeJS.ErrnoException).syscall === 'string';
}

/** Turns low-level file-system failures users can fix into TdvErrors, and leaves the rest alone. */
export function describeFsError(err: unknown, path: string): unknown {
  switch (errnoCode(err)) {
    case 'ENOSPC':
      return new TdvError('NO_SPACE', `no space left on device while writing ${path}; free some space and run the command again`, { cause: err });
    case 'EDQUOT':
      return new TdvError('NO_SPACE', `disk quota exceeded while writing ${path}; free some space and run the command again`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new TdvError('PERMISSION', `permission denied: ${path}; check the file's owner and mode`, { cause: err });
    case 'EROFS':
      return new TdvError('READ_ONLY_FS', `read-only file system: ${path}`, { cause: err });
    case 'ENAMETOOLONG':
      // Shown shortened: the whole path can be thousands of characters.
      return new TdvError('NAME_TOO_LONG', `file name too long for this file system: ${path.length > 300 ? `${path.slice(0, 150)}...${path.slice(-100)} (${path.length} characters)` : path}`, {
        cause: err,
      });
    case 'ELOOP':
      return new TdvError('SYMLINK_LOOP', `too many levels of symbolic links: ${path}`, { cause: err });
    default:
      return err;
  }
}
