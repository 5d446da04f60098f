import path from 'node:path';
import { FormatError, TdvError } from '../../errors.js';
import { GitHistory, type TreeFile } from '../../git/history.js';
import { decodeUtf8, MAX_POINTER_BYTES, tooLargeError, toPosix } from '../../util/fs.js';
import { quotePath, relPathProblem } from '../../formats/paths.js';
import { parsePointer, type Pointer, POINTER_EXT } from '../../formats/pointer.js';
import { allOuts, checkOverlaps, findPointers, lockAsPointer, POINTER_FIX, type Selected, selectTargets } from './pointers.js';
import type { Repo } from '../repo.js';

const LOCK_FILE = 'tdv.lock';

/** A commit a command reads pointers from, and how the user named it (for messages). */
export interface RevisionRef {
  commit: string;
  /** The revision as given (`v1`, `HEAD~3`), or a ref name for scopes. */
  label: string;
}

/**
 * What reading a revision's pointers needs of a repository: its root (pointer
 * paths resolve against it) and Git work tree. A bare clone of another
 * repository (`tdv ls URL`) is one too.
 */
export type RepoTree = Pick<Repo, 'root' | 'git' | 'rel'>;

/** Opens the repository's Git history; a tdv repository outside Git has none. */
export function openHistory(repo: Repo): GitHistory {
  return GitHistory.open(repo.git);
}

/**
 * The tdv repository's place in the Git tree: '' at the top of the work tree,
 * `sub/dir/` for `tdv init --subdir`.
 */
export function treePrefix(repo: RepoTree): string {
  const rel = toPosix(path.relative(repo.git!.root, repo.root));
  return rel === '' ? '' : `${rel}/`;
}

/** The pointer files (repo-relative paths, blob ids) in a commit's tree. */
export function pointerFilesAt(repo: RepoTree, history: GitHistory, commit: string): TreeFile[] {
  let tree = history.commit(commit).tree;
  const prefix = treePrefix(repo);
  if (prefix) {
    const e = history.entryAt(tree, prefix.slice(0, -1));
    if (e?.kind !== 'tree') return [];
    tree = e.oid;
  }
  return history.filesAt(tree, POINTER_EXT);
}

/**
 * Reads and validates pointer files at a commit, with the same rules as in the
 * workspace. `Pointer.file` is where the file would be in the workspace;
 * errors name it as `label:path`, as Git does. `memo` shares parsed blobs
 * between commits.
 */
export async function pointersAt(repo: RepoTree, history: GitHistory, at: RevisionRef, memo = new Map<string, Promise<Pointer>>()): Promise<Pointer[]> {
  const files = pointerFilesAt(repo, history, at.commit);
  const pointers = await Promise.all(
    files.map((f) => {
      const key = `${f.oid}\0${f.path}`;
      let p = memo.get(key);
      if (!p) {
        p = readPointerAt(repo, history, f, quotePath(`${at.label}:${f.path}`));
        memo.set(key, p);
      }
      return p;
    }),
  );
  const lock = await lockPointerAt(repo, history, at);
  if (lock) pointers.push(lock);
  checkOverlaps(repo, pointers, at.label);
  return pointers;
}

/**
 * One pointer file of a commit, read exactly as readPointer reads one in the
 * workspace: its path must be legal (a tree is as untrusted as a clone), its
 * size at most MAX_POINTER_BYTES, its bytes strictly UTF-8.
 */
async function readPointerAt(repo: RepoTree, history: GitHistory, f: TreeFile, shown: string): Promise<Pointer> {
  const problem = f.badName ? 'is not valid UTF-8' : relPathProblem(f.path);
  if (problem !== undefined) throw new FormatError(shown, `is not a path tdv can check out: it ${problem}`, POINTER_FIX);
  const bytes = history.blob(f.oid);
  if (bytes.length > MAX_POINTER_BYTES) throw tooLargeError(shown, bytes.length, MAX_POINTER_BYTES, 'a pointer file');
  return parsePointer(decodeUtf8(bytes, shown, POINTER_FIX), path.join(repo.root, ...f.path.split('/')), shown);
}

