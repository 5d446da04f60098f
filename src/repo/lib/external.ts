import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TdvError, UsageError } from '../../errors.js';
import { ObjectStore } from '../../cache/store.js';
import { configFromTexts, CONFIG_FILE, type Config, maskUrl, type RemoteConfig, resolveRemoteUrl, type ResolvedRemoteUrl, SECRET_REMOTE_KEYS } from '../../formats/config.js';
import { GitHistory } from '../../git/history.js';
import type { Remote } from '../../remote/remote.js';
import { processGone } from '../../util/fs.js';
import type { Repo } from '../repo.js';
import { POINTER_FIX } from './pointers.js';
import { layoutOf } from './remotes.js';
import { resolveRev, Snapshot, type SnapshotSource } from './snapshot.js';

/**
 * Another tdv repository, read through Git (`tdv ls URL`, `tdv get`, `tdv
 * import`): a bare clone of its history kept in a per-user cache, never its
 * data; data objects come from the source's own remote (its committed
 * `.tdv/config.yaml`) on demand, verified by hash like any download.
 *
 * Everything the source holds is hostile input: its config (validated by the
 * committed-config schema, which refuses credentials), its pointers and
 * manifests (read by the same strict readers as this repository's), its
 * paths (the guard and `relPathProblem`), and its URL (never an option to
 * git, no `ext::` or other command-running transports, no prompts).
 */
export interface ExternalRepo {
  /** The URL as given; a local path made absolute. */
  readonly url: string;
  /** The commit `rev` (default: the source's HEAD, its default branch) resolved to. */
  readonly commit: string;
  /** The revision as given. */
  readonly rev: string | undefined;
  /**
   * A snapshot source over the clone. Its store is `here`'s cache when given
   * (objects shared), else a per-user cache of its own; its remote is the
   * source's (core.remote of its config at `commit`, or `remote`).
   */
  readonly source: SnapshotSource;
  /** The source's configuration at `commit` (config.yaml only: nothing local comes from the source). */
  readonly config: Config;
  /** The source's remote name that data comes from (undefined when it has none). */
  readonly remoteName: string | undefined;
  /** The snapshot of `commit`. */
  snapshot(): Promise<Snapshot>;
  /** Releases the remote's connections and the clone's open pack files. */
  close(): Promise<void>;
}

export interface OpenExternalOptions {
  /** A branch, tag, commit id or date revision of the source (default: its HEAD). */
  rev?: string;
  /** The repository the command runs in, if any: its cache is shared and its config.local.yaml may hold credentials. */
  here?: Repo;
  /** A remote of the source other than its default. */
  remote?: string;
  /** Environment (default process.env): the cache location, and git's. */
  env?: NodeJS.ProcessEnv;
  /** What a relative path URL is relative to (default: the process's working directory). */
  cwd?: string;
  /** `--limit-rate`: bytes per second with the source's remote (its own `limit_rate` is not used). */
  limitRate?: number;
}

/** Transports git may use for a source: no `ext::`/`fd::` (they run commands) and nothing exotic. */
const ALLOWED_PROTOCOLS = 'file:git:http:https:ssh';

/** How long a command waits for another one updating the same clone. */
const CLONE_LOCK_TIMEOUT_MS = 10 * 60_000;

/**
 * Classifies a source URL for git: a `scheme://` URL or scp-like
 * `host:path` stays as written; anything else is a local path, made
 * absolute. Refuses what git would read as an option or as a remote helper
 * (`ext::sh -c ...` runs a command).
 */
