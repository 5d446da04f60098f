import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import * as v from 'valibot';
import {
  checkManifestSize,
  compareCodePoints,
  isManifestEntry,
  MAX_MANIFEST_BYTES,
  type ManifestEntry,
  ManifestEntrySchema,
  parseManifest,
  serializeManifest,
  sortEntries,
} from '../../src/formats/manifest.js';
import { TdvError } from '../../src/errors.js';
import { sha256 } from '../../src/cache/hash.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

function badManifest(json: unknown): () => ManifestEntry[] {
  return () => parseManifest(typeof json === 'string' ? json : JSON.stringify(json), '/cache/ab/cd.dir');
}

describe('serializeManifest', () => {
  it('writes the exact canonical bytes: sorted, keys relpath,sha256,size[,isexec], no whitespace', () => {
    const text = serializeManifest([
      { size: 3, sha256: B, relpath: 'z.txt' },
      { isexec: true, size: 10, relpath: 'bin/run.sh', sha256: A } as ManifestEntry,
      { relpath: 'a.csv', sha256: C, size: 0, isexec: false },
    ]);
    expect(text).toBe(`[{"relpath":"a.csv","sha256":"${C}","size":0},` + `{"relpath":"bin/run.sh","sha256":"${A}","size":10,"isexec":true},` + `{"relpath":"z.txt","sha256":"${B}","size":3}]`);
  });

  it('serializes an empty directory as []', () => {
    expect(serializeManifest([])).toBe('[]');
  });

  it('sorts by Unicode code point, so a character above U+FFFF comes after U+FFFD (UTF-16 order would not)', () => {
    const emoji = '\u{1F600}'; // surrogate pair D83D DE00
    const text = serializeManifest([
      { relpath: emoji, sha256: A, size: 1 },
      { relpath: '\uFFFD', sha256: B, size: 2 },
    ]);
    expect(text).toBe(`[{"relpath":"\uFFFD","sha256":"${B}","size":2},{"relpath":"${emoji}","sha256":"${A}","size":1}]`);
    // Plain JS sort (UTF-16 code units) disagrees, which is what the test guards against.
    expect([emoji, '\uFFFD'].sort()[0]).toBe(emoji);
  });

  it('orders "-" < "." < "/" by code point, not directories first', () => {
    const text = serializeManifest([
      { relpath: 'a/b', sha256: A, size: 1 },
      { relpath: 'a.b', sha256: A, size: 1 },
      { relpath: 'a-b', sha256: A, size: 1 },
    ]);
    expect(JSON.parse(text).map((e: ManifestEntry) => e.relpath)).toEqual(['a-b', 'a.b', 'a/b']);
  });

  it('does not mutate or reorder the caller array', () => {
    const entries = [
      { relpath: 'b', sha256: A, size: 1 },
      { relpath: 'a', sha256: A, size: 1 },
    ];
    serializeManifest(entries);
    expect(entries.map((e) => e.relpath)).toEqual(['b', 'a']);
  });

  it('is independent of input order, so the directory id is too', () => {
    const e: ManifestEntry[] = [
      { relpath: 'x/1', sha256: A, size: 1 },
      { relpath: 'x/2', sha256: B, size: 2 },
      { relpath: 'y', sha256: C, size: 3, isexec: true },
    ];
    expect(sha256(serializeManifest(e))).toBe(sha256(serializeManifest([...e].reverse())));
  });
});

describe('serializeManifest bytes', () => {
  it('are JSON.stringify of each entry object, for any name (quotes, backslashes, controls, non-ASCII, surrogates)', () => {
    const names = ['a"b', 'back\\slash', 'tab\there', 'nl\nx', '\u0001ctl', 'ünï/cödé', 'emoji\u{1F600}', '\u2028sep', 'x\u007f'];
    const entries = names.map((relpath, i) => ({ relpath, sha256: i % 2 ? A : B, size: i * 1000, ...(i % 3 === 0 ? { isexec: true } : {}) }));
    const expected = `[${sortEntries([...entries])
      .map((e) => JSON.stringify(e.isexec ? { relpath: e.relpath, sha256: e.sha256, size: e.size, isexec: true } : { relpath: e.relpath, sha256: e.sha256, size: e.size }))
      .join(',')}]`;
    expect(serializeManifest(entries)).toBe(expected);
    expect(parseManifest(expected, 'm')).toHaveLength(names.length);
  });
});

describe('compareCodePoints', () => {
  it('agrees with UTF-8 byte order on mixed BMP, private-use and astral strings', () => {
    const strs = ['a', 'ab', 'b', '\u00e9', '\u4e2d', '\uE000', '\uFFFD', '\uFFFF', '\u{10000}', '\u{1F600}', '\u{1F600}a', 'a\u{1F600}', 'a\uFFFD', ''];
    const byBytes = [...strs].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));
    expect([...strs].sort(compareCodePoints)).toEqual(byBytes);
  });
});

