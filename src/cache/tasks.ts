import fs from 'node:fs';
import { errnoCode, TdvError } from '../errors.js';
import { publishTask } from '../remote/publish.js';
import { sha256 } from './hash.js';
import { sameVersion, type StatKey } from './statcache.js';
import { Linker, type LinkType } from '../workspace/link.js';
import { assertObjectFile, ObjectStore, readObjectFileSync } from './store.js';

/**
 * Per-file work the two-thread pool can split: plain functions of a setup and
 * an item, so the main thread and the worker run exactly the same code.
 */
export interface Tasks {
  /** Link a cache object into the workspace; the result is the new file's stat key, taken right after. */
  link: { setup: { types: LinkType[]; allowRootLinks?: boolean }; item: [object: string, dest: string, isexec: boolean]; result: WrittenStat };
  /**
   * Hash a small file (at most one chunk) and, with `store`, put exactly the
   * bytes hashed in the cache. With the walk's ino, mtime and ctime as well as
   * its size, a file that is not that version before or after the read fails
   * with CHANGED_WHILE_ADDING (and nothing is stored).
   */
  hash: { setup: { root: string; tmpDir: string; store: boolean }; item: [abs: string, size: number, ino?: number, mtimeMs?: number, ctimeMs?: number]; result: string };
  /**
   * Copy a cache object into a local remote's object directory: a temp name,
   * then a rename. A failure is returned as "CODE message" (empty on success),
   * not thrown, so one bad object does not stop the batch.
   */
  publish: { setup: { objectsDir: string }; item: [from: string, oid: string]; result: string };
  /**
   * Hash a small file (at most one chunk) to check it against its name: the
   * result is its SHA-256 hex, or "!CODE message" when it cannot be read.
   */
  verify: { setup: Record<string, never>; item: [file: string]; result: string };
}

export type TaskName = keyof Tasks;

/** ino, mtimeMs, ctimeMs, size of a file just written: compact to pass between threads. */
export type WrittenStat = [ino: number, mtimeMs: number, ctimeMs: number, size: number];

export function sameStat(w: WrittenStat, st: Omit<StatKey, 'mode'>): boolean {
  return sameVersion({ ino: w[0], mtimeMs: w[1], ctimeMs: w[2], size: w[3] }, st);
}

export function makeTask<K extends TaskName>(name: K, setup: Tasks[K]['setup']): (item: Tasks[K]['item']) => Tasks[K]['result'] {
  if (name === 'link') {
    const { types, allowRootLinks } = setup as Tasks['link']['setup'];
    const linker = new Linker(types, { allowRootLinks });
    return ((item: Tasks['link']['item']) => {
      assertObjectFile(item[0]); // a FIFO in the cache would block a copy forever
      linker.link(item[0], item[1], item[2]);
      const st = fs.lstatSync(item[1]);
      return [st.ino, st.mtimeMs, st.ctimeMs, st.size];
    }) as never;
  }
  if (name === 'publish') return publishTask((setup as Tasks['publish']['setup']).objectsDir) as never;
  if (name === 'verify') {
    return (([file]: Tasks['verify']['item']) => {
      try {
        // Never a blocking open: a FIFO planted in the cache is an error, not a hang.
        return sha256(readObjectFileSync(file));
      } catch (err) {
        return `!${errnoCode(err) ?? 'EIO'} ${(err as Error).message}`;
      }
    }) as never;
  }
  const s = setup as Tasks['hash']['setup'];
  const store = new ObjectStore(s.root, s.tmpDir);
  return ((item: Tasks['hash']['item']) => {
    const [abs, expected, ino, mtimeMs, ctimeMs] = item;
    const st = ino === undefined || mtimeMs === undefined || ctimeMs === undefined ? undefined : { ino, mtimeMs, ctimeMs, size: expected };
    const { oid, size } = store.hashSmallSync(abs, s.store, st);
    if (size !== expected) throw new TdvError('CHANGED_WHILE_ADDING', `${abs} changed while it was being read; run the command again when nothing writes to it`);
    return oid;
  }) as never;
}
