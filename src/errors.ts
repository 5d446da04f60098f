/**
 * One error hierarchy for tdv. Every error a user can cause is a TdvError with a
 * stable `code`, an actionable one-line message and an exit code from one table.
 * Anything else reaching the CLI is a bug and is reported as such.
 */

export const ExitCode = { ok: 0, failed: 1, usage: 2 } as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export class TdvError extends Error {
  readonly code: string;
  readonly exitCode: ExitCodeValue;
  readonly data?: Record<string, unknown>;
  constructor(code: string, message: string, opts: { exitCode?: ExitCodeValue; data?: Record<string, unknown>; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'TdvError';
    this.code = code;
    this.exitCode = opts.exitCode ?? ExitCode.failed;
    this.data = opts.data;
  }
}

/** Bad command-line usage or an invalid combination of options: exit 2. */
export class UsageError extends TdvError {
  constructor(message: string, data?: Record<string, unknown>) {
    super('USAGE', message, { exitCode: ExitCode.usage, data });
    this.name = 'UsageError';
  }
}

/** Not inside a tdv repository (or not inside a Git work tree for `init`). */
export class NotARepoError extends TdvError {
  constructor(message: string) {
    super('NOT_A_REPO', message);
  }
}

/** A file tdv reads (pointer, manifest, config) is malformed. */
export class FormatError extends TdvError {
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
export class MissingObjectsError extends TdvError {
  constructor(message: string, readonly paths: string[]) {
    super('MISSING_OBJECTS', message, { data: { paths } });
  }
}

/** Workspace files whose content is not cached would be overwritten or deleted. */
export class ConflictError extends TdvError {
  constructor(message: string, readonly paths: string[]) {
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
  constructor(code: string, message: string, opts: { wide?: boolean; cause?: unknown; data?: Record<string, unknown> } = {}) {
    super(code, message, { cause: opts.cause, data: opts.data });
    this.name = 'RemoteError';
    this.wide = opts.wide === true;
  }
}

/** Node system errors carry `code` (ENOENT, EXDEV, ...). */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
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
      return new TdvError('NAME_TOO_LONG', `file name too long for this file system: ${path.length > 300 ? `${path.slice(0, 150)}...${path.slice(-100)} (${path.length} characters)` : path}`, { cause: err });
    case 'ELOOP':
      return new TdvError('SYMLINK_LOOP', `too many levels of symbolic links: ${path}`, { cause: err });
    default:
      return err;
  }
}
