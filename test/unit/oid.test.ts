import { describe, expect, it } from 'vitest';
import { isDirOid, isHex64, isOid, oidRelPath, shortOid } from '../../src/formats/oid.js';

const H = '0123456789abcdef'.repeat(4);

describe('object ids', () => {
  it('accept 64 lowercase hex digits, optionally with .dir', () => {
    expect(isOid(H)).toBe(true);
    expect(isOid(`${H}.dir`)).toBe(true);
    expect(isHex64(H)).toBe(true);
    expect(isHex64(`${H}.dir`)).toBe(false);
  });

  it('reject other lengths, uppercase, other suffixes and non-strings', () => {
    for (const s of [H.slice(1), `${H}0`, H.toUpperCase(), `${H}.DIR`, `${H}.dirx`, `${H}.tdv`, `../${H}`, '', 5, null]) {
      expect(isOid(s), String(s)).toBe(false);
    }
  });

  it('map to files/sha256/<2 hex>/<rest> and keep .dir in the name', () => {
    expect(oidRelPath(H)).toBe(`files/sha256/01/${H.slice(2)}`);
    expect(oidRelPath(`${H}.dir`)).toBe(`files/sha256/01/${H.slice(2)}.dir`);
    expect(isDirOid(`${H}.dir`)).toBe(true);
    expect(isDirOid(H)).toBe(false);
    expect(shortOid(H)).toBe('01234567');
  });
});
