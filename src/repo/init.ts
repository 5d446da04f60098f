import fs from 'node:fs';
import path from 'node:path';
import { NotARepoError, TdvError } from '../errors.js';
import { gitIgnoredBy } from '../git/check-ignore.js';
import { findGitWorkTree, type GitWorkTree } from '../git/git.js';
import { quotePath } from '../formats/paths.js';
import { Guard, UnsafePathError } from '../workspace/guard.js';
import { CONFIG_TEMPLATE } from '../formats/config.js';
import { TDV_DIR } from '../formats/layout.js';
import { TDVIGNORE } from '../workspace/tdvignore.js';

export interface InitOptions {
  /** Allow a directory that is not a Git work tree. */
  noScm?: boolean;
  /** Allow a subdirectory of a Git work tree (a monorepo with several tdv projects). */
  subdir?: boolean;
  /** Re-create tdv's files even if the repository is initialized. */
  force?: boolean;
}

export interface InitResult {
  root: string;
  /** Repo-relative files created, for `git add`. */
  created: string[];
}

const TDV_GITIGNORE = '/cache/\n/tmp/\n/logs/\n/config.local.yaml\n';
const TDVIGNORE_TEMPLATE = '# Paths tdv leaves out when it adds or checks directories (gitignore syntax).\n';

export function init(dir: string, opts: InitOptions = {}): InitResult {
  const root = path.resolve(dir);
  const git = findGitWorkTree(root);
  if (!opts.noScm) {
    if (!git) throw new NotARepoError(`${quotePath(root)} is not inside a Git work tree; run \`git init\` first, or use \`tdv init --no-scm\` to track data without Git`);
    if (git.root !== root && !opts.subdir) {
      throw new TdvError('NOT_GIT_ROOT', `${quotePath(root)} is not the top of its Git work tree (${quotePath(git.root)}); run tdv init there, or pass --subdir`);
    }
  }
  if (git) refuseIgnoredOwnFiles(root, git);
  const tdvDir = path.join(root, TDV_DIR);
  if (fs.existsSync(path.join(tdvDir, 'config.yaml')) && !opts.force) {
    throw new TdvError('ALREADY_INITIALIZED', `${quotePath(tdvDir)} already initialized; use \`tdv init --force\` to re-create missing files (configuration and cache are kept)`);
  }
  // Through a guard, everything checked before anything is written: a symlink at .tdv or at
  // any file init makes (committed by a clone, say) is refused with one line naming it.
  const guard = new Guard(root, { allowOwnDir: true, allControl: true });
  const files: [rel: string, text: string, keep: boolean][] = [
    [`${TDV_DIR}/config.yaml`, CONFIG_TEMPLATE, true], // never overwrite the user's settings
    [`${TDV_DIR}/.gitignore`, TDV_GITIGNORE, false],
    [TDVIGNORE, TDVIGNORE_TEMPLATE, true],
  ];
  for (const rel of [TDV_DIR, ...files.map(([f]) => f)]) refuseSymlink(guard, rel);
  guard.mkdirp(TDV_DIR);
  const created: string[] = [];
  for (const [rel, text, keep] of files) {
    if (keep && guard.lstat(rel) !== undefined) continue;
    guard.writeControlFile(rel, text);
    created.push(rel);
  }
  return { root, created };
}

/** Refuses a symlink at `rel` (or on the way to it): init would write through it, anywhere. */
function refuseSymlink(guard: Guard, rel: string): void {
  const st = guard.lstat(rel); // a symlinked parent is refused here, naming it
  if (!st?.isSymbolicLink()) return;
  let target = '';
  try {
    target = ` (-> ${JSON.stringify(fs.readlinkSync(guard.abs(rel)))})`;
  } catch {
    /* gone meanwhile */
  }
  throw new UnsafePathError(
    `${rel} is a symlink${target}; tdv init writes tdv's files only as real files and directories, never through a link. Replace ${rel} with a real ${rel === TDV_DIR ? 'directory' : 'file'} (or delete it) and run tdv init again`,
    { path: rel },
  );
}

/**
 * tdv's configuration and the `.tdv/.gitignore` that keeps the cache out of Git
 * are committed with the project: a Git rule that ignores them (`.tdv`, `.*`
 * in the repository's or the user's global excludes file) would leave every
 * clone without them. Refused before anything is written, naming the rule.
 */
function refuseIgnoredOwnFiles(root: string, git: GitWorkTree): void {
  const prefix = path.relative(git.root, root).split(path.sep).join('/');
  const at = (rel: string) => (prefix === '' ? rel : `${prefix}/${rel}`);
  const rule = gitIgnoredBy(git.root, [at(`${TDV_DIR}/config.yaml`), at(`${TDV_DIR}/.gitignore`)])[0];
  if (!rule) return;
  throw new TdvError(
    'GIT_IGNORES_TDV',
    `Git ignores ${quotePath(rule.path)} (rule ${JSON.stringify(rule.pattern)} in ${quotePath(rule.source)}:${rule.line}), so tdv's configuration could not be committed; ` +
      `remove or narrow that rule, or re-include tdv's files with the lines "!/${at(TDV_DIR)}/" and "!/${at(TDV_DIR)}/*" after it in ${quotePath(path.join(git.root, '.gitignore'))}, then run tdv init again`,
  );
}
