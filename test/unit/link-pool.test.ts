import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Linker } from '../../src/cache/link.js';
import { LinkBatchError, linkAll, type LinkItem } from '../../src/cache/link-pool.js';
import { ObjectStore } from '../../src/cache/store.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
/** The compiled worker (`npm test` builds dist/ before running the tests). */
const WORKER = new URL('../../dist/cache/link-worker.js', import.meta.url);

function setup(n: number): { items: LinkItem[]; store: ObjectStore; ws: string } {
  const base = tmp();
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
  const ws = path.join(base, 'ws');
  fs.mkdirSync(ws);
  const items = Array.from({ length: n }, (_, i) => ({ object: store.pathOf(store.addBufferSync(`content ${i}`)), dest: path.join(ws, `f${i}`), isexec: i % 7 === 0 }));
  return { items, store, ws };
}

describe.skipIf(!fs.existsSync(WORKER))('linkAll on two threads', () => {
  it('links every item, half of them on the worker, with modes and contents right', async () => {
    const { items, ws } = setup(40);
    await linkAll(new Linker(['copy']), items, { parallelMin: 2, workerUrl: WORKER });
    for (const [i, it] of items.entries()) {
      expect(fs.readFileSync(it.dest, 'utf8')).toBe(`content ${i}`);
      expect((fs.statSync(it.dest).mode & 0o100) !== 0).toBe(it.isexec);
    }
    expect(fs.readdirSync(ws).filter((n) => n.includes('tdvtmp'))).toEqual([]);
  });

  it('reports the first failing item of the worker half with its errno code', async () => {
    const { items } = setup(10);
    fs.rmSync(items[8]!.object);
    const err = await linkAll(new Linker(['copy']), items, { parallelMin: 2, workerUrl: WORKER }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LinkBatchError);
    expect((err as LinkBatchError).item.dest).toBe(items[8]!.dest);
    expect((err as LinkBatchError).code).toBe('ENOENT');
    expect(fs.existsSync(items[4]!.dest)).toBe(true); // the main thread's half is done
    expect(fs.existsSync(items[8]!.dest)).toBe(false);
  });
});

describe('linkAll on one thread', () => {
  it('falls back to this thread when the worker is not available', async () => {
    const { items } = setup(5);
    await linkAll(new Linker(['copy']), items, { parallelMin: 2, workerUrl: new URL('file:///nonexistent/link-worker.js') });
    for (const [i, it] of items.entries()) expect(fs.readFileSync(it.dest, 'utf8')).toBe(`content ${i}`);
  });

  it('reports a failing item on this thread', async () => {
    const { items } = setup(3);
    fs.rmSync(items[1]!.object);
    const err = await linkAll(new Linker(['copy']), items).catch((e: unknown) => e);
    expect((err as LinkBatchError).item.dest).toBe(items[1]!.dest);
    expect(fs.existsSync(items[2]!.dest)).toBe(false);
  });
});
