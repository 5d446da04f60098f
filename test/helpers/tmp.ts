import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';

/**
 * Returns a factory of fresh temporary directories (real paths) that are
 * removed after each test of the calling file.
 */
export function useTmpDirs(prefix = 'tdv-unit-'): () => string {
  const made: string[] = [];
  afterEach(() => {
    for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    made.push(d);
    return d;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
