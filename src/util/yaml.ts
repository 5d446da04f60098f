import { FormatError } from '../errors.js';

export interface YamlFile {
  value: unknown;
  /** 1-based line of the key (or sequence item) at `keyPath`, if it exists. */
  lineOf(keyPath: readonly (string | number)[]): number | undefined;
  /** 1-based line and column of the key (or sequence item) at `keyPath`, if it exists. */
  posOf(keyPath: readonly (string | number)[]): { line: number; col: number } | undefined;
  /**
   * Where `keyPath` is written, for an error line: `file:line:col` of its key
   * (or item), else of the nearest enclosing one at least `minDepth` deep, else `file`.
   */
  where(file: string, keyPath: readonly (string | number)[], minDepth?: number): string;
}

function whereIn(posOf: YamlFile['posOf']): YamlFile['where'] {
  return (file, keyPath, minDepth = 1) => {
    for (let n = keyPath.length; n >= Math.max(1, minDepth); n--) {
      const pos = posOf(keyPath.slice(0, n));
      if (pos) return `${file}:${pos.line}:${pos.col}`;
    }
    return file;
  };
}

/** True for a text of only blank lines and comments: no YAML parser needed. Linear time. */
export function isBlankYaml(text: string): boolean {
  return text.split('\n').every((line) => /^[ \t]*(?:#.*)?\r?$/.test(line));
}

/**
 * Parses YAML with positions, loading the parser lazily (it costs start-up
 * time). Errors name the file, line and column. Aliases are capped, so a
 * "billion laughs" document fails instead of eating memory.
 */
export async function parseYaml(text: string, file: string): Promise<YamlFile> {
  if (isBlankYaml(text)) return { value: null, lineOf: () => undefined, posOf: () => undefined, where: (file) => file };
  const { parseDocument, LineCounter, isAlias, isMap, isSeq, isScalar, visit } = await import('yaml');
  const lc = new LineCounter();
  // logLevel 'error': the library would print its own warnings on stderr (e.g. for collection keys).
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, prettyErrors: false, strict: true, logLevel: 'error' });
  const err = doc.errors[0];
  if (err) {
    const pos = lc.linePos(err.pos[0]);
    throw new FormatError(`${file}:${pos.line}:${pos.col}`, `invalid YAML: ${err.message.split('\n')[0]}`);
  }
  // What plain data cannot be: an alias inside the value it names (`x: &a [*a]`, a cycle no
  // caller can walk) and a mapping key that is a list or mapping (JavaScript would stringify it).
  let bad: { at: number; problem: string; fix: string } | undefined;
  visit(doc, {
    Alias(_, node, ancestors) {
      const target = node.resolve(doc);
      if (target && ancestors.includes(target)) {
        bad = { at: node.range?.[0] ?? 0, problem: `the alias *${node.source} is inside the value it names (a cycle)`, fix: 'Write the value out instead of the alias' };
        return visit.BREAK;
      }
      return undefined;
    },
    Pair(_, pair) {
      const k = isAlias(pair.key) ? pair.key.resolve(doc) : pair.key;
      if (k !== null && k !== undefined && !isScalar(k)) {
        const key = pair.key as { range?: [number, number, number] | null };
        bad = { at: key.range?.[0] ?? 0, problem: 'a mapping key is a list or mapping', fix: 'Use keys that are text' };
        return visit.BREAK;
      }
      return undefined;
    },
  });
  if (bad) {
    const pos = lc.linePos(bad.at);
    throw new FormatError(`${file}:${pos.line}:${pos.col}`, `cannot be loaded: ${bad.problem}`, bad.fix);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new FormatError(file, `cannot be loaded: ${(e as Error).message}`);
  }
  const posOf = (keyPath: readonly (string | number)[]) => {
    // Walk down to the pair whose key is the last element, and report the key's line.
    let node: unknown = doc.contents;
    let range: [number, number, number] | undefined;
    for (const k of keyPath) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === k);
        if (!pair) return undefined;
        range = isScalar(pair.key) ? (pair.key.range ?? undefined) : undefined;
        node = pair.value;
      } else if (isSeq(node) && typeof k === 'number') {
        node = node.items[k];
        range = isScalar(node) || isMap(node) || isSeq(node) ? (node.range ?? undefined) : undefined;
      } else return undefined;
    }
    return range ? lc.linePos(range[0]) : undefined;
  };
  return { value, posOf, lineOf: (keyPath) => posOf(keyPath)?.line, where: whereIn(posOf) };
}
