import { FormatError } from '../errors.js';

export interface YamlFile {
  value: unknown;
  /** 1-based line of the node at `keyPath`, if it exists. */
  lineOf(keyPath: readonly (string | number)[]): number | undefined;
}

/** True for a text of only blank lines and comments: no YAML parser needed. */
export function isBlankYaml(text: string): boolean {
  return /^(?:[ \t]*(?:#[^\n]*)?\r?\n?)*$/.test(text);
}

/**
 * Parses YAML with positions, loading the parser lazily (it costs start-up
 * time). Errors name the file, line and column. Aliases are capped, so a
 * "billion laughs" document fails instead of eating memory.
 */
export async function parseYaml(text: string, file: string): Promise<YamlFile> {
  if (isBlankYaml(text)) return { value: null, lineOf: () => undefined };
  const { parseDocument, LineCounter, isNode } = await import('yaml');
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true });
  const err = doc.errors[0];
  if (err) {
    const pos = lc.linePos(err.pos[0]);
    throw new FormatError(`${file}:${pos.line}:${pos.col}`, `invalid YAML: ${err.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new FormatError(file, `cannot be loaded: ${(e as Error).message}`);
  }
  return {
    value,
    lineOf(keyPath) {
      const node = doc.getIn(keyPath, true);
      if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
      return undefined;
    },
  };
}
