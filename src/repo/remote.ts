/**
 * Remote configuration: adding, removing, modifying and listing the
 * `remote.<name>` sections of `.tdv/config.yaml` and `.tdv/config.local.yaml`,
 * and the default remote (`core.remote`).
 *
 * Every write re-reads both files under the repository lock, edits them as YAML
 * documents (so comments and the rest of the file survive), proves the result
 * loads with the same code as `loadConfig`, and only then replaces the files.
 */
import path from 'node:path';
import type { Document } from 'yaml';
import { FormatError, TdvError, UsageError } from '../errors.js';
import { toPosix } from '../util/fs.js';
import {
  CONFIG_FILE,
  type Config,
  type ConfigFileName,
  configFromTexts,
  isRemoteKey,
  LOCAL_CONFIG_FILE,
  MASK,
  maskUrl,
  parseRemoteUrl,
  REMOTE_KEYS,
  REMOTE_NAME_RE,
  remoteValueProblem,
  type RemoteConfig,
  type RemoteKey,
  SECRET_REMOTE_KEYS,
  urlHasCredentials,
} from '../formats/config.js';
import { TDV_DIR } from '../formats/layout.js';
import { type ConfigWrite, editConfig, fileFor, otherFile } from './lib/config-edit.js';
import { localRemoteProblem } from './lib/remotes.js';
import type { Repo } from './repo.js';

/** What `listRemotes` shows instead of a credential. */
export { MASK };

/** What a write did to the files, for the CLI to report. */
export type { ConfigWrite };

export interface AddRemoteOptions {
  name: string;
  /** `s3://bucket[/prefix]`, `file:///abs`, an absolute path, or a path relative to `cwd`. */
  url: string;
  /** The directory a relative `url` is relative to (the command's); default: the repository root. */
  cwd?: string;
  /** Also make it the default remote (in the same file). */
  makeDefault?: boolean;
  /** Write to config.local.yaml instead of config.yaml. */
  local?: boolean;
  /** Replace an existing remote of that name (its sections in both files). */
  force?: boolean;
}

export interface AddRemoteResult extends ConfigWrite {
  name: string;
  /** As stored: a relative path is relative to the repository root, POSIX separators. */
  url: string;
  /** Whether it is the default remote afterwards. */
  isDefault: boolean;
  /** An existing remote of that name was replaced (`force`). */
  replaced: boolean;
}

/**
 * Adds remote `name`. A relative path is stored relative to the repository
 * root, so it means the same place from every directory and clone.
 */
export async function addRemote(repo: Repo, opts: AddRemoteOptions): Promise<AddRemoteResult> {
  checkName(opts.name);
  const url = urlToStore(repo, opts.cwd ?? repo.root, opts.url);
  const target = fileFor(opts.local);
  const {
    value: replaced,
    after,
    write,
  } = await editConfig(repo, 'remote', (e) => {
    const existing = e.config.remote[opts.name];
    if (existing && !opts.force) {
      throw new TdvError(
        'REMOTE_EXISTS',
        `remote "${opts.name}" already exists (${maskUrl(existing.url)}); use \`tdv remote add -f\` to replace it, or \`tdv remote modify ${opts.name} url URL\` to change its url`,
        { data: { name: opts.name } },
      );
    }
    // Replacing means a new remote: no settings (credentials least of all) carry over from the old one.
    for (const f of [LOCAL_CONFIG_FILE, CONFIG_FILE] as const) e.delete(f, ['remote', opts.name]);
    e.set(target, ['remote', opts.name, 'url'], url);
    if (opts.makeDefault) e.set(target, ['core', 'remote'], opts.name);
    return existing !== undefined;
  });
  return { name: opts.name, url: maskUrl(url), isDefault: after.core.remote === opts.name, replaced, ...write };
}

export interface RemoveRemoteResult extends ConfigWrite {
  name: string;
  /** `core.remote` named it and was unset. */
  unsetDefault: boolean;
}

/**
 * Removes remote `name` from both config files, or with `local` only its
 * section in config.local.yaml (its overrides and credentials). When the
 * remote is gone, a `core.remote` naming it is unset wherever it is.
 */
