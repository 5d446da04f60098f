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
import { localRemoteProblem } from './lib/remotes.js';
import { addGitignoreEntry } from '../workspace/gitignore.js';
import type { Repo } from './repo.js';

/** What `listRemotes` shows instead of a credential. */
export { MASK };

/** What a write did to the files, for the CLI to report. */
export interface ConfigWrite {
  /** Repository-relative POSIX paths of the config files rewritten (`.tdv/config.yaml`, ...). */
  files: string[];
  /** True when `/config.local.yaml` had to be added to `.tdv/.gitignore`. */
  gitignored: boolean;
}

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
  } = await editConfig(repo, (e) => {
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
  const { value: unsetDefault, write } = await editConfig(repo, (e) => {
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
  } = await editConfig(repo, (e) => {
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
  const { value: changed, write } = await editConfig(repo, (e) => {
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

function fileFor(local: boolean | undefined): ConfigFileName {
  return local ? LOCAL_CONFIG_FILE : CONFIG_FILE;
}

function otherFile(f: ConfigFileName): ConfigFileName {
  return f === CONFIG_FILE ? LOCAL_CONFIG_FILE : CONFIG_FILE;
}

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

type KeyPath = string[];

/** Both config files as YAML documents, edited in place; knows which ones changed. */
class ConfigEdit {
  private readonly docs = new Map<ConfigFileName, Document>();
  readonly changed = new Set<ConfigFileName>();

  constructor(
    private readonly Y: typeof import('yaml'),
    private readonly texts: Partial<Record<ConfigFileName, string>>,
    /** The merged configuration as the files are now. */
    readonly config: Config,
  ) {}

  private doc(file: ConfigFileName): Document {
    let d = this.docs.get(file);
    if (!d) {
      d = this.Y.parseDocument(this.texts[file] ?? '', { uniqueKeys: true });
      this.docs.set(file, d);
    }
    return d;
  }

  has(file: ConfigFileName, keys: KeyPath): boolean {
    return this.doc(file).hasIn(keys);
  }

  /** A scalar's value (collections come back as YAML nodes). */
  get(file: ConfigFileName, keys: KeyPath): unknown {
    return this.doc(file).getIn(keys);
  }

  set(file: ConfigFileName, keys: KeyPath, value: string | number | boolean): void {
    const { isMap, isScalar } = this.Y;
    const d = this.doc(file);
    // An empty file, or a section written as `remote:` with nothing below, holds null: make room for keys.
    if (!isMap(d.contents)) d.contents = d.createNode({});
    for (let i = 1; i < keys.length; i++) {
      const node = d.getIn(keys.slice(0, i), true);
      if (node === undefined || isMap(node)) continue;
      if (isScalar(node) && node.value === null) d.setIn(keys.slice(0, i), d.createNode({}));
      else throw new FormatError(`.tdv/${file}`, `"${keys.slice(0, i).join('.')}" is not a mapping`);
    }
    d.setIn(keys, value);
    this.changed.add(file);
  }

  /** Deletes a key and the sections it leaves empty. Returns whether the key was there. */
  delete(file: ConfigFileName, keys: KeyPath): boolean {
    const d = this.doc(file);
    if (!d.hasIn(keys)) return false;
    d.deleteIn(keys);
    for (let i = keys.length - 1; i >= 1; i--) {
      const parent = d.getIn(keys.slice(0, i), true);
      if (!this.Y.isMap(parent) || parent.items.length > 0) break;
      d.deleteIn(keys.slice(0, i));
    }
    this.changed.add(file);
    return true;
  }

  /** The credentials `file` holds after the edits, as `remote.<name>.<key>`. */
  secretsIn(file: ConfigFileName): string[] {
    const remotes = this.doc(file).toJS() as { remote?: Record<string, Record<string, unknown> | null> } | null;
    const out: string[] = [];
    for (const [name, section] of Object.entries(remotes?.remote ?? {})) {
      for (const [key, v] of Object.entries(section ?? {})) {
        if ((SECRET_REMOTE_KEYS as readonly string[]).includes(key) || (key === 'endpointurl' && typeof v === 'string' && urlHasCredentials(v))) out.push(`remote.${name}.${key}`);
      }
    }
    return out;
  }

  /** The texts after the edits (unchanged files as they were). */
  result(): Partial<Record<ConfigFileName, string>> {
    const out = { ...this.texts };
    for (const f of this.changed) {
      const d = this.doc(f);
      const text = d.toString({ lineWidth: 0 });
      // Everything deleted: keep the comments, drop the `{}` that stands for the empty mapping.
      out[f] = this.Y.isMap(d.contents) && d.contents.items.length === 0 ? text.replace(/\{\}\n$/, '') : text;
    }
    return out;
  }
}

/**
 * Runs `edit` on both config files under the repository lock, and writes the
 * files it changed once the result is proven to load. config.local.yaml is
 * written first: should writing config.yaml then fail, no local section is
 * left behind without the url it overrides.
 */
async function editConfig<T>(repo: Repo, edit: (e: ConfigEdit) => T): Promise<{ value: T; after: Config; write: ConfigWrite }> {
  return repo.withLock('remote', async () => {
    const tdvDir = repo.tdvDir;
    // Read through the guard of .tdv/ too: a config file swapped for a symlink is refused, not followed.
    const before: Partial<Record<ConfigFileName, string>> = { [CONFIG_FILE]: repo.own.readControlFile(CONFIG_FILE), [LOCAL_CONFIG_FILE]: repo.own.readControlFile(LOCAL_CONFIG_FILE) };
    const e = new ConfigEdit(await import('yaml'), before, await configFromTexts(tdvDir, before));
    const value = edit(e);
    const next = e.result();
    let after: Config;
    try {
      after = await configFromTexts(tdvDir, next);
    } catch (err) {
      if (err instanceof FormatError) throw new TdvError('BAD_CONFIG_CHANGE', `not changing the configuration, the result would not load: ${err.message}`, { cause: err });
      throw err;
    }
    const write: ConfigWrite = { files: [], gitignored: false };
    const changed = ([LOCAL_CONFIG_FILE, CONFIG_FILE] as const).filter((f) => next[f] !== undefined && next[f] !== before[f]);
    // A credential must never go into a file Git tracks: config.yaml is refused at load
    // (above), and config.local.yaml may have been force-added (`git add -f`).
    for (const f of changed) {
      const rel = `${TDV_DIR}/${f}`;
      const secrets = e.secretsIn(f);
      if (secrets.length > 0 && repo.gitTracked().has(repo.gitPath(rel))) {
        throw new TdvError(
          'SECRET_IN_TRACKED_FILE',
          `${rel} is tracked by Git, so the credential ${secrets[0]} written there would be committed; nothing was changed. Run \`git rm --cached ${rel}\` and commit, then run this again`,
          { data: { file: rel } },
        );
      }
    }
    for (const f of changed) {
      const text = next[f]!;
      if (f === LOCAL_CONFIG_FILE) write.gitignored = addGitignoreEntry(repo.own, LOCAL_CONFIG_FILE);
      // config.local.yaml may hold credentials: readable by its owner only.
      const mode = repo.own.lstat(f)?.mode ?? (f === LOCAL_CONFIG_FILE ? 0o600 : 0o644);
      repo.own.writeControlFile(f, text, { mode: mode & 0o7777 });
      write.files.push(`${TDV_DIR}/${f}`);
    }
    return { value, after, write };
  });
}
