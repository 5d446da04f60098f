import { describe, expect, it } from 'vitest';
import { continuationToken, type ListItem, page, rollup, tokenKey } from '../../src/serve/listing.js';

async function* from(keys: string[]): AsyncGenerator<ListItem> {
  for (const key of keys) yield { key };
}

const KEYS = ['main/a.csv', 'main/data-x', 'main/data/p1/x', 'main/data/p1/y', 'main/data/p2/z', 'main/data/z.csv', 'main/z'];

/** Every page of a listing, as S3 clients walk it: the next page starts after the last item of the previous one. */
async function allPages(keys: string[], prefix: string, delimiter: string, maxKeys: number) {
  const pages: string[][] = [];
  let after = '';
  for (;;) {
    const p = await page(rollup(from(keys.filter((k) => k.startsWith(prefix))), prefix, delimiter), after, maxKeys);
    pages.push(p.items.map((i) => (i.prefix ? `${i.key} (prefix)` : i.key)));
    if (!p.truncated) return pages;
    after = tokenKey(continuationToken(p.items.at(-1)!.key))!;
  }
}

describe('S3 listing: rollup and pagination', () => {
  it('rolls keys up at the first delimiter after the prefix, each common prefix once, in key order', async () => {
    expect(await allPages(KEYS, 'main/', '/', 1000)).toEqual([['main/a.csv', 'main/data-x', 'main/data/ (prefix)', 'main/z']]);
    expect(await allPages(KEYS, 'main/data/', '/', 1000)).toEqual([['main/data/p1/ (prefix)', 'main/data/p2/ (prefix)', 'main/data/z.csv']]);
    expect(await allPages(KEYS, 'main/data', '/', 1000)).toEqual([['main/data-x', 'main/data/ (prefix)']]);
  });

  it('pages of max-keys items (keys and prefixes together) cover everything once, with no empty last page', async () => {
    for (const n of [1, 2, 3, 4, 7]) {
      const flat = (await allPages(KEYS, 'main/', '', n)).flat();
      expect(flat, `max-keys ${n}`).toEqual(KEYS);
      const rolled = await allPages(KEYS, 'main/', '/', n);
      expect(rolled.flat(), `max-keys ${n}, delimiter`).toEqual(['main/a.csv', 'main/data-x', 'main/data/ (prefix)', 'main/z']);
      expect(rolled.every((p) => p.length > 0 && p.length <= n)).toBe(true);
    }
  });

  it('never repeats a common prefix whose keys span a page boundary', async () => {
    const keys = ['r/a/1', 'r/a/2', 'r/a/3', 'r/b', 'r/c/1', 'r/c/2'];
    expect(await allPages(keys, 'r/', '/', 1)).toEqual([['r/a/ (prefix)'], ['r/b'], ['r/c/ (prefix)']]);
  });

  it('takes a multi-character delimiter, and none', async () => {
    expect((await allPages(['x/a--b', 'x/a--c', 'x/b'], 'x/', '--', 10)).flat()).toEqual(['x/a-- (prefix)', 'x/b']);
    expect(await allPages([], '', '/', 10)).toEqual([[]]);
  });

  it('continuation tokens round-trip any key and refuse what is not one', () => {
    for (const k of ['main/a b/ü.csv', '@2016-07-31/x', '']) expect(tokenKey(continuationToken(k))).toBe(k);
    expect(tokenKey('not a token!')).toBeUndefined();
    expect(tokenKey('_w')).toBeUndefined(); // not canonical base64url of any key
  });
});
