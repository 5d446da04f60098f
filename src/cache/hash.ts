import fs from 'node:fs';
import fsp from 'node:fs/promises';
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
  const fh = await fsp.open(file, fs.constants.O_RDONLY);
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(CHUNK);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead));
      size += bytesRead;
      onBytes?.(bytesRead);
    }
    return { sha256: h.digest('hex'), size };
  } finally {
    await fh.close();
  }
}