describe('parseManifest', () => {
  it('round-trips what serializeManifest writes, sorted, dropping isexec:false', () => {
    const entries: ManifestEntry[] = [
      { relpath: 'sub/dir/file with space.bin', sha256: B, size: 12345 },
      { relpath: '\u00fcml\u00e4ut/\u{1F600}.txt', sha256: A, size: 0 },
      { relpath: 'run.sh', sha256: C, size: 7, isexec: true },
      { relpath: 'plain', sha256: C, size: 1, isexec: false },
    ];
    const parsed = parseManifest(serializeManifest(entries), 'm');
    expect(parsed).toEqual([
      { relpath: 'plain', sha256: C, size: 1 },
      { relpath: 'run.sh', sha256: C, size: 7, isexec: true },
      { relpath: 'sub/dir/file with space.bin', sha256: B, size: 12345 },
      { relpath: '\u00fcml\u00e4ut/\u{1F600}.txt', sha256: A, size: 0 },
    ]);
    expect(serializeManifest(parsed)).toBe(serializeManifest(entries));
  });

  it.each([
    ['..', '..'],
    ['a path that climbs out', 'a/../../etc/passwd'],
    ['a leading ..', '../x'],
    ['an absolute path', '/etc/passwd'],
    ['an empty path', ''],
    ['an empty segment', 'a//b'],
    ['a "." segment', './a'],
    ['a trailing slash', 'a/'],
    ['a NUL byte', 'a\0b'],
    ['a non-string', 42],
    ['a .git component', 'sub/.git/hooks/pre-commit'],
    ["a submodule's .git file", 'mod/.git'],
    ['a .git component in another letter case', 'x/.GiT/config'],
    ['a .tdv component', '.tdv/config.yaml'],
    ['a lone surrogate (not Unicode)', 'a\ud800b'],
    ['a component over 255 bytes', `${'\u00e9'.repeat(128)}/x`],
  ])('rejects %s as relpath, saying why', (_what, relpath) => {
    const f = badManifest([{ relpath, sha256: A, size: 1 }]);
    expect(f).toThrow(FormatError);
    expect(f).toThrow(/^\/cache\/ab\/cd\.dir: manifest entry 0 has an unsafe relpath .*: it (is|has|contains) /);
  });

  it.each([
    ['a backslash (an ordinary character on POSIX)', 'a\\b.csv'],
    ['backslashes that look like a Windows climb', 'a\\..\\b'],
    ['names that merely start like .git or .tdv', '.gitignore/.tdvignore/.git2/.tdv.bak'],
    ['a leading dot-dot in a name', '..foo/...'],
  ])('accepts and round-trips %s', (_what, relpath) => {
    const text = serializeManifest([{ relpath, sha256: A, size: 1 }]);
    expect(parseManifest(text, 'm')).toEqual([{ relpath, sha256: A, size: 1 }]);
  });

  it('names the source file in its errors', () => {
    expect(badManifest([{ relpath: '../x', sha256: A, size: 1 }])).toThrow(/^\/cache\/ab\/cd\.dir: /);
  });

  it('rejects a relpath listed twice', () => {
    expect(
      badManifest([
        { relpath: 'a', sha256: A, size: 1 },
        { relpath: 'a', sha256: B, size: 2 },
      ]),
    ).toThrow(/lists a twice/);
  });

  it('rejects a name that is both a file and a directory ("a" and "a/b")', () => {
    const f = badManifest([
      { relpath: 'a', sha256: A, size: 1 },
      { relpath: 'a/b', sha256: B, size: 2 },
    ]);
    expect(f).toThrow(FormatError);
    expect(f).toThrow(/a as both a file and a directory/);
  });

  it('rejects a file that is a deeper directory prefix ("x/y" and "x/y/z/w")', () => {
    expect(
      badManifest([
        { relpath: 'x/y/z/w', sha256: A, size: 1 },
        { relpath: 'x/y', sha256: B, size: 2 },
      ]),
    ).toThrow(/x\/y as both a file and a directory/);
  });

  it('accepts names that merely share a prefix ("a", "ab/c", "a.b")', () => {
    expect(
      parseManifest(
        JSON.stringify([
          { relpath: 'a', sha256: A, size: 1 },
          { relpath: 'ab/c', sha256: A, size: 1 },
          { relpath: 'a.b', sha256: A, size: 1 },
        ]),
        'm',
      ),
    ).toHaveLength(3);
  });

  it.each([
    ['uppercase hex', A.toUpperCase()],
    ['63 digits', 'a'.repeat(63)],
    ['65 digits', 'a'.repeat(65)],
    ['non-hex', 'g'.repeat(64)],
    ['a .dir id (a manifest cannot list a directory)', `${A}.dir`],
    ['a number', 7],
    ['missing', undefined],
  ])('rejects a sha256 that is %s', (_what, sha) => {
    expect(badManifest([{ relpath: 'f', sha256: sha, size: 1 }])).toThrow(/invalid sha256/);
  });

  it.each([
    ['negative', -1],
    ['a float', 1.5],
    ['beyond 2^53', 2 ** 53],
    ['huge', 1e300],
    ['a string', '12'],
    ['null', null],
    ['missing', undefined],
  ])('rejects a size that is %s', (_what, size) => {
    expect(badManifest([{ relpath: 'f', sha256: A, size }])).toThrow(/invalid size/);
  });

  it('rejects a huge size written as a bare JSON number literal', () => {
    expect(badManifest(`[{"relpath":"f","sha256":"${A}","size":123456789012345678901234567890}]`)).toThrow(/invalid size/);
  });

  it('accepts the largest safe integer size', () => {
    expect(parseManifest(JSON.stringify([{ relpath: 'f', sha256: A, size: Number.MAX_SAFE_INTEGER }]), 'm')[0]!.size).toBe(Number.MAX_SAFE_INTEGER);
  });

  it.each([
    ['an object', '{"relpath":"a"}'],
    ['a string', '"[]"'],
    ['null', 'null'],
    ['a number', '1'],
  ])('rejects JSON that is %s instead of an array', (_what, text) => {
    expect(badManifest(text)).toThrow(/not a JSON array/);
  });

  it('rejects text that is not JSON, saying how to repair the cache', () => {
    const f = badManifest('[{"relpath":');
    expect(f).toThrow(/not valid JSON/);
    expect(f).toThrow(/tdv pull/);
  });

  it('rejects an entry that is not an object', () => {
    expect(badManifest([null])).toThrow(/entry 0 is not an object/);
    expect(badManifest(['a'])).toThrow(/entry 0 is not an object/);
  });

  it('rejects a non-boolean isexec', () => {
    expect(badManifest([{ relpath: 'f', sha256: A, size: 1, isexec: 'yes' }])).toThrow(/non-boolean isexec/);
  });

  it('throws errors with the BAD_FORMAT code', () => {
    try {
      badManifest('{}')();
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).code).toBe('BAD_FORMAT');
    }
  });
});

