import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { parsePointer, serializePointer } from '../../src/formats/pointer.js';

const SHA = 'a'.repeat(64);
const COMMIT = 'c'.repeat(40);
const OUT = `outs:\n- path: trips.csv\n  sha256: ${SHA}\n  size: 3\n`;
const imported = (rec: string) => `import:\n${rec}${OUT}`;

describe('the import record of a pointer (tdv import)', () => {
  it('is read beside outs and written back as it was', async () => {
    const text = imported(`  url: "file:///src/repo"\n  path: "data/trips.csv"\n  rev: "v1"\n  commit: "${COMMIT}"\n  remote: "s3store"\n`);
    const p = await parsePointer(text, '/r/trips.csv.tdv', 'trips.csv.tdv');
    expect(p.import).toEqual({ url: 'file:///src/repo', path: 'data/trips.csv', rev: 'v1', commit: COMMIT, remote: 's3store' });
    expect(serializePointer(p.outs, p)).toBe(text);
    // A URL or revision that YAML would read as another type stays text.
    // A commit id of digits only too (YAML would read it as a number).
    const odd = { url: 'yes', path: 'a: b', rev: '1e3', commit: '1'.repeat(40) };
    expect((await parsePointer(serializePointer(p.outs, { import: odd }), '/r/x.tdv')).import).toEqual(odd);
  });

  it('is validated like the rest of the pointer: each bad value is one error naming its key', async () => {
    const bad: [string, RegExp][] = [
      [`  url: u\n  path: ../etc/passwd\n  commit: ${COMMIT}\n`, /import\.path "\.\.\/etc\/passwd" must be a relative path inside the source repository/],
      [`  url: u\n  path: /abs\n  commit: ${COMMIT}\n`, /import\.path/],
      [`  url: u\n  path: a\n  commit: abc\n`, /import\.commit must be a commit id of 40 lowercase hex digits/],
      [`  url: "--upload-pack=touch /tmp/x"\n  path: a\n  commit: ${COMMIT}\n`, /import\.url .* not starting with "-"/],
      [`  url: u\n  path: a\n  rev: "-x"\n  commit: ${COMMIT}\n`, /import\.rev/],
      [`  url: [u]\n  path: a\n  commit: ${COMMIT}\n`, /import\.url must be a string/],
      [`  path: a\n  commit: ${COMMIT}\n`, /import/],
      [`  url: u\n  path: a\n  commit: ${COMMIT}\n  branch: main\n`, /import has unknown key "branch"/],
    ];
    for (const [rec, re] of bad) {
      const err = await parsePointer(imported(rec), '/r/t.tdv', 't.tdv').catch((e: unknown) => e);
      expect(err, rec).toBeInstanceOf(FormatError);
      expect((err as Error).message, rec).toMatch(re);
    }
  });

  it('has exactly one output', async () => {
    const two = `import:\n  url: u\n  path: a\n  commit: ${COMMIT}\n${OUT}- path: b\n  sha256: ${SHA}\n  size: 3\n`;
    await expect(parsePointer(two, '/r/t.tdv', 't.tdv')).rejects.toThrow(/exactly one entry in "outs"/);
  });
});
