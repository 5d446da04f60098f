import path from 'node:path';
import { isValidSize } from './manifest.js';
import { isLegalRelPath, relPathProblem } from './paths.js';
import { isDirOid, isOid, type Oid } from './oid.js';
import * as v from 'valibot';
import { fail, issueError, KEYS, PARENT, pathItem, strictMapping } from './schema.js';
import { parseYaml, type YamlFile } from '../util/yaml.js';

export const POINTER_EXT = '.tdv';

/** Files Git and tdv read rules from, which tdv edits: never tracked data. */
const CONTROL_NAMES = new Set(['.gitignore', '.gitattributes', '.tdvignore']);

/** The fix of every pointer error. */
const FIX = 'Fix or delete the pointer file (git checkout -- <file> restores the committed one)';

/** A value as the user wrote it, for messages (JSON.stringify turns NaN into null). */
function show(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : String(v);
  return s.length > 200 ? `${s.slice(0, 100)}...${s.slice(-20)} (${s.length} characters)` : s; // one readable line, whatever the file holds
}

const baseName = (p: string): string => p.slice(p.lastIndexOf('/') + 1);

/** The fix of a `meta` that is not plain data. */
const META_FIX = 'meta must be plain data (mappings, lists, text, finite numbers, true/false, null), since tdv rewrites it as JSON';

/** What is wrong with a value that is not plain data ("is binary data (!!binary)..."), or undefined. */
function notPlain(x: unknown): string | undefined {
  if (x === null || typeof x === 'string' || typeof x === 'boolean') return undefined;
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) return `is ${String(x)} (${Number.isNaN(x) ? '.nan' : '.inf, or a number too large'}), which JSON writes as null`;
    // An ID of 19 digits would be written back as another number (the nearest double).
    if (Number.isInteger(x) && !Number.isSafeInteger(x)) return 'is a whole number past 2^53, which tdv cannot keep exactly (write it in quotes, as text)';
    return undefined;
  }
  if (typeof x !== 'object') return `is a ${typeof x}`;
  if (Array.isArray(x)) return undefined;
  const proto: unknown = Object.getPrototypeOf(x);
  if (proto === Object.prototype || proto === null) return undefined;
  if (x instanceof Uint8Array) return 'is binary data (!!binary), which JSON writes as a mapping of byte numbers';
  if (x instanceof Set) return 'is a set (!!set), which JSON writes as {}';
  if (x instanceof Map) return 'is an ordered mapping (!!omap), which JSON writes as {}';
  if (x instanceof Date) return 'is a timestamp (!!timestamp), which JSON writes as text in another form';
  return 'is not plain data';
}

/**
 * The first value in `root` that JSON cannot hold as it is, with the keys
 * leading to it (as valibot path items under `root`). Walked with a stack, not
 * recursion, and an alias that encloses itself is refused, not followed.
 */
function firstNotPlain(root: unknown): { problem: string; path: v.IssuePathItem[] } | undefined {
  type Frame = { value: unknown; path: v.IssuePathItem[] } | { done: object };
  const onPath = new Set<object>();
  const checked = new Set<object>();
  const stack: Frame[] = [{ value: root, path: [] }];
  while (stack.length) {
    const f = stack.pop()!;
    if ('done' in f) {
      onPath.delete(f.done);
      checked.add(f.done);
      continue;
    }
    const problem = notPlain(f.value);
    if (problem !== undefined) return { problem, path: f.path };
    if (typeof f.value !== 'object' || f.value === null || checked.has(f.value)) continue;
    if (onPath.has(f.value)) return { problem: 'refers to itself (a YAML alias inside its own anchor)', path: f.path };
    onPath.add(f.value);
    stack.push({ done: f.value });
    const entries: [string | number, unknown][] = Array.isArray(f.value) ? f.value.map((x, i) => [i, x]) : Object.entries(f.value);
    for (const [k, x] of entries.reverse()) stack.push({ value: x, path: [...f.path, pathItem(f.value, k)] });
  }
  return undefined;
}

/**
 * Free data (`meta`) that JSON holds as it is: `serializePointer` writes it as
 * JSON, so anything else (`!!binary`, `.nan`, `!!set`, a timestamp) would be
 * changed silently by the next `tdv add`, `mv` or `commit`. Refused at the key.
 */
const plainData = v.pipe(
  v.unknown(),
  v.rawCheck(({ dataset, addIssue }) => {
    const bad = firstNotPlain(dataset.value);
    if (bad) addIssue({ message: fail(`${KEYS} ${bad.problem}`, META_FIX), ...(bad.path.length ? { path: bad.path as [v.IssuePathItem, ...v.IssuePathItem[]] } : {}) });
  }),
);

/**
 * One tracked output of a pointer file. `path` is relative to the pointer's
 * directory; `desc` is free text for people and `meta` free data for tools,
 * both kept when tdv rewrites the pointer (as DVC's `desc` and `meta` of an
 * out); `meta` must be plain data, which JSON holds as it is. Any other key
 * is a mistake (or a newer format) that tdv must not silently drop when it
 * rewrites the pointer. `isexec: false` is read as absent.
 */