export function normalizeSourceUrl(url: string, cwd: string = process.cwd()): { url: string; localPath?: string } {
  if (url === '') throw new UsageError('the repository URL is empty; give a path, file://, ssh:// or https:// URL');
  if (url.includes('\0') || /[\r\n]/.test(url)) throw new UsageError('the repository URL holds a control character; give a path, file://, ssh:// or https:// URL');
  if (url.startsWith('-')) throw new UsageError(`"${maskUrl(url)}" starts with "-", which git would read as an option; write ./${maskUrl(url)} for a directory of that name`);
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(url)) {
    throw new UsageError(`"${maskUrl(url)}" uses a git remote helper (${url.slice(0, url.indexOf('::'))}::), which tdv does not run; give a path, file://, ssh:// or https:// URL`);
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (scheme) {
    const s = scheme[1]!.toLowerCase();
    if (s === 'file') {
      let p: string;
      try {
        p = fileURLToPath(url);
      } catch {
        throw new UsageError(`"${maskUrl(url)}" is not a file URL of an absolute local path; write file:///absolute/path`);
      }
      return { url, localPath: p };
    }
    if (!['ssh', 'git', 'http', 'https', 'git+ssh', 'ssh+git'].includes(s))
      throw new UsageError(`unsupported repository URL "${maskUrl(url)}" (${s}://); give a path, file://, ssh:// or https:// URL`);
    return { url };
  }
  // scp-like `[user@]host:path` (a colon before any slash), as git reads it; `./a:b` is a path.
  if (/^[^/]*:/.test(url) && !url.startsWith('.')) return { url };
  const abs = path.resolve(cwd, url);
  return { url: abs, localPath: abs };
}

/** Where clones of other repositories are kept: `$TDV_CACHE_HOME`, else `$XDG_CACHE_HOME/tdv`, else `~/.cache/tdv`. */
export function userCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TDV_CACHE_HOME) return path.resolve(env.TDV_CACHE_HOME);
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'tdv');
}

/**
 * Variables that point git at another repository's files: set in a Git hook
 * (GIT_DIR, GIT_INDEX_FILE; a pre-receive hook's quarantine objects) or by a
 * user, they would send the clone's objects elsewhere or hide its refs
 * (GIT_NAMESPACE). The clone is always the repository named by --git-dir.
 */
const REPO_LOCAL_GIT_VARS = [
  'GIT_DIR',
  'GIT_WORK_TREE',
  'GIT_INDEX_FILE',
  'GIT_OBJECT_DIRECTORY',
  'GIT_ALTERNATE_OBJECT_DIRECTORIES',
  'GIT_QUARANTINE_PATH',
  'GIT_COMMON_DIR',
  'GIT_NAMESPACE',
  'GIT_GRAFT_FILE',
  'GIT_SHALLOW_FILE',
  'GIT_REPLACE_REF_BASE',
  'GIT_NO_REPLACE_OBJECTS',
  'GIT_IMPLICIT_WORK_TREE',
  'GIT_PREFIX',
];

/** The environment git runs in: no prompts, no command-running transports, no user-chosen protocols beyond the list. */
function gitEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const clean = { ...env };
  for (const k of REPO_LOCAL_GIT_VARS) delete clean[k];
  return {
    ...clean,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ALLOW_PROTOCOL: ALLOWED_PROTOCOLS,
    GIT_PROTOCOL_FROM_USER: '0',
    LC_ALL: 'C',
  };
}

/**
 * The environment for reading `url`: for ssh, ssh in batch mode (it would ask
 * for a password or a host key on the terminal itself), unless the user
 * chose an ssh command (GIT_SSH_COMMAND, GIT_SSH, core.sshCommand), which is
 * theirs to configure.
 */
async function envFor(url: string, env: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  const ssh = /^(ssh|git\+ssh|ssh\+git):\/\//i.test(url) || (/^[^/]*:/.test(url) && !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url));
  if (!ssh || env.GIT_SSH_COMMAND || env.GIT_SSH) return env;
  const configured = await git(['config', '--get', 'core.sshCommand'], env).catch(() => '');
  return configured.trim() === '' ? { ...env, GIT_SSH_COMMAND: 'ssh -o BatchMode=yes' } : env;
}

/**
 * Runs git; rejects with its last stderr line. With `timeoutMs`, git runs in a
 * process group of its own, all of which is ended then: its helpers
 * (git-remote-https, ssh) hold its pipes too, and would keep tdv from exiting.
 * (execFile cannot do this: it does not pass `detached` on to spawn.)
 */
