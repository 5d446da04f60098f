import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { errnoCode, TdvError } from '../errors.js';
import type { Linker } from './link.js';

export interface LinkItem {
  object: string;
  dest: string;
  isexec: boolean;
}

/**
 * The first item that failed, with its errno code. Items before it (in each
 * half) are done. A TdvError raised on this thread is rethrown as it is; one
 * raised in the worker comes back as a TdvError with the same code and message.
 */
export class LinkBatchError extends Error {
  constructor(
    readonly item: LinkItem,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface WorkerReply {
  done: number;
  error?: { index: number; code?: string; tdvCode?: string; message: string };
}

/** Below this many files a worker thread's start-up costs more than it saves. */
export const PARALLEL_MIN = 2000;

const WORKER = new URL('./link-worker.js', import.meta.url);

/**
 * Links many objects into the workspace on two threads: this one and a worker
 * taking the second half. Each file costs several system calls (copy, chmod,
 * rename) that are CPU-bound in the kernel, so a second core nearly halves a
 * large checkout. Falls back to this thread alone for small batches, or where
 * the compiled worker is not available (running from TypeScript sources).
 */
export async function linkAll(linker: Linker, items: readonly LinkItem[], opts: { parallelMin?: number; workerUrl?: URL } = {}): Promise<void> {
  const workerUrl = opts.workerUrl ?? WORKER;
  const useWorker = items.length >= (opts.parallelMin ?? PARALLEL_MIN) && fs.existsSync(workerUrl);
  const split = useWorker ? Math.ceil(items.length / 2) : items.length;
  let worker: Promise<void> | undefined;
  if (useWorker) {
    const rest = items.slice(split);
    worker = new Promise<void>((resolve, reject) => {
      const w = new Worker(workerUrl, { workerData: { types: linker.types, items: rest.map((it) => [it.object, it.dest, it.isexec]) } });
      w.once('message', (m: WorkerReply) => {
        if (!m.error) resolve();
        else if (m.error.tdvCode) reject(new TdvError(m.error.tdvCode, m.error.message));
        else reject(new LinkBatchError(rest[m.error.index]!, m.error.code, m.error.message));
      });
      w.once('error', reject);
    });
    // Let the worker start while this thread works; a rejection is collected below.
    worker.catch(() => undefined);
  }
  let first: unknown;
  for (let i = 0; i < split; i++) {
    const it = items[i]!;
    try {
      linker.link(it.object, it.dest, it.isexec);
    } catch (err) {
      first = err instanceof TdvError || !(err instanceof Error) ? err : new LinkBatchError(it, errnoCode(err), err.message);
      break;
    }
  }
  try {
    await worker;
  } catch (err) {
    first ??= err;
  }
  if (first) throw first;
}
