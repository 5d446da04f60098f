import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { errnoCode, FormatError, TdvError } from '../errors.js';

let processTag: string | undefined;
let tmpCounter = 0;

// The thread id keeps names of the main thread and the pool's worker apart for certain.
// Drawn on first use: loading worker_threads is a cost every command would pay at start.
function tag(): string {
  const { threadId } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
  return threadId.toString(16).padStart(2, '0') + randomBytes(3).toString('hex');
}

/**
 * A unique suffix for temp names: pid, thread id, a random tag drawn once per thread, and
 * a counter (drawing random bytes per file costs more than the write itself).
 */
export function tmpSuffix(): string {
  return `${process.pid}.${(processTag ??= tag())}${(tmpCounter++).toString(16).padStart(2, '0')}`;
}

/**
 * Whether the process that wrote a temp name (the pid tmpSuffix puts first) is
 * gone, so that its temp files are leftovers. This process, or one that
 * exists but is not ours to signal (EPERM), is not gone.
 */
export function processGone(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A temp path beside `file` (same directory, hence same file system, so rename
 * is atomic). The name does not embed the file's own, so a name near the 255-byte
 * limit still has room.
 */
export function siblingTmp(file: string): string {
  return path.join(path.dirname(file), `.tdvtmp.${tmpSuffix()}`);
}

/** lstat that returns undefined instead of throwing for a missing path (or one whose parent is a file). */
export function lstatOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/**
 * The largest tdv.yaml, tdv.lock, config, params or ignore file tdv reads.
 * They are parsed whole, and YAML parsing is costly: measured, a 9 MiB
 * tdv.lock (70,000 recorded paths) takes 4.7 s and 400 MB to parse.
 */
export const MAX_TEXT_BYTES = 8 * 2 ** 20;

/** The largest pointer file tdv reads: one holds a few outputs, a few hundred bytes each. */
export const MAX_POINTER_BYTES = 2 ** 20;

/** What a non-regular file is, for messages: "a FIFO", "a socket", ... */
export function fileKind(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'a special file';
}

/** A file tdv reads whole is larger than it reads for that kind of file. */
export function tooLargeError(shown: string, size: number, max: number, what = 'a file like this'): TdvError {
  const mib = (n: number) => `${n % 2 ** 20 === 0 || n >= 10 * 2 ** 20 ? Math.round(n / 2 ** 20) : (n / 2 ** 20).toFixed(1)} MiB`;
  return new TdvError('TOO_LARGE', `${shown} is ${mib(size)}, more than the ${mib(max)} tdv reads for ${what}; check what it is and replace it`, {
    data: { file: shown, size, limit: max },
  });
}

/**
 * Reads a whole file tdv is about to parse, or undefined when it does not
 * exist. Opened without blocking and checked with fstat before anything is
 * read: a FIFO, socket or device is an error naming it (a FIFO would make
 * tdv wait forever), and so is a file larger than `maxBytes` (it would be
 * read and parsed whole). A directory fails as reading one does (EISDIR).
 */
export function readFileOrUndefined(p: string, maxBytes: number, shown = p, what?: string, opts: { follow?: boolean } = {}): Buffer | undefined {
  const notAFile = (st: fs.Stats) => new TdvError('NOT_A_FILE', `${shown} is ${fileKind(st)}, not a regular file; tdv reads only regular files there`, { data: { file: shown } });
  const follow = opts.follow !== false;
  let fd: number;
  try {
    // stat first, so a device is never even opened; the fstat below closes the race.
    const st = follow ? fs.statSync(p) : fs.lstatSync(p);
    if (st.isSymbolicLink()) throw symlinkedControlFile(shown);
    if (!st.isFile() && !st.isDirectory()) throw notAFile(st);
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | (follow ? 0 : fs.constants.O_NOFOLLOW));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') return undefined;
    if (errnoCode(err) === 'ELOOP') throw symlinkedControlFile(shown); // replaced by a link after the lstat
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw notAFile(st);
    if (st.size > maxBytes) throw tooLargeError(shown, st.size, maxBytes, what);
    const data = fs.readFileSync(fd);
    if (data.length > maxBytes) throw tooLargeError(shown, data.length, maxBytes, what); // grew meanwhile
    return data;
  } finally {
    fs.closeSync(fd);
  }
}

/** A text file as `readFileOrUndefined` reads it (at most MAX_TEXT_BYTES unless told), decoded as UTF-8. */
export function readTextOrUndefined(p: string, maxBytes = MAX_TEXT_BYTES, shown = p, opts: { follow?: boolean } = {}): string | undefined {
  return readFileOrUndefined(p, maxBytes, shown, undefined, opts)?.toString('utf8');
}

/**
 * A text file people write for tdv (tdv.yaml, config.yaml) as `readTextOrUndefined`
 * reads it, refusing bytes that are not UTF-8 as pointers and tdv.lock do
 * (`decodeUtf8`): read leniently, they would become U+FFFD, a value nobody wrote.
 */
export function readUtf8OrUndefined(p: string, shown: string, opts: { follow?: boolean } = {}): string | undefined {
  const bytes = readFileOrUndefined(p, MAX_TEXT_BYTES, shown, undefined, opts);
  return bytes && decodeUtf8(bytes, shown, 'Save it as UTF-8 text (`iconv -f latin1 -t utf-8` converts a Latin-1 file)');
}

/**
 * A file tdv reads as its own (tdv.yaml, tdv.lock, .tdvignore) that is a
 * symlink: never read through, as it is never written through, since a
 * cloned repository could point it at any file on the machine.
 */
function symlinkedControlFile(shown: string): TdvError {
  return new TdvError('UNSAFE_PATH', `${shown} is a symlink; tdv reads and writes its own files only as regular files, never through a link. Replace the link with a regular file, or delete it`, {
    data: { file: shown },
  });
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes a file tdv wrote (a pointer, tdv.lock) as UTF-8, refusing bytes that
 * are not: read leniently, they would become U+FFFD and name a path nobody
 * wrote. The same rule for the workspace and for any revision.
 */
export function decodeUtf8(bytes: Uint8Array, shown: string, fix = ''): string {
  try {
    return strictUtf8.decode(bytes);
  } catch (err) {
    if (err instanceof TypeError) throw new FormatError(shown, 'is not valid UTF-8', fix);
    throw err;
  }
}

/** Converts a native path to the POSIX form used in pointers, manifests and output. */
export function toPosix(p: string): string {
  return path.sep === '/' ? p : p.split(path.sep).join('/');
}

/** True when `child` is `parent` or lies below it (both absolute, normalised). */
export function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}
