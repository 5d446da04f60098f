import fs from 'node:fs';
import path from 'node:path';
import { NotARepoError } from '../errors.js';
import { Linker } from '../cache/link.js';
import { StatCache } from '../cache/statcache.js';
import { ObjectStore } from '../cache/store.js';
import { findGitWorkTree, type GitWorkTree } from '../git/git.js';
import { toPosix } from '../util/fs.js';
import { type Config, loadConfig } from './config.js';
import { RepoLock } from './lock.js';
import { type IgnoreMatcher, loadTdvignore } from './tdvignore.js';

export const TDV_DIR = '.tdv';

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
    const config = await loadConfig(path.join(root, TDV_DIR));
    return new Repo(root, config, findGitWorkTree(root), reporter);
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
    this._statCache ??= new StatCache(this.tmpDir, (m) => this.reporter.warn?.(m));
    return this._statCache;
  }

  linker(): Linker {
    return new Linker(this.config.cache.type);
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

  /** Runs `fn` holding the repository lock, waiting for another command's lock if needed. */
  async withLock<T>(cmd: string, fn: () => Promise<T>): Promise<T> {
    const lock = new RepoLock(path.join(this.tmpDir, 'lock'), cmd);
    await lock.acquire({
      timeoutMs: this.config.core.lock_timeout * 1000,
      onWait: (holder) => this.reporter.warn?.(`waiting for the repository lock held by ${holder}...`),
    });
    try {
      if (lock.deadHolder) {
        // A command died holding the lock (killed, power loss): remove the temp files it left.
        const { removeLeftovers } = await import('./leftovers.js');
        const n = await removeLeftovers(this, lock.deadHolder.pid);
        if (n > 0) this.reporter.warn?.(`\`tdv ${lock.deadHolder.cmd}\` (pid ${lock.deadHolder.pid}) did not finish; removed the ${n} temp file(s) it left`);
      }
      return await fn();
    } finally {
      lock.release();
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
