import fs from 'node:fs';
import path from 'node:path';

/**
 * What stands where tracked data should be, when it is neither the data nor
 * absent: a symlink (often dangling: the data was moved and a link left
 * behind, or a clone committed one) at the path or on the way to it, or a
 * special file. Commands report it with the pointer and the fix instead of a
 * bare "modified".
 */
export interface Blocker {
  /** Repo-relative path of the symlink or special file: the tracked path, or one of its parents. */
  path: string;
  kind: 'symlink' | 'special';
  /** For a symlink: what it points to, as written. */
  target?: string;
  /** For a symlink: it points to nothing. */
  dangling?: boolean;
}

/**
 * The blocker at repo-relative `rel` or on the way to it (parents checked
 * with lstat, component by component, as the guard does), if any.
 */
export function blockerAt(root: string, rel: string): Blocker | undefined {
  let cur = '';
  for (const part of rel.split('/')) {
    cur = cur === '' ? part : `${cur}/${part}`;
    const abs = path.join(root, cur);
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      let target = '';
      try {
        target = fs.readlinkSync(abs);
      } catch {
        /* gone meanwhile: still a link that was in the way */
      }
      return { path: cur, kind: 'symlink', target, dangling: !fs.existsSync(abs) };
    }
    if (cur === rel) return st.isFile() || st.isDirectory() ? undefined : { path: cur, kind: 'special' };
    if (!st.isDirectory()) return undefined; // a file on the way: the path simply does not exist
  }
  return undefined;
}

/** What stands where a stage output should be (status and repro --dry name it in the stage's reasons), if anything. */
export function inTheWay(root: string, rel: string): string | undefined {
  const b = blockerAt(root, rel);
  if (!b) return undefined;
  const what = b.kind === 'symlink' ? 'a symlink' : 'a special file';
  return b.path === rel ? what : `${what} at ${b.path}`;
}
