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
