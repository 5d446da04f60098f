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

export { v };

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

/** The FormatError for a valibot issue: its position from `at`, its problem and fix from the message. */
export function issueError(issue: v.BaseIssue<unknown>, at: At): FormatError {
  const [problem, ...fix] = issue.message.split('\n');
  return new FormatError(at(issueKeys(issue)), problem!, fix.join(' '));
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

/** A plain mapping (what YAML and JSON objects are), not a list or null. */
export const isDict = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** The path item of `key` in `input`, for issues a check adds below the value it sees. */
export function pathItem(input: unknown, key: string | number): v.IssuePathItem {
  return { type: 'unknown', origin: 'value', input, key, value: isDict(input) || Array.isArray(input) ? (input as Record<string | number, unknown>)[key] : undefined };
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
    v.custom<Record<string, unknown>>(isDict, message),
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