/** The stage outputs tdv.lock records at a commit, as one pointer (as in the workspace). */
async function lockPointerAt(repo: RepoTree, history: GitHistory, at: RevisionRef): Promise<Pointer | undefined> {
  const bytes = history.readFileAt(at.commit, `${treePrefix(repo)}${LOCK_FILE}`);
  if (!bytes) return undefined;
  const shown = quotePath(`${at.label}:${LOCK_FILE}`);
  const { decodeLock, parseLock } = await import('../../stages/lock.js');
  return lockAsPointer(path.join(repo.root, LOCK_FILE), await parseLock(decodeLock(bytes, shown), shown));
}

/** How the Git index is named in messages and in gc's plan (Git's own `:path` syntax names its entries). */
export const INDEX_LABEL = 'the Git index';

/**
 * The pointers staged in the Git index (every stage of a conflicted path),
 * read as strictly as a commit's: what `git commit` would record, which may
 * differ from both HEAD and the workspace. Errors name them `:path`.
 */
export async function pointersInIndex(repo: Repo, history: GitHistory): Promise<Pointer[]> {
  const { readIndexEntries } = await import('../../git/index-file.js');
  const prefix = treePrefix(repo);
  const lock = `${prefix}${LOCK_FILE}`;
  const out: Pointer[] = [];
  const seen = new Set<string>();
  for (const e of readIndexEntries(repo.git!.gitdir)) {
    // Regular files only (a symlink or submodule entry is no pointer), below the tdv repository, not in its .tdv/.
    if ((e.mode & 0o170000) !== 0o100000 || !e.path.startsWith(prefix) || seen.has(`${e.oid}\0${e.path}`)) continue;
    const rel = e.path.slice(prefix.length);
    seen.add(`${e.oid}\0${e.path}`);
    const shown = quotePath(`:${rel}`);
    if (e.path === lock) {
      const { decodeLock, parseLock } = await import('../../stages/lock.js');
      const lp = lockAsPointer(path.join(repo.root, LOCK_FILE), await parseLock(decodeLock(history.blob(e.oid), shown), shown));
      if (lp) out.push(lp);
    } else if (rel.endsWith(POINTER_EXT) && !rel.startsWith('.tdv/')) {
      out.push(await readPointerAt(repo, history, { path: rel, oid: e.oid }, shown));
    }
  }
  return out;
}

/** Resolves one revision the user gave. */
export function resolveRevision(history: GitHistory, rev: string): RevisionRef {
  return { commit: history.resolve(rev), label: rev };
}

/**
 * Targets resolved against the pointers of a revision. A target nothing
 * tracks at that revision is a usage error that says so.
 */
export function selectAt(repo: Repo, pointers: readonly Pointer[], targets: readonly string[], at: RevisionRef): Selected[] {
  try {
    return selectTargets(repo, pointers, targets);
  } catch (err) {
    if (!(err instanceof TdvError) || err.code !== 'NOT_TRACKED') throw err;
    const untracked = (t: string) => {
      try {
        selectTargets(repo, pointers, [t]);
        return false;
      } catch {
        return true;
      }
    };
    const bad = targets.find(untracked);
    const what = bad === undefined ? 'that target' : repo.rel(bad);
    throw new TdvError('NOT_TRACKED', `${what} is not tracked by tdv at ${at.label} (commit ${at.commit.slice(0, 12)}); \`tdv log\` lists the versions of tracked data`);
  }
}

/** Which commits beyond the workspace a command takes data from. */
export interface HistoryScope {
  /** Also the workspace's pointers (push and gc keep them; fetch --rev does not). */
  workspace?: boolean;
  /** Revisions as the user named them. */
  revs?: string[];
  /** The tip of every local branch. */
  allBranches?: boolean;
  /** Every tag. */
  allTags?: boolean;
  /** Every commit reachable from any branch, tag or remote-tracking ref, and HEAD. */
  allCommits?: boolean;
  /**
   * Every stash entry (`refs/stash` and its reflog) and what it holds: the
   * work tree, index and untracked-files commits. gc keeps them with
   * --all-commits: a stash is where wanted but uncommitted pointers live.
   */
  stashes?: boolean;
}

