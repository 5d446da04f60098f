import fs from 'node:fs';
import path from 'node:path';
import { NotARepoError } from '../errors.js';
import { Linker } from '../workspace/link.js';
import { StatCache } from '../cache/statcache.js';
import { ObjectStore } from '../cache/store.js';
import { findGitWorkTree, type GitWorkTree } from '../git/git.js';
import { toPosix } from '../util/fs.js';
import { type Config, loadConfig } from '../formats/config.js';
import { RepoLock } from '../workspace/mutex.js';
import { Guard, UnsafePathError } from '../workspace/guard.js';
import { quotePath } from '../formats/paths.js';
import { readIndexPaths, TrackedPaths } from '../git/index-file.js';
import { type IgnoreMatcher, loadTdvignore } from '../workspace/tdvignore.js';
import { checkCacheDir } from './lib/cache-dir.js';

import { TDV_DIR } from '../formats/layout.js';

export { TDV_DIR };

/** Callbacks through which plumbing and porcelain report to whoever presents them. */
export interface Reporter {
  warn?(msg: string): void;
  debug?(msg: string): void;
}

/** An open tdv repository: its root, configuration, cache and stat cache. */
export class Repo {
  private _store?: ObjectStore;
  private _statCache?: StatCache;
  private _ignore?: Promise<IgnoreMatcher | undefined>;
  private _guard?: Guard;
  private _own?: Guard;
  private _gitTracked?: TrackedPaths;

  private constructor(
    readonly root: string,
    readonly config: Config,
    readonly git: GitWorkTree | undefined,
    readonly reporter: Reporter,
  ) {}

  /** Finds the repository containing `cwd` by walking up to the nearest `.tdv/`, like Git. */
  static async open(cwd: string, reporter: Reporter = {}): Promise<Repo> {
    const root = findRoot(cwd);
    if (!root) throw new NotARepoError(`not a tdv repository (or any parent directory): ${cwd}. Run \`tdv init\` at the top of your Git repository`);
    checkOwnDirs(root);
    const config = await loadConfig(path.join(root, TDV_DIR));
    await checkCacheDir(root, config);
    const repo = new Repo(root, config, findGitWorkTree(root), reporter);
    repo.checkCommittedCacheLink();
    return repo;
  }

  get tdvDir(): string {
    return path.join(this.root, TDV_DIR);
  }

  get tmpDir(): string {
    return path.join(this.tdvDir, 'tmp');
  }

  get cacheDir(): string {
    return this.config.cache.dir ?? path.join(this.tdvDir, 'cache');
  }

  get store(): ObjectStore {
    // Temp files must live on the cache's file system for the final rename.
    this._store ??= new ObjectStore(this.cacheDir, this.config.cache.dir ? path.join(this.cacheDir, 'tmp') : this.tmpDir);
    return this._store;
  }

  get statCache(): StatCache {
    this._statCache ??= new StatCache(this.tmpDir, (m) => this.reporter.warn?.(m), { guard: this.own, rel: 'tmp' });
    return this._statCache;
  }

  /**
   * The guard of the workspace: every write, delete, chmod and link under the
   * root, and every read of a path a file names, goes through it. It refuses
   * to overwrite or delete Git-tracked files.
   */
  get guard(): Guard {
    this._guard ??= new Guard(this.root, {
      protect: (rel, dir) => {
        const tracked = this.gitTracked();
        const hit = dir ? tracked.firstUnder(this.gitPath(rel)) : tracked.has(this.gitPath(rel)) ? this.gitPath(rel) : undefined;
        if (hit === undefined) return undefined;
        return hit === this.gitPath(rel) ? 'it is tracked by Git' : `it contains ${hit}, which is tracked by Git`;
      },
    });
    return this._guard;
  }

  /** The guard of tdv's own directory `.tdv/` (checked to be a real directory when the repository was opened). */
  get own(): Guard {
    this._own ??= new Guard(this.tdvDir, { label: `${TDV_DIR}/`, allControl: true });
    return this._own;
  }

  /**
   * Nothing under `.tdv/cache` or `.tdv/tmp` may come with a clone: a
   * committed object, run record or symlink there (at any depth, `git add -f`
   * defeats `.tdv/.gitignore`) would put bytes into the cache that nobody
   * hashed, or send objects, deletions and temp files wherever its author
   * chose. (A `.tdv/cache` symlink the user made to a shared cache is their
   * choice, and gc asks before collecting it.)
   */
  private checkCommittedCacheLink(): void {
    for (const rel of [`${TDV_DIR}/cache`, `${TDV_DIR}/tmp`]) {
      const hit = this.gitTracked().firstUnder(this.gitPath(rel));
      if (hit === undefined) continue;
      const what = fs.lstatSync(path.join(this.git!.root, hit), { throwIfNoEntry: false })?.isSymbolicLink() ? 'a symlink' : 'a file';
      throw new UnsafePathError(
        `${quotePath(hit)} is ${what} committed to Git${hit === this.gitPath(rel) ? '' : ` inside ${rel}`}; only tdv writes ${rel}, and a clone must never bring its contents. Run \`git rm -r --cached ${rel}\`, replace any symlink there with a real directory, and commit`,
        { path: hit },
      );
    }
  }

