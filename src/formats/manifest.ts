import { FormatError } from '../errors.js';
import { isHex64 } from './oid.js';

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
export function serializeManifest(entries: ManifestEntry[]): string {
  const sorted = sortEntries([...entries]);
  const parts = sorted.map((e) =>
    e.isexec
      ? JSON.stringify({ relpath: e.relpath, sha256: e.sha256, size: e.size, isexec: true })
      : JSON.stringify({ relpath: e.relpath, sha256: e.sha256, size: e.size }),
  );
  return `[${parts.join(',')}]`;
}

/** An empty, `.` or `..` segment, a leading or trailing slash, a backslash or a NUL. */
const UNSAFE_PATH = /(?:^|\/)\.{0,2}(?:\/|$)|[\\\0]/;

/** A relative POSIX path that stays inside its base: no `..`, no empty or `.` segments, not absolute. */
export function isSafeRelPath(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && p.length <= 4096 && !UNSAFE_PATH.test(p);
}

export function isValidSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * Parses and validates a manifest. Rejects anything a hostile or damaged
 * manifest could use to write outside its directory or confuse a checkout.
 */
export function parseManifest(text: string, source: string): ManifestEntry[] {
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
    if (!isSafeRelPath(relpath) || /(?:^|\/)\.git(?:\/|$)/.test(relpath)) throw new FormatError(source, `manifest entry ${i} has an unsafe relpath ${JSON.stringify(relpath)}`);
    if (!isHex64(sha256)) throw new FormatError(source, `manifest entry ${relpath} has an invalid sha256 ${JSON.stringify(sha256)}`);
    if (!isValidSize(size)) throw new FormatError(source, `manifest entry ${relpath} has an invalid size ${JSON.stringify(size)}`);
    if (isexec !== undefined && typeof isexec !== 'boolean') throw new FormatError(source, `manifest entry ${relpath} has a non-boolean isexec`);
    if (seen.has(relpath)) throw new FormatError(source, `manifest lists ${relpath} twice`);
    seen.add(relpath);
    out.push(isexec ? { relpath, sha256, size, isexec: true } : { relpath, sha256, size });
  }
  // A path that is both a file and a directory prefix ("a" and "a/b") cannot be checked out.
  for (const p of seen) {
    let i = p.indexOf('/');
    while (i !== -1) {
      if (seen.has(p.slice(0, i))) throw new FormatError(source, `manifest has ${p.slice(0, i)} as both a file and a directory`);
      i = p.indexOf('/', i + 1);
    }
  }
  return out;
}