export function scopeIsEmpty(s: HistoryScope): boolean {
  return !s.revs?.length && !s.allBranches && !s.allTags && !s.allCommits && !s.stashes;
}

/** The commits a scope names, each once. */
export function scopeCommits(history: GitHistory, scope: HistoryScope): RevisionRef[] {
  const out = new Map<string, RevisionRef>();
  const add = (commit: string, label: string) => {
    if (!out.has(commit)) out.set(commit, { commit, label });
  };
  for (const r of scope.revs ?? []) add(history.resolve(r), r);
  if (scope.allBranches) for (const t of history.tips('refs/heads/')) add(t.oid, t.name.slice('refs/heads/'.length));
  if (scope.allTags) for (const t of history.tips('refs/tags/')) add(t.oid, t.name.slice('refs/tags/'.length));
  if (scope.allCommits) {
    const starts = history.tips('refs/').map((t) => t.oid);
    const head = history.refs.resolve('HEAD');
    if (head) starts.push(head);
    for (const c of history.reachable(starts)) add(c.oid, c.oid.slice(0, 12));
  }
  if (scope.stashes) for (const c of history.reachable(history.stashes())) add(c.oid, c.oid.slice(0, 12));
  return [...out.values()];
}

/** A tracked output at some commit, with the commit it was found at (the first one, if several). */
export interface HistoricOut extends Selected {
  at: RevisionRef;
}

/**
 * Every tracked output at the scope's commits, one per distinct (path,
 * version): what push, fetch and gc act on beyond the workspace.
 */
export async function outsInScope(repo: Repo, history: GitHistory, scope: HistoryScope): Promise<HistoricOut[]> {
  const memo = new Map<string, Promise<Pointer>>();
  const seen = new Set<string>();
  const out: HistoricOut[] = [];
  for (const at of scopeCommits(history, scope)) {
    for (const s of allOuts(repo, await pointersAt(repo, history, at, memo))) {
      const key = `${s.rel}\0${s.out.sha256}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ ...s, at });
    }
  }
  return out;
}

/**
 * The tracked outputs a transfer acts on: the workspace's (no scope), or
 * those at the scope's commits (plus the workspace's when `scope.workspace`).
 * With targets, a target tracked at some of those places is taken from there;
 * one tracked nowhere is a usage error.
 */
export async function selectForTransfer(repo: Repo, opts: { targets?: string[]; scope?: HistoryScope }): Promise<Selected[]> {
  const targets = opts.targets ?? [];
  if (!opts.scope || scopeIsEmpty(opts.scope)) return selectTargets(repo, await findPointers(repo), targets);
  const picked = new Map<string, Selected>();
  const matched = new Set<string>();
  const take = (pointers: readonly Pointer[]) => {
    const found: Selected[] = [];
    if (targets.length === 0) found.push(...allOuts(repo, pointers));
    for (const t of targets) {
      try {
        found.push(...selectTargets(repo, pointers, [t]));
        matched.add(t);
      } catch (err) {
        if (!(err instanceof TdvError) || err.code !== 'NOT_TRACKED') throw err;
      }
    }
    for (const s of found) {
      const key = `${s.rel}\0${s.sub ?? ''}\0${s.out.sha256}`;
      if (!picked.has(key)) picked.set(key, s);
    }
  };
  if (opts.scope.workspace) take(await findPointers(repo));
  const history = openHistory(repo);
  try {
    const memo = new Map<string, Promise<Pointer>>();
    const commits = scopeCommits(history, opts.scope);
    for (const at of commits) take(await pointersAt(repo, history, at, memo));
    const missed = targets.find((t) => !matched.has(t));
    if (missed !== undefined) {
      const where = `${opts.scope.workspace ? 'in the workspace nor ' : ''}at any of the ${commits.length} commit(s) asked for`;
      throw new TdvError('NOT_TRACKED', `${repo.rel(missed)} is not tracked by tdv ${where}; \`tdv log\` lists the versions of tracked data`);
    }
  } finally {
    history.close();
  }
  return [...picked.values()];
}
