/** Object ids: 64 lowercase hex digits of SHA-256, with `.dir` appended for a directory manifest. */
export type Oid = string;

const HEX64 = /^[0-9a-f]{64}$/;
const OID = /^[0-9a-f]{64}(\.dir)?$/;

export function isHex64(s: unknown): s is string {
  return typeof s === 'string' && HEX64.test(s);
}

export function isOid(s: unknown): s is Oid {
  return typeof s === 'string' && OID.test(s);
}

export function isDirOid(oid: Oid): boolean {
  return oid.endsWith('.dir');
}

/** The relative location of an object in a cache or remote: `files/sha256/ab/cdef...`. */
export function oidRelPath(oid: Oid): string {
  return `files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`;
}

export function shortOid(oid: Oid): string {
  return oid.slice(0, 8);
}