export async function removeRemote(repo: Repo, name: string, opts: { local?: boolean } = {}): Promise<RemoveRemoteResult> {
  checkName(name);
  const { value: unsetDefault, write } = await editConfig(repo, 'remote', (e) => {
    if (!e.config.remote[name]) throw unknownRemote(name, e.config);
    if (opts.local && !e.has(LOCAL_CONFIG_FILE, ['remote', name])) {
      throw new UsageError(`remote "${name}" has no section in .tdv/config.local.yaml; run without --local to remove the remote itself`);
    }
    const files: ConfigFileName[] = opts.local ? [LOCAL_CONFIG_FILE] : [LOCAL_CONFIG_FILE, CONFIG_FILE];
    for (const f of files) e.delete(f, ['remote', name]);
    if (e.has(CONFIG_FILE, ['remote', name])) return false;
    let unset = false;
    for (const f of [LOCAL_CONFIG_FILE, CONFIG_FILE] as const) {
      if (e.get(f, ['core', 'remote']) === name) unset = e.delete(f, ['core', 'remote']) || unset;
    }
    return unset;
  });
  return { name, unsetDefault, ...write };
}

export interface DefaultRemote {
  name: string;
  /** False when `core.remote` names a remote that is not configured. */
  configured: boolean;
}

/** The default remote (`core.remote`, config.local.yaml winning), if one is set. */
export function getDefaultRemote(repo: Repo): DefaultRemote | undefined {
  const name = repo.config.core.remote;
  return name === undefined ? undefined : { name, configured: repo.config.remote[name] !== undefined };
}

export interface SetDefaultRemoteResult extends ConfigWrite {
  /** The default in effect afterwards (config.local.yaml may still set one after an unset in config.yaml). */
  default?: string;
  changed: boolean;
}

/**
 * Sets `core.remote` to `name` (which must be configured), or with `unset`
 * removes it, in config.yaml or, with `local`, config.local.yaml.
 */
export async function setDefaultRemote(repo: Repo, name: string | undefined, opts: { local?: boolean; unset?: boolean } = {}): Promise<SetDefaultRemoteResult> {
  if (opts.unset && name !== undefined) throw new UsageError('give a remote name or --unset, not both');
  if (!opts.unset && name === undefined) throw new UsageError('give the name of the remote to make the default, or --unset');
  if (name !== undefined) checkName(name);
  const target = fileFor(opts.local);
  const {
    value: changed,
    after,
    write,
  } = await editConfig(repo, 'remote', (e) => {
    if (name !== undefined) {
      if (!e.config.remote[name]) throw unknownRemote(name, e.config);
      if (e.get(target, ['core', 'remote']) === name) return false;
      e.set(target, ['core', 'remote'], name);
      return true;
    }
    if (e.delete(target, ['core', 'remote'])) return true;
    const other = otherFile(target);
    if (e.has(other, ['core', 'remote'])) {
      throw new UsageError(`the default remote is set in .tdv/${other}, not .tdv/${target}; ${opts.local ? 'drop' : 'add'} --local to unset it there`);
    }
    return false;
  });
  return { default: after.core.remote, changed, ...write };
}

export interface ModifyRemoteOptions {
  /** Write to config.local.yaml (required for credentials). */
  local?: boolean;
  /** Remove the key instead of setting it. */
  unset?: boolean;
  /** The directory a relative path given for `url` is relative to; default: the repository root. */
  cwd?: string;
}

export interface ModifyRemoteResult extends ConfigWrite {
  name: string;
  key: RemoteKey;
  /** The value stored (typed), `MASK` for a credential; undefined after an unset. */
  value?: string | number | boolean;
  changed: boolean;
}

/**
 * Sets (or with `unset` removes) one key of remote `name`. `value` is the
 * command-line text: "true"/"false" for force_path_style, a whole number >= 1
 * for jobs, when_supported/when_required for checksum. Credentials
 * (access_key_id, secret_access_key) are only accepted with `local`.
 */
