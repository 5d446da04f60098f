import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TdvError } from '../errors.js';
import { type Commit, findTreeEntry, parseCommit, parseTag, type TreeEntry, treeEntries } from './format.js';
import type { GitWorkTree } from './git.js';
import { corruptGit, MissingGitObjectError, ObjectDb } from './objects.js';
import { Refs } from './refs.js';

/** A revision the user named that Git cannot resolve: a usage error (exit 2). */
export class UnknownRevisionError extends TdvError {
  constructor(rev: string, why: string) {
    super('UNKNOWN_REVISION', `unknown revision "${rev}": ${why}`, { data: { rev } });
  }
}

/** The commit exists in Git's history but not in this (shallow) clone. */
export class ShallowCloneError extends TdvError {
  constructor(what: string, oid: string) {
    super(
      'SHALLOW_CLONE',
      `${what} needs commit ${oid.slice(0, 12)}, which this shallow clone does not have; run \`git fetch --unshallow\` to fetch the full history (in CI: a checkout with fetch-depth: 0)`,
      { data: { oid } },
    );
  }
}

/**
 * The object `git rev-parse` resolves `rev` to, or undefined when Git does not
 * (or cannot be run). The revision is one argument after --end-of-options, so
 * it is never read as an option.
 */
function gitRevParse(cwd: string, rev: string): string | undefined {
  if (rev === '' || rev.includes('\0')) return undefined;
  // Not `${rev}^{commit}`: after `:/` the rest is the message searched for. The caller peels.
  const r = spawnSync('git', ['rev-parse', '--verify', '--quiet', '--end-of-options', rev], {
    cwd,
    timeout: 30_000,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const oid = r.status === 0 && typeof r.stdout === 'string' ? r.stdout.trim() : '';
  return /^[0-9a-f]{40}$/.test(oid) ? oid : undefined;
}

/** A pointer file in a commit's tree: its repo-relative path and its blob. */
export interface TreeFile {
  path: string;
  oid: string;
  /**
   * Set when a component of the path is not valid UTF-8 in the tree: `path`
   * then shows those bytes as U+FFFD and names a file nobody committed, so
   * readers refuse it (as the workspace walk does such a name).
   */
  badName?: true;
}

const HEX = /^[0-9a-f]{4,40}$/;

/**
 * Read access to a repository's history: revisions, commits, trees and
 * files at any commit, without touching HEAD, the index or the work tree.
 */
export class GitHistory {
  readonly refs: Refs;
  readonly db: ObjectDb;
  private readonly shallow: Set<string>;
  private readonly commits = new Map<string, Commit>();
  private readonly fileLists = new Map<string, TreeFile[]>();

  private constructor(readonly wt: GitWorkTree) {
    const commondir = commonDir(wt.gitdir);
    let config = '';
    try {
      config = fs.readFileSync(path.join(commondir, 'config'), 'utf8');
    } catch {
      /* no config: defaults */
    }
    if (/^\s*objectformat\s*=\s*sha256\s*$/im.test(config)) {
      throw new TdvError('GIT_UNSUPPORTED', `${wt.root} is a SHA-256 Git repository (extensions.objectFormat), whose history tdv cannot read yet`);
    }
    this.refs = new Refs(wt.gitdir, commondir);
    this.db = new ObjectDb(path.join(commondir, 'objects'));
    let shallow = '';
    try {
      shallow = fs.readFileSync(path.join(commondir, 'shallow'), 'utf8');
    } catch {
      /* not shallow */
    }
    this.shallow = new Set(shallow.split('\n').filter((l) => /^[0-9a-f]{40}$/.test(l)));
  }

  static open(wt: GitWorkTree | undefined): GitHistory {
    if (!wt) throw new TdvError('NOT_A_GIT_REPO', 'this tdv repository is not in a Git work tree, so it has no history to read; `git init` it, or work without --rev');
    return new GitHistory(wt);
  }

  get isShallow(): boolean {
    return this.shallow.size > 0;
  }

  /** The branch HEAD is on (short name), or undefined when detached. */
  headBranch(): string | undefined {
    return this.refs.headBranch()?.replace(/^refs\/heads\//, '');
  }

  /**
   * The commit a revision names: a commit id (full or abbreviated), a branch,
   * a tag (annotated ones are followed), HEAD or `@`, each optionally followed
   * by `~N`, `^N`, `^{commit}` or `^{}` as in `git rev-parse`.
   */
  resolve(rev: string): string {
    try {
      return this.resolveHere(rev);
    } catch (err) {
      if (!(err instanceof UnknownRevisionError)) throw err;
      // Git's revision syntax is larger than the forms read here (`:/message`, `@{1}`,
      // `main@{yesterday}`, `HEAD^{/fix}`, `v1^{tag}`...): what Git resolves is a revision.
      const oid = gitRevParse(this.wt.root, rev);
      if (oid === undefined || !this.db.has(oid)) throw err;
      return this.peelToCommit(oid, rev);
    }
  }

  /** True when a commit exists for HEAD (false in a repository whose first commit is not made yet). */
  hasCommits(): boolean {
    return this.refs.resolve('HEAD') !== undefined;
  }

  private resolveHere(rev: string): string {
    const m = /^(.*?)((?:~\d*|\^\d*|\^\{(?:commit)?\})*)$/.exec(rev);
    const base = m?.[1] ?? rev;
    const suffix = m?.[2] ?? '';
    if (base === '') throw new UnknownRevisionError(rev, 'it names no branch, tag or commit');
    let oid = this.peelToCommit(this.resolveBase(rev, base === '@' ? 'HEAD' : base), rev);
    for (const op of suffix.match(/~\d*|\^\{(?:commit)?\}|\^\d*/g) ?? []) {
      if (op.startsWith('^{')) continue; // already a commit
      const n = op.length === 1 ? 1 : Number(op.slice(1));
      if (op.startsWith('~')) {
        for (let i = 0; i < n; i++) oid = this.parentOf(rev, oid, 0);
      } else if (n > 0) {
        oid = this.parentOf(rev, oid, n - 1);
      }
    }
    if (oid !== this.peelToCommit(oid, rev)) throw new UnknownRevisionError(rev, 'it does not name a commit');
    return oid;
  }

  private resolveBase(rev: string, base: string): string {
    const isHex = HEX.test(base);
    if (isHex && base.length === 40) {
      if (this.db.has(base)) return base;
      if (this.isShallow) throw new ShallowCloneError(`revision "${rev}"`, base);
      throw new UnknownRevisionError(rev, 'no such commit in this repository (`git log --oneline` lists them)');
    }
    const ref = this.refs.dwim(base);
    if (ref) return ref.oid;
    if (isHex) {
      const found = this.db.findPrefix(base, 2);
      if (found.length === 1) return found[0]!;
      if (found.length > 1) throw new UnknownRevisionError(rev, `the short id ${base} is ambiguous; give more digits`);
      if (this.isShallow) throw new UnknownRevisionError(rev, 'no branch, tag or commit of that name; this clone is shallow, so older commits may be missing: `git fetch --unshallow` fetches them');
    }
    throw new UnknownRevisionError(rev, 'no branch, tag or commit of that name (`git branch -a`, `git tag` and `git log --oneline` list them)');
  }

  private peelToCommit(oid: string, rev: string): string {
    for (let i = 0; i < 10; i++) {
      const o = this.db.tryRead(oid);
      if (!o) {
        if (this.isShallow) throw new ShallowCloneError(`revision "${rev}"`, oid);
        throw new MissingGitObjectError(oid);
      }
      if (o.type === 'commit') return oid;
      if (o.type !== 'tag') throw new UnknownRevisionError(rev, `it names a ${o.type}, not a commit`);
      oid = parseTag(oid, o.data).object;
    }
    throw corruptGit(`tag chain of ${rev} is too long`);
  }

  private parentOf(rev: string, oid: string, index: number): string {
    const c = this.commit(oid);
    const p = c.parents[index];
    if (p !== undefined && this.shallow.has(oid)) throw new ShallowCloneError(`revision "${rev}"`, p);
    if (p === undefined) {
      throw new UnknownRevisionError(rev, `commit ${oid.slice(0, 12)} has ${c.parents.length === 0 ? 'no parent' : `only ${c.parents.length} parent(s)`}`);
    }
    return p;
  }

  /** A commit, parsed (kept: histories revisit commits). */
  commit(oid: string): Commit {
    let c = this.commits.get(oid);
    if (!c) {
      const o = this.db.tryRead(oid);
      if (!o) {
        if (this.isShallow) throw new ShallowCloneError('this command', oid);
        throw new MissingGitObjectError(oid);
      }
      if (o.type !== 'commit') throw corruptGit(`${oid} is a ${o.type}, expected a commit`);
      c = parseCommit(oid, o.data);
      this.commits.set(oid, c);
    }
    return c;
  }

  /** The parents of `c` this clone has: a shallow commit's parents are not here. */
  parents(c: Commit): string[] {
    return this.shallow.has(c.oid) ? [] : c.parents;
  }

  /** The entry at a repo-relative POSIX path in a tree, descending only along the path. */
  entryAt(tree: string, relPath: string): TreeEntry | undefined {
    const parts = relPath.split('/');
    let cur = tree;
    for (let i = 0; i < parts.length; i++) {
      const e = findTreeEntry(this.db.readAs(cur, 'tree'), parts[i]!);
      if (!e) return undefined;
      if (i === parts.length - 1) return e;
      if (e.kind !== 'tree') return undefined;
      cur = e.oid;
    }
    return undefined;
  }

  /** A file's bytes at a commit, or undefined when it is not there (or is not a regular file). */
  readFileAt(commit: string, relPath: string): Buffer | undefined {
    const e = this.entryAt(this.commit(commit).tree, relPath);
    return e?.kind === 'blob' ? this.db.readAs(e.oid, 'blob', `${commit.slice(0, 12)}:${relPath}`) : undefined;
  }

  blob(oid: string): Buffer {
    return this.db.readAs(oid, 'blob');
  }

  /**
   * Every regular file whose name ends in `ext` in a commit's root tree, with
   * repo-relative paths, leaving out tdv's own `.tdv/`. Subtrees are
   * remembered by id, so listing the trees of many commits costs one visit per
   * distinct subtree.
   */
  filesAt(rootTree: string, ext: string): TreeFile[] {
    return this.listFiles(rootTree, ext, true);
  }

  private filesUnder(tree: string, ext: string): TreeFile[] {
    const key = `${ext}\0${tree}`;
    let files = this.fileLists.get(key);
    if (!files) {
      files = this.listFiles(tree, ext, false);
      this.fileLists.set(key, files);
    }
    return files;
  }

  private listFiles(tree: string, ext: string, root: boolean): TreeFile[] {
    const out: TreeFile[] = [];
    const data = this.db.readAs(tree, 'tree');
    for (const e of treeEntries(data)) {
      // Names are decoded leniently; one holding U+FFFD is real only if its UTF-8 is in the tree as such.
      const bad = e.name.includes('\uFFFD') && findTreeEntry(data, e.name) === undefined;
      if (e.kind === 'blob' && e.name.endsWith(ext)) out.push(bad ? { path: e.name, oid: e.oid, badName: true } : { path: e.name, oid: e.oid });
      else if (e.kind === 'tree' && !(root && e.name === '.tdv')) {
        for (const f of this.filesUnder(e.oid, ext)) out.push(bad || f.badName ? { path: `${e.name}/${f.path}`, oid: f.oid, badName: true } : { path: `${e.name}/${f.path}`, oid: f.oid });
      }
    }
    return out;
  }

  /** Tip commits of local branches (`refs/heads/`) or tags (`refs/tags/`), tags followed to their commits. */
  tips(prefix: 'refs/heads/' | 'refs/tags/' | 'refs/'): { name: string; oid: string }[] {
    const out: { name: string; oid: string }[] = [];
    for (const r of this.refs.list(prefix)) {
      if (r.name === 'refs/stash') continue;
      const c = this.tryPeel(r.oid);
      if (c) out.push({ name: r.name, oid: c });
    }
    return out;
  }

  /**
   * The stash entries (`refs/stash` and its reflog, `stash@{0}`, `stash@{1}`,
   * ...) that are commits here. Each is a commit of the work tree whose
   * parents are the commit it was made on, a commit of the index and, with
   * `git stash -u`, one of the untracked files: walking their parents reaches
   * every version a stash holds.
   */
  stashes(): string[] {
    const out = new Set<string>();
    const tip = this.refs.resolve('refs/stash');
    for (const oid of [...(tip ? [tip] : []), ...this.refs.reflog('refs/stash')]) {
      const c = this.tryPeel(oid);
      if (c) out.add(c);
    }
    return [...out];
  }

  /** A ref target followed to a commit; undefined for a tag of a tree or blob, or a missing object. */
  private tryPeel(oid: string): string | undefined {
    for (let i = 0; i < 10; i++) {
      const o = this.db.tryRead(oid);
      if (!o) return undefined;
      if (o.type === 'commit') return oid;
      if (o.type !== 'tag') return undefined;
      oid = parseTag(oid, o.data).object;
    }
    return undefined;
  }

  /** Every commit reachable from `starts` (all parents), each once, stopping at a shallow clone's boundary. */
  *reachable(starts: Iterable<string>): Generator<Commit> {
    const seen = new Set<string>();
    const stack = [...starts];
    while (stack.length > 0) {
      const oid = stack.pop()!;
      if (seen.has(oid)) continue;
      seen.add(oid);
      const c = this.commit(oid);
      yield c;
      for (const p of this.parents(c)) if (!seen.has(p)) stack.push(p);
    }
  }

  close(): void {
    this.db.close();
  }
}

/** Where refs and objects live: the git directory, or for a linked worktree the main one (`commondir`). */
function commonDir(gitdir: string): string {
  try {
    const rel = fs.readFileSync(path.join(gitdir, 'commondir'), 'utf8').trim();
    if (rel) return path.resolve(gitdir, rel);
  } catch {
    /* a plain repository */
  }
  return gitdir;
}