  /** The paths Git tracks (its index), read once per command. */
  gitTracked(): TrackedPaths {
    this._gitTracked ??= new TrackedPaths(this.git ? readIndexPaths(this.git.gitdir) : []);
    return this._gitTracked;
  }

  /** A repo-relative path as Git's index names it (the repository may be a subdirectory of the work tree). */
  gitPath(rel: string): string {
    if (!this.git) return rel;
    const prefix = toPosix(path.relative(this.git.root, this.root));
    return prefix === '' ? rel : `${prefix}/${rel}`;
  }

  private warnedRootLinks = false;

  /**
   * The workspace linker for the configured cache types. As root, hardlink and
   * symlink are left out unless `cache.allow_root_links` (mode 0444 does not
   * stop root writing through a link into the cache's only copy); the first
   * time that matters in a command, it says so.
   */
  linker(): Linker {
    const linker = new Linker(this.config.cache.type, { allowRootLinks: this.config.cache.allow_root_links });
    if (linker.droppedForRoot.length > 0 && !this.warnedRootLinks) {
      this.warnedRootLinks = true;
      this.reporter.warn?.(
        `running as root, tdv uses ${linker.types.join(',')} instead of cache.type ${linker.droppedForRoot.join(',')}: a linked workspace file would be the cache's only copy, and read-only mode does not stop root writing through it. Set cache.allow_root_links: true to link anyway`,
      );
    }
    return linker;
  }

  /** The `.tdvignore` matcher (paths relative to the root), if it has patterns. */
  ignore(): Promise<IgnoreMatcher | undefined> {
    this._ignore ??= loadTdvignore(this.root);
    return this._ignore;
  }

  /** POSIX path relative to the root; `.` for the root itself. */
  rel(abs: string): string {
    return toPosix(path.relative(this.root, abs)) || '.';
  }

  private lockDepth = 0;

  /**
   * Runs `fn` holding the repository lock, waiting for another command's lock if
   * needed. Re-entrant: a verb that composes others (pull = fetch + checkout)
   * takes it once, and the inner verbs only count a level deeper.
   */
  async withLock<T>(cmd: string, fn: () => Promise<T>): Promise<T> {
    if (this.lockDepth > 0) {
      this.lockDepth++;
      try {
        return await fn();
      } finally {
        this.lockDepth--;
      }
    }
    const lock = new RepoLock(path.join(this.tmpDir, 'lock'), cmd);
    await lock.acquire({
      timeoutMs: this.config.core.lock_timeout * 1000,
      onWait: (holder) => this.reporter.warn?.(`waiting for the repository lock held by ${holder}...`),
    });
    this.lockDepth = 1;
    try {
      if (lock.deadHolder) {
        // A command died holding the lock (killed, power loss): remove the temp files it left.
        const { removeLeftovers } = await import('./lib/leftovers.js');
        const n = await removeLeftovers(this, lock.deadHolder.pid);
        if (n > 0) this.reporter.warn?.(`\`tdv ${lock.deadHolder.cmd}\` (pid ${lock.deadHolder.pid}) did not finish; removed the ${n} temp file(s) it left`);
      }
      return await fn();
    } finally {
      this.lockDepth = 0;
      lock.release();
    }
  }

  /** True while this process holds the repository lock. */
  get locked(): boolean {
    return this.lockDepth > 0;
  }
}

/**
 * tdv's own directories must be real directories: a clone could commit `.tdv`
 * or `.tdv/tmp` as a symlink to make tdv write anywhere. (A local `.tdv/cache`
 * symlink to a shared cache is the user's choice, and gc asks about it.)
 */
function checkOwnDirs(root: string): void {
  for (const rel of [TDV_DIR, `${TDV_DIR}/tmp`, `${TDV_DIR}/config.yaml`, `${TDV_DIR}/config.local.yaml`]) {
    const st = fs.lstatSync(path.join(root, rel), { throwIfNoEntry: false });
    if (st?.isSymbolicLink()) {
      throw new UnsafePathError(
        `${rel} is a symlink; tdv refuses to use a repository whose own files are links (a clone could point them anywhere). Replace ${rel} with a real ${rel.endsWith('.yaml') ? 'file' : 'directory'}`,
        { path: rel },
      );
    }
  }
}

export function findRoot(cwd: string): string | undefined {
  let dir = path.resolve(cwd);
  for (;;) {
    if (fs.existsSync(path.join(dir, TDV_DIR, 'config.yaml'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}
