/**
 * The one way tdv checks the shape of a file it reads: a valibot schema per
 * format (config, pointer, tdv.yaml, tdv.lock, run record, manifest), its
 * TypeScript type inferred from it, and the first issue turned into tdv's
 * one-line error `<file>:<line>:<col>: <problem>. <fix>`.
 *
 * Messages carry the fix after a newline (`fail('problem', 'fix')`), so a
 * schema states its whole error where the rule is written.
 */
import * as v from 'valibot';
import { FormatError } from '../errors.js';

/** Where a key path was written: `file:line:col` (or the nearest enclosing key's, or the file). */
export type At = (keys: readonly (string | number)[]) => string;

/** A valibot message naming the problem and, after a newline, the fix. */
export function fail(problem: string, fix = ''): string {
  return fix ? `${problem}\n${fix}` : problem;
}

/** The key path of a valibot issue (`['stages', 'train', 'outs', 0]`). */
export function issueKeys(issue: v.BaseIssue<unknown>): (string | number)[] {
  const keys: (string | number)[] = [];
  for (const item of issue.path ?? []) {
    const k = (item as { key?: unknown }).key;
    if (typeof k === 'string' || typeof k === 'number') keys.push(k);
  }
  return keys;
}

/*
 * A valibot message is made where the issue is found, before the object and
 * array schemas above it have added their keys to its path. These markers
 * (control characters, which no JSON-quoted or path-quoted value in a message
 * holds) stand for the parts of the key path and are filled in by `issueError`
 * (or `renderMessage`) once the issue has reached the root.
 */

/** Stands for the issue's whole key path: `outs[0].size`, `remote.storage.jobs`. */
export const KEYS = '\u0001keys\u0001';
/** Stands for the key path of the mapping or list holding the issue's key: `outs[0]`, `remote.storage`. */
export const PARENT = '\u0001parent\u0001';
/** Stands for the `n`th key of the issue's path (0 is the outermost): `key(1)` of `remote.storage.url` is `storage`. */
export function key(n: number): string {
  return `\u0001${n}\u0001`;
}

/** A key path as messages write it: `outs[0].path`, `remote.storage.jobs`. */
export function showKeys(keys: readonly (string | number)[]): string {
  let s = '';
  for (const k of keys) s += typeof k === 'number' ? `[${k}]` : s === '' ? k : `.${k}`;
  return s;
}

/** `message` with the key-path markers filled in from `keys`. */
export function renderMessage(message: string, keys: readonly (string | number)[]): string {
  if (!message.includes('\u0001')) return message;
  return message.replace(/\u0001(keys|parent|\d+)\u0001/g, (_, m: string) => (m === 'keys' ? showKeys(keys) : m === 'parent' ? showKeys(keys.slice(0, -1)) : String(keys[Number(m)] ?? '')));
}

/** The FormatError for a valibot issue: its position from `at`, its problem and fix from the message. */
export function issueError(issue: v.BaseIssue<unknown>, at: At): FormatError {
  const keys = issueKeys(issue);
  const [problem, ...fix] = renderMessage(issue.message, keys).split('\n');
  return new FormatError(at(keys), problem!, fix.join(' '));
}

/** The first problem `schema` finds in `value`, as its message (problem and fix on separate lines, markers filled in), or undefined. */
export function problemOf(schema: v.GenericSchema, value: unknown): string | undefined {
  const r = v.safeParse(schema, value, { abortEarly: true });
  return r.success ? undefined : renderMessage(r.issues[0].message, issueKeys(r.issues[0]));
}

/** True for a mapping as YAML and JSON read one: an object that is not an array (nor null). */
export function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

type Message = v.ErrorMessage<v.BaseIssue<unknown>>;

/**
 * The message of an object schema's own issues: `type` when the value is not
 * a mapping, `unknownKey(key)` for a key it does not know, and for a missing
 * key the message that key's own schema gives for `undefined` (so "size must
 * be a whole number" whether the size is wrong or absent).
 */
function objectMessage(entries: v.ObjectEntries, type: Message, unknownKey?: (key: string) => string): (issue: v.BaseIssue<unknown>) => string {
  return (issue) => {
    if (issue.expected === 'never' && unknownKey) return unknownKey(String(issue.input));
    const k = issueKeys(issue)[0];
    if (typeof k === 'string' && Object.hasOwn(entries, k)) {
      const r = v.safeParse(entries[k]!, undefined, { abortEarly: true });
      if (!r.success) return r.issues[0].message;
    }
    return typeof type === 'function' ? type(issue) : type;
  };
}

/**
 * A mapping with these entries; keys it does not know are dropped. Unlike
 * `v.object` alone, an array or null is "not a mapping" (`type`), and a missing
 * key reads as its own schema's message for `undefined`.
 */
export function mapping<const E extends v.ObjectEntries>(entries: E, type: Message) {
  return v.pipe(v.custom<Record<string, unknown>>(isMapping, type), v.object(entries, objectMessage(entries, type)));
}

/** As `mapping`, and a key it does not know is the issue `unknownKey(key)` (a typo, or a newer format tdv must not silently drop). */
export function strictMapping<const E extends v.ObjectEntries>(entries: E, type: Message, unknownKey: (key: string) => string) {
  return v.pipe(v.custom<Record<string, unknown>>(isMapping, type), v.strictObject(entries, objectMessage(entries, type, unknownKey)));
}

/**
 * Checks `value` against `schema` and returns its output, or throws the
 * FormatError of the first issue (valibot stops at the first with `abortEarly`,
 * which is also cheaper on large files).
 */
