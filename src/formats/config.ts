import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, UsageError } from '../errors.js';
import { readTextOrUndefined } from '../util/fs.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';

export const LINK_TYPES = ['reflink', 'copy', 'hardlink', 'symlink'] as const;
export type LinkType = (typeof LINK_TYPES)[number];

export function parseLinkTypes(value: string, source: string): LinkType[] {
  const types = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  if (types.length === 0) throw new FormatError(source, 'cache.type is empty', 'Use e.g. "reflink,copy"');
  for (const t of types) {
    if (!(LINK_TYPES as readonly string[]).includes(t)) {
      throw new FormatError(source, `unknown cache.type "${t}"`, `Use a comma-separated list of ${LINK_TYPES.join(', ')}`);
    }
  }
  return types as LinkType[];
}

/**
 * One `remote.<name>` section, merged key by key from config.yaml and then
 * config.local.yaml. Every value has been validated; absent keys mean "the
 * default" (see the README's keys table), never an empty string.
 */
export interface RemoteConfig {
  /**
   * As written, always present: a path (relative paths are relative to the
   * repository root, not to .tdv/), `file:///absolute/path` or
   * `s3://bucket[/prefix]`. `resolveRemoteUrl` below turns it into
   * an absolute path or a bucket and prefix.
   */
  url: string;
  endpointurl?: string;
  region?: string;
  profile?: string;
  force_path_style?: boolean;
  checksum?: 'when_supported' | 'when_required';
  jobs?: number;
  /** Only ever from config.local.yaml. */
  access_key_id?: string;
  secret_access_key?: string;
}

export interface Config {
  /**
   * `id`: this repository's name in remotes' ownership markers (`repos/<id>`),
   * written by the first push made before any commit; otherwise the root
   * commit's id serves (see repo/lib/remote-owner.ts).
   */
  core: { lock_timeout: number; remote?: string; id?: string };
  /** `allow_root_links`: link (hardlink, symlink) even as root; see Linker. */
  cache: { dir?: string; type: LinkType[]; allow_root_links?: boolean };
  remote: Record<string, RemoteConfig>;
}

export const DEFAULT_LINK_TYPES: LinkType[] = ['reflink', 'copy'];

/** Allowed keys per section; anything else is a typo worth reporting. `remote` has its own table below. */
const SCHEMA: Record<string, Record<string, 'number' | 'string' | 'boolean'>> = {
  core: { lock_timeout: 'number', remote: 'string', id: 'string' },
  cache: { dir: 'string', type: 'string', allow_root_links: 'boolean' },
};

export const CONFIG_FILE = 'config.yaml';
export const LOCAL_CONFIG_FILE = 'config.local.yaml';
export type ConfigFileName = typeof CONFIG_FILE | typeof LOCAL_CONFIG_FILE;

/** Names of remotes (and so of `remote.<name>` sections). */
export const REMOTE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export type RemoteKey = keyof RemoteConfig;
/** Every key a remote section may hold, in the order they are listed. */
export const REMOTE_KEYS: readonly RemoteKey[] = ['url', 'endpointurl', 'region', 'profile', 'force_path_style', 'checksum', 'jobs', 'access_key_id', 'secret_access_key'];
/** Keys that only config.local.yaml (git-ignored) may hold, and that are never printed. */
export const SECRET_REMOTE_KEYS: readonly RemoteKey[] = ['access_key_id', 'secret_access_key'];
export const CHECKSUM_MODES = ['when_supported', 'when_required'] as const;

/** What is shown instead of a credential. */
export const MASK = '****';

/** True when a URL carries user info (`scheme://user[:password]@host`): a credential. */
export function urlHasCredentials(url: string): boolean {
  return maskUrl(url) !== url;
}

/**
 * `text` with the user info of every URL in it (`http://user:password@host`)
 * replaced by MASK: an endpoint may carry credentials, and the user name can
 * be an access key id. Everything that prints an endpoint or a URL from the
 * configuration passes it through this.
 */
