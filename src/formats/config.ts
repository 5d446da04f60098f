import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError, UsageError } from '../errors.js';
import { readUtf8OrUndefined } from '../util/fs.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';
import * as v from 'valibot';
import { dict, fail, isMapping, key, KEYS, pathItem, problemOf, strictMapping, validate, type At } from './schema.js';
import { parseRate, RATE_SYNTAX } from './rate.js';

export const LINK_TYPES = ['reflink', 'copy', 'hardlink', 'symlink'] as const;
export type LinkType = (typeof LINK_TYPES)[number];

/** The link types of a `cache.type` value (`"reflink, copy"`), as written; `linkTypesProblem` checks them. */
function splitLinkTypes(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

/** What is wrong with a `cache.type` value (problem and, after a newline, the fix), or undefined. */
export function linkTypesProblem(value: string): string | undefined {
  const types = splitLinkTypes(value);
  if (types.length === 0) return fail('cache.type is empty', 'Use e.g. "reflink,copy"');
  const bad = types.find((t) => !(LINK_TYPES as readonly string[]).includes(t));
  return bad === undefined ? undefined : fail(`unknown cache.type "${bad}"`, `Use a comma-separated list of ${LINK_TYPES.join(', ')}`);
}

/** The link types of a `cache.type` value, or a FormatError at `source`. */
export function parseLinkTypes(value: string, source: string): LinkType[] {
  const problem = linkTypesProblem(value);
  if (problem !== undefined) {
    const [detail, fix] = problem.split('\n');
    throw new FormatError(source, detail!, fix);
  }
  return splitLinkTypes(value) as LinkType[];
}

export const DEFAULT_LINK_TYPES: LinkType[] = ['reflink', 'copy'];

export const CONFIG_FILE = 'config.yaml';
export const LOCAL_CONFIG_FILE = 'config.local.yaml';
export type ConfigFileName = typeof CONFIG_FILE | typeof LOCAL_CONFIG_FILE;

/** Names of remotes (and so of `remote.<name>` sections). */
export const REMOTE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * The engine types a `runner.<name>.type` may name. The runner registry
 * (stages/runners/registry.ts) maps each to its lazily loaded module and is
 * typed by this list, so the two cannot disagree; a format module may not
 * import stages/ (it only parses), hence the list lives here.
 */
export const RUNNER_TYPES = ['docker', 'kubernetes'] as const;
export type RunnerType = (typeof RUNNER_TYPES)[number];
/** The runner name that means this machine: always there, never configured. */
export const LOCAL_RUNNER = 'local';

export const CHECKSUM_MODES = ['when_supported', 'when_required'] as const;
/** How a remote stores objects (see remote/packed.ts): packed is the default for every remote. */
export const REMOTE_LAYOUTS = ['packed', 'plain'] as const;
/** `remote.<name>.compression` values: auto, none, zstd, zstd:LEVEL (1-19). */
export const COMPRESSION_RE = /^(?:auto|none|zstd(?::(?:[1-9]|1[0-9]))?)$/;

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

/** What a message shows of a value: never a credential (masked in URLs, absent for secret keys). */
function got(value: unknown): string {
  return `, got ${maskUrl(JSON.stringify(value) ?? String(value))}`;
}

const isString = (x: unknown): x is string => typeof x === 'string';
const nonEmptyString = (x: unknown): x is string => typeof x === 'string' && x.trim() !== '';
const nonEmpty = (secret = false) => v.custom<string>(nonEmptyString, (i) => `${KEYS} must be a non-empty string (quote it if it looks like a number)${secret ? '' : got(i.input)}`);

function urlProblem(url: string): string | undefined {
  try {
    parseRemoteUrl(url);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The value of each `remote.<name>.<key>`, in the order keys are listed; absent
 * keys mean "the default" (see the README's keys table), never an empty string.
 * `tdv remote modify` checks command-line values with the same schemas
 * (`remoteValueProblem`). Secret values are never echoed.
 */
const REMOTE_VALUES = {
  /**
   * As written: a path (relative paths are relative to the repository root,
   * not to .tdv/), `file:///absolute/path` or `s3://bucket[/prefix]`.
   * `resolveRemoteUrl` below turns it into an absolute path or a bucket and prefix.
   */
  url: v.pipe(
    v.custom<string>(isString, (i) => `${KEYS} must be a string${got(i.input)}`),
    v.check(
      (u) => urlProblem(u) === undefined,
      (i) => `${KEYS} is invalid: ${urlProblem(i.input as string)}`,
    ),
  ),
  endpointurl: v.custom<string>(
    (x) => typeof x === 'string' && /^https?:\/\/[^\s/]+/i.test(x),
    (i) => `${KEYS} must be an http:// or https:// URL such as http://127.0.0.1:4568${got(i.input)}`,
  ),
  region: nonEmpty(),
  profile: nonEmpty(),
  force_path_style: v.custom<boolean>(
    (x) => typeof x === 'boolean',
    (i) => `${KEYS} must be true or false${got(i.input)}`,
  ),
  checksum: v.custom<(typeof CHECKSUM_MODES)[number]>(
    (x) => (CHECKSUM_MODES as readonly unknown[]).includes(x),
    (i) => `${KEYS} must be ${CHECKSUM_MODES.join(' or ')}${got(i.input)}`,
  ),
  jobs: v.custom<number>(
    (x) => typeof x === 'number' && Number.isInteger(x) && x >= 1,
    (i) => `${KEYS} must be a whole number >= 1${got(i.input)}`,
  ),
  /** `packed` (chunks, compression and packs; the default) or `plain` (one file per object, as the cache). */
  layout: v.custom<(typeof REMOTE_LAYOUTS)[number]>(
    (x) => (REMOTE_LAYOUTS as readonly unknown[]).includes(x),
    (i) => `${KEYS} must be ${REMOTE_LAYOUTS.join(' or ')}${got(i.input)}`,
  ),
  /** Whether the packed layout stores large files as content-defined chunks (default true). */
  chunking: v.custom<boolean>(
    (x) => typeof x === 'boolean',
    (i) => `${KEYS} must be true or false${got(i.input)}`,
  ),
  /** `auto` (the default), `none`, `zstd` or `zstd:LEVEL` (1-19). */
  compression: v.custom<string>(
    (x) => typeof x === 'string' && COMPRESSION_RE.test(x),
    (i) => `${KEYS} must be auto, none, zstd or zstd:LEVEL with a level from 1 to 19${got(i.input)}`,
  ),
  /** A rate cap for transfers with this remote (`--limit-rate` overrides it): bytes per second, e.g. 4M. */
  limit_rate: v.custom<string | number>(
    (x) => (typeof x === 'string' || typeof x === 'number') && parseRate(x) !== undefined,
    (i) => `${KEYS} must be ${RATE_SYNTAX}${got(i.input)}`,
  ),
  /** Only ever from config.local.yaml. */
  access_key_id: nonEmpty(true),
  secret_access_key: nonEmpty(true),
};

export type RemoteKey = keyof typeof REMOTE_VALUES;
/** Every key a remote section may hold, in the order they are listed. */
export const REMOTE_KEYS = Object.keys(REMOTE_VALUES) as readonly RemoteKey[];
/** Keys that only config.local.yaml (git-ignored) may hold, and that are never printed. */
export const SECRET_REMOTE_KEYS: readonly RemoteKey[] = ['access_key_id', 'secret_access_key'];

export function isRemoteKey(key: string): key is RemoteKey {
  return Object.hasOwn(REMOTE_VALUES, key);
}

/**
 * What is wrong with `value` for remote key `key` (any type, as read from YAML
 * or converted from the command line), or undefined when it is valid: the
 * problem as config files report it after `remote.<name>.<key> `. Secret
 * values are never echoed.
 */
export function remoteValueProblem(key: RemoteKey, value: unknown): string | undefined {
  // Without a key path the message starts where the key would be; a url's problem is parseRemoteUrl's own sentence.
  return problemOf(REMOTE_VALUES[key], value)
    ?.trimStart()
    .replace(/^is invalid: /, '');
}

const LOCAL_FIX = (what: string) => `Delete it there and run \`tdv remote modify ${key(1)} ${what} --local\``;

/**
 * One `remote.<name>` section of one file. config.yaml, committed to Git,
 * must hold no credential: no secret key, no endpointurl with user info.
 */
function remoteSection(local: boolean) {
  const committed = (k: RemoteKey) =>
    v.custom<never>(() => false, fail(`${KEYS} must not be in config.yaml, which is committed to Git`, `${LOCAL_FIX(`${k} VALUE`)}, which keeps it in .tdv/config.local.yaml (git-ignored)`));
  return strictMapping(
    {
      ...REMOTE_VALUES,
      url: v.optional(REMOTE_VALUES.url),
      endpointurl: v.optional(
        local
          ? REMOTE_VALUES.endpointurl
          : v.pipe(
              REMOTE_VALUES.endpointurl,
              v.check(
                (u) => !urlHasCredentials(u),
                fail(
                  `${KEYS} holds credentials (user:password@) and must not be in config.yaml, which is committed to Git`,
                  `${LOCAL_FIX('endpointurl URL')}, or set access_key_id and secret_access_key with --local`,
                ),
              ),
            ),
      ),
      region: v.optional(REMOTE_VALUES.region),
      profile: v.optional(REMOTE_VALUES.profile),
      force_path_style: v.optional(REMOTE_VALUES.force_path_style),
      checksum: v.optional(REMOTE_VALUES.checksum),
      jobs: v.optional(REMOTE_VALUES.jobs),
      layout: v.optional(REMOTE_VALUES.layout),
      chunking: v.optional(REMOTE_VALUES.chunking),
      compression: v.optional(REMOTE_VALUES.compression),
      limit_rate: v.optional(REMOTE_VALUES.limit_rate),
      access_key_id: v.optional(local ? REMOTE_VALUES.access_key_id : committed('access_key_id')),
      secret_access_key: v.optional(local ? REMOTE_VALUES.secret_access_key : committed('secret_access_key')),
    },
    `"${KEYS}" must be a mapping of settings (url, region, ...)`,
    () => fail(`unknown key "${KEYS}"`, `Known keys: ${REMOTE_KEYS.join(', ')}`),
  );
}

/**
 * One `runner.<name>` section of one file: its engine `type` (required once
 * both files are merged) and that engine's keys. The keys are checked
 * against the engine's own schema when the runner is created and by `tdv
 * runner add/modify` (repo/lib/runners.ts), not here: an engine's module is
 * loaded only when a stage uses it, so `tdv status` never loads a
 * Kubernetes client to read a config file.
 */
function runnerSection() {
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, fail(`"${KEYS}" must be a mapping of settings`, `Write type: ${RUNNER_TYPES.join(' or ')} and that type's keys (see \`tdv runner add --help\`)`)),
    v.rawCheck<Record<string, unknown>>(({ dataset, addIssue }) => {
      if (!dataset.typed || dataset.value.type === undefined) return;
      if (!(RUNNER_TYPES as readonly unknown[]).includes(dataset.value.type)) {
        addIssue({
          message: fail(`${KEYS} must be ${RUNNER_TYPES.join(' or ')}${got(dataset.value.type)}`, 'Fix the type in the file, or delete the section'),
          path: [pathItem(dataset.value, 'type')],
        });
      }
    }),
    v.transform((r) => r as RunnerSection),
  );
}

/** A runner section as read: its engine type (absent in an override in config.local.yaml) and the engine's keys. */
export interface RunnerSection {
  type?: RunnerType;
  [key: string]: unknown;
}

/** A core or cache key of one type: the type's message names the key. */
const typed = <T>(type: 'number' | 'string' | 'boolean') => v.custom<T>((x) => typeof x === type, `"${KEYS}" must be a ${type}`);
const knownKeys = (section: string, keys: string[]) => () => fail(`unknown key "${KEYS}"`, `Known keys: ${keys.map((k) => `${section}.${k}`).join(', ')}`);

/**
 * One configuration file: config.yaml, or (`local`) config.local.yaml, which
 * may also hold credentials. Empty sections (and an empty file) are allowed.
 */
function configFile(local: boolean) {
  const core = {
    // At most a day: a huge value would make a command wait for a held lock forever.
    lock_timeout: v.optional(
      v.pipe(
        typed<number>('number'),
        v.check((n) => Number.isFinite(n) && n >= 0 && n <= 86_400, 'core.lock_timeout must be a number of seconds from 0 to 86400'),
      ),
    ),
    // Whether it names a configured remote is checked where a remote is needed, so
    // that a default set only in one clone's config.local.yaml breaks nothing else.
    remote: v.optional(
      v.pipe(
        typed<string>('string'),
        v.regex(REMOTE_NAME_RE, (i) => `core.remote must be a remote name, got ${JSON.stringify(i.input)}`),
      ),
    ),
    // The default runner for stages without `runner:` (see repo/lib/runners.ts); like
    // core.remote, whether it names a configured runner is checked where one is needed.
    runner: v.optional(
      v.pipe(
        typed<string>('string'),
        v.regex(REMOTE_NAME_RE, (i) => fail(`core.runner must be a runner name, got ${JSON.stringify(i.input)}`, 'Set it with `tdv runner add NAME TYPE --default`, or write local')),
      ),
    ),
    /**
     * This repository's name in remotes' ownership markers (`repos/<id>`),
     * written by the first push made before any commit; otherwise the root
     * commit's id serves (see repo/lib/remote-owner.ts).
     */
    id: v.optional(
      v.pipe(
        typed<string>('string'),
        v.regex(/^[0-9a-f]{40}$/, (i) => `core.id must be 40 lowercase hex digits (tdv writes it), got ${JSON.stringify(i.input)}`),
      ),
    ),
  };
  const cache = {
    /** Resolved against .tdv/ when loaded; an empty one would make .tdv itself the cache. */
    dir: v.optional(
      v.pipe(
        typed<string>('string'),
        v.check((d) => d.trim() !== '', 'cache.dir is empty; name a directory (relative to .tdv/, e.g. ../../shared-cache) or remove the key'),
      ),
    ),
    type: v.optional(
      v.pipe(
        typed<string>('string'),
        v.check(
          (t) => linkTypesProblem(t) === undefined,
          (i) => linkTypesProblem(i.input as string)!,
        ),
        v.transform((t) => splitLinkTypes(t) as LinkType[]),
      ),
    ),
    /** Link (hardlink, symlink) even as root; see Linker. */
    allow_root_links: v.optional(typed<boolean>('boolean')),
  };
  const section = `"${KEYS}" must be a mapping`;
  return v.nullish(
    strictMapping(
      {
        core: v.nullish(strictMapping(core, section, knownKeys('core', Object.keys(core)))),
        cache: v.nullish(strictMapping(cache, section, knownKeys('cache', Object.keys(cache)))),
        remote: v.nullish(
          dict(
            v.pipe(
              v.string(),
              v.regex(REMOTE_NAME_RE, (i) => fail(`invalid remote name ${JSON.stringify(i.input)}`, 'Names start with a letter or digit and contain only letters, digits, ".", "_" and "-"')),
            ),
            v.nullish(remoteSection(local)),
            section,
          ),
        ),
        runner: v.nullish(
          dict(
            v.pipe(
              v.string(),
              v.regex(REMOTE_NAME_RE, (i) => fail(`invalid runner name ${JSON.stringify(i.input)}`, 'Names start with a letter or digit and contain only letters, digits, ".", "_" and "-"')),
              v.check((n) => n !== LOCAL_RUNNER, fail(`runner name "${LOCAL_RUNNER}" is reserved: it means this machine, which needs no settings`, 'Rename the section (e.g. runner.gpu)')),
            ),
            v.nullish(runnerSection()),
            section,
          ),
        ),
      },
      'must be a mapping of sections (core, cache, remote, runner)',
      (k) => fail(`unknown section "${k}"`, 'Known sections: core, cache, remote, runner'),
    ),
  );
}

const CONFIG_SCHEMA = configFile(false);
const LOCAL_CONFIG_SCHEMA = configFile(true);

type ConfigFileValue = NonNullable<v.InferOutput<typeof LOCAL_CONFIG_SCHEMA>>;
type CoreSection = NonNullable<ConfigFileValue['core']>;
type CacheSection = NonNullable<ConfigFileValue['cache']>;
type RemoteSection = NonNullable<NonNullable<ConfigFileValue['remote']>[string]>;

/**
 * One `remote.<name>` section, merged key by key from config.yaml and then
 * config.local.yaml. Every value has been validated; `url` is always present.
 */
export type RemoteConfig = Omit<RemoteSection, 'url'> & { url: string };

/** One `runner.<name>` section merged from both files: its type is always present; the engine's keys are checked when it is created. */
export interface RunnerSettings {
  type: RunnerType;
  [key: string]: unknown;
}

/** The merged configuration: config.yaml, then config.local.yaml over it, then the defaults. */
export interface Config {
  core: Omit<CoreSection, 'lock_timeout'> & { lock_timeout: number };
  cache: Omit<CacheSection, 'type'> & { type: LinkType[] };
  remote: Record<string, RemoteConfig>;
  /** Configured runners by name (`local` is never one: it is this machine). */
  runner: Record<string, RunnerSettings>;
  /**
   * Where each runner's section and keys are written (`file:line:col`), for
   * the errors of checks made after loading (an engine's own keys). The
   * winning file's position for a key set in both.
   */
  runnerAt: Record<string, { section: string; keys: Record<string, string> }>;
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
    [CONFIG_FILE]: readUtf8OrUndefined(path.join(tdvDir, CONFIG_FILE), path.join(tdvDir, CONFIG_FILE)),
    [LOCAL_CONFIG_FILE]: readUtf8OrUndefined(path.join(tdvDir, LOCAL_CONFIG_FILE), path.join(tdvDir, LOCAL_CONFIG_FILE)),
  };
}

/**
 * The configuration `loadConfig` would return if the files held `texts`
 * (undefined: no such file), so that a writer can prove a new text loads
 * before it writes it. Errors name `<tdvDir>/<file>:<line>`.
 */
export async function configFromTexts(tdvDir: string, texts: Partial<Record<ConfigFileName, string>>): Promise<Config> {
  // No prototype: `cfg.remote[name]` is undefined for any name not configured, "constructor" included.
  const cfg: Config = {
    core: { lock_timeout: 60 },
    cache: { type: DEFAULT_LINK_TYPES },
    remote: Object.create(null) as Config['remote'],
    runner: Object.create(null) as Config['runner'],
    runnerAt: Object.create(null) as Config['runnerAt'],
  };
  const remotes = new Map<string, { where: string; values: Partial<RemoteConfig> }>();
  const runners = new Map<string, { where: string; values: RunnerSection; keys: Record<string, string> }>();
  for (const name of [CONFIG_FILE, LOCAL_CONFIG_FILE] as const) {
    const text = texts[name];
    if (text === undefined) continue;
    const file = path.join(tdvDir, name);
    const y = await parseYaml(text, file);
    const at = where(y, file);
    const f = validate(name === LOCAL_CONFIG_FILE ? LOCAL_CONFIG_SCHEMA : CONFIG_SCHEMA, y.value, at);
    if (f?.core) Object.assign(cfg.core, defined(f.core));
    if (f?.cache) {
      const { dir, ...rest } = defined(f.cache);
      Object.assign(cfg.cache, rest);
      if (dir !== undefined) cfg.cache.dir = path.resolve(tdvDir, dir);
    }
    // Merged key by key over what earlier files set: a local section needs no url of its own.
    for (const [rname, section] of Object.entries(f?.remote ?? {})) {
      let entry = remotes.get(rname);
      if (!entry) remotes.set(rname, (entry = { where: at(['remote', rname]), values: {} }));
      Object.assign(entry.values, defined(section ?? {}));
    }
    for (const [rname, section] of Object.entries(f?.runner ?? {})) {
      let entry = runners.get(rname);
      if (!entry) runners.set(rname, (entry = { where: at(['runner', rname]), values: Object.create(null) as RunnerSection, keys: Object.create(null) as Record<string, string> }));
      for (const [k, x] of Object.entries(section ?? {})) {
        if (x === undefined) continue;
        Object.defineProperty(entry.values, k, { value: x, enumerable: true, writable: true, configurable: true });
        entry.keys[k] = at(['runner', rname, k]);
      }
    }
  }
  for (const [name, { where, values, keys }] of runners) {
    if (values.type === undefined) {
      throw new FormatError(where, `runner "${name}" has no type`, `Add type: ${RUNNER_TYPES.join(' or ')} to the section, or delete it`);
    }
    cfg.runner[name] = values as RunnerSettings;
    cfg.runnerAt[name] = { section: where, keys };
  }
  for (const [name, { where, values }] of remotes) {
    if (values.url === undefined) {
      throw new FormatError(where, `remote "${name}" has no url`, `Add one with \`tdv remote modify ${name} url URL\`, or delete the section`);
    }
    cfg.remote[name] = values as RemoteConfig;
  }
  return cfg;
}

/** `o` without its undefined values, so that merging it keeps what an earlier file set. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as T;
}

/** Where a key path is written: `file:line:col` of the key, or of the nearest enclosing key written, or the file. */
function where(y: YamlFile, file: string): At {
  return (keys) => y.where(file, keys);
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
