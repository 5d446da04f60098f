/** Worker-thread entry of the two-thread pool (see pool.ts): takes chunks of items from the shared counter. */
import { parentPort, workerData } from 'node:worker_threads';
import { errnoCode, TdvError } from '../errors.js';
import { takeChunks } from './pool-queue.js';
import { makeTask, type TaskName } from './tasks.js';

const { task, setup, items, queue } = workerData as { task: TaskName; setup: never; items: never[]; queue: Int32Array };
const run = makeTask(task, setup);
const done: number[] = [];
const results: unknown[] = [];
let current = -1;
try {
  takeChunks(queue, items.length, (i) => {
    current = i;
    results.push(run(items[i]!));
    done.push(i);
    Atomics.add(queue, 2, 1);
  });
  parentPort!.postMessage({ done, results });
} catch (err) {
  // A TdvError keeps its code and message across the thread boundary.
  const tdvCode = err instanceof TdvError ? err.code : undefined;
  parentPort!.postMessage({ error: { index: current, code: errnoCode(err), tdvCode, message: (err as Error).message } });
}
