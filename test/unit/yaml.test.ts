import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { CONFIG_TEMPLATE } from '../../src/formats/config.js';
import { isBlankYaml, parseYaml } from '../../src/util/yaml.js';
import { finishesWithin } from '../helpers/isolate.js';

describe('isBlankYaml', () => {
  it('is true for empty text, blank lines and comments only', () => {
    for (const t of ['', '\n', '  \n\t\n', '# c\n', '# a\n\n  # b\r\n', '#no newline']) expect(isBlankYaml(t), JSON.stringify(t)).toBe(true);
  });

  it('is false as soon as there is content', () => {
    for (const t of ['a: 1', '# c\nx\n', '  - 1\n', '~']) expect(isBlankYaml(t), JSON.stringify(t)).toBe(false);
  });

  it('gives the same answers when run in isolation (control for the two tests below)', async () => {
    expect(await finishesWithin(isBlankYaml, '# only a comment\n', 5000)).toEqual({ done: true, value: true });
    expect(await finishesWithin(isBlankYaml, '# c\nx: 1\n', 5000)).toEqual({ done: true, value: false });
  });

  it('answers at once for the config template that init writes followed by a setting', async () => {
    // The realistic case: `tdv init`, then a setting appended below the commented template.
    const text = `${CONFIG_TEMPLATE}cache:\n  type: copy\n`;
    const r = await finishesWithin(isBlankYaml, text, 2000);
    expect(r.done, 'isBlankYaml did not finish within 2 s (catastrophic regex backtracking)').toBe(true);
    expect(r.value).toBe(false);
  });

  it('answers at once for comment lines full of spaces followed by content', async () => {
    const text = `${'#   key: value        # a comment with   several   spaces\n'.repeat(8)}x: 1\n`;
    const r = await finishesWithin(isBlankYaml, text, 2000);
    expect(r.done, 'isBlankYaml did not finish within 2 s (catastrophic regex backtracking)').toBe(true);
    expect(r.value).toBe(false);
  });
});

describe('parseYaml', () => {
  it('returns null for a blank document', async () => {
    expect((await parseYaml('# only a comment\n', 'f.yaml')).value).toBeNull();
  });

  it('parses a document and locates a key path by line', async () => {
    const y = await parseYaml('# head\na:\n  b: 1\n  c:\n    - x\n    - y\n', 'f.yaml');
    expect(y.value).toEqual({ a: { b: 1, c: ['x', 'y'] } });
    expect(y.lineOf(['a', 'b'])).toBe(3);
    expect(y.lineOf(['a', 'c', 1])).toBe(6);
    expect(y.lineOf(['nope'])).toBeUndefined();
  });

  it('names the file, line and column of a syntax error', async () => {
    await expect(parseYaml('a: 1\nb: [1, 2\n', 'conf.yaml')).rejects.toThrow(/^conf\.yaml:\d+:\d+: invalid YAML/);
  });

  it('rejects duplicate keys', async () => {
    await expect(parseYaml('a: 1\na: 2\n', 'f.yaml')).rejects.toBeInstanceOf(FormatError);
  });

  it('refuses a billion-laughs alias bomb quickly', async () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(10).fill(`*${prev}`).join(', ')}]`);
    }
    const start = Date.now();
    await expect(parseYaml(lines.join('\n'), 'bomb.yaml')).rejects.toThrow(/bomb\.yaml/);
    expect(Date.now() - start).toBeLessThan(2000);
  });

  it('still allows a few ordinary aliases', async () => {
    expect((await parseYaml('base: &b {x: 1}\nother: *b\n', 'f.yaml')).value).toEqual({ base: { x: 1 }, other: { x: 1 } });
  });
});
