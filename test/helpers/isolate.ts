import { Worker } from 'node:worker_threads';

/**
 * Runs a self-contained synchronous function (one that uses nothing but its
 * argument and built-ins) in a worker thread and reports whether it finished
 * within `ms`. A test of something that might loop forever (a regular
 * expression with catastrophic backtracking, say) then fails instead of
 * blocking the whole test run: a vitest timeout cannot interrupt synchronous code.
 */
export async function finishesWithin<A>(fn: (arg: A) => unknown, arg: A, ms: number): Promise<{ done: boolean; value?: unknown }> {
  const code = `const { parentPort, workerData } = require('node:worker_threads');
const f = (${fn.toString()});
parentPort.postMessage(f(workerData));`;
  const worker = new Worker(code, { eval: true, workerData: arg });
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve({ done: false }), ms);
      worker.once('message', (value: unknown) => {
        clearTimeout(timer);
        resolve({ done: true, value });
      });
      worker.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } finally {
    await worker.terminate();
  }
}