export const PointerOutSchema = v.pipe(
  strictMapping(
    {
      // The one definition of a legal path (formats/paths.ts), as for manifests and tdv.lock.
      path: v.pipe(
        v.custom<string>(isLegalRelPath, (i) => fail(`${KEYS} ${show(i.input)} must be a relative path inside the repository; it ${relPathProblem(i.input)}`, FIX)),
        v.check(
          (p) => !p.endsWith(POINTER_EXT),
          (i) => fail(`${KEYS} ${show(i.input)} names a pointer file, which tdv never tracks`, FIX),
        ),
        // A checkout would put data where Git and tdv read their rules (found by the attack suite: a
        // hostile pointer naming .gitignore as a directory).
        v.check(
          (p) => !CONTROL_NAMES.has(baseName(p)),
          (i) => fail(`${KEYS} ${show(i.input)} names a ${baseName(i.input as string)} file, which holds Git's or tdv's rules, not data`, FIX),
        ),
      ),
      sha256: v.custom<Oid>(isOid, (i) => fail(`${KEYS} must be 64 lowercase hex digits (plus ".dir" for a directory), got ${show(i.input)}`, FIX)),
      size: v.custom<number>(isValidSize, fail(`${KEYS} must be a whole number of bytes >= 0`, FIX)),
      nfiles: v.optional(v.custom<number>(isValidSize, fail(`${KEYS} must be a whole number >= 0`, FIX))),
      isexec: v.optional(v.boolean(fail(`${KEYS} must be true or false`, FIX))),
      desc: v.optional(v.string(fail(`${KEYS} must be a string`, FIX))),
      meta: v.optional(plainData),
    },
    fail(`${KEYS} must be a mapping`, FIX),
    (k) => fail(`${PARENT} has unknown key "${k}"`, FIX),
  ),
  v.check((o) => !isDirOid(o.sha256) || o.nfiles !== undefined, fail(`${KEYS} is a directory but has no nfiles`, FIX)),
  v.transform((o) => {
    if (o.isexec === false) delete o.isexec;
    return o;
  }),
);

/** One tracked output of a pointer file (see PointerOutSchema). */
export type PointerOut = v.InferOutput<typeof PointerOutSchema>;

/**
 * Text handed to `git` as an argument (a URL, a revision, a remote's name): one
 * line of printable characters that `git` cannot read as an option.
 */
function isArgText(s: string): boolean {
  // eslint-disable-next-line no-control-regex
  return s.length > 0 && s.length <= 4096 && !s.startsWith('-') && !/[\u0000-\u001f\u007f]/.test(s);
}

const argText = (what: string) =>
  v.pipe(
    v.string(fail(`${KEYS} must be a string`, FIX)),
    v.check(isArgText, (i) => fail(`${KEYS} ${show(i.input)} is not ${what} (one line of at most 4096 characters, not starting with "-")`, FIX)),
  );

/**
 * Where an imported output comes from (`tdv import`): the source repository
 * (`url`, anything `git clone` takes), the `path` of the data in it, the
 * revision as the user gave it (`rev`, absent: the source's default branch)
 * and the commit it resolved to (`commit`, what `tdv update` moves). `remote`
 * names the source's remote when it is not the source's default.
 */
export const ImportSchema = strictMapping(
  {
    url: argText('a repository URL or path'),
    path: v.custom<string>(isLegalRelPath, (i) => fail(`${KEYS} ${show(i.input)} must be a relative path inside the source repository; it ${relPathProblem(i.input)}`, FIX)),
    rev: v.optional(argText('a revision')),
    commit: v.custom<string>(
      (c) => typeof c === 'string' && /^[0-9a-f]{40}$/.test(c),
      (i) => fail(`${KEYS} must be a commit id of 40 lowercase hex digits, got ${show(i.input)}`, FIX),
    ),
    remote: v.optional(argText("a remote's name")),
  },
  fail(`${KEYS} must be a mapping (url, path, rev, commit)`, FIX),
  (k) => fail(`${PARENT} has unknown key "${k}"`, FIX),
);

/** The source of an imported output (see ImportSchema). */
export type ImportRecord = v.InferOutput<typeof ImportSchema>;

/** A pointer file: its outs, its own `desc` and `meta` (kept, as JSON, when tdv rewrites it), and for an import where it comes from. */
export const PointerSchema = v.pipe(
  strictMapping(
    {
      outs: v.pipe(v.array(PointerOutSchema, fail('"outs" must be a non-empty list', FIX)), v.nonEmpty(fail('"outs" must be a non-empty list', FIX))),
      desc: v.optional(v.string(fail('"desc" must be a string', FIX))),
      meta: v.optional(plainData),
      import: v.optional(ImportSchema),
    },
    fail('is not a tdv pointer (expected a mapping with "outs")', FIX),
    (k) => fail(`unknown key "${k}"`, FIX),
  ),
  // `tdv update` rewrites the one output an import brings.
  v.check((p) => p.import === undefined || p.outs.length === 1, fail('an imported pointer ("import") must have exactly one entry in "outs"', FIX)),
);

