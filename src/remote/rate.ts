import { Readable } from 'node:stream';

/**
 * Rate limits for remote transfers (`--limit-rate`, `remote.<name>.limit_rate`):
 * one token bucket per opened remote, shared by all its concurrent transfers,
 * applied to the bytes each implementation actually sends and receives.
 */

/** Time as the bucket sees it: injectable so tests check its arithmetic without sleeping. */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** The smallest burst: small transfers are not paced byte by byte. */
export const MIN_BURST = 64 * 1024;
/** Pieces a transfer pays for at a time, so concurrent transfers interleave fairly. */
const PIECE = 64 * 1024;

/**
 * A token bucket of `rate` bytes per second holding at most `burst` bytes
 * (64 KiB or a quarter second's worth, whichever is more). A transfer takes
 * tokens for its bytes and waits while the bucket is in debt; debt is shared,
 * so n concurrent transfers get rate/n each and together never more than
 * `burst + rate × t` bytes in t seconds.
 */
export class TokenBucket {
  readonly burst: number;
  private tokens: number;
  private last: number;

  constructor(
    readonly rate: number,
    private readonly clock: Clock = realClock,
    burst?: number,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`bad rate ${rate}`);
    this.burst = burst ?? Math.max(MIN_BURST, Math.floor(rate / 4));
    this.tokens = this.burst;
    this.last = clock.now();
  }

  /**
   * Takes `n` tokens now (the bucket may go into debt) and returns how many
   * milliseconds the caller must wait before moving those bytes.
   */
  reserve(n: number): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.rate;
  }

  /** Waits until `n` bytes may move, paying in pieces so concurrent transfers interleave. */
  async take(n: number): Promise<void> {
    for (let left = n; left > 0; left -= PIECE) {
      const ms = this.reserve(Math.min(PIECE, left));
      if (ms > 0) await this.clock.sleep(ms);
    }
  }
}

/**
 * `body` re-chunked into pieces of at most 64 KiB, each yielded once the
 * bucket allows it: downloads are paced as they are read, uploads as the
 * sender pulls them. Without a bucket, `body` unchanged.
 */
export async function* throttled(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, bucket: TokenBucket): AsyncGenerator<Uint8Array> {
  for await (const chunk of body) {
    for (let at = 0; at < chunk.length; at += PIECE) {
      const piece = chunk.subarray(at, at + PIECE);
      await bucket.take(piece.length);
      yield piece;
    }
  }
}

/**
 * A download body paced by `bucket`, keeping the size it states. Its iterator
 * takes the body's own at once, and its return() passes on, so a reader that
 * refuses the body unread (release) still closes the file or connection.
 */
export function throttledBody<T extends AsyncIterable<Uint8Array> & { readonly size?: number }>(body: T, bucket: TokenBucket | undefined): AsyncIterable<Uint8Array> & { readonly size?: number } {
  if (!bucket) return body;
  const paced: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]() {
      const src = body[Symbol.asyncIterator]();
      let chunk: Uint8Array | undefined;
      let at = 0;
      return {
        async next(): Promise<IteratorResult<Uint8Array>> {
          while (!chunk || at >= chunk.length) {
            const r = await src.next();
            if (r.done) return { done: true, value: undefined };
            chunk = r.value;
            at = 0;
          }
          const piece = chunk.subarray(at, at + PIECE);
          at += piece.length;
          await bucket.take(piece.length);
          return { done: false, value: piece };
        },
        async return(): Promise<IteratorResult<Uint8Array>> {
          await src.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
  return body.size === undefined ? paced : Object.assign(paced, { size: body.size });
}

/** An upload body paced by `bucket`: a Readable an HTTP client or a pipe can consume. */
export function throttledReadable(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, bucket: TokenBucket): Readable {
  return Readable.from(throttled(body, bucket), { objectMode: false });
}
