import fs from 'node:fs';
import { createHash } from 'node:crypto';

/** Files up to this size are read with one read call; larger ones stream in chunks of this size. */
export const CHUNK = 1 << 20;

/**
 * How a file named by a walk is opened for reading: never through a symlink
 * swapped in since the walk, and never blocking on a FIFO swapped in (on a
 * regular file O_NONBLOCK changes nothing).
 */
export const READ_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0);

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Streams `file` through SHA-256 with a fixed-size buffer, so memory stays flat
 * whatever the file size. `onBytes` reports progress.
 */
export async function hashFile(file: string, onBytes?: (n: number) => void): Promise<{ sha256: string; size: number }> {
  // A read stream reads ahead while this thread hashes: measurably faster than awaiting each read.
  const h = createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
    h.update(chunk);
    size += chunk.length;
    onBytes?.(chunk.length);
  }
  return { sha256: h.digest('hex'), size };
}

export interface HashHandleOptions {
  /**
   * Receives every chunk exactly as it was hashed, with its offset, and must be
   * done with it when its promise settles (the buffer is then reused). This is
   * how a copy is hashed while it is written: one read, so the bytes written
   * are exactly the bytes hashed.
   */
  sink?: (chunk: Buffer, position: number) => Promise<unknown>;
  onBytes?: (n: number) => void;
  /** Stop reading once more than this many bytes were read (a file growing while read). */
  limit?: number;
}

/**
 * Hashes an open file from offset 0 to its end. The next chunk is read while
 * this thread hashes the current one and the sink writes it (two buffers), so
 * reading, hashing and writing overlap as they did with a separate kernel copy.
 * With `limit`, the size returned exceeds the limit when the file was longer.
 */
export async function hashHandle(fh: fs.promises.FileHandle, opts: HashHandleOptions = {}): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  const bufs = [Buffer.allocUnsafe(CHUNK), Buffer.allocUnsafe(CHUNK)];
  const sinking: (Promise<unknown> | undefined)[] = [undefined, undefined];
  const limit = opts.limit ?? Infinity;
  let size = 0;
  let k = 0;
  let reading: Promise<{ bytesRead: number }> = fh.read(bufs[0]!, 0, CHUNK, 0);
  try {
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      const cur = k & 1;
      const chunk = bufs[cur]!.subarray(0, bytesRead);
      const position = size;
      size += bytesRead;
      h.update(chunk);
      opts.onBytes?.(bytesRead);
      if (opts.sink) {
        const writing = opts.sink(chunk, position);
        // Awaited below, maybe only after the next read: marked handled now, or a write that fails
        // (ENOSPC) meanwhile would be an unhandled rejection that ends the process.
        writing.catch(() => undefined);
        sinking[cur] = writing;
      }
      if (size > limit) break;
      // The other buffer is free once the sink has finished with it.
      await sinking[cur ^ 1];
      reading = fh.read(bufs[cur ^ 1]!, 0, CHUNK, size);
      k++;
    }
    await Promise.all(sinking);
  } catch (err) {
    // Nothing may still be reading into or writing from the buffers (or reject unheard) after this returns.
    await Promise.allSettled([reading, ...sinking]);
    throw err;
  }
  return { sha256: h.digest('hex'), size };
}
