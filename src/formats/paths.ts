/**
 * The one definition of a legal repository-relative path. Used when adding,
 * and when reading pointers, manifests, run records, tdv.yaml and tdv.lock
 * from the workspace, a remote or any revision: a name tdv accepts once is
 * restorable forever, and a name it would refuse later is refused up front.
 *
 * A legal path is POSIX (`/`-separated), relative, at most 4096 characters,
 * well-formed Unicode, and every component is non-empty, at most 255 bytes of
 * UTF-8, not `.` or `..`, free of NUL, and not `.git` (in any letter case: a
 * submodule's gitfile or a nested repository inside data) or `.tdv`. On POSIX
 * a backslash is an ordinary character, as it is to the file system.
 */

export const MAX_PATH_CHARS = 4096;
const PLAIN_PATH = /^[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;
const MAX_COMPONENT_BYTES = 255;

/** Why `p` is not a legal relative path, or undefined when it is one. */
export function relPathProblem(p: unknown): string | undefined {
  if (typeof p !== 'string') return 'is not a string';
  // The common case, answered by one regex (a manifest of 20,000 names is checked on every read):
  // ASCII components that do not start with a dot cannot be empty, ".", "..", ".git" or ".tdv",
  // and a path of at most 255 characters has no component over 255 bytes.
  if (p.length <= MAX_COMPONENT_BYTES && PLAIN_PATH.test(p)) return undefined;
  if (p.length === 0) return 'is empty';
  if (p.length > MAX_PATH_CHARS) return `is longer than ${MAX_PATH_CHARS} characters`;
  if (!p.isWellFormed()) return 'is not valid Unicode';
  if (p.includes('\0')) return 'contains a NUL character';
  if (p.startsWith('/')) return 'is absolute';
  for (const c of p.split('/')) {
    if (c === '') return 'has an empty component (a doubled, leading or trailing "/")';
    if (c === '.' || c === '..') return `has a "${c}" component`;
    const lower = c.toLowerCase();
    if (lower === '.git') return 'has a ".git" component (Git\'s own files)';
    if (c === '.tdv') return 'has a ".tdv" component (tdv\'s own files)';
    if (c.length * 3 > MAX_COMPONENT_BYTES && Buffer.byteLength(c) > MAX_COMPONENT_BYTES) return `has a component longer than ${MAX_COMPONENT_BYTES} bytes`;
  }
  return undefined;
}

/** True when `p` is a legal relative path (see `relPathProblem`). */
export function isLegalRelPath(p: unknown): p is string {
  return relPathProblem(p) === undefined;
}

/** One component of a legal path (a directory entry's name) is legal. */
export function nameProblem(name: string): string | undefined {
  return name.includes('/') ? 'contains "/"' : relPathProblem(name);
}

/**
 * A path as `git` quotes it for a human-readable line: control characters,
 * newlines, DEL, backslash and double quotes escaped, and the whole in quotes
 * when anything was escaped, so a name can never forge or split an output line.
 * Non-ASCII printable characters are shown as they are (git's core.quotePath=false).
 */
export function quotePath(p: string): string {
  if (!/[\x00-\x1f\x7f"\\\u0080-\u009f\u2028\u2029]/.test(p)) return p;
  return `"${backslashEscaped(p, '"', (c) => `\\u${c.toString(16).padStart(4, '0')}`)}"`;
}

/**
 * `s` with `\`, `quote`, newline, tab and CR escaped by a backslash, and the
 * other control characters (C0, DEL, C1, U+2028/9) as `code` writes them:
 * the one escaping loop of quotePath (git's style) and shellWord (`$'...'`).
 */
function backslashEscaped(s: string, quote: string, code: (c: number) => string): string {
  let out = '';
  for (const ch of s) {
    if (ch === '\\' || ch === quote) out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (SHELL_CONTROL.test(ch)) out += code(ch.codePointAt(0)!);
    else out += ch;
  }
  return out;
}

// Characters no shell treats specially: a word made only of them needs no quotes.
const SHELL_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;
// eslint-disable-next-line no-control-regex
const SHELL_CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029]/;

/**
 * A word for a POSIX `sh` (dash included: a command tdv itself runs, like a
 * stage's `cmd`): as it is when no shell treats any of its characters
 * specially, else in single quotes, inside which sh takes every character,
 * a newline too, as it is.
 */
export function posixShellWord(word: string): string {
  return SHELL_SAFE.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * A word of a shell command in a hint (`git add ...`, `tdv pull ...`), so the
 * hint runs as shown when pasted: as it is when no shell treats any of its
 * characters specially, else in single quotes (`'my data.csv'`), and a name
 * holding control characters as `$'...'` with escapes (bash, zsh), so the
 * hint stays one line.
 */
export function shellWord(word: string): string {
  if (!SHELL_CONTROL.test(word)) return posixShellWord(word);
  return `$'${backslashEscaped(word, "'", (c) => (c < 0x80 ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`))}'`;
}
