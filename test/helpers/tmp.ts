import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, onTestFinished } from 'vitest';

/**
 * TDV_KEEP_TMP=1 keeps the temporary directories of failed tests (and says
 * where they are), for debugging. Without it every directory a test makes is
 * removed, passed or failed: one suite run once left two 400 MB folders behind.
 */
export const KEEP_TMP = process.env.TDV_KEEP_TMP === '1';

/** Directories made outside a test (in beforeAll, or while collecting): cleanup.ts removes them after the file's tests. */
const fileScoped = new Set<string>();

function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

function keep(dir: string): void {
  console.warn(`[tmp] TDV_KEEP_TMP=1: kept ${dir}`);
}

/**
 * A fresh temporary directory (the path as made, not resolved). Made in a
 * test, it is removed when that test ends; made outside one (beforeAll, a
 * describe body), after the last test of the file (test/helpers/cleanup.ts, a
 * vitest setup file, does that). A failed test's directory stays if TDV_KEEP_TMP=1.
 */
export function makeTmpDir(prefix = 'tdv-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    onTestFinished((ctx) => (KEEP_TMP && ctx.task.result?.state === 'fail' ? keep(dir) : removeDir(dir)));
  } catch {
    // Not inside a test: onTestFinished throws, and the file's afterAll removes it.
    fileScoped.add(dir);
  }
  return dir;
}

/**
 * Removes the directories made outside tests since the last call; with
 * TDV_KEEP_TMP=1 and a failed test among `failed`, keeps them and says where.
 */
export function removeFileScopedDirs(failed: boolean): void {
  for (const dir of fileScoped) {
    if (KEEP_TMP && failed) keep(dir);
    else removeDir(dir);
  }
  fileScoped.clear();
}

/**
 * Returns a factory of fresh temporary directories (real paths) that are
 * removed after each test of the calling file.
 */
export function useTmpDirs(prefix = 'tdv-unit-'): () => string {
  const made: string[] = [];
  afterEach((ctx) => {
    const failed = ctx.task.result?.state === 'fail';
    for (const d of made.splice(0)) {
      if (KEEP_TMP && failed) keep(d);
      else removeDir(d);
    }
  });
  return () => {
    const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
    made.push(d);
    return d;
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