describe('manifest size limit', () => {
  it('refuses, before parsing, a manifest larger than the limit, naming it and the limit', () => {
    let err: unknown;
    try {
      checkManifestSize(MAX_MANIFEST_BYTES + 1, '.tdv/cache/files/sha256/ab/cd.dir');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TdvError);
    expect((err as TdvError).code).toBe('TOO_LARGE');
    expect((err as Error).message).toMatch(/^\.tdv\/cache\/files\/sha256\/ab\/cd\.dir: directory manifest is 256 MiB, more than the 256 MiB \(about 2 million files\)/);
    expect((err as Error).message).not.toContain('\n');
    expect(() => checkManifestSize(MAX_MANIFEST_BYTES, 'x')).not.toThrow();
  });
});

describe('ManifestEntrySchema and its fast path', () => {
  it('isManifestEntry (the loop parseManifest runs) accepts exactly what the entry schema accepts', () => {
    const cases: unknown[] = [
      { relpath: 'a', sha256: A, size: 1 },
      { relpath: 'a/b c', sha256: A, size: 0, isexec: true },
      { relpath: 'a', sha256: A, size: 0, isexec: false },
      { relpath: 'a', sha256: A, size: 1, extra: 'dropped' },
      { relpath: 'a', sha256: A, size: Number.MAX_SAFE_INTEGER },
      { relpath: 'a', sha256: A, size: 2 ** 53 },
      { relpath: 'a', sha256: A, size: -1 },
      { relpath: 'a', sha256: A, size: 1.5 },
      { relpath: 'a', sha256: A, size: '1' },
      { relpath: 'a', sha256: A },
      { relpath: 'a', size: 1 },
      { sha256: A, size: 1 },
      { relpath: 'a', sha256: `${A}.dir`, size: 1 },
      { relpath: 'a', sha256: A.toUpperCase(), size: 1 },
      { relpath: 'a', sha256: A, size: 1, isexec: 'yes' },
      { relpath: 'a', sha256: A, size: 1, isexec: null },
      { relpath: '../a', sha256: A, size: 1 },
      { relpath: '.git/config', sha256: A, size: 1 },
      { relpath: '', sha256: A, size: 1 },
      { relpath: 7, sha256: A, size: 1 },
      null,
      'a',
      7,
      [],
      ['a', A, 1],
    ];
    for (const c of cases) expect(isManifestEntry(c), JSON.stringify(c)).toBe(v.is(ManifestEntrySchema, c));
  });

  it('names an entry that is a list as not an object', () => {
    expect(badManifest([['a', A, 1]])).toThrow(/^\/cache\/ab\/cd\.dir: manifest entry 0 is not an object$/);
  });
});
