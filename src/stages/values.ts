import { FormatError } from '../errors.js';
import { parseYaml } from '../util/yaml.js';

/** The formats a params or metrics file may be written in, chosen by its extension. */
export type ValuesFormat = 'json' | 'yaml' | 'toml';

/**
 * The format of a params or metrics file by its extension: `.json`, `.toml`,
 * and YAML for `.yaml`, `.yml` and anything else (YAML reads JSON too, so an
 * unusual extension still works for the two common formats), as DVC does.
 */
export function valuesFormat(file: string): ValuesFormat {
  const ext = /\.([^./]+)$/.exec(file)?.[1]?.toLowerCase();
  return ext === 'json' ? 'json' : ext === 'toml' ? 'toml' : 'yaml';
}

const FORMAT_NAME: Record<ValuesFormat, string> = { json: 'JSON', yaml: 'YAML', toml: 'TOML' };

/**
 * Parses the text of a params or metrics file in the format its extension
 * names, into plain JSON-like data: TOML dates become their TOML text
 * (`1979-05-27`, `07:32:00`), so values print, compare and record in
 * tdv.lock the same way whatever the format. A text that does not parse is a
 * one-line FormatError naming `shown` (and the line, where the parser tells).
 */
export async function parseValues(text: string, file: string, shown = file): Promise<unknown> {
  const format = valuesFormat(file);
  if (format === 'yaml') return plain((await parseYaml(text, shown)).value);
  if (format === 'json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new FormatError(shown, `invalid JSON: ${firstLine(err)}`);
    }
  }
  const { parse, TomlError } = await import('smol-toml');
  try {
    return plain(parse(text));
  } catch (err) {
    if (!(err instanceof TomlError)) throw err;
    // smol-toml's message goes on with a code excerpt; the first line and the position are what a one-line error needs.
    throw new FormatError(`${shown}:${err.line}:${err.column}`, `invalid TOML: ${firstLine(err).replace(/^Invalid TOML document: /, '')}`);
  }
}

/**
 * Parses a metrics file: like parseValues, and its top level must be a
 * mapping of names to values (as DVC requires), so that a run that wrote a
 * bare number or a list fails the stage instead of being recorded.
 */
export async function parseMetrics(text: string, file: string, shown = file): Promise<Record<string, unknown>> {
  const value = await parseValues(text, file, shown);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    const what = value === null ? 'nothing' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
    throw new FormatError(shown, `holds ${what}, not a mapping of metric names to values`, `Write the metrics as ${FORMAT_NAME[valuesFormat(file)]} such as {"accuracy": 0.9}`);
  }
  return value as Record<string, unknown>;
}

/** Why a metrics file's text cannot be read as metrics (a one-line message naming `file`), or undefined when it can. */
export async function metricsProblem(text: string, file: string): Promise<string | undefined> {
  try {
    await parseMetrics(text, file);
    return undefined;
  } catch (err) {
    if (err instanceof FormatError) return err.message;
    throw err;
  }
}

/**
 * The leaves of nested data under dotted keys: `{"a": {"b": 1}, "l": [2]}` is
 * `{"a.b": 1, "l.0": 2}`. A scalar at the top is the one key `''`. Empty
 * mappings and lists have no leaves, so they do not appear.
 */
export function flattenLeaves(v: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) flattenLeaves(x, prefix ? `${prefix}.${k}` : k, out);
  } else setOwn(out, prefix, v);
  return out;
}

function firstLine(err: unknown): string {
  return String((err as Error).message ?? err)
    .split('\n')[0]!
    .trim();
}

/** Plain objects and arrays all the way down; dates as their ISO text (TOML's keep their own form). */
function plain(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) setOwn(out, k, plain(x));
    return out;
  }
  return v;
}

/**
 * Sets an own property whatever its name: keys come from files a pipeline
 * wrote, and a plain assignment of `__proto__` would replace the prototype
 * instead of adding the key.
 */
export function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
}
