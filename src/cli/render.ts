import { quotePath, shellWord } from '../formats/paths.js';
import type { Blocker } from '../repo/lib/blocker.js';

/**
 * A path for a human-readable line, quoted as git quotes it: a name holding a
 * newline, a carriage return or a terminal escape can never split, overwrite
 * or recolour a line of tdv's output. (`--json` documents carry names raw:
 * JSON escapes them itself.)
 */
export const q = quotePath;

/** Paths quoted and joined with ", ". */
export function qs(paths: readonly string[], sep = ', '): string {
  return paths.map(q).join(sep);
}

/**
 * What stands where the data `tracked` (by `pointer`) should be, and the fix:
 * a symlink at the path is replaced by `checkout --force`; one on the way is
 * never written through, so the user replaces it first.
 */
export function blockerNote(b: Blocker, tracked: string, pointer: string): string {
  const what = b.kind === 'symlink' ? `a symlink to ${q(b.target ?? '?')}${b.dangling ? ', which does not exist' : ''}` : 'not a regular file or directory';
  if (b.path === tracked) {
    return `${q(b.path)} is ${what}, not the data ${q(pointer)} tracks; \`tdv checkout --force ${shellWord(tracked)}\` puts the data back`;
  }
  return `${q(b.path)} is ${what}, on the way to the data ${q(pointer)} tracks; tdv never writes through it: replace it with a real directory, then run \`tdv checkout ${shellWord(tracked)}\``;
}

/**
 * A word of a shell command in a hint (`git add ...`, `tdv pull ...`), quoted
 * so the hint runs as shown when pasted (see `shellWord`).
 */
export const sh = shellWord;

/** Words shell-quoted and joined with spaces. */
export function shs(words: readonly string[]): string {
  return words.map(sh).join(' ');
}

/**
 * " of v1 (3f2a1b9c4d5e)": the revision a command used, as given and as the
 * commit it named; only once when what was given is (a prefix of) that commit.
 */
export function ofRevision(rev: string, commit: string): string {
  if (/^[0-9a-f]{4,64}$/i.test(rev) && commit.startsWith(rev.toLowerCase())) return ` of ${commit.slice(0, Math.max(12, rev.length))}`;
  return ` of ${q(rev)} (${commit.slice(0, 12)})`;
}
