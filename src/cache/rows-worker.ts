/** Worker-thread entry of `tdv diff --rows` (see scanInWorker in rows.ts): scans side A while the main thread scans B. */
import { parentPort, workerData } from 'node:worker_threads';
import { TdvError } from '../errors.js';
import { runScanJob, type ScanJob } from './rows.js';

try {
  const chunks = await runScanJob(workerData as ScanJob);
  parentPort!.postMessage(
    { chunks },
    chunks.map((c) => c.buffer as ArrayBuffer),
  );
} catch (err) {
  // A TdvError keeps its code, message and data across the thread boundary.
  const e = err instanceof TdvError ? { code: err.code, message: err.message, data: err.data } : { message: (err as Error).message };
  parentPort!.postMessage({ error: e });
}
