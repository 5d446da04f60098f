import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { outAbsPath, parsePointer, type PointerOut, pointerFileFor, serializePointer } from '../../src/formats/pointer.js';

const SHA = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const DIR = `${'d'.repeat(64)}.dir`;
const FILE = '/repo/data.csv.tdv';

const outs = async (text: string) => (await parsePointer(text, FILE)).outs;

/** Forces the YAML parser: the fast path only accepts the exact canonical text. */
const withComment = (text: string) => `# edited by hand\n${text}`;

describe('serializePointer', () => {
  it('writes the exact canonical text for a file', () => {
    expect(serializePointer([{ path: 'data.csv', sha256: SHA, size: 1234 }])).toBe(`outs:\n- path: data.csv\n  sha256: ${SHA}\n  size: 1234\n`);
  });

  it('writes the exact canonical text for a directory, with nfiles', () => {
    expect(serializePointer([{ path: 'data', sha256: DIR, size: 99, nfiles: 3 }])).toBe(`outs:\n- path: data\n  sha256: ${DIR}\n  size: 99\n  nfiles: 3\n`);
  });

  it('writes isexec only when true', () => {
    expect(serializePointer([{ path: 'run.sh', sha256: SHA, size: 1, isexec: true }])).toBe(`outs:\n- path: run.sh\n  sha256: ${SHA}\n  size: 1\n  isexec: true\n`);
    expect(serializePointer([{ path: 'run.sh', sha256: SHA, size: 1, isexec: false }])).not.toContain('isexec');
  });
});

