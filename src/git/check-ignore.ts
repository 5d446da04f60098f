import { spawnSync } from 'node:child_process';

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
  const r = spawnSync('git', ['check-ignore', '--verbose', '-z', '--stdin'], {
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
