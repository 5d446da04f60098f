import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../errors.js';
import { fileKind } from '../util/fs.js';

/** The rule that makes Git ignore a path: where it is written, and the pattern. */
export interface IgnoreRule {
  /** The ignored path, as asked (relative to the work tree root). */
  path: string;
  /** The file holding the rule (`.gitignore`, `.git/info/exclude`, a global excludes file), as Git names it. */
  source: string;
  line: number;
  pattern: string;
}

/**
 * Which of `paths` (relative to the work tree `root`, POSIX) Git would refuse
 * to `git add` because an ignore rule matches them, with the rule: the
 * repository's `.gitignore` files, `.git/info/exclude` and the user's global
 * excludes file all count, read by Git itself rather than re-implemented.
 * Paths Git already tracks are never reported (an ignore rule does not stop
 * committing changes to them). Asks `git check-ignore` once for all paths;
 * when Git cannot answer (not installed, say) nothing is reported.
 */
export function gitIgnoredBy(root: string, paths: readonly string[]): IgnoreRule[] {
  if (paths.length === 0) return [];
  // Git reads every .gitignore from the root down to each path: one that is a FIFO (or a
  // device) would block it forever. Refused first, naming it.
  const seen = new Set<string>();
  for (const p of paths) {
    const parts = p.split('/');
    for (let i = 0; i < parts.length; i++) {
      const rel = [...parts.slice(0, i), '.gitignore'].join('/');
      if (seen.has(rel)) continue;
      seen.add(rel);
      const st = fs.lstatSync(path.join(root, rel), { throwIfNoEntry: false });
      if (st && !st.isFile() && !st.isSymbolicLink() && !st.isDirectory()) {
        throw new TdvError('NOT_A_FILE', `${rel} is ${fileKind(st)}, not a regular file; Git reads every .gitignore, so replace or delete it`, { data: { file: rel } });
      }
    }
  }
  const r = spawnSync('git', ['check-ignore', '--verbose', '-z', '--stdin'], {
    // Whatever else Git might wait on, tdv does not wait forever.
    timeout: 30_000,
    cwd: root,
    input: paths.map((p) => `${p}\0`).join(''),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  // 0: some path is ignored, 1: none is, anything else: Git could not tell.
  if (r.status !== 0 || typeof r.stdout !== 'string') return [];
  const fields = r.stdout.split('\0');
  const out: IgnoreRule[] = [];
  // -z --verbose: source NUL line NUL pattern NUL path NUL, per matched path.
  for (let i = 0; i + 3 < fields.length; i += 4) {
    const [source, line, pattern, path] = fields.slice(i, i + 4) as [string, string, string, string];
    // A matching "!pattern" re-includes the path: it is not ignored.
    if (pattern.startsWith('!')) continue;
    out.push({ path, source, line: Number(line), pattern });
  }
  return out;
}
