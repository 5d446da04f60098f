/**
 * Transfer rates as users write them (`--limit-rate`, `remote.<name>.limit_rate`),
 * the way curl's --limit-rate reads them. The token bucket that applies them is
 * remote/rate.ts.
 */

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Parses a rate as curl's --limit-rate does: bytes per second, with an
 * optional k, m or g suffix (either case, 1024-based), e.g. `500k`, `4M`,
 * `1.5m`. Returns undefined for anything else, zero or negatives included.
 */
export function parseRate(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 1 ? text : undefined;
  const m = /^(\d{1,20}(?:\.\d{1,20})?)([kmg]?)$/i.exec(text);
  if (!m) return undefined;
  const n = Math.floor(Number(m[1]) * UNITS[m[2]!.toLowerCase()]!);
  return n >= 1 && Number.isSafeInteger(n) ? n : undefined;
}

/** A rate for messages: `4 MiB/s`, `500 KiB/s`, `100 B/s`. */
export function formatRate(bytesPerSecond: number): string {
  for (const [unit, size] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (bytesPerSecond >= size) return `${+(bytesPerSecond / size).toFixed(2)} ${unit}/s`;
  }
  return `${bytesPerSecond} B/s`;
}

/** How to write a rate, for messages: what parseRate accepts, with examples. */
export const RATE_SYNTAX = 'bytes per second, with an optional k, m or g suffix (1024-based), e.g. 500k or 4M';
