/**
 * Worker-thread entry for LinkPool: links a batch of cache objects into the
 * workspace with the same Linker (and fallbacks) the main thread uses.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errnoCode, TdvError } from '../errors.js';
import { Linker, type LinkType } from './link.js';

interface Job {
  types: LinkType[];
  items: [object: string, dest: string, isexec: boolean][];
}

const job = workerData as Job;
const linker = new Linker(job.types);
let i = 0;
try {
  for (; i < job.items.length; i++) {
    const [object, dest, isexec] = job.items[i]!;
    linker.link(object, dest, isexec);
  }
  parentPort!.postMessage({ done: i });
} catch (err) {
  // A TdvError (no space left, permission denied...) keeps its code and message across the thread boundary.
  const tdvCode = err instanceof TdvError ? err.code : undefined;
  parentPort!.postMessage({ done: i, error: { index: i, code: errnoCode(err), tdvCode, message: (err as Error).message } });
}