function git(args: string[], env: NodeJS.ProcessEnv, cwd?: string, timeoutMs?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const group = timeoutMs !== undefined;
    const child = spawn('git', args, { cwd, env: gitEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: group });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let tooMuch = false;
    const kill = () => {
      try {
        if (group) process.kill(-child.pid!, 'SIGKILL');
        else child.kill();
      } catch {
        // already gone
      }
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (stdout.length > 64 * 2 ** 20 && !tooMuch) {
        tooMuch = true;
        kill();
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 2 ** 20) stderr += d;
    });
    const limit = timeoutMs ?? 30 * 60_000;
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, limit);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code === 0 && !tooMuch) return resolve(stdout);
      if (timedOut) return reject(new Error(`no answer within ${Math.ceil(limit / 1000)} s`));
      if (tooMuch) return reject(new Error('git printed more than 64 MiB'));
      const lines = stderr
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !/^hint:/.test(l));
      const why = lines.find((l) => /^fatal:/.test(l)) ?? lines[lines.length - 1] ?? `git ${args[0] ?? ''} failed (exit ${code})`;
      reject(new Error(why.replace(/^fatal:\s*/, '')));
    });
  });
}

/** Git options for every command on the clone: no automatic gc (a repack under a reader would pull packs away from it). */
const QUIET_CFG = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', '-c', 'core.hooksPath=/dev/null'];

/**
 * Brings the bare clone of `url` up to date (creating it first): every branch
 * and tag, and HEAD set to the source's default branch. `git init` is
 * idempotent and `git fetch` writes objects before refs, so a clone a killed
 * command left behind is completed by the next one. Serialized by a lock
 * file beside the clone.
 */
async function updateClone(url: string, dir: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { RepoLock } = await import('../../workspace/mutex.js');
  const lock = new RepoLock(`${dir}.lock`, 'clone');
  await lock.acquire({ timeoutMs: CLONE_LOCK_TIMEOUT_MS });
  try {
    await git([...QUIET_CFG, 'init', '--bare', '--quiet', '--template=', '--', dir], env);
    const gd = `--git-dir=${dir}`;
    try {
      await git([gd, ...QUIET_CFG, 'fetch', '--quiet', '--prune', '--force', '--no-write-fetch-head', '--', url, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], env);
    } catch (err) {
      throw new TdvError('GIT_FAILED', `cannot read the Git repository ${maskUrl(url)}: ${maskUrl((err as Error).message)}`);
    }
    // The source's default branch (what its HEAD names), so that "no --rev" and date revisions follow it.
    const head = await git(['ls-remote', '--symref', '--', url, 'HEAD'], env).catch(() => '');
    const m = /^ref: (refs\/heads\/\S+)\tHEAD$/m.exec(head);
    if (m) {
      await git([gd, 'symbolic-ref', 'HEAD', m[1]!], env).catch(() => {});
    } else {
      const sha = /^([0-9a-f]{40})\tHEAD$/m.exec(head)?.[1];
      if (sha) await git([gd, 'update-ref', '--no-deref', 'HEAD', sha], env).catch(() => {});
    }
  } finally {
    lock.release();
  }
}

/** Fetches one commit by id into the clone (keeping it reachable under refs/tdv/), when the server allows it. */
async function fetchCommit(url: string, dir: string, oid: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { RepoLock } = await import('../../workspace/mutex.js');
  const lock = new RepoLock(`${dir}.lock`, 'clone');
  await lock.acquire({ timeoutMs: CLONE_LOCK_TIMEOUT_MS });
  try {
    await git([`--git-dir=${dir}`, ...QUIET_CFG, 'fetch', '--quiet', '--no-write-fetch-head', '--', url, `+${oid}:refs/tdv/commits/${oid}`], env).catch(() => {});
  } finally {
    lock.release();
  }
}

/** The clone directory of a source URL. */
export function cloneDirOf(url: string, env: NodeJS.ProcessEnv = process.env): string {
  const hash = createHash('sha256').update(url).digest('hex').slice(0, 32);
  return path.join(userCacheDir(env), 'repos', hash);
}

