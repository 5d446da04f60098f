import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import { inTwoThreads, ItemError } from '../../src/cache/pool.js';
import { ObjectStore } from '../../src/cache/store.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
/** The compiled worker (`npm test` builds dist/ before running the tests). */
const WORKER = new URL('../../dist/cache/worker.js', import.meta.url);
const TWO = { parallelMin: 2, workerUrl: WORKER };
/** Every item on the worker thread. */
const WORKER_ONLY = { ...TWO, workerOnly: true };

function setup(n: number) {
  const base = tmp();
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
  const ws = path.join(base, 'ws');
  fs.mkdirSync(ws);
  const links = Array.from({ length: n }, (_, i) => [store.pathOf(store.addBufferSync(`content ${i}`)), path.join(ws, `f${i}`), i % 7 === 0] as [string, string, boolean]);
  return { store, ws, links, base };
}

describe.skipIf(!fs.existsSync(WORKER))('inTwoThreads with the compiled worker', () => {
  it('links every item on the worker, with modes and contents right', async () => {
    const { links, ws } = setup(40);
    await inTwoThreads('link', { types: ['copy'] }, links, WORKER_ONLY);
    for (const [i, [, dest, isexec]] of links.entries()) {
      expect(fs.readFileSync(dest, 'utf8')).toBe(`content ${i}`);
      expect((fs.statSync(dest).mode & 0o100) !== 0).toBe(isexec);
    }
    expect(fs.readdirSync(ws).filter((n) => n.includes('tdvtmp'))).toEqual([]);
  });

  it('reports the failing item of the worker by its index in the whole batch, with its errno code', async () => {
    const { links } = setup(10);
    fs.rmSync(links[8]![0]);
    const err = await inTwoThreads('link', { types: ['copy'] }, links, WORKER_ONLY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ItemError);
    expect((err as ItemError).index).toBe(8);
    expect((err as ItemError).code).toBe('ENOENT');
    expect(fs.existsSync(links[4]![1])).toBe(true); // items before it are done
    expect(fs.existsSync(links[8]![1])).toBe(false);
  });

  it('both threads together produce every result in item order', async () => {
    const { base } = setup(0);
    const store = new ObjectStore(path.join(base, 'c3'), path.join(base, 't3'));
    const files = Array.from({ length: 500 }, (_, i) => {
      const p = path.join(base, `m${i}`);
      fs.writeFileSync(p, `mixed ${i}`);
      return [p, fs.statSync(p).size] as [string, number];
    });
    const shas = await inTwoThreads('hash', { root: store.root, tmpDir: store.tmpDir, store: false }, files, TWO);
    expect(shas).toEqual(files.map((_, i) => sha256(`mixed ${i}`)));
  });

  it('tells onDone of every item, done on either thread, exactly once in total (for progress)', async () => {
    const { base } = setup(0);
    const files = Array.from({ length: 700 }, (_, i) => {
      const p = path.join(base, `p${i}`);
      fs.writeFileSync(p, `progress ${i}`);
      return [p, fs.statSync(p).size] as [string, number];
    });
    for (const opts of [TWO, WORKER_ONLY, { parallelMin: 10_000 }]) {
      const reports: number[] = [];
      await inTwoThreads('hash', { root: path.join(base, 'c4'), tmpDir: path.join(base, 't4'), store: false }, files, { ...opts, onDone: (n) => reports.push(n) });
      expect(reports.reduce((a, b) => a + b, 0)).toBe(files.length);
      expect(reports.every((n) => n > 0)).toBe(true);
    }
  });

  it('hashes and stores files on both threads, results in input order', async () => {
    const { base } = setup(0);
    const store = new ObjectStore(path.join(base, 'cache2'), path.join(base, 'tmp2'));
    const files = Array.from({ length: 30 }, (_, i) => {
      const p = path.join(base, `h${i}`);
      fs.writeFileSync(p, `hash me ${i}`);
      return [p, fs.statSync(p).size] as [string, number];
    });
    const shas = await inTwoThreads('hash', { root: store.root, tmpDir: store.tmpDir, store: true }, files, WORKER_ONLY);
    expect(shas).toEqual(files.map((_, i) => sha256(`hash me ${i}`)));
    for (const s of shas) expect(store.has(s)).toBe(true);
  });

  it('a TdvError in the worker comes back with its code', async () => {
    const { base } = setup(0);
    const files = Array.from({ length: 4 }, (_, i) => {
      const p = path.join(base, `g${i}`);
      fs.writeFileSync(p, 'abc');
      return [p, 3] as [string, number];
    });
    files[3] = [files[3]![0], 99]; // a size that disagrees: "changed while being read"
    const err = await inTwoThreads('hash', { root: path.join(base, 'c'), tmpDir: path.join(base, 't'), store: false }, files, WORKER_ONLY).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
  });
});

describe('inTwoThreads on one thread', () => {
  it('falls back to this thread when the worker is not available', async () => {
    const { links } = setup(5);
    await inTwoThreads('link', { types: ['copy'] }, links, { parallelMin: 2, workerUrl: new URL('file:///nonexistent/worker.js') });
    for (const [i, [, dest]] of links.entries()) expect(fs.readFileSync(dest, 'utf8')).toBe(`content ${i}`);
  });

  it('reports a failing item on this thread and stops there', async () => {
    const { links } = setup(3);
    fs.rmSync(links[1]![0]);
    const err = await inTwoThreads('link', { types: ['copy'] }, links).catch((e: unknown) => e);
    expect((err as ItemError).index).toBe(1);
    expect(fs.existsSync(links[2]![1])).toBe(false);
  });
});

describe('inTwoThreads when the worker cannot start', () => {
  it('finishes every item on this thread', async () => {
    const { links, base } = setup(20);
    const bad = path.join(base, 'bad-worker.mjs');
    fs.writeFileSync(bad, "throw new Error('cannot start');\n");
    await inTwoThreads('link', { types: ['copy'] }, links, { parallelMin: 2, workerUrl: new URL(`file://${bad}`) });
    for (const [i, [, dest]] of links.entries()) expect(fs.readFileSync(dest, 'utf8')).toBe(`content ${i}`);
  });
});