export function maskUrl(text: string): string {
  // Greedy up to the last "@" before the path: a password may hold an unencoded "@".
  return text.replace(/\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/?#]*@/g, `$1${MASK}@`);
}

export function isRemoteKey(key: string): key is RemoteKey {
  return (REMOTE_KEYS as readonly string[]).includes(key);
}

/** Where a remote is, from its url. A local `path` is as written: it may be relative (to the repository root). */
export type RemoteLocation = { kind: 'local'; path: string } | { kind: 's3'; bucket: string; prefix: string };

export const SUPPORTED_URLS = 's3://bucket/prefix, file:///absolute/path, /absolute/path or a relative path';

/** Classifies a remote url, throwing a UsageError that says what is wrong and what is supported. */
export function parseRemoteUrl(url: string): RemoteLocation {
  // Messages echo the url: never the credentials a mistaken "s3://key:secret@bucket" holds.
  const shown = maskUrl(url);
  if (url.trim() === '') throw new UsageError(`a remote url must not be empty; use ${SUPPORTED_URLS}`);
  if (/^s3:\/\//i.test(url)) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (bucket === '') throw new UsageError(`"${shown}" names no bucket; write s3://bucket or s3://bucket/prefix`);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(bucket) || bucket.includes('..')) {
      const shownBucket = bucket.includes('@') ? `${MASK}@${bucket.slice(bucket.lastIndexOf('@') + 1)}` : bucket;
      throw new UsageError(`"${shownBucket}" in "${shown}" is not a valid S3 bucket name (letters, digits, ".", "-", "_", starting with a letter or digit)`);
    }
    const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
    // "." and ".." segments could be resolved by a proxy or server into another bucket's keys.
    if (prefix !== '' && prefix.split('/').some((seg) => seg === '' || seg === '.' || seg === '..')) {
      throw new UsageError(`the prefix in "${shown}" has an empty, "." or ".." segment; write s3://bucket/some/prefix`);
    }
    return { kind: 's3', bucket, prefix };
  }
  if (/^file:\/\//i.test(url)) {
    try {
      return { kind: 'local', path: fileURLToPath(url) };
    } catch {
      throw new UsageError(`"${shown}" is not a file URL of an absolute local path; write file:///absolute/path`);
    }
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(url);
  if (scheme) throw new UsageError(`unsupported remote url "${shown}" (${scheme[1]}://); use ${SUPPORTED_URLS}`);
  if (/^s3:/i.test(url)) throw new UsageError(`"${shown}" looks like a mistyped S3 url; write s3://bucket/prefix (or ./${shown} for a local directory)`);
  return { kind: 'local', path: url };
}

/**
 * What is wrong with `value` for remote key `key` (any type, as read from YAML
 * or converted from the command line), or undefined when it is valid. Secret
 * values are never echoed.
 */
export function remoteValueProblem(key: RemoteKey, value: unknown): string | undefined {
  const got = SECRET_REMOTE_KEYS.includes(key) ? '' : `, got ${maskUrl(JSON.stringify(value) ?? String(value))}`;
  switch (key) {
    case 'url':
      if (typeof value !== 'string') return `must be a string${got}`;
      try {
        parseRemoteUrl(value);
      } catch (e) {
        return (e as Error).message;
      }
      return undefined;
    case 'endpointurl':
      return typeof value === 'string' && /^https?:\/\/[^\s/]+/i.test(value) ? undefined : `must be an http:// or https:// URL such as http://127.0.0.1:4568${got}`;
    case 'force_path_style':
      return typeof value === 'boolean' ? undefined : `must be true or false${got}`;
    case 'checksum':
      return (CHECKSUM_MODES as readonly unknown[]).includes(value) ? undefined : `must be ${CHECKSUM_MODES.join(' or ')}${got}`;
    case 'jobs':
      return typeof value === 'number' && Number.isInteger(value) && value >= 1 ? undefined : `must be a whole number >= 1${got}`;
    default:
      return typeof value === 'string' && value.trim() !== '' ? undefined : `must be a non-empty string (quote it if it looks like a number)${got}`;
  }
}

export const CONFIG_TEMPLATE = `# tdv configuration, committed with the repository.
# Machine-specific settings (credentials, a local cache path) go in config.local.yaml, which Git ignores.
#
# core:
#   lock_timeout: 60        # seconds a command waits for another tdv command's lock
#   remote: storage         # the default remote (\`tdv remote default NAME\`)
# cache:
#   dir: /mnt/shared/tdv-cache   # share one cache between several clones
#   type: reflink,copy      # how workspace files are made from the cache: reflink, copy, hardlink, symlink
# remote:                   # \`tdv remote add NAME URL\` writes these; \`tdv remote modify NAME KEY VALUE\` the rest
#   storage:
#     url: s3://my-bucket/tdv   # or a directory: /mnt/tdv-store, ../tdv-store (relative to the repository root)
#     region: us-east-1
#     jobs: 8                   # parallel transfers
# Credentials never go here: they come from the AWS environment or a profile, or
# \`tdv remote modify NAME secret_access_key ... --local\` puts them in config.local.yaml.
`;

/** Loads `.tdv/config.yaml`, then `.tdv/config.local.yaml` over it. */
export async function loadConfig(tdvDir: string): Promise<Config> {
  return configFromTexts(tdvDir, readConfigTexts(tdvDir));
}

/** The texts of both config files as they are on disk (undefined: no such file). */
export function readConfigTexts(tdvDir: string): Partial<Record<ConfigFileName, string>> {
  return {
    [CONFIG_FILE]: readTextOrUndefined(path.join(tdvDir, CONFIG_FILE)),
    [LOCAL_CONFIG_FILE]: readTextOrUndefined(path.join(tdvDir, LOCAL_CONFIG_FILE)),
  };
}

/**
 * The configuration `loadConfig` would return if the files held `texts`
 * (undefined: no such file), so that a writer can prove a new text loads
 * before it writes it. Errors name `<tdvDir>/<file>:<line>`.
 */
export async function configFromTexts(tdvDir: string, texts: Partial<Record<ConfigFileName, string>>): Promise<Config> {
  // No prototype: `cfg.remote[name]` is undefined for any name not configured, "constructor" included.
  const cfg: Config = { core: { lock_timeout: 60 }, cache: { type: DEFAULT_LINK_TYPES }, remote: Object.create(null) as Config['remote'] };
  const remotes = new Map<string, { where: string; values: Partial<RemoteConfig> }>();
  for (const name of [CONFIG_FILE, LOCAL_CONFIG_FILE] as const) {
    const text = texts[name];
    if (text === undefined) continue;
    const file = path.join(tdvDir, name);
    apply(cfg, await parseYaml(text, file), file, tdvDir, remotes, name === LOCAL_CONFIG_FILE);
  }
  for (const [name, { where, values }] of remotes) {
    if (values.url === undefined) {
      throw new FormatError(where, `remote "${name}" has no url`, `Add one with \`tdv remote modify ${name} url URL\`, or delete the section`);
    }
    cfg.remote[name] = values as RemoteConfig;
  }
  return cfg;
}

type Remotes = Map<string, { where: string; values: Partial<RemoteConfig> }>;

function apply(cfg: Config, y: YamlFile, file: string, tdvDir: string, remotes: Remotes, local: boolean): void {
  const v = y.value;
  if (v === null || v === undefined) return;
  const at = (keys: (string | number)[]) => `${file}${y.lineOf(keys) ? `:${y.lineOf(keys)}` : ''}`;
  if (typeof v !== 'object' || Array.isArray(v)) throw new FormatError(file, 'must be a mapping of sections (core, cache, remote)');
  for (const [section, body] of Object.entries(v)) {
    const keys = SCHEMA[section];
    if (!keys && section !== 'remote') throw new FormatError(at([section]), `unknown section "${section}"`, `Known sections: ${[...Object.keys(SCHEMA), 'remote'].join(', ')}`);
    if (body === null) continue;
    if (typeof body !== 'object' || Array.isArray(body)) throw new FormatError(at([section]), `"${section}" must be a mapping`);
    if (!keys) {
      applyRemotes(body as Record<string, unknown>, at, remotes, local);
      continue;
    }
    for (const [key, val] of Object.entries(body as Record<string, unknown>)) {
      const type = keys[key];
      if (!type)
        throw new FormatError(
          at([section, key]),
          `unknown key "${section}.${key}"`,
          `Known keys: ${Object.keys(keys)
            .map((k) => `${section}.${k}`)
            .join(', ')}`,
        );
      if (typeof val !== type) throw new FormatError(at([section, key]), `"${section}.${key}" must be a ${type}`);
      if (section === 'core' && key === 'lock_timeout') {
        // At most a day: a huge value would make a command wait for a held lock forever.
        if (!Number.isFinite(val) || (val as number) < 0 || (val as number) > 86_400) throw new FormatError(at([section, key]), 'core.lock_timeout must be a number of seconds from 0 to 86400');
        cfg.core.lock_timeout = val as number;
      } else if (section === 'core' && key === 'remote') {
        // Whether it names a configured remote is checked where a remote is needed, so
        // that a default set only in one clone's config.local.yaml breaks nothing else.
        if (!REMOTE_NAME_RE.test(val as string)) throw new FormatError(at([section, key]), `core.remote must be a remote name, got ${JSON.stringify(val)}`);
        cfg.core.remote = val as string;
      } else if (section === 'core' && key === 'id') {
        if (!/^[0-9a-f]{40}$/.test(val as string)) throw new FormatError(at([section, key]), `core.id must be 40 lowercase hex digits (tdv writes it), got ${JSON.stringify(val)}`);
        cfg.core.id = val as string;
      } else if (section === 'cache' && key === 'dir') {
        cfg.cache.dir = path.resolve(tdvDir, val as string);
      } else if (section === 'cache' && key === 'type') {
        cfg.cache.type = parseLinkTypes(val as string, at([section, key]));
      } else if (section === 'cache' && key === 'allow_root_links') {
        cfg.cache.allow_root_links = val as boolean;
      }
    }
  }
}

/** `remote.<name>.<key>` values, merged key by key over what earlier files set. */
function applyRemotes(body: Record<string, unknown>, at: (keys: string[]) => string, remotes: Remotes, local: boolean): void {
  for (const [name, section] of Object.entries(body)) {
    if (!REMOTE_NAME_RE.test(name)) {
      throw new FormatError(at(['remote', name]), `invalid remote name ${JSON.stringify(name)}`, 'Names start with a letter or digit and contain only letters, digits, ".", "_" and "-"');
    }
    if (section !== null && (typeof section !== 'object' || Array.isArray(section))) {
      throw new FormatError(at(['remote', name]), `"remote.${name}" must be a mapping of settings (url, region, ...)`);
    }
    let entry = remotes.get(name);
    if (!entry) remotes.set(name, (entry = { where: at(['remote', name]), values: {} }));
    for (const [key, val] of Object.entries((section ?? {}) as Record<string, unknown>)) {
      const where = at(['remote', name, key]);
      if (!isRemoteKey(key)) throw new FormatError(where, `unknown key "remote.${name}.${key}"`, `Known keys: ${REMOTE_KEYS.join(', ')}`);
      if (!local && SECRET_REMOTE_KEYS.includes(key)) {
        throw new FormatError(
          where,
          `remote.${name}.${key} must not be in config.yaml, which is committed to Git`,
          `Delete it there and run \`tdv remote modify ${name} ${key} VALUE --local\`, which keeps it in .tdv/config.local.yaml (git-ignored)`,
        );
      }
      if (!local && key === 'endpointurl' && typeof val === 'string' && urlHasCredentials(val)) {
        throw new FormatError(
          where,
          `remote.${name}.endpointurl holds credentials (user:password@) and must not be in config.yaml, which is committed to Git`,
          `Delete it there and run \`tdv remote modify ${name} endpointurl URL --local\`, or set access_key_id and secret_access_key with --local`,
        );
      }
      const problem = remoteValueProblem(key, val);
      if (problem) throw new FormatError(where, `remote.${name}.${key} ${problem.startsWith('must') ? problem : `is invalid: ${problem}`}`);
      (entry.values as Record<string, unknown>)[key] = val;
    }
  }
}

/** Where a remote's objects live: an absolute directory, or an S3 bucket and key prefix. */
export type ResolvedRemoteUrl = { kind: 'local'; path: string } | { kind: 's3'; bucket: string; prefix: string };

/**
 * Resolves a configured `RemoteConfig.url`: a relative path against the
 * repository root `root`, `file://` to its path; an S3 prefix comes without
 * leading or trailing slashes (possibly ''). Throws a UsageError for a url
 * `loadConfig` would have refused.
 */
export function resolveRemoteUrl(root: string, url: string): ResolvedRemoteUrl {
  const loc = parseRemoteUrl(url);
  return loc.kind === 'local' ? { kind: 'local', path: path.resolve(root, loc.path) } : loc;
}