/** Opens another tdv repository at a revision: see ExternalRepo. */
export async function openExternal(url: string, opts: OpenExternalOptions = {}): Promise<ExternalRepo> {
  const env = opts.env ?? process.env;
  const norm = normalizeSourceUrl(url, opts.cwd);
  const dir = cloneDirOf(norm.url, env);
  await updateClone(norm.url, dir, await envFor(norm.url, env));
  const wt = { root: dir, gitdir: dir };
  const history = GitHistory.open(wt);
  const shown = maskUrl(norm.url);
  if (!history.hasCommits()) throw new TdvError('NO_COMMITS', `${shown} has no commits on its default branch; pass --rev with a branch or tag it has`);
  let commit: string;
  try {
    try {
      commit = resolveRev(history, opts.rev ?? 'HEAD');
    } catch (err) {
      // A full commit id no branch or tag reaches (a pull request's, say): servers that allow it fetch it by id.
      if (!(opts.rev !== undefined && /^[0-9a-f]{40}$/.test(opts.rev) && err instanceof TdvError)) throw err;
      await fetchCommit(norm.url, dir, opts.rev, await envFor(norm.url, env));
      commit = resolveRev(history, opts.rev);
    }
  } catch (err) {
    history.close();
    throw aboutSource(err, shown);
  }
  const label = opts.rev ?? 'HEAD';
  const configText = history.readFileAt(commit, `.tdv/${CONFIG_FILE}`);
  if (configText === undefined) {
    throw new TdvError(
      'NOT_A_REPO',
      `${shown} has no .tdv/${CONFIG_FILE} at the top of its tree at ${label} (${commit.slice(0, 12)}): it is not a tdv repository, or tdv lives in a subdirectory there, which tdv cannot read from another repository`,
    );
  }
  const { decodeUtf8, MAX_TEXT_BYTES, tooLargeError } = await import('../../util/fs.js');
  const cfgLabel = `${shown}@${commit.slice(0, 12)}:.tdv`;
  if (configText.length > MAX_TEXT_BYTES) throw tooLargeError(`${cfgLabel}/${CONFIG_FILE}`, configText.length, MAX_TEXT_BYTES, 'a configuration file');
  const text = decodeUtf8(configText, `${cfgLabel}/${CONFIG_FILE}`);
  // Only the committed file: the source's config.local.yaml is not in Git, and a cache.dir there means nothing here.
  const config = await configFromTexts(cfgLabel, { [CONFIG_FILE]: text });
  const remoteName = opts.remote ?? config.core.remote;
  const store = opts.here ? opts.here.store : ownStore(env);
  let remote: Promise<Remote> | undefined;
  const source: SnapshotSource = {
    label: shown,
    root: dir,
    git: wt,
    history,
    store,
    openRemote: () => (remote ??= openSourceRemote(norm, config, remoteName, opts, store)),
  };
  return {
    url: norm.url,
    commit,
    rev: opts.rev,
    source,
    config,
    remoteName,
    snapshot: () =>
      Snapshot.open(source, label, commit).catch((err: unknown) => {
        throw aboutSource(err, shown);
      }),
    async close() {
      if (remote) (await remote.catch(() => undefined))?.close();
      history.close();
    },
  };
}

/**
 * An error about the source's history or files, naming the source: its advice
 * (which git commands list revisions, what to do about a pointer file) is
 * about that repository, which the user cannot fix from here.
 */
function aboutSource(err: unknown, shown: string): unknown {
  if (!(err instanceof TdvError) || err.message.startsWith(shown)) return err;
  const msg = err.message
    .replace(/ \(`git [^()]*` lists? them\)/, ` (\`git ls-remote ${shown}\` lists its branches and tags)`)
    .replace(POINTER_FIX, 'That revision of it cannot be read: its owners must fix the pointer file; pass --rev with another revision');
  err.message = `${shown}: ${msg}`;
  return err;
}

