import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { errnoCode, isErrorCode, TdvError } from '../errors.js';
import { newQueue, takeChunks } from './pool-queue.js';
import { makeTask, type TaskName, type Tasks } from './tasks.js';

/**
 * The item that failed, by index, with its errno code. A TdvError is rethrown
 * as it is instead (from the worker: rebuilt with the same code and message).
 */
export class ItemError extends Error {
  constructor(
    readonly index: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface WorkerReply {
  done?: number[];
  results?: unknown[];
  error?: { index: number; code?: string; tdvCode?: string; message: string };
}

/** Below this many files a worker thread's start-up (tens of ms) costs more than it saves. */
export const PARALLEL_MIN = 2000;

const WORKER = new URL('./worker.js', import.meta.url);

export interface PoolOptions {
  parallelMin?: number;
  /** The compiled worker entry; injectable for tests. */
  workerUrl?: URL;
  /** Leave every item to the worker (tests use it to exercise the worker path). */
  workerOnly?: boolean;
  /**
   * Hears that `n` more items are done, by either thread, as they finish (for
   * progress). Called on this thread only: the worker's count is read from the
   * shared queue after each item here, and the rest when the worker is done.
   */
  onDone?: (n: number) => void;
}

/**
 * Runs a per-file task over many items on two threads, this one and a worker,
 * both taking chunks from a shared counter until none are left. Per-file system
 * calls (open, read, write, copy, chmod, rename) are CPU-bound in the kernel or
 * wait on the disk, so a second core nearly halves large batches. Small
 * batches, or a missing compiled worker (running from TypeScript sources), stay
 * on this thread. Results come back in item order.
 */
export async function inTwoThreads<K extends TaskName>(task: K, setup: Tasks[K]['setup'], items: readonly Tasks[K]['item'][], opts: PoolOptions = {}): Promise<Tasks[K]['result'][]> {
  const workerUrl = opts.workerUrl ?? WORKER;
  const useWorker = items.length >= (opts.parallelMin ?? PARALLEL_MIN) && fs.existsSync(workerUrl);
  const queue = newQueue();
  const results: Tasks[K]['result'][] = new Array(items.length);
  const allDone = () => {
    for (let i = 0; i < items.length; i++) if (results[i] === undefined) return false;
    return true;
  };
  let worker: Promise<void> | undefined;
  if (useWorker) {
    worker = new Promise<void>((resolve, reject) => {
      const w = new Worker(workerUrl, { workerData: { task, setup, items, queue } });
      w.once('message', (m: WorkerReply) => {
        if (m.done && m.results) {
          m.done.forEach((idx, k) => (results[idx] = m.results![k] as Tasks[K]['result']));
          resolve();
        } else if (isErrorCode(m.error?.tdvCode)) reject(new TdvError(m.error.tdvCode, m.error.message));
        else reject(new ItemError(m.error?.index ?? 0, m.error?.code, m.error?.message ?? 'worker failed'));
      });
      // A worker that could not start (thread limits) or died without a reply: if this
      // thread ended up doing every item, nothing is lost; otherwise say so.
      const failed = (why: string) => (allDone() ? resolve() : reject(new TdvError('WORKER_FAILED', `a worker thread ${why} before finishing its share; run the command again`)));
      w.once('error', (err) => failed(`failed (${err.message})`));
      w.once('exit', (code) => failed(`exited with code ${code}`));
    });
    // Let the worker start while this thread works; a rejection is collected below.
    worker.catch(() => undefined);
  }
  const run = makeTask(task, setup);
  const onDone = opts.onDone;
  let workerSeen = 0;
  const workerProgress = () => {
    const n = Atomics.load(queue, 2);
    if (n > workerSeen) onDone!(n - workerSeen);
    workerSeen = n;
  };
  let first: unknown;
  let current = -1;
  try {
    if (!(useWorker && opts.workerOnly))
      takeChunks(queue, items.length, (i) => {
        current = i;
        results[i] = run(items[i]!);
        if (onDone) {
          onDone(1);
          if (useWorker) workerProgress();
        }
      });
  } catch (err) {
    first = err instanceof TdvError || !(err instanceof Error) ? err : new ItemError(current, errnoCode(err), err.message);
  }
  try {
    await worker;
  } catch (err) {
    first ??= err;
  }
  if (onDone && useWorker) workerProgress();
  if (first) throw first;
  return results;
}
