import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { errnoCode, TdvError } from '../errors.js';
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
}

/**
 * Runs a per-file task over many items on two threads: this one takes the first
 * half, a worker the second. Per-file system calls (open, read, write, copy,
 * chmod, rename) are CPU-bound in the kernel or wait on the disk, so a second
 * core nearly halves large batches. Small batches, or a missing compiled worker
 * (running from TypeScript sources), stay on this thread.
 */
export async function inTwoThreads<K extends TaskName>(
  task: K,
  setup: Tasks[K]['setup'],
  items: readonly Tasks[K]['item'][],
  opts: PoolOptions = {},
): Promise<Tasks[K]['result'][]> {
  const workerUrl = opts.workerUrl ?? WORKER;
  const useWorker = items.length >= (opts.parallelMin ?? PARALLEL_MIN) && fs.existsSync(workerUrl);
  const split = useWorker ? Math.ceil(items.length / 2) : items.length;
  let worker: Promise<unknown[]> | undefined;
  if (useWorker) {
    worker = new Promise<unknown[]>((resolve, reject) => {
      const w = new Worker(workerUrl, { workerData: { task, setup, items: items.slice(split) } });
      w.once('message', (m: WorkerReply) => {
        if (m.results) resolve(m.results);
        else if (m.error?.tdvCode) reject(new TdvError(m.error.tdvCode, m.error.message));
        else reject(new ItemError(split + (m.error?.index ?? 0), m.error?.code, m.error?.message ?? 'worker failed'));
      });
      w.once('error', reject);
    });
    // Let the worker start while this thread works; a rejection is collected below.
    worker.catch(() => undefined);
  }
  const run = makeTask(task, setup);
  const results: Tasks[K]['result'][] = [];
  let first: unknown;
  for (let i = 0; i < split; i++) {
    try {
      results.push(run(items[i]!));
    } catch (err) {
      first = err instanceof TdvError || !(err instanceof Error) ? err : new ItemError(i, errnoCode(err), err.message);
      break;
    }
  }
  let rest: unknown[] = [];
  try {
    rest = (await worker) ?? [];
  } catch (err) {
    first ??= err;
  }
  if (first) throw first;
  return results.concat(rest as Tasks[K]['result'][]);
}
