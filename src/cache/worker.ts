/** Worker-thread entry of the two-thread pool (see pool.ts): runs one task over its share of the items. */
import { parentPort, workerData } from 'node:worker_threads';
import { errnoCode, TdvError } from '../errors.js';
import { makeTask, type TaskName } from './tasks.js';

const { task, setup, items } = workerData as { task: TaskName; setup: never; items: never[] };
const run = makeTask(task, setup);
const results: unknown[] = [];
let i = 0;
try {
  for (; i < items.length; i++) results.push(run(items[i]!));
  parentPort!.postMessage({ results });
} catch (err) {
  // A TdvError keeps its code and message across the thread boundary.
  const tdvCode = err instanceof TdvError ? err.code : undefined;
  parentPort!.postMessage({ error: { index: i, code: errnoCode(err), tdvCode, message: (err as Error).message } });
}