/** The per-user object cache for sources read outside any repository. */
function ownStore(env: NodeJS.ProcessEnv): ObjectStore {
  const root = path.join(userCacheDir(env), 'objects');
  const store = new ObjectStore(root, path.join(root, 'tmp'));
  // A command killed while downloading leaves a partial object (often large) in tmp/; no repository
  // lock's takeover sweeps this cache, so each use removes what processes that are gone left.
  let names: string[] = [];
  try {
    names = fs.readdirSync(store.tmpDir);
  } catch {
    /* no tmp/ yet */
  }
  const dead = new Set<string>();
  for (const n of names) {
    const pid = /^(?:obj|\.tmp|\.tdvtmp)\.(\d+)\.[0-9a-f]+$/.exec(n)?.[1];
    if (pid !== undefined && processGone(Number(pid))) dead.add(pid);
  }
  if (dead.size > 0) store.removeTempFiles(new RegExp(`^(?:obj|\\.tmp|\\.tdvtmp)\\.(?:${[...dead].join('|')})\\.[0-9a-f]+$`));
  return store;
}

/** Keys that say who reads a bucket: taken from this repository's config for the same remote. */
const CREDENTIAL_KEYS = [...SECRET_REMOTE_KEYS, 'profile'] as const;

function sameLocation(a: ResolvedRemoteUrl, b: ResolvedRemoteUrl): boolean {
  if (a.kind === 'local') return b.kind === 'local' && path.resolve(a.path) === path.resolve(b.path);
  return b.kind === 's3' && a.bucket === b.bucket && a.prefix === b.prefix;
}

/**
 * The source's remote `name`, with credentials from this machine's chain:
 * the environment and AWS profiles (the SDK's), and, inside a tdv
 * repository, its `remote.<name>` credential keys when it has a remote of the
 * same name at the same location.
 */
async function openSourceRemote(norm: { url: string; localPath?: string }, config: Config, name: string | undefined, opts: OpenExternalOptions, store: ObjectStore): Promise<Remote> {
  const shown = maskUrl(norm.url);
  if (name === undefined) throw new TdvError('NO_REMOTE', `${shown} has no default remote (core.remote in its .tdv/config.yaml), so its data cannot be read; pass --remote NAME`);
  const cfg = config.remote[name];
  if (!cfg) {
    const known = Object.keys(config.remote);
    throw new TdvError('UNKNOWN_REMOTE', `${shown} has no remote "${name}"${known.length > 0 ? ` (it has: ${known.join(', ')})` : ''}`);
  }
  const loc = sourceRemoteLocation(norm, name, cfg.url);
  const merged: RemoteConfig = { ...cfg };
  const mine = opts.here?.config.remote[name];
  if (mine && opts.here) {
    let mineLoc: ResolvedRemoteUrl | undefined;
    try {
      mineLoc = resolveRemoteUrl(opts.here.root, mine.url);
    } catch {
      mineLoc = undefined;
    }
    // The same bucket at the same endpoint: a source's committed config could name this bucket
    // with its own endpointurl, and requests signed with these keys would go there.
    if (mineLoc && sameLocation(mineLoc, loc) && (mine.endpointurl ?? '') === (cfg.endpointurl ?? ''))
      for (const k of CREDENTIAL_KEYS) if (mine[k] !== undefined) (merged as Record<string, unknown>)[k] = mine[k];
  }
  let remote: Remote;
  const rate = opts.limitRate === undefined ? undefined : new (await import('../../remote/rate.js')).TokenBucket(opts.limitRate);
  if (loc.kind === 'local') {
    const { LocalRemote } = await import('../../remote/local.js');
    remote = new LocalRemote(name, loc.path, { rate });
  } else {
    const { createS3Remote } = await import('../../remote/s3.js');
    remote = await createS3Remote(name, merged, { bucket: loc.bucket, prefix: loc.prefix }, { rate });
  }
  // Read in both layouts (remote/packed.ts); nothing is written to a source's remote.
  return layoutOf(namingSource(remote, shown), merged, store);
}

/**
 * Where a source's remote `name` (configured as `url`) is: an S3 bucket, or a
 * directory; a relative directory is relative to the source's root, which
 * only exists here for a local source (a path or `file://` URL).
 */
