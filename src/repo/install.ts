import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../errors.js';
import { gitCommonDir } from '../git/git.js';
import { toPosix } from '../util/fs.js';
import { Guard } from '../workspace/guard.js';
import type { Repo } from './repo.js';

/** Runs `git` with arguments in a directory; returns stdout, or throws with Git's message. Injected in tests of failures. */
export type GitRunner = (cwd: string, args: string[]) => Promise<string>;

export interface InstallOptions {
  uninstall?: boolean;
  git?: GitRunner;
}

export type Action = 'installed' | 'updated' | 'unchanged' | 'removed' | 'absent';

export interface InstallResult {
  hooksDir: string;
  hooks: { name: string; action: Action; chained: boolean }[];
  /** The `*.tdv merge=tdv` line in .gitattributes. */
  attributes: Action;
  /** `merge.tdv.*` in the repository's Git config. */
  driver: Action;
}

const BEGIN = '# >>> tdv: added by `tdv install`; `tdv install --uninstall` removes this block >>>';
const END = '# <<< tdv <<<';
const ATTRIBUTE = '*.tdv merge=tdv';
const ATTRIBUTES_FILE = '.gitattributes';
const DRIVER = 'tdv merge-driver %O %A %B %P';

const MISSING_TDV = 'echo "tdv is not on PATH: run \\`tdv %s\\` yourself" >&2';

/**
 * The hooks and what each runs. post-checkout runs only for branch checkouts
 * (its third argument is 1), not for `git checkout -- file`. pre-push stops
 * the push when the data could not be pushed, so no one receives pointers
 * whose data is nowhere; stdin (Git's list of refs) is left to the rest of
 * the hook.
 */
const HOOKS: Record<string, string> = {
  'post-checkout': [
    'if [ "$3" = "1" ]; then',
    '  if command -v tdv >/dev/null 2>&1; then tdv checkout </dev/null || echo "tdv checkout failed: the data does not match the checked-out pointers" >&2',
    `  else ${MISSING_TDV.replace('%s', 'checkout')}; fi`,
    'fi',
  ].join('\n'),
  'post-merge': [
    'if command -v tdv >/dev/null 2>&1; then tdv checkout </dev/null || echo "tdv checkout failed: the data does not match the merged pointers" >&2',
    `else ${MISSING_TDV.replace('%s', 'checkout')}; fi`,
  ].join('\n'),
  'pre-push': [
    'if command -v tdv >/dev/null 2>&1; then tdv push </dev/null || { echo "tdv push failed, so the Git push is stopped (git push --no-verify skips this check)" >&2; exit 1; }',
    `else ${MISSING_TDV.replace('%s', 'push')}; fi`,
  ].join('\n'),
};

function block(name: string): string {
  return `${BEGIN}\n${HOOKS[name]}\n${END}\n`;
}

/** Shells whose scripts can take a block of sh commands. A file without `#!` is run by /bin/sh. */
const SHELL = /^#!\s*(?:\/usr\/bin\/env\s+)?(?:\S*\/)?(?:sh|bash|dash|zsh|ksh|ash)(?:\s|$)/;

const defaultGit: GitRunner = async (cwd, args) => {
  const { execa } = await import('execa');
  const r = await execa('git', args, { cwd, reject: false });
  if (r.exitCode !== 0) throw new TdvError('GIT_FAILED', `git ${args.join(' ')} failed: ${String(r.stderr).split('\n')[0]}`);
  return String(r.stdout);
};

/**
 * Installs (or removes) the Git hooks that keep data in step with Git, and
 * registers the pointer merge driver. Existing hooks are kept: tdv's lines go
 * in a marked block near the top of a shell hook, and only that block is ever
 * removed. Everything is checked before anything is written.
 */
