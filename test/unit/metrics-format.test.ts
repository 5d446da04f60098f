import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { cell, diffRows, historyLines, valuesLines } from '../../src/cli/commands/metrics.js';
import { alignedTable, markdownTable } from '../../src/cli/table.js';
import { diffValues } from '../../src/repo/metrics.js';
import { flattenLeaves, metricsProblem, parseMetrics, parseValues, valuesFormat } from '../../src/stages/values.js';

describe('values files: format by extension, parsed to plain data', () => {
  it('picks JSON, TOML, or YAML for anything else', () => {
    expect(['m.json', 'M.JSON', 'p.toml', 'p.yaml', 'p.yml', 'p.txt', 'noext', 'dir.json/m'].map(valuesFormat)).toEqual(['json', 'json', 'toml', 'yaml', 'yaml', 'yaml', 'yaml', 'yaml']);
  });

  it('reads the same data from the three formats; TOML dates become their TOML text', async () => {
    const want = { a: 1, b: { c: [true, 'x'] } };
    expect(await parseValues('{"a": 1, "b": {"c": [true, "x"]}}', 'p.json')).toEqual(want);
    expect(await parseValues('a: 1\nb:\n  c: [true, x]\n', 'p.yaml')).toEqual(want);
    expect(await parseValues('a = 1\n[b]\nc = [true, "x"]\n', 'p.toml')).toEqual(want);
    const t = await parseValues('d = 2024-07-30\nt = 07:32:00\ndt = 1979-05-27T07:32:00Z\n', 'p.toml');
    expect(t).toEqual({ d: '2024-07-30', t: '07:32:00.000', dt: '1979-05-27T07:32:00.000Z' });
    expect(Object.getPrototypeOf(t)).toBe(Object.prototype);
  });

  it('a text that does not parse is one line naming the file (and the position where the parser gives it)', async () => {
    const cases: [string, string, RegExp][] = [
      ['{"a": 1,', 'm.json', /^shown\.json: invalid JSON: \S/],
      ['a: [1\n', 'm.yaml', /^shown\.json:\d+:\d+: invalid YAML/],
      ['a = 1\nb = = 2\n', 'm.toml', /^shown\.json:2:\d+: invalid TOML: invalid value$/],
    ];
    for (const [text, file, want] of cases) {
      const err = await parseValues(text, file, 'shown.json').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      expect((err as Error).message).toMatch(want);
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('metrics must be a mapping', async () => {
    expect(await metricsProblem('{"acc": 1}', 'm.json')).toBeUndefined();
    expect(await metricsProblem('[1]', 'm.json')).toMatch(/^m\.json: holds a list, not a mapping of metric names to values/);
    expect(await metricsProblem('0.9', 'm.yaml')).toMatch(/^m\.yaml: holds a number/);
    expect(await metricsProblem('', 'm.yaml')).toMatch(/^m\.yaml: holds nothing/);
    await expect(parseMetrics('{"acc": ', 'm.json')).rejects.toThrow(/^m\.json: invalid JSON/);
  });

  it('a key named __proto__ is kept as a key, never as a prototype', async () => {
    const v = await parseValues('__proto__:\n  polluted: 1\n', 'p.yaml');
    expect(Object.keys(v as object)).toEqual(['__proto__']);
    const top = flattenLeaves(JSON.parse('{"__proto__": 1}'));
    expect(Object.hasOwn(top, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(top)).toBe(Object.prototype);
    expect(Object.keys(flattenLeaves(JSON.parse('{"__proto__": {"x": 1}}')))).toEqual(['__proto__.x']);
  });

  it('flattens nested data to its leaves under dotted keys', () => {
    expect(flattenLeaves({ a: { b: 1, c: [2, { d: 3 }] }, e: null, f: {}, g: 'x' })).toEqual({ 'a.b': 1, 'a.c.0': 2, 'a.c.1.d': 3, e: null, g: 'x' });
  });
});

describe('diffValues', () => {
  it('lists changed keys, and with all the unchanged ones too, marked', () => {
    const a = { 'm.json': { acc: 0.5, n: 10, gone: 'x' } };
    const b = { 'm.json': { acc: 0.75, n: 10, added: true } };
    expect(diffValues(a, b)).toEqual([
      { file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 },
      { file: 'm.json', key: 'added', new: true },
      { file: 'm.json', key: 'gone', old: 'x' },
    ]);
    expect(diffValues(a, b, { all: true })).toContainEqual({ file: 'm.json', key: 'n', old: 10, new: 10, change: 0, unchanged: true });
  });

  it('a key that is also an Object.prototype name is an ordinary key', () => {
    expect(diffValues({ 'm.json': {} }, { 'm.json': { constructor: 1 } })).toEqual([{ file: 'm.json', key: 'constructor', new: 1 }]);
  });
});

describe('tables', () => {
  it('aligned: columns padded to the widest cell (by code point), two spaces apart, no trailing blanks', () => {
    expect(
      alignedTable([
        ['key', 'v'],
        ['größe', '1'],
        ['a', ''],
      ]),
    ).toEqual(['key    v', 'größe  1', 'a']);
  });

  it('markdown: a header separator, and | and \\ escaped so they stay in their cell', () => {
    expect(markdownTable([['k', 'v'], ['a|b', 'c\\d'], ['e']])).toEqual(['| k | v |', '| --- | --- |', '| a\\|b | c\\\\d |', '| e |  |']);
    expect(markdownTable([])).toEqual([]);
  });

  it('cells: strings on one line, other values as JSON, absent as -', () => {
    expect([cell('a\nb'), cell(1.5), cell([1, 2]), cell(null), cell(undefined), cell(true)]).toEqual(['a\\nb', '1.5', '[1,2]', 'null', '-', 'true']);
  });

  it('values: per file, or one Markdown table', () => {
    const v = { 'm.json': { acc: 0.9 }, 'e v.yaml': { 'x|y': 'z' } };
    expect(valuesLines(v, false)).toEqual(['m.json:', '    acc: 0.9', 'e v.yaml:', '    x|y: z']);
    expect(valuesLines(v, true)).toEqual(['| path | key | value |', '| --- | --- | --- |', '| m.json | acc | 0.9 |', '| e v.yaml | x\\|y | z |']);
  });

  it('diff rows: signed numeric change, blank for others', () => {
    const rows = diffRows(
      [
        { file: 'm.json', key: 'acc', old: 0.5, new: 0.25, change: -0.25 },
        { file: 'm.json', key: 'name', new: 'b' },
      ],
      'HEAD',
      'workspace',
    );
    expect(rows).toEqual([
      ['path:key', 'HEAD', 'workspace', 'change'],
      ['m.json:acc', '0.5', '0.25', '-0.25'],
      ['m.json:name', '-', 'b', ''],
    ]);
  });

  it('history: one table per metrics file, a row per commit, a column per key, - where a commit lacks one', () => {
    const c = (commit: string, label: string, subject: string, metrics: Record<string, Record<string, unknown>>) => ({ commit: commit.repeat(40), label, subject, date: '', metrics });
    const lines = historyLines(
      {
        commits: [c('b', 'bbbbbbb', 'second', { 'm.json': { acc: 0.9, f1: 0.8 } }), c('a', 'v1', 'first', { 'm.json': { acc: 0.5 }, 'n.json': { x: 1 } })],
        problems: [],
      },
      false,
    );
    expect(lines).toEqual([
      'm.json:',
      'commit        acc  f1   subject',
      'bbbbbbb       0.9  0.8  second',
      'aaaaaaa (v1)  0.5  -    first',
      '',
      'n.json:',
      'commit        x  subject',
      'bbbbbbb       -  second',
      'aaaaaaa (v1)  1  first',
    ]);
    expect(historyLines({ commits: [], problems: [] }, false)).toEqual(['No commit has metrics.']);
  });
});
