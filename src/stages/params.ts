import { FormatError } from '../errors.js';
import { Guard } from '../workspace/guard.js';
import { parseValues } from './values.js';

/**
 * Reads parameter values (dotted keys into nested mappings) from YAML, JSON
 * or TOML files (by extension, see parseValues), each file parsed once. The
 * files are named by tdv.yaml, so they are read through a Guard: a params path that leaves the repository, or a params
 * file that is a symlink (to ~/.aws/credentials, say), is refused with one
 * line, and its content is never parsed or printed.
 */
export class ParamsReader {
  private readonly files = new Map<string, Promise<unknown>>();
  private readonly guard: Guard;

  /** `workspace`: the repository's guard (`repo.guard`), or its root, for which a read-only guard is made. */
  constructor(workspace: Guard | string) {
    this.guard = typeof workspace === 'string' ? new Guard(workspace) : workspace;
  }

  /** The values of `keys` in `file` (repo-relative). A missing file or key is an error naming both. */
  async values(file: string, keys: readonly string[], stage: string): Promise<Record<string, unknown>> {
    let doc = this.files.get(file);
    if (!doc) {
      doc = (async () => {
        const text = this.guard.readText(file, { source: 'tdv.yaml' });
        if (text === undefined) return undefined;
        return parseValues(text, file);
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
      // An own property whatever the name (`out['__proto__'] = x` would set the prototype instead).
      Object.defineProperty(out, key, { value: node, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
}
