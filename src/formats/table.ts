/**
 * Tables as `tdv diff --rows` reads them: CSV (RFC 4180: quoted fields,
 * doubled quotes, line breaks inside quotes, CRLF), TSV (the same rules with
 * a tab), and JSON Lines (one object per line). This module only parses one
 * record; the streaming scan and the diff live in cache/rows.ts.
 */

export type TableFormat = 'csv' | 'tsv' | 'jsonl';

export const TABLE_FORMATS: readonly TableFormat[] = ['csv', 'tsv', 'jsonl'];

/** The format a file's extension names, or undefined. */
export function tableFormatOf(file: string): TableFormat | undefined {
  const m = /\.([A-Za-z]+)$/.exec(file);
  const ext = m?.[1]?.toLowerCase();
  if (ext === 'csv') return 'csv';
  if (ext === 'tsv' || ext === 'tab') return 'tsv';
  if (ext === 'jsonl' || ext === 'ndjson') return 'jsonl';
  return undefined;
}

/** The field separator byte of a delimited format. */
export function separatorOf(format: TableFormat): number {
  return format === 'tsv' ? 9 : 44;
}

/** Why a record cannot be parsed; `at` is the byte offset of the problem within the record. */
export class RecordError extends Error {
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

const dec = new TextDecoder('utf-8', { fatal: true });

/**
 * The fields of one delimited record, `buf[start, end)`, without its line
 * break. Quoted fields may hold the separator, doubled quotes and line breaks.
 * A quote inside an unquoted field is kept as text (as most writers and
 * Python's csv module read it); text after a closing quote, or a quote that
 * never closes, is an error.
 */
export function parseRecord(buf: Uint8Array, start: number, end: number, sep: number): string[] {
  const out: string[] = [];
  let i = start;
  for (;;) {
    if (i < end && buf[i] === 34) {
      // Quoted field: collect runs between doubled quotes.
      const parts: Uint8Array[] = [];
      let runStart = i + 1;
      let j = i + 1;
      for (;;) {
        if (j >= end) throw new RecordError('a quoted field is never closed (a lone " opens it)', i - start);
        if (buf[j] === 34) {
          if (j + 1 < end && buf[j + 1] === 34) {
            parts.push(buf.subarray(runStart, j + 1));
            j += 2;
            runStart = j;
            continue;
          }
          parts.push(buf.subarray(runStart, j));
          break;
        }
        j++;
      }
      out.push(parts.length === 1 ? dec.decode(parts[0]) : parts.map((p) => dec.decode(p)).join(''));
      i = j + 1;
      if (i < end && buf[i] !== sep) throw new RecordError('text after a closing quote (a quote inside a quoted field is written "")', i - start);
    } else {
      let j = i;
      while (j < end && buf[j] !== sep) j++;
      out.push(dec.decode(buf.subarray(i, j)));
      i = j;
    }
    if (i >= end) return out;
    i++; // the separator
    if (i === end) {
      out.push('');
      return out;
    }
  }
}

/**
 * JSON numbers are doubles in JavaScript: `12345678901234567890` and
 * `12345678901234567891` parse to one value, so two rows with different IDs
 * were the same row, unchanged. Integer literals beyond 2^53 are therefore
 * read as BigInt (exact), compared by their digits, and written back as the
 * same bare digits by stringifyJson. A marker string with a per-process
 * random tag carries them through JSON.parse (Node 20 has no JSON.rawJSON).
 */
const MARK = `\u0000${Math.random().toString(16).slice(2, 14)}:`;
const MARKED = new RegExp(`${JSON.stringify(MARK).slice(0, -1).replace(/\\/g, '\\\\')}(-?\\d+)"`, 'g');
const LONG_DIGITS = /\d{16}/;
const INTEGER = /^-?(?:0|[1-9]\d*)$/;

/** `text` with its unsafe integer literals (outside strings) turned into marker strings. */
function markBigIntegers(text: string): string {
  let out = '';
  let last = 0;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inStr) {
      if (c === 92) i++;
      else if (c === 34) inStr = false;
      continue;
    }
    if (c === 34) {
      inStr = true;
      continue;
    }
    if (c !== 45 && (c < 48 || c > 57)) continue;
    let j = i + 1;
    while (j < text.length && /[0-9.eE+-]/.test(text[j]!)) j++;
    const tok = text.slice(i, j);
    if (INTEGER.test(tok) && !Number.isSafeInteger(Number(tok))) {
      out += `${text.slice(last, i)}${JSON.stringify(MARK + tok)}`;
      last = j;
    }
    i = j - 1;
  }
  return out + text.slice(last);
}

const revive = (_k: string, v: unknown) => (typeof v === 'string' && v.startsWith(MARK) ? BigInt(v.slice(MARK.length)) : v);

/** JSON.parse, with integers beyond 2^53 as exact BigInts. */
export function parseJsonExact(text: string): unknown {
  return LONG_DIGITS.test(text) ? JSON.parse(markBigIntegers(text), revive) : JSON.parse(text);
}

/** JSON.stringify that writes a BigInt as its bare digits (a JSON number, exact). */
export function stringifyJson(v: unknown): string {
  if (v === undefined) return 'null';
  let big = false;
  const text = JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x !== 'bigint') return x;
    big = true;
    return MARK + x.toString();
  });
  return big ? text.replace(MARKED, '$1') : text;
}

/** One JSON Lines record: an object, or a RecordError saying why not. */
export function parseJsonRecord(text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = parseJsonExact(text);
  } catch (err) {
    throw new RecordError(`not valid JSON (${(err as Error).message})`, 0);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new RecordError(`a JSON Lines row must be an object, not ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`, 0);
  return v as Record<string, unknown>;
}
