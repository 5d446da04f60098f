/**
 * Edits of the configuration files (`remote.<name>`, `runner.<name>`, `core`
 * keys), shared by `tdv remote` and `tdv runner`: every write re-reads both
 * files under the repository lock, edits them as YAML documents (so comments
 * and the rest of the file survive), proves the result loads with the same
 * code as `loadConfig`, and only then replaces the files.
 */
import type { Document } from 'yaml';
import { FormatError, TdvError } from '../../errors.js';
import { CONFIG_FILE, type Config, type ConfigFileName, configFromTexts, LOCAL_CONFIG_FILE, SECRET_REMOTE_KEYS, urlHasCredentials } from '../../formats/config.js';
import { TDV_DIR } from '../../formats/layout.js';
import { addGitignoreEntry } from '../../workspace/gitignore.js';
import type { Repo } from '../repo.js';

/** What a write did to the files, for the CLI to report. */
export interface ConfigWrite {
  /** Repository-relative POSIX paths of the config files rewritten (`.tdv/config.yaml`, ...). */
  files: string[];
  /** True when `/config.local.yaml` had to be added to `.tdv/.gitignore`. */
  gitignored: boolean;
}

/** config.local.yaml with `local`, else config.yaml. */
export function fileFor(local: boolean | undefined): ConfigFileName {
  return local ? LOCAL_CONFIG_FILE : CONFIG_FILE;
}

/** The other of the two config files. */
export function otherFile(f: ConfigFileName): ConfigFileName {
  return f === CONFIG_FILE ? LOCAL_CONFIG_FILE : CONFIG_FILE;
}

type KeyPath = string[];

/** Both config files as YAML documents, edited in place; knows which ones changed. */
export class ConfigEdit {
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

  /** Sets a key (a list or mapping value becomes a YAML block of its own). */
  set(file: ConfigFileName, keys: KeyPath, value: unknown): void {
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
    d.setIn(keys, typeof value === 'object' && value !== null ? d.createNode(value) : value);
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
export async function editConfig<T>(repo: Repo, cmd: string, edit: (e: ConfigEdit) => T): Promise<{ value: T; after: Config; write: ConfigWrite }> {
  return repo.withLock(cmd, async () => {
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
