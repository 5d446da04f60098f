/**
 * The work queue the two threads of the pool share: `queue[0]` is the next
 * item to take, `queue[1]` is set to 1 to make both stop (after an error),
 * `queue[2]` counts the items the worker finished (for progress: this thread
 * cannot hear the worker's messages while it works synchronously).
 * Taking chunks rather than halves balances the work by itself, whatever
 * each thread's start-up time or speed.
 */
export const QUEUE_CHUNK = 64;

export function newQueue(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(12));
}

/** Calls `each` for every item this thread takes, until none are left or someone stops. */
export function takeChunks(queue: Int32Array, n: number, each: (i: number) => void): void {
  for (;;) {
    if (Atomics.load(queue, 1) !== 0) return;
    const start = Atomics.add(queue, 0, QUEUE_CHUNK);
    if (start >= n) return;
    const end = Math.min(start + QUEUE_CHUNK, n);
    try {
      for (let i = start; i < end; i++) each(i);
    } catch (err) {
      Atomics.store(queue, 1, 1);
      throw err;
    }
  }
}