export async function install(repo: Repo, opts: InstallOptions = {}): Promise<InstallResult> {
  if (!repo.git) throw new TdvError('NOT_A_GIT_REPO', 'this tdv repository is not in a Git work tree, so there are no Git hooks to install; `git init` it first');
  const git = opts.git ?? defaultGit;
  const wt = repo.git.root;
  // Git's own answer honours core.hooksPath (at any level) and linked worktrees.
  const hooksDir = path.resolve(wt, (await git(wt, ['rev-parse', '--git-path', 'hooks'])).trim());

  const hooks = hooksGuard(repo.git.gitdir, wt, hooksDir);

  // Plan: every hook's new content, or a refusal, before touching anything.
  const plans: { name: string; rel: string; next: string | undefined; action: Action; chained: boolean; mode: number }[] = [];
  for (const name of Object.keys(HOOKS)) {
    const rel = hooks.dir === '' ? name : `${hooks.dir}/${name}`;
    const shown = path.relative(wt, hooks.guard.abs(rel));
    // The guard refuses a hooks directory (or a parent) that is a symlink: hooks written there would land anywhere.
    const st = hooks.guard.lstat(rel, hooks.source);
    const text = st ? readHook(hooks.guard, rel, shown, st) : undefined;
    const without = text === undefined ? undefined : removeBlock(text);
    const chained = without !== undefined && without.replace(/^#!.*\n?/, '').trim() !== '';
    if (opts.uninstall) {
      if (text === undefined || without === text) plans.push({ name, rel, next: text, action: 'absent', chained, mode: 0 });
      else plans.push({ name, rel, next: chained ? without : undefined, action: 'removed', chained, mode: st!.mode & 0o7777 });
      continue;
    }
    if (text === undefined) {
      plans.push({ name, rel, next: `#!/bin/sh\n${block(name)}`, action: 'installed', chained: false, mode: 0o755 });
      continue;
    }
    const firstLine = text.split('\n', 1)[0]!;
    if (firstLine.startsWith('#!') && !SHELL.test(firstLine)) {
      throw new TdvError(
        'HOOK_NOT_SHELL',
        `${shown} is not a shell script (${firstLine}), so tdv cannot add its lines to it; add \`tdv ${name === 'pre-push' ? 'push' : 'checkout'}\` to it yourself, or move it aside and run \`tdv install\` again`,
      );
    }
    if ((st!.mode & 0o111) === 0) {
      throw new TdvError('HOOK_DISABLED', `${shown} exists but is not executable, so Git skips it; make it executable (chmod +x) or delete it, then run \`tdv install\` again`);
    }
    const next = insertBlock(without!, block(name));
    plans.push({ name, rel, next, action: next === text ? 'unchanged' : without === text ? 'installed' : 'updated', chained, mode: st!.mode & 0o7777 });
  }

  // A committed .gitattributes that is a symlink is refused here, before anything is written.
  const attrText = repo.guard.readControlFile(ATTRIBUTES_FILE);
  const attrLines = attrText === undefined ? [] : attrText.split('\n');
  const hasAttr = attrLines.some((l) => l.trim() === ATTRIBUTE);
  const driverNow = await git(wt, ['config', '--local', '--get', 'merge.tdv.driver']).catch(() => undefined);

  // Apply.
  for (const p of plans) {
    if (p.action === 'unchanged' || p.action === 'absent') continue;
    if (p.next === undefined) {
      hooks.guard.removeControlFile(p.rel);
      continue;
    }
    hooks.guard.writeControlFile(p.rel, p.next, { mode: p.mode, source: hooks.source });
    // The umask may have taken bits away from the new file's mode; Git runs only executable hooks.
    hooks.guard.chmod(p.rel, p.mode, hooks.source);
  }
  let attributes: Action;
  if (opts.uninstall) {
    attributes = hasAttr ? 'removed' : 'absent';
    if (hasAttr) {
      const rest = attrLines.filter((l) => l.trim() !== ATTRIBUTE).join('\n');
      if (rest.trim() === '') repo.guard.removeControlFile(ATTRIBUTES_FILE);
      else repo.guard.writeControlFile(ATTRIBUTES_FILE, rest);
    }
  } else {
    attributes = hasAttr ? 'unchanged' : 'installed';
    if (!hasAttr) repo.guard.writeControlFile(ATTRIBUTES_FILE, `${attrText === undefined || attrText === '' || attrText.endsWith('\n') ? (attrText ?? '') : `${attrText}\n`}${ATTRIBUTE}\n`);
  }
  let driver: Action;
  if (opts.uninstall) {
    driver = driverNow === undefined ? 'absent' : 'removed';
    if (driverNow !== undefined) await git(wt, ['config', '--local', '--remove-section', 'merge.tdv']);
  } else if (driverNow?.trim() === DRIVER) {
    driver = 'unchanged';
  } else {
    driver = driverNow === undefined ? 'installed' : 'updated';
    await git(wt, ['config', '--local', 'merge.tdv.name', 'tdv pointer files: merge directory manifests file by file']);
    await git(wt, ['config', '--local', 'merge.tdv.driver', DRIVER]);
  }
  return { hooksDir, hooks: plans.map((p) => ({ name: p.name, action: p.action, chained: p.chained })), attributes, driver };
}

function readHook(guard: Guard, rel: string, shown: string, st: fs.Stats): string {
  if (!st.isFile()) throw new TdvError('HOOK_NOT_FILE', `${shown} is not a regular file (a symlink or directory); tdv leaves it alone: add its commands yourself`);
  return guard.readControlFile(rel) ?? '';
}

/**
 * The guard hooks are written through, the hooks directory relative to its
 * root, and the root's name for messages. Rooted at the Git directory (or the
 * shared one of a linked worktree) when the hooks are there, as they are
 * unless core.hooksPath moves them; at the work tree for a hooks directory in
 * it; at the hooks directory itself elsewhere. Either way every component from
 * that root to the hook is checked to be a real directory, never a symlink.
 */
function hooksGuard(gitdir: string, wt: string, hooksDir: string): { guard: Guard; dir: string; source: string } {
  const roots: [string, string][] = [[gitdir, 'the Git directory']];
  const common = gitCommonDir(gitdir);
  if (common !== undefined) roots.push([common, 'the Git directory']);
  roots.push([wt, 'the Git work tree']);
  for (const [root, label] of roots) {
    const rel = path.relative(root, hooksDir);
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) continue;
    return { guard: new Guard(root, { label, allControl: true }), dir: toPosix(rel), source: path.relative(wt, root) || '.' };
  }
  return { guard: new Guard(hooksDir, { label: 'the hooks directory (core.hooksPath)', allControl: true }), dir: '', source: hooksDir };
}

/** The hook's text without tdv's block (and the blank line tdv put before it, if any). */
function removeBlock(text: string): string {
  const start = text.indexOf(BEGIN);
  if (start === -1) return text;
  const end = text.indexOf(END, start);
  if (end === -1) throw new TdvError('HOOK_DAMAGED', `a Git hook has tdv's start marker but not its end marker ("${END}"); fix the hook by hand`);
  let after = end + END.length;
  if (text[after] === '\n') after++;
  return text.slice(0, start) + text.slice(after);
}

/** Puts the block right after the `#!` line, so an `exit` later in the hook cannot skip it. */
function insertBlock(text: string, b: string): string {
  if (!text.startsWith('#!')) return `${b}${text}`;
  const nl = text.indexOf('\n');
  if (nl === -1) return `${text}\n${b}`;
  return `${text.slice(0, nl + 1)}${b}${text.slice(nl + 1)}`;
}
