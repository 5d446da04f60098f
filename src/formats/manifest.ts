import { FormatError, TdvError } from '../errors.js';
import { isHex64 } from './oid.js';
import { isLegalRelPath, quotePath, relPathProblem } from './paths.js';
import * as v from 'valibot';
import { fail, mapping, problemOf, validate } from './schema.js';

/** A whole number of bytes (or files) that JavaScript holds exactly: 0 to 2^53-1. */
export function isValidSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** A relpath as messages show it: quoted as git does, shortened to one readable line. */
function showRelpath(relpath: unknown): string {
  if (typeof relpath !== 'string') return JSON.stringify(relpath) ?? String(relpath);
  return relpath === '' ? '""' : quotePath(relpath.length > 200 ? `${relpath.slice(0, 100)}...${relpath.slice(-20)}` : relpath);
}

/**
 * One file of a tracked directory, as recorded in its `.dir` manifest: the
 * definition of an entry, whose messages follow "manifest entry <i or relpath> ".
 *
 * A relpath tdv will not restore is refused by `relPathProblem`, the check
 * `tdv add` applies when it walks a directory, so a manifest tdv writes now is
 * always read back; one written by hand, by an older tdv (which recorded `.git`
 * files) or by an attacker is refused whole, naming the entry. Other keys are
 * ignored (and dropped).
 */
export const ManifestEntrySchema = mapping(
  {
    relpath: v.custom<string>(isLegalRelPath, (i) =>
      fail(`has an unsafe relpath ${showRelpath(i.input)}: it ${relPathProblem(i.input)}`, 'tdv never writes such a name; `tdv add` the directory again to record it without that entry'),
    ),
    sha256: v.custom<string>(isHex64, (i) => `has an invalid sha256 ${JSON.stringify(i.input)}`),
    size: v.custom<number>(isValidSize, (i) => `has an invalid size ${JSON.stringify(i.input)}`),
    isexec: v.optional(v.boolean('has a non-boolean isexec')),
  },
  'is not an object',
);

/** One file of a tracked directory, as recorded in its `.dir` manifest. */
export type ManifestEntry = v.InferOutput<typeof ManifestEntrySchema>;

/**
 * True when `e` passes `ManifestEntrySchema`: the same checks written out, as
 * the fast path of `ManifestSchema` (20,000 entries in a few milliseconds, where
 * the schema per entry costs several times that). test/unit/manifest.test.ts
 * holds both to the same answers.
 */
export function isManifestEntry(e: unknown): e is ManifestEntry {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return false;
  const { relpath, sha256, size, isexec } = e as Record<string, unknown>;
  return isLegalRelPath(relpath) && isHex64(sha256) && isValidSize(size) && (isexec === undefined || typeof isexec === 'boolean');
}

/**
 * A directory manifest: a JSON array of `ManifestEntrySchema` entries, each
 * relpath once, none both a file and a directory prefix of another ("a" and
 * "a/b" cannot both be checked out). It runs one loop over the entries instead
 * of a schema per entry (see `isManifestEntry`): `tdv status` reads manifests
 * of 20,000 entries on its hot path. Only a failing entry goes through the
 * entry schema, for its message. The output keeps relpath, sha256, size and
 * `isexec: true`, in the order written.
 */
export const ManifestSchema = v.pipe(
  v.custom<unknown[]>(Array.isArray, 'directory manifest is not a JSON array'),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const raw = dataset.value;
    const seen = new Set<string>();
    const out: ManifestEntry[] = [];
    for (let i = 0; i < raw.length; i++) {
      const e = raw[i];
      if (!isManifestEntry(e)) {
        const relpath = (e as { relpath?: unknown } | null)?.relpath;
        // An entry is named by its relpath once that is known to be safe to print, by its index before.
        const who = typeof e === 'object' && e !== null && isLegalRelPath(relpath) ? quotePath(relpath) : i;
        addIssue({ message: `manifest entry ${who} ${problemOf(ManifestEntrySchema, e) ?? 'is invalid'}` });
        return NEVER;
      }
      const { relpath, sha256, size, isexec } = e;
      if (seen.has(relpath)) {
        addIssue({ message: `manifest lists ${quotePath(relpath)} twice` });
        return NEVER;
      }
      seen.add(relpath);
      out.push(isexec ? { relpath, sha256, size, isexec: true } : { relpath, sha256, size });
    }
    for (const p of seen) {
      let i = p.indexOf('/');
      while (i !== -1) {
        if (seen.has(p.slice(0, i))) {
          addIssue({ message: `manifest has ${quotePath(p.slice(0, i))} as both a file and a directory` });
          return NEVER;
        }
        i = p.indexOf('/', i + 1);
      }
    }
    return out;
  }),
);

