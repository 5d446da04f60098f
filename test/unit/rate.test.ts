import { describe, expect, it } from 'vitest';
import { parseRate } from '../../src/formats/rate.js';
import { MIN_BURST, throttled, throttledBody, TokenBucket, type Clock } from '../../src/remote/rate.js';

/** A clock that only moves when told to, or when a sleeper sleeps (time passes for everyone). */
function fakeClock(): Clock & { t: number; slept: number[] } {
  const c = {
    t: 0,
    slept: [] as number[],
    now: () => c.t,
    sleep: async (ms: number) => {
      c.slept.push(ms);
      c.t += ms;
    },
  };
  return c;
}

describe('parseRate: curl --limit-rate syntax', () => {
  it.each([
    ['1', 1],
    ['500', 500],
    ['500k', 500 * 1024],
    ['500K', 500 * 1024],
    ['4m', 4 * 1024 ** 2],
    ['4M', 4 * 1024 ** 2],
    ['1g', 1024 ** 3],
    ['1G', 1024 ** 3],
    ['1.5m', 1.5 * 1024 ** 2],
    ['0.5k', 512],
    [4096, 4096],
  ])('%j is %i bytes per second', (text, n) => {
    expect(parseRate(text)).toBe(n);
  });

  it.each(['0', '0k', '0.0001k', '-1', '-4M', '', ' ', 'abc', '4mb', '4MiB', '4 M', ' 4M', '4M ', '1e3', '0x10', '4t', 'Infinity', 'NaN', '.5k', '1,5m', 0, -5, 1.5, Number.POSITIVE_INFINITY])(
    'refuses %j',
    (text) => {
      expect(parseRate(text)).toBeUndefined();
    },
  );
});

describe('TokenBucket arithmetic (injected clock, no sleeps)', () => {
  it('holds a burst of 64 KiB, or a quarter second of the rate when that is more', () => {
    expect(new TokenBucket(1000, fakeClock()).burst).toBe(MIN_BURST);
    expect(new TokenBucket(4 << 20, fakeClock()).burst).toBe(1 << 20);
  });

  it('lets the burst through at once, then charges rate seconds per byte', () => {
    const clock = fakeClock();
    const b = new TokenBucket(1024, clock, 2048);
    expect(b.reserve(2048)).toBe(0);
    expect(b.reserve(1024)).toBe(1000); // one second of debt
    expect(b.reserve(512)).toBe(1500); // the debt is shared: the next taker waits behind it
  });

  it('refills at the rate while idle, never beyond the burst', () => {
    const clock = fakeClock();
    const b = new TokenBucket(1000, clock, 500);
    expect(b.reserve(500)).toBe(0);
    clock.t += 250; // 250 bytes back
    expect(b.reserve(250)).toBe(0);
    expect(b.reserve(100)).toBe(100);
    clock.t += 60_000; // a minute idle fills only the burst
    expect(b.reserve(500)).toBe(0);
    expect(b.reserve(1000)).toBe(1000);
  });

  it('take(n) sleeps exactly (n - burst) / rate in total, in pieces', async () => {
    const clock = fakeClock();
    const b = new TokenBucket(64 * 1024, clock); // burst 64 KiB
    await b.take(1 << 20);
    const total = clock.slept.reduce((a, x) => a + x, 0);
    expect(total).toBeCloseTo((((1 << 20) - 64 * 1024) / (64 * 1024)) * 1000, 6);
    expect(clock.slept.length).toBeGreaterThan(1);
  });

  it('concurrent takers share the rate: together they never get more than burst + rate x t', async () => {
    const clock = fakeClock();
    const rate = 100 * 1024;
    const b = new TokenBucket(rate, clock);
    // Interleave four takers by hand: each reserves, the clock moves to the latest deadline.
    let moved = 0;
    let deadline = 0;
    for (let round = 0; round < 40; round++) {
      for (let taker = 0; taker < 4; taker++) {
        deadline = Math.max(deadline, clock.t + b.reserve(16 * 1024));
        moved += 16 * 1024;
      }
      clock.t = deadline;
      expect(moved).toBeLessThanOrEqual(b.burst + (rate * clock.t) / 1000 + 1e-6);
    }
    expect(clock.t).toBeCloseTo(((moved - b.burst) / rate) * 1000, 6);
  });

  it('refuses a rate that is not a positive number', () => {
    for (const r of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) expect(() => new TokenBucket(r, fakeClock())).toThrow(RangeError);
  });
});

describe('throttled: bodies paced through the bucket', () => {
  it('yields the same bytes in pieces of at most 64 KiB, paying for each', async () => {
    const clock = fakeClock();
    const b = new TokenBucket(32 * 1024, clock); // burst 64 KiB
    const input = [Buffer.alloc(200 * 1024, 1), Buffer.alloc(10, 2), Buffer.alloc(0)];
    const out: Buffer[] = [];
    for await (const piece of throttled(input, b)) {
      expect(piece.length).toBeLessThanOrEqual(64 * 1024);
      out.push(Buffer.from(piece));
    }
    expect(Buffer.concat(out).equals(Buffer.concat(input))).toBe(true);
    expect(clock.t).toBeCloseTo(((200 * 1024 + 10 - 64 * 1024) / (32 * 1024)) * 1000, 6);
  });

  it('throttledBody keeps the stated size, paces the pieces, and a body refused unread is still released', async () => {
    const clock = fakeClock();
    const b = new TokenBucket(64 * 1024, clock);
    let released = 0;
    const source = (chunks: Uint8Array[]) =>
      Object.assign(
        {
          [Symbol.asyncIterator]() {
            let i = 0;
            return {
              next: async () => (i < chunks.length ? { done: false as const, value: chunks[i++]! } : { done: true as const, value: undefined }),
              return: async () => {
                released++;
                return { done: true as const, value: undefined };
              },
            };
          },
        },
        { size: chunks.reduce((n, c) => n + c.length, 0) },
      );
    const body = throttledBody(source([Buffer.alloc(0), Buffer.alloc(300 * 1024, 7)]), b);
    expect(body.size).toBe(300 * 1024);
    let n = 0;
    for await (const piece of body) {
      expect(piece.length).toBeLessThanOrEqual(64 * 1024);
      n += piece.length;
    }
    expect(n).toBe(300 * 1024);
    expect(clock.t).toBeCloseTo(((300 * 1024 - 64 * 1024) / (64 * 1024)) * 1000, 6);
    // What downloadVerified's release() does with a body of the wrong size: return() before any next().
    const refused = throttledBody(source([Buffer.alloc(10)]), b);
    await refused[Symbol.asyncIterator]().return?.();
    expect(released).toBe(1);
  });
});
