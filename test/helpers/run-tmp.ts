import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Gives the test run a temp directory of its own, `<tmp>/tdv-run-XXXXXX`, and
 * points TMPDIR at it (before vitest forks its workers, so they, and every
 * process a test starts, inherit it: os.tmpdir() and mktemp then land inside).
 * Returns the teardown: it names what the tests left there, with sizes (a
 * test that should clean up after itself and did not), then removes the
 * directory, so a killed test, a crashed worker or a forgotten mkdtemp costs
 * nothing after the run. With TDV_KEEP_TMP=1 a non-empty directory stays.
 * `.ci/run` checks that no tdv-* entry is left in the real temp directory.
 */
export function useRunTmp(): () => void {
  // As KEEP_TMP in tmp.ts, which this main-process module does not import (it loads vitest's test API).
  const keep = process.env.TDV_KEEP_TMP === '1';
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-run-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    let left: string[] = [];
    try {
      left = fs.readdirSync(root).sort();
    } catch {
      return; // already gone
    }
    if (left.length > 0) {
      const list = left.map((name) => `  ${name} (${mib(sizeOf(path.join(root, name)))})`).join('\n');
      if (keep) {
        console.warn(`[tmp] TDV_KEEP_TMP=1: kept ${root}, where the tests left:\n${list}`);
        return;
      }
      console.warn(`[tmp] the tests left ${left.length} ${left.length === 1 ? 'entry' : 'entries'} in their temp directory (removed now):\n${list}`);
    }
    fs.rmSync(root, { recursive: true, force: true });
  };
}

/** Bytes below `p` (lstat sizes; what cannot be read counts 0). */
function sizeOf(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.size;
  let total = 0;
  try {
    for (const name of fs.readdirSync(p)) total += sizeOf(path.join(p, name));
  } catch {
    // unreadable directory: its size is unknown
  }
  return total;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