/**
 * Orders strings by Unicode code point, which is the byte order of their UTF-8
 * encoding, so the canonical form does not depend on JavaScript's UTF-16 order.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      const xs = x >= 0xd800 && x <= 0xdfff;
      const ys = y >= 0xd800 && y <= 0xdfff;
      if (xs !== ys) return xs ? 1 : -1; // a surrogate encodes a code point above U+FFFF
      return x - y;
    }
  }
  return a.length - b.length;
}

export function sortEntries(entries: ManifestEntry[]): ManifestEntry[] {
  return entries.sort((a, b) => compareCodePoints(a.relpath, b.relpath));
}

/**
 * The canonical bytes of a manifest: a JSON array sorted by relpath, keys in the
 * order relpath, sha256, size[, isexec], no whitespace. Its SHA-256 is the directory's id.
 */
export function serializeManifest(entries: ManifestEntry[], what?: string): string {
  const sorted = sortEntries([...entries]);
  // Written out rather than JSON.stringify of an object per entry (several times faster on
  // 20,000 entries), with the same bytes: only relpath can need escaping (hashes are hex from
  // a digest or a validated manifest, sizes integers from stat or a validated manifest).
  const parts = sorted.map((e) => `{"relpath":${JSON.stringify(e.relpath)},"sha256":"${e.sha256}","size":${e.size}${e.isexec ? ',"isexec":true' : ''}}`);
  // Refused before anything is stored: a manifest no reader would accept must never be written.
  let length = parts.length + 1;
  for (const p of parts) length += p.length;
  if (length > MAX_MANIFEST_BYTES) throw tooLarge(what, length, entries.length);
  return `[${parts.join(',')}]`;
}

/**
 * The largest manifest tdv reads or writes, in bytes. A manifest is parsed
 * whole: measured on Node 20, 1 million entries (`dir/sub/file-N.csv`) are a
 * 125 MiB manifest whose JSON.parse and checks add about 230 MB on top of its
 * text (peak RSS 530 MB). 256 MiB is about 2 million such files (ImageNet's
 * 1.28 million fit), a peak near 1.1 GB, well within Node's default heap and
 * below V8's 512 MiB string limit, past which reading fails with an opaque error.
 */
export const MAX_MANIFEST_BYTES = 256 * 2 ** 20;

function tooLarge(what: string | undefined, bytes: number, entries?: number): TdvError {
  const count = entries === undefined ? '' : ` (${entries} files)`;
  return new TdvError(
    'TOO_LARGE',
    `${what === undefined ? '' : `${what}: `}directory manifest is ${mib(bytes)}${count}, more than the ${mib(MAX_MANIFEST_BYTES)} (about 2 million files) tdv handles in one tracked directory; track its subdirectories separately (\`tdv add dir/part1 dir/part2 ...\`)`,
    { data: { file: what, bytes, limit: MAX_MANIFEST_BYTES } },
  );
}

function mib(n: number): string {
  return `${n % 2 ** 20 === 0 || n >= 10 * 2 ** 20 ? Math.round(n / 2 ** 20) : (n / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Refuses a manifest of `bytes` bytes before it is read or parsed (see
 * MAX_MANIFEST_BYTES); `what` names the object in the message.
 */
export function checkManifestSize(bytes: number, what: string): void {
  if (bytes > MAX_MANIFEST_BYTES) throw tooLarge(what, bytes);
}

/**
 * Parses and validates a manifest. Rejects anything a hostile or damaged
 * manifest could use to write outside its directory or confuse a checkout.
 */
export function parseManifest(text: string, source: string): ManifestEntry[] {
  // Characters, not bytes: a cheap bound that is never below the byte count's.
  if (text.length > MAX_MANIFEST_BYTES) checkManifestSize(Buffer.byteLength(text), source);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new FormatError(source, `directory manifest is not valid JSON (${(err as Error).message})`, 'Delete that object from the cache and run `tdv pull`, or `tdv add` the original data again');
  }
  return validate(ManifestSchema, raw, () => source);
}
