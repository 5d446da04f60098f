import { compareCodePoints } from '../formats/manifest.js';

/**
 * The S3 listing algorithm, apart from where keys come from: keys under a
 * prefix, in code point order (UTF-8 byte order, as S3 lists), rolled up at
 * the first delimiter after the prefix into common prefixes, then cut into
 * pages of at most max-keys items (keys and common prefixes together) after
 * a marker.
 *
 *     keys (sorted, > marker)  ->  rollup(prefix, delimiter)  ->  page(max)
 *     main/a.csv                   main/a.csv                     main/a.csv
 *     main/data/x.csv              main/data/        (once)       main/data/   <- truncated, next = "main/data/"
 *     main/data/y.csv              main/z.txt
 *     main/z.txt
 */

/** A listed key, or a common prefix (`prefix: true`, key ending with the delimiter). */
export interface ListItem<T = unknown> {
  key: string;
  prefix?: true;
  /** What the key names (for objects): the source's own value. */
  value?: T;
}

export interface ListQuery {
  prefix: string;
  /** '' for none. */
  delimiter: string;
  /** Only keys after this one (StartAfter, Marker, or the continuation token's key). */
  after: string;
  /** 0 to 1000. */
  maxKeys: number;
}

export interface ListPage<T = unknown> {
  items: ListItem<T>[];
  /** More items follow the last one. */
  truncated: boolean;
}

/**
 * Rolls keys up at `delimiter`: a key with the delimiter somewhere after
 * `prefix` becomes its common prefix (up to and including the delimiter),
 * given once. Items a source already rolled up pass through. Keys must come
 * sorted and start with `prefix`.
 */
export async function* rollup<T>(items: AsyncIterable<ListItem<T>>, prefix: string, delimiter: string): AsyncGenerator<ListItem<T>> {
  let last: string | undefined;
  for await (const it of items) {
    let out = it;
    if (!it.prefix && delimiter !== '') {
      const i = it.key.indexOf(delimiter, prefix.length);
      if (i !== -1) out = { key: it.key.slice(0, i + delimiter.length), prefix: true };
    }
    if (out.prefix) {
      if (out.key === last) continue;
      last = out.key;
    }
    yield out;
  }
}

/**
 * One page: the items after `after` (a common prefix at or before it was on an
 * earlier page, with every key it stands for), at most `maxKeys`, and whether
 * more follow. Reads one item past the page, no more.
 */
export async function page<T>(items: AsyncIterable<ListItem<T>>, after: string, maxKeys: number): Promise<ListPage<T>> {
  const out: ListItem<T>[] = [];
  for await (const it of items) {
    if (after !== '' && compareCodePoints(it.key, after) <= 0) continue;
    if (out.length >= maxKeys) return { items: out, truncated: maxKeys > 0 };
    out.push(it);
  }
  return { items: out, truncated: false };
}

/** The continuation token of a page that ends at `key`: opaque to clients, the key itself to us. */
export function continuationToken(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

/** The key a continuation token stands for, or undefined when it is not one of ours. */
export function tokenKey(token: string): string | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) return undefined;
  const key = Buffer.from(token, 'base64url').toString('utf8');
  return continuationToken(key) === token ? key : undefined;
}

/** Sorted by the keys' code points. */
export function sortItems<T>(items: ListItem<T>[]): ListItem<T>[] {
  return items.sort((a, b) => compareCodePoints(a.key, b.key));
}