export function validate<S extends v.GenericSchema>(schema: S, value: unknown, at: At): v.InferOutput<S> {
  const r = v.safeParse(schema, value, { abortEarly: true });
  if (r.success) return r.output;
  throw issueError(r.issues[0], at);
}

/** An `At` for files without positions (JSON, or text that was not parsed as YAML): `file` then the key path. */
export function atKeys(file: string): At {
  return (keys) => (keys.length ? `${file} (${keys.map((k) => (typeof k === 'number' ? `[${k}]` : k)).join('.')})` : file);
}

/** The path item of `key` in `input`, for issues a check adds below the value it sees. */
export function pathItem(input: unknown, key: string | number): v.IssuePathItem {
  return { type: 'unknown', origin: 'value', input, key, value: isMapping(input) || Array.isArray(input) ? (input as Record<string | number, unknown>)[key] : undefined };
}

/**
 * Refuses keys of a mapping other than `known`, at the key itself, before
 * anything else is checked: a misspelt key is the likeliest cause of every
 * later issue (`cmd:` written `cdm:` is first "unknown key", not "no cmd").
 */
export function onlyKeys(known: readonly string[], message: (key: string) => string) {
  return v.rawCheck<Record<string, unknown>>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const extra = Object.keys(dataset.value).find((k) => !known.includes(k));
    if (extra !== undefined) addIssue({ message: message(extra), path: [pathItem(dataset.value, extra)] });
  });
}

/** Checks `value` with `schema`, moving its issues under `key`; true when it passed. */
function nested<S extends v.GenericSchema>(
  schema: S,
  input: unknown,
  key: string | number,
  value: unknown,
  config: { readonly abortEarly?: boolean | undefined },
  addIssue: (info: { message: string; path: [v.IssuePathItem, ...v.IssuePathItem[]]; input: unknown }) => void,
): { ok: true; output: v.InferOutput<S> } | { ok: false } {
  const r = v.safeParse(schema, value, { abortEarly: config.abortEarly });
  if (r.success) return { ok: true, output: r.output };
  for (const issue of config.abortEarly ? r.issues.slice(0, 1) : r.issues) addIssue({ message: issue.message, path: [pathItem(input, key), ...(issue.path ?? [])], input: issue.input });
  return { ok: false };
}

/**
 * A list whose entries are checked by a schema made for their index, so a
 * message can say "entry 3 of deps" (valibot builds a message before it knows
 * the index). `message` is for a value that is not a list.
 */
export function listOf<S extends v.GenericSchema>(item: (i: number) => S, message: string) {
  return v.pipe(
    v.array(v.unknown(), message),
    v.rawTransform<unknown[], v.InferOutput<S>[]>(({ dataset, config, addIssue, NEVER }) => {
      const out: v.InferOutput<S>[] = [];
      for (const [i, x] of dataset.value.entries()) {
        const r = nested(item(i), dataset.value, i, x, config, addIssue);
        if (!r.ok) {
          if (config.abortEarly) return NEVER;
          continue;
        }
        out.push(r.output);
      }
      return out;
    }),
  );
}

/**
 * A mapping whose values are checked by a schema made for their key (messages
 * naming it), and whose keys `key` may check. Unlike `v.record`, it keeps
 * every key as an own property: "constructor" or "__proto__" is a name like
 * any other in a user's file, and `v.record` drops those three silently.
 */
export function dictOf<S extends v.GenericSchema>(value: (key: string) => S, message: string, key?: (k: string) => string | undefined) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, message),
    v.rawTransform<Record<string, unknown>, Record<string, v.InferOutput<S>>>(({ dataset, config, addIssue, NEVER }) => {
      const out: Record<string, v.InferOutput<S>> = {};
      for (const [k, x] of Object.entries(dataset.value)) {
        const problem = key?.(k);
        if (problem !== undefined) {
          addIssue({ message: problem, path: [pathItem(dataset.value, k)], input: k });
          if (config.abortEarly) return NEVER;
          continue;
        }
        const r = nested(value(k), dataset.value, k, x, config, addIssue);
        if (!r.ok) {
          if (config.abortEarly) return NEVER;
          continue;
        }
        Object.defineProperty(out, k, { value: r.output, enumerable: true, writable: true, configurable: true });
      }
      return out;
    }),
  );
}

/**
 * A mapping of names to values (`remote.<name>`): every key checked by `key`,
 * every value by `value`. Unlike `v.record`, which skips `__proto__`,
 * `constructor` and `prototype` without a word, every own key is checked and
 * kept, and the output has no prototype, so a name not in it is undefined
 * whatever it is ("toString" included).
 */
export function dict<K extends v.GenericSchema<string, string>, V extends v.GenericSchema>(key: K, value: V, type: Message) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isMapping, type),
    v.rawTransform(({ dataset, addIssue, NEVER }) => {
      const input = dataset.value;
      const out = Object.create(null) as Record<v.InferOutput<K>, v.InferOutput<V>>;
      for (const k of Object.keys(input)) {
        const item = { type: 'object', input, key: k, value: input[k] } as const;
        const kr = v.safeParse(key, k, { abortEarly: true });
        if (!kr.success) {
          addIssue({ message: kr.issues[0].message, path: [{ ...item, origin: 'key' }] });
          return NEVER;
        }
        const vr = v.safeParse(value, input[k], { abortEarly: true });
        if (!vr.success) {
          addIssue({ message: vr.issues[0].message, path: [{ ...item, origin: 'value' }, ...(vr.issues[0].path ?? [])] });
          return NEVER;
        }
        out[kr.output as v.InferOutput<K>] = vr.output as v.InferOutput<V>;
      }
      return out;
    }),
  );
}
