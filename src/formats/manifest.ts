import { FormatError, TdvError } from '../errors.js';
import { isHex64 } from './oid.js';
import { isLegalRelPath, quotePath, relPathProblem } from './paths.js';

/** One file of a tracked directory, as recorded in its `.dir` manifest. */
export interface ManifestEntry {
  relpath: string;
  sha256: string;
  size: number;
  isexec?: boolean;
}

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

export function isValidSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
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
  if (!Array.isArray(raw)) throw new FormatError(source, 'directory manifest is not a JSON array');
  const seen = new Set<string>();
  const out: ManifestEntry[] = [];
  for (const [i, e] of raw.entries()) {
    if (typeof e !== 'object' || e === null) throw new FormatError(source, `manifest entry ${i} is not an object`);
    const { relpath, sha256, size, isexec } = e as Record<string, unknown>;
    if (!isLegalRelPath(relpath)) throw badRelpath(source, i, relpath, relPathProblem(relpath)!);
    if (!isHex64(sha256)) throw new FormatError(source, `manifest entry ${quotePath(relpath)} has an invalid sha256 ${JSON.stringify(sha256)}`);
    if (!isValidSize(size)) throw new FormatError(source, `manifest entry ${quotePath(relpath)} has an invalid size ${JSON.stringify(size)}`);
    if (isexec !== undefined && typeof isexec !== 'boolean') throw new FormatError(source, `manifest entry ${quotePath(relpath)} has a non-boolean isexec`);
    if (seen.has(relpath)) throw new FormatError(source, `manifest lists ${quotePath(relpath)} twice`);
    seen.add(relpath);
    out.push(isexec ? { relpath, sha256, size, isexec: true } : { relpath, sha256, size });
  }
  // A path that is both a file and a directory prefix ("a" and "a/b") cannot be checked out.
  for (const p of seen) {
    let i = p.indexOf('/');
    while (i !== -1) {
      if (seen.has(p.slice(0, i))) throw new FormatError(source, `manifest has ${quotePath(p.slice(0, i))} as both a file and a directory`);
      i = p.indexOf('/', i + 1);
    }
  }
  return out;
}

/**
 * A relpath tdv will not restore. Every check is `relPathProblem`'s, the one
 * `tdv add` applies when it walks a directory, so a manifest tdv writes now is
 * always read back; one written by hand, by an older tdv (which recorded `.git`
 * files) or by an attacker is refused whole, naming the entry.
 */
function badRelpath(source: string, i: number, relpath: unknown, problem: string): FormatError {
  const shown =
    typeof relpath !== 'string' ? (JSON.stringify(relpath) ?? String(relpath)) : relpath === '' ? '""' : quotePath(relpath.length > 200 ? `${relpath.slice(0, 100)}...${relpath.slice(-20)}` : relpath);
  return new FormatError(source, `manifest entry ${i} has an unsafe relpath ${shown}: it ${problem}`, 'tdv never writes such a name; `tdv add` the directory again to record it without that entry');
}
