import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CHUNK, sha256 } from '../../src/cache/hash.js';
import { serializeManifest } from '../../src/formats/manifest.js';
import { type Moved, ObjectStore } from '../../src/cache/store.js';
import { sameVersion, type StatKey } from '../../src/cache/statcache.js';
import { FormatError, TdvError } from '../../src/errors.js';
import { sleep, useTmpDirs } from '../helpers/tmp.js';
import { hasPython, mmapWriter, stop } from '../helpers/writers.js';

const tmp = useTmpDirs();

function newStore(): { store: ObjectStore; root: string; tmpDir: string; base: string } {
  const base = tmp();
  const root = path.join(base, 'cache');
  const tmpDir = path.join(base, 'tmp');
  return { store: new ObjectStore(root, tmpDir), root, tmpDir, base };
}

const mode = (p: string) => fs.statSync(p).mode & 0o777;
const sameVersionNow = (file: string, st: StatKey) => sameVersion(fs.statSync(file), st);
const leftovers = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir) : []);

describe('ObjectStore.addBufferSync', () => {
  it('stores content at files/sha256/<2 hex>/<62 hex>, read-only (0444)', () => {
    const { store, root } = newStore();
    const oid = store.addBufferSync('hello\n');
    expect(oid).toBe(sha256('hello\n'));
    const p = path.join(root, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
    expect(store.pathOf(oid)).toBe(p);
    expect(oid.slice(2)).toHaveLength(62);
    expect(fs.readFileSync(p, 'utf8')).toBe('hello\n');
    expect(mode(p)).toBe(0o444);
    expect(store.has(oid)).toBe(true);
  });

  it('is idempotent: the same content gives the same id and the object is never rewritten', () => {
    const { store, tmpDir } = newStore();
    const oid = store.addBufferSync(Buffer.from('same bytes'));
    const before = fs.statSync(store.pathOf(oid), { bigint: true });
    expect(store.addBufferSync('same bytes')).toBe(oid);
    const after = fs.statSync(store.pathOf(oid), { bigint: true });
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeNs).toBe(before.mtimeNs);
    expect(after.ctimeNs).toBe(before.ctimeNs);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('appends .dir for a manifest, both to the id and to the object name', () => {
    const { store, root } = newStore();
    const text = serializeManifest([{ relpath: 'a', sha256: 'a'.repeat(64), size: 1 }]);
    const oid = store.addBufferSync(text, true);
    expect(oid).toBe(`${sha256(text)}.dir`);
    const p = path.join(root, 'files', 'sha256', oid.slice(0, 2), `${sha256(text).slice(2)}.dir`);
    expect(fs.readFileSync(p, 'utf8')).toBe(text);
    expect(mode(p)).toBe(0o444);
  });

  it('leaves no temp file behind', () => {
    const { store, tmpDir } = newStore();
    store.addBufferSync('x');
    store.addBufferSync('y');
    expect(leftovers(tmpDir)).toEqual([]);
  });
});

describe('ObjectStore.addFileCopy', () => {
  it('stores a small file as a read-only copy and leaves the source alone', async () => {
    const { store, base } = newStore();
    const src = path.join(base, 'small.csv');
    fs.writeFileSync(src, 'a,b\n1,2\n');
    const st = fs.statSync(src);
    const seen: number[] = [];
    const oid = await store.addFileCopy(src, st, (n) => seen.push(n));
    expect(oid).toBe(sha256('a,b\n1,2\n'));
    expect(fs.readFileSync(store.pathOf(oid), 'utf8')).toBe('a,b\n1,2\n');
    expect(mode(store.pathOf(oid))).toBe(0o444);
    expect(fs.statSync(store.pathOf(oid)).ino).not.toBe(fs.statSync(src).ino);
    expect(mode(src) & 0o200).not.toBe(0);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(8);
  });

  it('stores a file larger than one chunk with the right id and bytes, and no temp file left', async () => {
    const { store, base, tmpDir } = newStore();
    const data = randomBytes(2 * CHUNK + 777);
    const src = path.join(base, 'big.bin');
    fs.writeFileSync(src, data);
    const st = fs.statSync(src);
    const seen: number[] = [];
    const oid = await store.addFileCopy(src, st, (n) => seen.push(n));
    expect(oid).toBe(sha256(data));
    expect(fs.readFileSync(store.pathOf(oid)).equals(data)).toBe(true);
    expect(mode(store.pathOf(oid))).toBe(0o444);
    expect(fs.statSync(store.pathOf(oid)).ino).not.toBe(fs.statSync(src).ino);
    expect(seen.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('with likelyCached, hashes first and copies only a new object', async () => {
    const { store, base, tmpDir } = newStore();
    const data = randomBytes(CHUNK + 123);
    const src = path.join(base, 'again.bin');
    fs.writeFileSync(src, data);
    const oid = await store.addFileCopy(src, fs.statSync(src), undefined, true);
    expect(oid).toBe(sha256(data));
    expect(fs.readFileSync(store.pathOf(oid)).equals(data)).toBe(true);
    const ino = fs.statSync(store.pathOf(oid)).ino;
    expect(await store.addFileCopy(src, fs.statSync(src), undefined, true)).toBe(oid);
    expect(fs.statSync(store.pathOf(oid)).ino).toBe(ino);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('never rewrites an existing object when the same content is added again', async () => {
    const { store, base, tmpDir } = newStore();
    for (const size of [100, CHUNK + 100]) {
      const data = randomBytes(size);
      const src = path.join(base, `f${size}`);
      fs.writeFileSync(src, data);
      const oid = await store.addFileCopy(src, fs.statSync(src));
      const before = fs.statSync(store.pathOf(oid), { bigint: true });
      expect(await store.addFileCopy(src, fs.statSync(src))).toBe(oid);
      expect(store.addBufferSync(data)).toBe(oid);
      const after = fs.statSync(store.pathOf(oid), { bigint: true });
      expect(after.ino).toBe(before.ino);
      expect(after.ctimeNs).toBe(before.ctimeNs);
    }
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('fails with CHANGED_WHILE_ADDING for a large file whose size differs from its stat, storing nothing', async () => {
    const { store, base, tmpDir } = newStore();
    const data = randomBytes(CHUNK + 4096);
    const src = path.join(base, 'growing.bin');
    fs.writeFileSync(src, data);
    const stale = { ...fs.statSync(src), size: data.length - 10 };
    await expect(store.addFileCopy(src, stale)).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
    expect(store.has(sha256(data))).toBe(false);
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('fails for a large file whose mtime differs from the stat it was given', async () => {
    const { store, base, tmpDir } = newStore();
    const data = randomBytes(CHUNK + 1);
    const src = path.join(base, 'touched.bin');
    fs.writeFileSync(src, data);
    const st = fs.statSync(src);
    await expect(store.addFileCopy(src, { ...st, mtimeMs: st.mtimeMs - 1000 })).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('fails for a small file whose size differs from the stat it was given, storing nothing', async () => {
    // The caller records st.size in the manifest: storing bytes of another size would make them disagree.
    const { store, base, tmpDir } = newStore();
    const src = path.join(base, 'small-growing.txt');
    fs.writeFileSync(src, 'now longer than before\n');
    await expect(store.addFileCopy(src, { ...fs.statSync(src), size: 5 })).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('reports a missing source file as ENOENT', async () => {
    const { store, base } = newStore();
    await expect(store.addFileCopy(path.join(base, 'gone'), { ino: 0, size: 3, mtimeMs: 0, ctimeMs: 0, mode: 0o644 })).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('ObjectStore.addFileCopy while another process writes the file', () => {
  it.skipIf(!hasPython)('names every object by the hash of its own bytes, even for writes no stat can see (a shared mapping)', async () => {
    const { store, base } = newStore();
    const src = path.join(base, 'mapped.bin');
    fs.writeFileSync(src, randomBytes(8 * CHUNK));
    const writer = await mmapWriter(src);
    try {
      const st = fs.statSync(src); // after the writer dirtied its page: later writes leave it as it is
      const oids: string[] = [];
      for (let round = 0; round < 6; round++) {
        oids.push(await store.addFileCopy(src, st));
        // Hashing first, then copying: two reads that disagree are refused, and nothing is stored.
        const before = [...store.list()];
        const again = await store.addFileCopy(src, st, undefined, true).catch((err: unknown) => err);
        if (typeof again === 'string') oids.push(again);
        else {
          expect(again).toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
          expect([...store.list()]).toEqual(before);
        }
      }
      expect(sameVersionNow(src, st)).toBe(true); // the writes really were invisible to stat
      for (const oid of oids) expect(sha256(fs.readFileSync(store.pathOf(oid)))).toBe(oid);
      expect(new Set(oids).size).toBeGreaterThan(1); // and really changed the bytes between copies
    } finally {
      await stop(writer);
    }
  });

  it('refuses a large file appended to between its stat and its copy, storing nothing', async () => {
    const { store, base, tmpDir } = newStore();
    const src = path.join(base, 'log.bin');
    fs.writeFileSync(src, randomBytes(2 * CHUNK));
    const st = fs.statSync(src);
    fs.appendFileSync(src, 'more');
    for (const likely of [false, true]) {
      await expect(store.addFileCopy(src, st, undefined, likely)).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING', message: expect.stringContaining(`${src} changed while it was being added`) });
    }
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('refuses a file replaced by a symlink since its stat, reading nothing through it', async () => {
    const { store, base, tmpDir } = newStore();
    const secret = path.join(base, 'secret');
    fs.writeFileSync(secret, randomBytes(CHUNK + 5));
    const src = path.join(base, 'data.bin');
    fs.writeFileSync(src, randomBytes(CHUNK + 5));
    const st = fs.lstatSync(src);
    fs.rmSync(src);
    fs.symlinkSync(secret, src);
    await expect(store.addFileCopy(src, st)).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
    expect(() => store.hashSmallSync(src, true, st)).toThrow(expect.objectContaining({ code: 'CHANGED_WHILE_ADDING' }));
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });
});

describe('ObjectStore.hashSmallSync', () => {
  it('hashes a small file and stores it only when asked', () => {
    const { store, base } = newStore();
    const src = path.join(base, 's.txt');
    fs.writeFileSync(src, 'small');
    expect(store.hashSmallSync(src, false)).toEqual({ oid: sha256('small'), size: 5 });
    expect(store.has(sha256('small'))).toBe(false);
    expect(store.hashSmallSync(src, true)).toEqual({ oid: sha256('small'), size: 5 });
    expect(fs.readFileSync(store.pathOf(sha256('small')), 'utf8')).toBe('small');
    expect(mode(store.pathOf(sha256('small')))).toBe(0o444);
  });

  it('refuses a file that has grown beyond one chunk, storing nothing', () => {
    const { store, base, tmpDir } = newStore();
    const src = path.join(base, 'grown');
    fs.writeFileSync(src, Buffer.alloc(CHUNK + 1));
    expect(() => store.hashSmallSync(src, true)).toThrow(expect.objectContaining({ code: 'CHANGED_WHILE_ADDING' }));
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });

  it('refuses a small file rewritten (same size) since its stat, storing nothing', () => {
    const { store, base, tmpDir } = newStore();
    const src = path.join(base, 'same-size');
    fs.writeFileSync(src, 'version 1');
    const st = fs.statSync(src);
    fs.rmSync(src);
    fs.writeFileSync(src, 'version 2'); // a new inode: seen whatever the clock granularity
    expect(() => store.hashSmallSync(src, true, st)).toThrow(expect.objectContaining({ code: 'CHANGED_WHILE_ADDING' }));
    expect([...store.list()]).toEqual([]);
    expect(leftovers(tmpDir)).toEqual([]);
  });
});

describe('ObjectStore.addFileMove', () => {
  it('stores the file by hard link, read-only, keeping the workspace name', async () => {
    const { store, base } = newStore();
    const src = path.join(base, 'm.txt');
    fs.writeFileSync(src, 'move me');
    const oid = await store.addFileMove(src, fs.lstatSync(src));
    expect(oid).toBe(sha256('move me'));
    expect(fs.existsSync(src)).toBe(true);
    expect(fs.readFileSync(store.pathOf(oid), 'utf8')).toBe('move me');
    expect(mode(store.pathOf(oid))).toBe(0o444);
  });

  it('refuses a file that changed after its stat was taken, storing nothing', async () => {
    const { store, base } = newStore();
    const src = path.join(base, 'm.txt');
    fs.writeFileSync(src, 'move me');
    const st = fs.lstatSync(src);
    fs.writeFileSync(src, 'moved, and longer'); // a size change: detectable whatever the clock granularity
    await expect(store.addFileMove(src, st)).rejects.toMatchObject({ code: 'CHANGED_WHILE_ADDING' });
    expect([...store.list()]).toEqual([]);
  });
});

describe("ObjectStore.addFileMove never takes a file that is not only the workspace's (issue 11, class 5)", () => {
  it('copies a file that has another hard link, leaving that inode and its mode alone', async () => {
    const { store, base } = newStore();
    const theirs = path.join(base, 'theirs.csv');
    fs.writeFileSync(theirs, 'shared bytes', { mode: 0o644 });
    const src = path.join(base, 'ws.csv');
    fs.linkSync(theirs, src);
    const moved: unknown[] = [];
    const oid = await store.addFileMove(src, fs.lstatSync(src), undefined, (m) => moved.push(m));
    expect(oid).toBe(sha256('shared bytes'));
    expect(moved).toEqual([]);
    expect(fs.statSync(store.pathOf(oid)).ino).not.toBe(fs.statSync(theirs).ino);
    expect(fs.statSync(theirs).nlink).toBe(2);
    expect(mode(theirs)).toBe(0o644);
    expect(mode(store.pathOf(oid))).toBe(0o444);
  });

  it('reports what it moved, and unmove takes it back: object gone, mode restored', async () => {
    const { store, base } = newStore();
    const src = path.join(base, 'm.txt');
    fs.writeFileSync(src, 'mine alone', { mode: 0o640 });
    const moved: Moved[] = [];
    const oid = await store.addFileMove(src, fs.lstatSync(src), undefined, (m) => moved.push(m));
    expect(moved).toEqual([{ dev: fs.statSync(src).dev, ino: fs.statSync(src).ino, mode: 0o640 }]);
    expect(fs.statSync(store.pathOf(oid)).ino).toBe(fs.statSync(src).ino);
    expect(mode(src)).toBe(0o444);
    store.unmove(src, oid, moved[0]!);
    expect(store.has(oid)).toBe(false);
    expect(mode(src)).toBe(0o640);
    expect(fs.readFileSync(src, 'utf8')).toBe('mine alone');
  });
});

describe('ObjectStore manifests', () => {
  const A = 'a'.repeat(64);
  const B = 'b'.repeat(64);

  it('writeManifest then readManifest returns the sorted entries', () => {
    const { store } = newStore();
    const oid = store.writeManifest([
      { relpath: 'z', sha256: A, size: 2 },
      { relpath: 'a/b', sha256: B, size: 1, isexec: true },
    ]);
    expect(oid).toMatch(/^[0-9a-f]{64}\.dir$/);
    expect(store.readManifest(oid)).toEqual([
      { relpath: 'a/b', sha256: B, size: 1, isexec: true },
      { relpath: 'z', sha256: A, size: 2 },
    ]);
  });

  it('readManifest detects a manifest whose bytes no longer hash to its name', () => {
    const { store } = newStore();
    const oid = store.writeManifest([{ relpath: 'x', sha256: A, size: 1 }]);
    const p = store.pathOf(oid);
    fs.chmodSync(p, 0o644);
    // Still a perfectly valid manifest, just not the one this id names.
    fs.writeFileSync(p, serializeManifest([{ relpath: 'x', sha256: B, size: 1 }]));
    const read = () => store.readManifest(oid);
    expect(read).toThrow(FormatError);
    expect(read).toThrow(/corrupt/);
  });

  it('readManifest detects a manifest corrupted by bytes that are not UTF-8', () => {
    const { store } = newStore();
    const oid = store.writeManifest([{ relpath: 'x', sha256: A, size: 1 }]);
    const p = store.pathOf(oid);
    fs.chmodSync(p, 0o644);
    const bytes = fs.readFileSync(p);
    bytes[3] = 0xff;
    fs.writeFileSync(p, bytes);
    expect(() => store.readManifest(oid)).toThrow(/corrupt/);
  });

  it('readManifest of a manifest not in the cache says so and suggests tdv pull', () => {
    const { store } = newStore();
    try {
      store.readManifest(`${A}.dir`);
      expect.unreachable();
    } catch (err) {
      expect((err as TdvError).code).toBe('MISSING_OBJECTS');
      expect((err as Error).message).toMatch(/tdv pull/);
    }
  });

  it('hasAll is true only when the manifest and every file it lists are present', () => {
    const { store } = newStore();
    const f1 = store.addBufferSync('one');
    const f2 = store.addBufferSync('two');
    const dir = store.writeManifest([
      { relpath: '1', sha256: f1, size: 3 },
      { relpath: '2', sha256: f2, size: 3 },
    ]);
    expect(store.hasAll(dir)).toBe(true);
    expect(store.hasAll(f1)).toBe(true);
    store.remove([f2]);
    expect(store.hasAll(dir)).toBe(false);
    expect(store.hasAll(`${B}.dir`)).toBe(false);
  });
});

describe('ObjectStore.list, remove and stamp', () => {
  it('list yields exactly the stored ids, files and manifests, ignoring stray names', () => {
    const { store, root } = newStore();
    expect([...store.list()]).toEqual([]);
    const a = store.addBufferSync('a');
    const b = store.addBufferSync('b');
    const d = store.addBufferSync('[]', true);
    fs.writeFileSync(path.join(path.dirname(store.pathOf(a)), 'junk.tmp'), 'x');
    fs.mkdirSync(path.join(root, 'files', 'sha256', 'zz'), { recursive: true });
    fs.writeFileSync(path.join(root, 'files', 'sha256', 'README'), 'x');
    expect([...store.list()].sort()).toEqual([a, b, d].sort());
    expect(store.sizeOf(a)).toBe(1);
  });

  it('remove deletes the objects and prunes prefix directories left empty', () => {
    const { store } = newStore();
    const a = store.addBufferSync('a');
    const b = store.addBufferSync('b');
    store.remove([a]);
    expect(store.has(a)).toBe(false);
    expect(fs.existsSync(path.dirname(store.pathOf(a)))).toBe(false);
    expect(store.has(b)).toBe(true);
    expect([...store.list()]).toEqual([b]);
    expect(() => store.remove([a])).not.toThrow(); // already gone
  });

  it('the stamp is stable while nothing changes and the same for every store on the cache', () => {
    const { store, root, tmpDir } = newStore();
    store.addBufferSync('a');
    expect(store.stamp()).toEqual(store.stamp());
    expect(new ObjectStore(root, tmpDir).stamp()).toEqual(store.stamp());
  });

  it('the stamp changes when an object is removed, whether or not its prefix directory goes', async () => {
    const { store } = newStore();
    // Two contents whose ids share a prefix directory, and one alone in its own.
    const byPrefix = new Map<string, string[]>();
    let i = 0;
    let pair: string[] | undefined;
    while (!pair) {
      const s = `content ${i++}`;
      const list = byPrefix.get(sha256(s).slice(0, 2)) ?? [];
      list.push(s);
      byPrefix.set(sha256(s).slice(0, 2), list);
      if (list.length === 2) pair = list;
    }
    const [x, y] = pair.map((c) => store.addBufferSync(c)) as [string, string];
    const lone = store.addBufferSync('lone');
    expect(lone.slice(0, 2)).not.toBe(x.slice(0, 2));
    await sleep(20); // let the clock tick past the writes
    const s0 = store.stamp();
    store.remove([x]); // its prefix directory stays (y is still there)
    expect(fs.existsSync(path.dirname(store.pathOf(y)))).toBe(true);
    const s1 = store.stamp();
    expect(s1.fp).not.toBe(s0.fp);
    await sleep(20);
    store.remove([lone]); // its prefix directory goes
    expect(store.stamp().fp).not.toBe(s1.fp);
  });

  it('the stamp changes when the whole cache is wiped by hand', async () => {
    const { store, root } = newStore();
    store.addBufferSync('a');
    const s0 = store.stamp();
    fs.rmSync(path.join(root, 'files'), { recursive: true, force: true });
    expect(store.stamp().fp).not.toBe(s0.fp);
  });

  it('can store an object again after removing it, with the same store instance', async () => {
    const { store, base } = newStore();
    const a = store.addBufferSync('a');
    store.remove([a]); // prunes the now-empty prefix directory
    expect(store.addBufferSync('a')).toBe(a);
    expect(fs.readFileSync(store.pathOf(a), 'utf8')).toBe('a');
    store.remove([a]);
    const src = path.join(base, 'src');
    fs.writeFileSync(src, 'a');
    expect(await store.addFileCopy(src, fs.statSync(src))).toBe(a);
    expect(store.has(a)).toBe(true);
  });
});