export async function modifyRemote(repo: Repo, name: string, key: string, value: string | undefined, opts: ModifyRemoteOptions = {}): Promise<ModifyRemoteResult> {
  checkName(name);
  if (!isRemoteKey(key)) throw new UsageError(`unknown remote key "${key}"; known keys: ${REMOTE_KEYS.join(', ')}`);
  if (opts.unset && value !== undefined) throw new UsageError('give a value or --unset, not both');
  if (!opts.unset && value === undefined) throw new UsageError(`give a value for ${key}, or --unset to remove it`);
  const secret = SECRET_REMOTE_KEYS.includes(key);
  if (secret && !opts.local) {
    throw new UsageError(`${key} is a credential and goes only in the git-ignored .tdv/config.local.yaml: add --local (or use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile instead)`);
  }
  if (key === 'endpointurl' && value !== undefined && urlHasCredentials(value) && !opts.local) {
    throw new UsageError(
      `this endpointurl holds credentials (user:password@), which go only in the git-ignored .tdv/config.local.yaml: add --local, or set access_key_id and secret_access_key with --local instead`,
    );
  }
  const typed = value === undefined ? undefined : parseRemoteValue(repo, name, key, value, opts.cwd ?? repo.root);
  const target = fileFor(opts.local);
  const keyPath = ['remote', name, key];
  const { value: changed, write } = await editConfig(repo, 'remote', (e) => {
    if (!e.config.remote[name]) throw unknownRemote(name, e.config);
    if (typed !== undefined) {
      if (e.get(target, keyPath) === typed) return false;
      e.set(target, keyPath, typed);
      return true;
    }
    const other = otherFile(target);
    if (!e.has(target, keyPath)) {
      if (e.has(other, keyPath)) throw new UsageError(`remote.${name}.${key} is set in .tdv/${other}, not .tdv/${target}; ${opts.local ? 'drop' : 'add'} --local to unset it there`);
      return false;
    }
    if (key === 'url' && !e.has(other, keyPath)) {
      throw new UsageError(`remote "${name}" needs a url; to delete the remote, run \`tdv remote remove ${name}\``);
    }
    return e.delete(target, keyPath);
  });
  const shown = typed === undefined ? undefined : secret ? MASK : typeof typed === 'string' ? maskUrl(typed) : typed;
  return { name, key, value: shown, changed, ...write };
}

export interface RemoteInfo {
  name: string;
  url: string;
  isDefault: boolean;
  /** Every other key that is set, credentials shown as `MASK`. */
  options: Record<string, string | number | boolean>;
}

/** Configured remotes sorted by name, with credentials (and the user info in URLs) masked: this never returns a secret. */
export function listRemotes(repo: Repo): RemoteInfo[] {
  const cfg = repo.config;
  return Object.keys(cfg.remote)
    .sort()
    .map((name) => {
      const r: RemoteConfig = cfg.remote[name]!;
      const options: RemoteInfo['options'] = {};
      for (const key of REMOTE_KEYS) {
        const v = r[key];
        if (key === 'url' || v === undefined) continue;
        options[key] = SECRET_REMOTE_KEYS.includes(key) ? MASK : typeof v === 'string' ? maskUrl(v) : v;
      }
      return { name, url: maskUrl(r.url), isDefault: cfg.core.remote === name, options };
    });
}

// ---------------------------------------------------------------------------

function checkName(name: string): void {
  if (!REMOTE_NAME_RE.test(name)) {
    throw new UsageError(`invalid remote name ${JSON.stringify(name)}: use letters, digits, ".", "_" and "-", starting with a letter or digit`);
  }
}

function unknownRemote(name: string, cfg: Config): TdvError {
  const known = Object.keys(cfg.remote).sort();
  const hint = known.length > 0 ? `known remotes: ${known.join(', ')}` : 'no remotes are configured; add one with `tdv remote add NAME URL`';
  return new TdvError('UNKNOWN_REMOTE', `unknown remote "${name}"; ${hint}`, { data: { name, known } });
}

/**
 * The url as it goes into the config: S3 and file URLs as given, an absolute
 * path normalized, a relative path (from `cwd`) made relative to the root.
 */
function urlToStore(repo: Repo, cwd: string, url: string): string {
  const loc = parseRemoteUrl(url);
  if (loc.kind === 's3') return url;
  const abs = path.resolve(cwd, loc.path);
  // Objects pushed into the workspace root, .git or .tdv/ would be clutter among Git's or tdv's own files.
  const problem = localRemoteProblem(repo, abs);
  if (problem !== undefined) {
    throw new UsageError(`a remote cannot be the repository, its .git or .tdv/ (or inside them): ${abs} ${problem}; choose a directory outside the repository or a subdirectory of it`);
  }
  if (/^file:/i.test(url)) return url;
  if (path.isAbsolute(loc.path)) return abs;
  return toPosix(path.relative(repo.root, abs));
}

/** Command-line text to the typed value a key holds, or a UsageError naming the key and what it accepts. */
function parseRemoteValue(repo: Repo, name: string, key: RemoteKey, text: string, cwd: string): string | number | boolean {
  let v: string | number | boolean = text;
  if (key === 'url') v = urlToStore(repo, cwd, text);
  else if (key === 'force_path_style' || key === 'chunking') {
    if (text !== 'true' && text !== 'false') throw new UsageError(`remote.${name}.${key} must be true or false, got "${text}"`);
    v = text === 'true';
  } else if (key === 'jobs') v = /^\d+$/.test(text) ? Number(text) : text;
  const problem = remoteValueProblem(key, v);
  if (problem) throw new UsageError(`remote.${name}.${key} ${problem}`);
  return v;
}
