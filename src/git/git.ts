import fs from 'node:fs';
import path from 'node:path';

export interface GitWorkTree {
  /** Top directory of the work tree. */
  root: string;
  gitdir: string;
}

/** Finds the Git work tree containing `start`, the way `git rev-parse --show-toplevel` does. Cheap: no Git library. */
export function findGitWorkTree(start: string): GitWorkTree | undefined {
  let dir = path.resolve(start);
  for (;;) {
    const dotgit = path.join(dir, '.git');
    const st = fs.statSync(dotgit, { throwIfNoEntry: false });
    if (st?.isDirectory()) return { root: dir, gitdir: dotgit };
    if (st?.isFile()) {
      // Worktrees and submodules: ".git" is a file "gitdir: <path>".
      const m = /^gitdir:\s*(.+?)\s*$/m.exec(fs.readFileSync(dotgit, 'utf8'));
      if (m) return { root: dir, gitdir: path.resolve(dir, m[1]!) };
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** A linked worktree's shared Git directory (its `commondir` file), or undefined for a plain repository. */
export function gitCommonDir(gitdir: string): string | undefined {
  try {
    const rel = fs.readFileSync(path.join(gitdir, 'commondir'), 'utf8').trim();
    return rel ? path.resolve(gitdir, rel) : undefined;
  } catch {
    return undefined;
  }
}

/** Paths in the Git index (staged or committed), POSIX, relative to the work tree root. */
export async function gitTrackedPaths(wt: GitWorkTree): Promise<string[]> {
  if (!fs.existsSync(path.join(wt.gitdir, 'index'))) return [];
  const git = await import('isomorphic-git');
  return git.listFiles({ fs, dir: wt.root, gitdir: wt.gitdir });
}