/** A pointer's own `desc` and `meta` (beside `outs`), kept when tdv rewrites it. */
export type PointerInfo = Omit<v.InferOutput<typeof PointerSchema>, 'outs'>;

export interface Pointer extends PointerInfo {
  /** Absolute path of the `.tdv` file. */
  file: string;
  outs: PointerOut[];
}

/** YAML scalars that must be quoted to stay strings. */
const PLAIN = /^[A-Za-z_./][A-Za-z0-9_./-]*$/;
const RESERVED = /^(?:true|false|null|yes|no|on|off|y|n|~|\.inf|\.nan|\.\d.*)$/i;

function yamlString(s: string): string {
  return PLAIN.test(s) && !RESERVED.test(s) ? s : JSON.stringify(s);
}

/**
 * The canonical text of a pointer file. `desc` and `meta` (the pointer's and
 * its outs') are written as JSON, which YAML reads as it is.
 */
export function serializePointer(outs: readonly PointerOut[], info: PointerInfo = {}): string {
  let s = '';
  if (info.desc !== undefined) s += `desc: ${JSON.stringify(info.desc)}\n`;
  if (info.meta !== undefined) s += `meta: ${JSON.stringify(info.meta)}\n`;
  const imp = info.import;
  if (imp !== undefined) {
    // Every value JSON-quoted: a URL or revision is never read back as another YAML type.
    s += `import:\n  url: ${JSON.stringify(imp.url)}\n  path: ${JSON.stringify(imp.path)}\n`;
    if (imp.rev !== undefined) s += `  rev: ${JSON.stringify(imp.rev)}\n`;
    // Quoted too: a commit id of decimal digits only would be read back as a number.
    s += `  commit: "${imp.commit}"\n`;
    if (imp.remote !== undefined) s += `  remote: ${JSON.stringify(imp.remote)}\n`;
  }
  s += 'outs:\n';
  for (const o of outs) {
    s += `- path: ${yamlString(o.path)}\n  sha256: ${o.sha256}\n  size: ${o.size}\n`;
    if (o.nfiles !== undefined) s += `  nfiles: ${o.nfiles}\n`;
    if (o.isexec) s += '  isexec: true\n';
    if (o.desc !== undefined) s += `  desc: ${JSON.stringify(o.desc)}\n`;
    if (o.meta !== undefined) s += `  meta: ${JSON.stringify(o.meta)}\n`;
  }
  return s;
}

/**
 * The exact shape `serializePointer` writes, with plain or JSON-quoted paths.
 * Matching it lets the common case skip loading the YAML parser; anything
 * else (comments, hand edits, flow style) goes through the real parser.
 */
const CANONICAL =
  /^outs:\n((?:- path: (?:[A-Za-z_./][A-Za-z0-9_./-]*|"(?:[^"\\\n]|\\.)*")\n {2}sha256: [0-9a-f]{64}(?:\.dir)?\n {2}size: \d{1,16}\n(?: {2}nfiles: \d{1,16}\n)?(?: {2}isexec: true\n)?)+)$/;
const CANONICAL_OUT = /- path: ([^\n]+)\n {2}sha256: ([^\n]+)\n {2}size: (\d+)\n(?: {2}nfiles: (\d+)\n)?( {2}isexec: true\n)?/g;

/** Parses and validates a pointer file's text. `file` is its absolute path. */
export async function parsePointer(text: string, file: string, displayName = file): Promise<Pointer> {
  let raw: unknown;
  let y: YamlFile | undefined;
  const m = CANONICAL.exec(text);
  if (m) {
    const outs: Record<string, unknown>[] = [];
    for (const o of m[1]!.matchAll(CANONICAL_OUT)) {
      const p = o[1]!;
      const out: Record<string, unknown> = { path: p.startsWith('"') ? JSON.parse(p) : p, sha256: o[2], size: Number(o[3]) };
      if (o[4] !== undefined) out.nfiles = Number(o[4]);
      if (o[5] !== undefined) out.isexec = true;
      outs.push(out);
    }
    raw = { outs };
  } else {
    y = await parseYaml(text, displayName);
    raw = y.value;
  }
  // Both paths end in the schema: the regex proves the layout, not the values (a size of 16
  // digits is past 2^53, a plain path may climb out with "..", a .dir id may lack nfiles).
  const r = v.safeParse(PointerSchema, raw, { abortEarly: true });
  if (r.success) return { file, ...r.output };
  // Positions only on the error path: the fast path never loaded the YAML parser.
  const at = y ?? (await parseYaml(text, displayName));
  throw issueError(r.issues[0], (keys) => at.where(displayName, keys));
}

/** The pointer file name for a tracked path: `data` -> `data.tdv`. */
export function pointerFileFor(absTarget: string): string {
  return absTarget + POINTER_EXT;
}

/** Absolute workspace path of an out. */
export function outAbsPath(ptr: Pointer, out: PointerOut): string {
  return path.join(path.dirname(ptr.file), ...out.path.split('/'));
}
