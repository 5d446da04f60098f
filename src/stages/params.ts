import path from 'node:path';
import { FormatError } from '../errors.js';
import { readTextOrUndefined } from '../util/fs.js';
import { parseYaml } from '../util/yaml.js';

/** Reads parameter values (dotted keys into nested mappings) from YAML files, each file parsed once. */
export class ParamsReader {
  private readonly files = new Map<string, Promise<unknown>>();

  constructor(private readonly root: string) {}

  /** The values of `keys` in `file` (repo-relative). A missing file or key is an error naming both. */
  async values(file: string, keys: readonly string[], stage: string): Promise<Record<string, unknown>> {
    let doc = this.files.get(file);
    if (!doc) {
      doc = (async () => {
        const text = readTextOrUndefined(path.join(this.root, file));
        if (text === undefined) return undefined;
        return (await parseYaml(text, file)).value;
      })();
      this.files.set(file, doc);
    }
    const value = await doc;
    if (value === undefined) throw new FormatError(file, `does not exist, but stage "${stage}" reads params from it`, `Create it with the keys ${keys.join(', ')}`);
    const out: Record<string, unknown> = {};
    for (const key of keys) {
      let node: unknown = value;
      for (const part of key.split('.')) {
        node = typeof node === 'object' && node !== null && !Array.isArray(node) && Object.hasOwn(node, part) ? (node as Record<string, unknown>)[part] : undefined;
        if (node === undefined) break;
      }
      if (node === undefined) throw new FormatError(file, `has no parameter "${key}", which stage "${stage}" reads`, `Add it, or remove it from the stage's params`);
      out[key] = node;
    }
    return out;
  }
}