export function sourceRemoteLocation(norm: { url: string; localPath?: string }, name: string, url: string): ResolvedRemoteUrl {
  if (/^s3:\/\//i.test(url)) return resolveRemoteUrl('/', url);
  if (!/^file:\/\//i.test(url) && !path.isAbsolute(url) && norm.localPath === undefined) {
    throw new TdvError(
      'BAD_REMOTE',
      `remote "${name}" of ${maskUrl(norm.url)} is the relative directory ${JSON.stringify(url)}, which only means something on that repository's machine; read it through a local clone, or pass --remote NAME`,
    );
  }
  return resolveRemoteUrl(norm.localPath ?? '/', url);
}

/** A remote whose errors say which repository's remote failed: `<source url>: <message>`. */
function namingSource(remote: Remote, shown: string): Remote {
  const wrap =
    <A extends unknown[], R>(fn: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      try {
        return await fn(...a);
      } catch (err) {
        if (err instanceof TdvError && !err.message.startsWith(shown)) {
          // "create it (mkdir -p ...)" or "tdv remote modify" would change nothing of that repository's remote.
          const msg =
            err.code === 'REMOTE_NOT_FOUND'
              ? err.message.replace(/; (?:create it \(mkdir -p |fix the url with `tdv remote modify ).*$/, '; pass --remote NAME to read another of its remotes')
              : err.message;
          err.message = `${shown}: ${msg}`;
        }
        throw err;
      }
    };
  // A plain object of bound methods (not a prototype trick): implementations may use private fields.
  return {
    name: remote.name,
    url: remote.url,
    defaultJobs: remote.defaultJobs,
    has: wrap(remote.has.bind(remote)),
    stat: wrap(remote.stat.bind(remote)),
    get: wrap(remote.get.bind(remote)),
    listPrefix: wrap(remote.listPrefix.bind(remote)),
    put: wrap(remote.put.bind(remote)),
    list: remote.list.bind(remote),
    putRun: wrap(remote.putRun.bind(remote)),
    getRun: wrap(remote.getRun.bind(remote)),
    listRuns: wrap(remote.listRuns.bind(remote)),
    putRepoMarker: wrap(remote.putRepoMarker.bind(remote)),
    listRepoMarkers: wrap(remote.listRepoMarkers.bind(remote)),
    remove: wrap(remote.remove.bind(remote)),
    putKey: wrap(remote.putKey.bind(remote)),
    getKey: wrap(remote.getKey.bind(remote)),
    listKeys: wrap(remote.listKeys.bind(remote)),
    deleteKeys: wrap(remote.deleteKeys.bind(remote)),
    close: () => remote.close(),
  };
}

/**
 * The commit `rev` (a branch or tag; default HEAD) of the source points at
 * now, asked with `git ls-remote` (nothing is fetched); undefined when the
 * source has no such ref. A full commit id is returned as is.
 */
export async function remoteRevision(url: string, rev?: string, env: NodeJS.ProcessEnv = process.env, timeoutMs?: number): Promise<string | undefined> {
  const norm = normalizeSourceUrl(url);
  if (rev !== undefined && /^[0-9a-f]{40}$/.test(rev)) return rev;
  let out: string;
  try {
    out = await git(['ls-remote', '--', norm.url, ...(rev === undefined ? ['HEAD'] : [rev, `refs/heads/${rev}`, `refs/tags/${rev}`])], await envFor(norm.url, env), undefined, timeoutMs);
  } catch (err) {
    throw new TdvError('GIT_FAILED', `cannot read the Git repository ${maskUrl(norm.url)}: ${maskUrl((err as Error).message)}`);
  }
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const m = /^([0-9a-f]{40})\t(.+)$/.exec(line);
    if (m) refs.set(m[2]!, m[1]!);
  }
  if (rev === undefined) return refs.get('HEAD');
  if (rev.startsWith('@')) return undefined; // a date: nothing to compare against
  return refs.get(`refs/heads/${rev}`) ?? refs.get(`refs/tags/${rev}^{}`) ?? refs.get(`refs/tags/${rev}`) ?? refs.get(rev);
}

/** See registry.ts. */
export { closingRemote } from './registry.js';
