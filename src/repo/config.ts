import path from 'node:path';
import { FormatError } from '../errors.js';
import { parseLinkTypes, type LinkType } from '../cache/link.js';
import { readTextOrUndefined } from '../util/fs.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';

/** One `remote.<name>` section, merged from config.yaml and config.local.yaml. */
export interface RemoteConfig {
  /** As written: a path (relative to the repository root), `file://...` or `s3://bucket/prefix`. */
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
  core: { lock_timeout: number; remote?: string };
  cache: { dir?: string; type: LinkType[] };
  remote: Record<string, RemoteConfig>;
}

export const DEFAULT_LINK_TYPES: LinkType[] = ['reflink', 'copy'];

/** Allowed keys per section; anything else is a typo worth reporting. */
const SCHEMA: Record<string, Record<string, 'number' | 'string'>> = {
  core: { lock_timeout: 'number' },
  cache: { dir: 'string', type: 'string' },
};

export const CONFIG_TEMPLATE = `# tdv configuration, committed with the repository.
# Machine-specific settings (credentials, a local cache path) go in config.local.yaml, which Git ignores.
#
# core:
#   lock_timeout: 60        # seconds a command waits for another tdv command's lock
# cache:
#   dir: /mnt/shared/tdv-cache   # share one cache between several clones
#   type: reflink,copy      # how workspace files are made from the cache: reflink, copy, hardlink, symlink
`;

/** Loads `.tdv/config.yaml`, then `.tdv/config.local.yaml` over it. */
export async function loadConfig(tdvDir: string): Promise<Config> {
  const cfg: Config = { core: { lock_timeout: 60 }, cache: { type: DEFAULT_LINK_TYPES }, remote: {} };
  for (const name of ['config.yaml', 'config.local.yaml']) {
    const file = path.join(tdvDir, name);
    const text = readTextOrUndefined(file);
    if (text === undefined) continue;
    apply(cfg, await parseYaml(text, file), file, tdvDir);
  }
  return cfg;
}

function apply(cfg: Config, y: YamlFile, file: string, tdvDir: string): void {
  const v = y.value;
  if (v === null || v === undefined) return;
  const at = (keys: (string | number)[]) => `${file}${y.lineOf(keys) ? `:${y.lineOf(keys)}` : ''}`;
  if (typeof v !== 'object' || Array.isArray(v)) throw new FormatError(file, 'must be a mapping of sections (core, cache, ...)');
  for (const [section, body] of Object.entries(v)) {
    const keys = SCHEMA[section];
    if (!keys) throw new FormatError(at([section]), `unknown section "${section}"`, `Known sections: ${Object.keys(SCHEMA).join(', ')}`);
    if (body === null) continue;
    if (typeof body !== 'object' || Array.isArray(body)) throw new FormatError(at([section]), `"${section}" must be a mapping`);
    for (const [key, val] of Object.entries(body as Record<string, unknown>)) {
      const type = keys[key];
      if (!type) throw new FormatError(at([section, key]), `unknown key "${section}.${key}"`, `Known keys: ${Object.keys(keys).map((k) => `${section}.${k}`).join(', ')}`);
      if (typeof val !== type) throw new FormatError(at([section, key]), `"${section}.${key}" must be a ${type}`);
      if (section === 'core' && key === 'lock_timeout') {
        if (!Number.isFinite(val) || (val as number) < 0) throw new FormatError(at([section, key]), 'core.lock_timeout must be a number of seconds >= 0');
        cfg.core.lock_timeout = val as number;
      } else if (section === 'cache' && key === 'dir') {
        cfg.cache.dir = path.resolve(tdvDir, val as string);
      } else if (section === 'cache' && key === 'type') {
        cfg.cache.type = parseLinkTypes(val as string, at([section, key]));
      }
    }
  }
}