describe('parsePointer', () => {
  it('names the line and column of the value at fault, on the fast path (canonical layout) as on the YAML one', async () => {
    // Canonical layout: the regex matches, the schema refuses the size (past 2^53), positions come from a parse on the error path.
    await expect(parsePointer(`outs:\n- path: a\n  sha256: ${SHA}\n  size: 99999999999999999\n`, '/r/x.tdv', 'x.tdv')).rejects.toThrow(/^x\.tdv:4:3: outs\[0\]\.size /);
    await expect(parsePointer(`# hand-edited\nouts:\n  - path: ../up\n    sha256: ${SHA}\n    size: 1\n`, '/r/x.tdv', 'x.tdv')).rejects.toThrow(/^x\.tdv:3:5: /);
  });

  it('refuses an out named like a file Git or tdv reads rules from (.gitignore, .gitattributes, .tdvignore), also below a directory', async () => {
    for (const p of ['.gitignore', '.gitattributes', '.tdvignore', 'sub/.gitignore']) {
      const text = `outs:\n- path: ${p}\n  sha256: ${'a'.repeat(64)}.dir\n  size: 1\n  nfiles: 1\n`;
      await expect(parsePointer(text, '/r/scratch/evil.tdv', 'scratch/evil.tdv')).rejects.toThrow(/names a \.(gitignore|gitattributes|tdvignore) file, which holds Git's or tdv's rules/);
    }
    // Data named like them inside a tracked directory is data: only the pointer's own outs are refused.
    await expect(parsePointer(`outs:\n- path: gitignore\n  sha256: ${'a'.repeat(64)}\n  size: 1\n`, '/r/x.tdv')).resolves.toBeDefined();
  });

  it('reads a canonical file pointer and keeps its absolute file name', async () => {
    const p = await parsePointer(serializePointer([{ path: 'data.csv', sha256: SHA, size: 1234 }]), FILE);
    expect(p).toEqual({ file: FILE, outs: [{ path: 'data.csv', sha256: SHA, size: 1234 }] });
  });

  it('gives the same result on the fast path and through the YAML parser', async () => {
    const list: PointerOut[] = [
      { path: 'data', sha256: DIR, size: 99, nfiles: 3 },
      { path: 'run.sh', sha256: SHA, size: 0, isexec: true },
    ];
    const text = serializePointer(list);
    const fast = await outs(text);
    expect(fast).toEqual(list);
    expect(await outs(withComment(text))).toEqual(fast);
    expect(await outs(`${text}# trailing comment\n`)).toEqual(fast);
  });

  it('accepts hand-written flow style and reordered keys through the YAML parser', async () => {
    expect(await outs(`{outs: [{size: 1234, path: data.csv, sha256: ${SHA}}]}`)).toEqual([{ path: 'data.csv', sha256: SHA, size: 1234 }]);
    expect(await outs(`outs:\n  - sha256: "${SHA}"\n    path: 'data.csv'\n    size: 1234\n`)).toEqual([{ path: 'data.csv', sha256: SHA, size: 1234 }]);
  });

  it('accepts CRLF line endings (a checkout with core.autocrlf)', async () => {
    const text = serializePointer([{ path: 'data.csv', sha256: SHA, size: 7 }]).replace(/\n/g, '\r\n');
    expect(await outs(text)).toEqual([{ path: 'data.csv', sha256: SHA, size: 7 }]);
  });

  it.each([
    ['true'],
    ['True'],
    ['no'],
    ['null'],
    ['~'],
    ['123'],
    ['0x1F'],
    ['1e3'],
    ['-dash'],
    ['a b'],
    ['x: y'],
    ['#hash'],
    ['a#b'],
    ['[x]'],
    ['{x}'],
    ['*star'],
    ['&anchor'],
    ['!tag'],
    ['%pct'],
    ['@at'],
    ['`tick'],
    ["it's"],
    ['say "hi"'],
    [' lead'],
    ['trail '],
    ['tab\there'],
    ['new\nline'],
    ['caf\u00e9/\u6570\u636e/\u{1F600}.csv'],
    ['.hidden'],
    ['.5'],
    ['.inf'],
    ['.NaN'],
    ['dir/sub.d/x-y_z.csv'],
  ])('round-trips the path %j on the fast path and through YAML', async (p) => {
    const text = serializePointer([{ path: p, sha256: SHA, size: 1 }]);
    expect(await outs(text)).toEqual([{ path: p, sha256: SHA, size: 1 }]);
    expect(await outs(withComment(text))).toEqual([{ path: p, sha256: SHA, size: 1 }]);
  });

  const bad = (text: string) => parsePointer(text, FILE, 'data.csv.tdv');

  it.each([
    ['a path that climbs out', `outs:\n- path: ../../x\n  sha256: ${SHA}\n  size: 1\n`, /must be a relative path/],
    ['a quoted climbing path', `outs:\n- path: "a/../../x"\n  sha256: ${SHA}\n  size: 1\n`, /must be a relative path/],
    ['an absolute path', `outs:\n- path: /etc/passwd\n  sha256: ${SHA}\n  size: 1\n`, /must be a relative path/],
    ['a non-string path', `outs:\n- path: 12\n  sha256: ${SHA}\n  size: 1\n`, /must be a relative path/],
    ['a sha256 of 63 hex digits', `outs:\n- path: a\n  sha256: ${SHA.slice(1)}\n  size: 1\n`, /sha256 must be 64 lowercase hex/],
    ['an uppercase sha256', `outs:\n- path: a\n  sha256: ${SHA.toUpperCase()}\n  size: 1\n`, /sha256 must be 64 lowercase hex/],
    ['a non-hex sha256', `outs:\n- path: a\n  sha256: ${'z'.repeat(64)}\n  size: 1\n`, /sha256 must be 64 lowercase hex/],
    ['a negative size', `outs:\n- path: a\n  sha256: ${SHA}\n  size: -1\n`, /size must be a whole number/],
    ['a fractional size', `outs:\n- path: a\n  sha256: ${SHA}\n  size: 1.5\n`, /size must be a whole number/],
    ['a size beyond 2^53', `outs:\n- path: a\n  sha256: ${SHA}\n  size: 9999999999999999\n`, /size must be a whole number/],
    ['a string size', `outs:\n- path: a\n  sha256: ${SHA}\n  size: "1"\n`, /size must be a whole number/],
    ['a missing size', `outs:\n- path: a\n  sha256: ${SHA}\n`, /size must be a whole number/],
    ['an unknown key in an out', `outs:\n- path: a\n  sha256: ${SHA}\n  size: 1\n  md5: abc\n`, /unknown key "md5"/],
    ['an unknown top-level key', `outs:\n- path: a\n  sha256: ${SHA}\n  size: 1\nfrozen: true\n`, /unknown key "frozen"/],
    ['a directory id without nfiles', `outs:\n- path: a\n  sha256: ${DIR}\n  size: 1\n`, /directory but has no nfiles/],
    ['a negative nfiles', `outs:\n- path: a\n  sha256: ${DIR}\n  size: 1\n  nfiles: -2\n`, /nfiles must be a whole number/],
    ['a non-boolean isexec', `outs:\n- path: a\n  sha256: ${SHA}\n  size: 1\n  isexec: "yes"\n`, /isexec must be true or false/],
    ['an empty outs list', 'outs: []\n', /non-empty list/],
    ['outs that is not a list', 'outs: data.csv\n', /non-empty list/],
    ['an out that is not a mapping', 'outs:\n- data.csv\n', /must be a mapping/],
    ['a top level that is a list', '- a\n', /not a tdv pointer/],
    ['an empty file', '', /not a tdv pointer/],
    ['only comments', '# nothing here\n', /not a tdv pointer/],
    ['duplicate keys', `outs:\n- path: a\n  path: b\n  sha256: ${SHA}\n  size: 1\n`, /invalid YAML/],
    ['broken YAML', 'outs: [\n', /invalid YAML/],
  ])('rejects %s', async (_what, text, msg) => {
    const p = bad(text);
    await expect(p).rejects.toBeInstanceOf(FormatError);
    await expect(bad(text)).rejects.toThrow(msg);
    await expect(bad(text)).rejects.toThrow(/data\.csv\.tdv/);
  });

  it('rejects a YAML alias bomb (billion laughs) quickly instead of expanding it', async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 10; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    lines.push('outs: *j');
    const start = Date.now();
    await expect(bad(`${lines.join('\n')}\n`)).rejects.toBeInstanceOf(FormatError);
    expect(Date.now() - start).toBeLessThan(2000);
  });

  it('accepts and round-trips a backslash in a path: on POSIX it is an ordinary character, as tdv add records it', async () => {
    for (const name of ['a\\b.csv', 'a\\..\\b']) {
      const text = serializePointer([{ path: name, sha256: SHA, size: 1 }]);
      expect((await parsePointer(text, '/repo/x.tdv')).outs).toEqual([{ path: name, sha256: SHA, size: 1 }]);
    }
  });

  it.each([
    ['.git', /has a "\.git" component/],
    ['sub/.GIT/config', /has a "\.git" component/],
    ['.tdv/cache', /has a "\.tdv" component/],
    ['a//b', /empty component/],
    ['a\ud800', /not valid Unicode/],
  ])('rejects the path %s, saying why', async (p, why) => {
    await expect(bad(serializePointer([{ path: p, sha256: SHA, size: 1 }]))).rejects.toThrow(why);
  });

  it('locates YAML syntax errors by line and column', async () => {
    await expect(bad(`outs:\n- path: a\n  sha256: ${SHA}\n  size: [1\n`)).rejects.toThrow(/data\.csv\.tdv:\d+:\d+/);
  });
});

describe('pointer paths', () => {
  it('names the pointer after its target and resolves outs relative to the pointer', async () => {
    expect(pointerFileFor('/repo/sub/data')).toBe('/repo/sub/data.tdv');
    const p = await parsePointer(serializePointer([{ path: 'x/y.csv', sha256: SHA, size: 1 }]), '/repo/sub/y.csv.tdv');
    expect(outAbsPath(p, p.outs[0]!)).toBe('/repo/sub/x/y.csv');
  });
});
