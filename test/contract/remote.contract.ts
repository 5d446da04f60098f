import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import type { Oid } from '../../src/formats/oid.js';
import { RemoteError } from '../../src/errors.js';
import type { Remote } from '../../src/remote/remote.js';
import { tmpDir } from '../helpers/repo.js';

export interface RemoteUnderTest {
  remote: Remote;
  /** Overwrites the stored bytes of `oid` behind the remote's back. */
  corrupt(oid: Oid, bytes: Buffer): Promise<void>;
}

/**
 * What every Remote must do, whatever stores the bytes. `make` returns a fresh,
 * empty remote for each test (and may register its own cleanup).
 */
export function remoteContract(label: string, make: () => Promise<RemoteUnderTest>): void {
  /** Writes `content` to a temp file and returns [oid, path, size]. */
  function source(content: Buffer, dirOid = false): { oid: Oid; file: string; size: number } {
    const dir = tmpDir('tdv-contract-');
    const file = path.join(dir, 'src');
    fs.writeFileSync(file, content);
    return { oid: sha256(content) + (dirOid ? '.dir' : ''), file, size: content.length };
  }

  async function put(remote: Remote, content: Buffer, dirOid = false): Promise<Oid> {
    const s = source(content, dirOid);
    await remote.put(s.oid, s.file, s.size);
    return s.oid;
  }

  async function bytesOf(remote: Remote, oid: Oid): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of await remote.get(oid)) chunks.push(Buffer.from(c));
    return Buffer.concat(chunks);
  }

  /** Contents whose oids all start with `prefix`, found by trying: the remote must see real hashes. */
  function contentsWithPrefix(prefix: string, n: number, salt: string): Buffer[] {
    const out: Buffer[] = [];
    for (let i = 0; out.length < n; i++) {
      const b = Buffer.from(`${salt}:${i}`);
      if (sha256(b).startsWith(prefix)) out.push(b);
    }
    return out;
  }

  const absent = sha256(`absent ${crypto.randomUUID()}`);

  describe(`${label} remote contract`, () => {
    it.each([
      ['a small file', 1000],
      ['an empty file', 0],
      ['a 20 MiB file (multipart where the remote has it)', 20 << 20],
    ])('put then has and get return the same bytes: %s', async (_what, size) => {
      const { remote } = await make();
      const content = crypto.randomBytes(size);
      const s = source(content);
      let reported = 0;
      await remote.put(s.oid, s.file, s.size, (n) => (reported += n));
      expect(reported).toBe(size);
      expect(await remote.has(s.oid)).toBe(true);
      const got = await bytesOf(remote, s.oid);
      expect(got.length).toBe(size);
      expect(got.equals(content)).toBe(true);
    });

    it('stat gives the stored size of an object, manifests included, and undefined for an absent one', async () => {
      const { remote } = await make();
      const small = await put(remote, Buffer.from('twelve bytes'));
      const empty = await put(remote, Buffer.alloc(0));
      const dir = await put(remote, Buffer.from('[]'), true);
      expect(await remote.stat(small)).toEqual({ size: 12 });
      expect(await remote.stat(empty)).toEqual({ size: 0 });
      expect(await remote.stat(dir)).toEqual({ size: 2 });
      expect(await remote.stat(absent)).toBeUndefined();
    });

    it('stat reports the size actually stored, so a truncated object shows', async () => {
      const { remote, corrupt } = await make();
      const oid = await put(remote, Buffer.from('the whole object'));
      await corrupt(oid, Buffer.from('the wh'));
      expect(await remote.stat(oid)).toEqual({ size: 6 });
    });

    it('has is false for an object it does not hold', async () => {
      const { remote } = await make();
      expect(await remote.has(absent)).toBe(false);
    });

    it('get of an absent object throws OBJECT_NOT_ON_REMOTE, which does not stop other transfers', async () => {
      const { remote } = await make();
      const err = await remote.get(absent).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RemoteError);
      expect((err as RemoteError).code).toBe('OBJECT_NOT_ON_REMOTE');
      expect((err as RemoteError).wide).toBe(false);
      expect((err as RemoteError).message).toContain(absent);
    });

    it('listPrefix returns exactly the objects under that prefix, manifests included, and [] for an empty one', async () => {
      const { remote } = await make();
      const [a, b, c] = contentsWithPrefix('ab', 3, 'list');
      const [d] = contentsWithPrefix('cd', 1, 'list');
      const inAb = [await put(remote, a!), await put(remote, b!), await put(remote, c!, true)];
      const inCd = [await put(remote, d!)];
      expect(inAb[2]).toMatch(/^ab[0-9a-f]{62}\.dir$/);
      expect((await remote.listPrefix('ab')).sort()).toEqual([...inAb].sort());
      expect(await remote.listPrefix('cd')).toEqual(inCd);
      expect(await remote.listPrefix('ef')).toEqual([]);
    });

    it('list returns every object on the remote', async () => {
      const { remote } = await make();
      const put1 = await Promise.all([1, 2, 3, 4, 5].map((i) => put(remote, Buffer.from(`object ${i}`))));
      const manifest = await put(remote, Buffer.from('[]'), true);
      const all: Oid[] = [];
      for await (const oid of remote.list()) all.push(oid);
      expect(all.sort()).toEqual([...put1, manifest].sort());
    });

    it('list of an empty remote yields nothing', async () => {
      const { remote } = await make();
      const all: Oid[] = [];
      for await (const oid of remote.list()) all.push(oid);
      expect(all).toEqual([]);
    });

    it('stores run-cache records beside the objects: put, get, list, absent is undefined', async () => {
      const { remote } = await make();
      const k1 = 'a'.repeat(64);
      const k2 = `b${'c'.repeat(63)}`;
      expect(await remote.listRuns()).toEqual([]);
      expect(await remote.getRun(k1)).toBeUndefined();
      await remote.putRun(k1, Buffer.from('{"outs":[],"metrics":[]}'));
      await remote.putRun(k2, Buffer.from('{"second":true}'));
      await remote.putRun(k2, Buffer.from('{"second":2}')); // a record may be replaced
      expect((await remote.listRuns()).sort()).toEqual([k1, k2]);
      expect((await remote.getRun(k1))?.toString()).toBe('{"outs":[],"metrics":[]}');
      expect((await remote.getRun(k2))?.toString()).toBe('{"second":2}');
      const objects: Oid[] = [];
      for await (const oid of remote.list()) objects.push(oid);
      expect(objects).toEqual([]); // records are not objects
    });

    it('refuses a run record over 8 MiB unread with an error that concerns only that record (not wide)', async () => {
      const { remote } = await make();
      const k = 'd'.repeat(64);
      await remote.putRun(k, Buffer.alloc(8 * 2 ** 20 + 1, 0x20));
      const err = await remote.getRun(k).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RemoteError);
      expect((err as RemoteError).code).toBe('TOO_LARGE');
      expect((err as RemoteError).wide).toBe(false);
      expect((err as RemoteError).message).toContain('d'.repeat(62));
    });

    it('stores repository markers beside the objects (repos/<id>): put, rewrite, list; they are not objects', async () => {
      const { remote } = await make();
      expect(await remote.listRepoMarkers()).toEqual([]);
      const a = 'a'.repeat(40);
      await remote.putRepoMarker(a, Buffer.from('tdv repository a\n'));
      await remote.putRepoMarker(a, Buffer.from('tdv repository a\n')); // idempotent
      await remote.putRepoMarker('unmarked', Buffer.from('unknown\n'));
      expect(await remote.listRepoMarkers()).toEqual([a, 'unmarked']);
      const objects: Oid[] = [];
      for await (const oid of remote.list()) objects.push(oid);
      expect(objects).toEqual([]);
    });

    it("get states the object's size before its bytes, so a reader can refuse a wrong one unread", async () => {
      const { remote } = await make();
      const oid = await put(remote, Buffer.from('twelve bytes'));
      const body = await remote.get(oid);
      expect(body.size).toBe(12);
      await body[Symbol.asyncIterator]().return?.(); // released without reading
    });

    it('putting the same object twice is harmless', async () => {
      const { remote } = await make();
      const content = Buffer.from('twice');
      const oid = await put(remote, content);
      await put(remote, content);
      expect(await remote.has(oid)).toBe(true);
      expect((await bytesOf(remote, oid)).equals(content)).toBe(true);
      expect(await remote.listPrefix(oid.slice(0, 2))).toEqual([oid]);
    });

    it('remove deletes objects and returns [] when all went, absent ones included', async () => {
      const { remote } = await make();
      const keep = await put(remote, Buffer.from('keep'));
      const gone = [await put(remote, Buffer.from('gone 1')), await put(remote, Buffer.from('gone 2'), true)];
      expect(await remote.remove([...gone, absent])).toEqual([]);
      for (const oid of gone) expect(await remote.has(oid)).toBe(false);
      expect(await remote.has(keep)).toBe(true);
      const all: Oid[] = [];
      for await (const oid of remote.list()) all.push(oid);
      expect(all).toEqual([keep]);
    });

    it('returns a corrupted object as stored: verifying content is the caller’s job', async () => {
      const { remote, corrupt } = await make();
      const content = Buffer.from('the original bytes');
      const oid = await put(remote, content);
      const bad = Buffer.from('something else entirely');
      await corrupt(oid, bad);
      const got = await bytesOf(remote, oid);
      expect(got.equals(content)).toBe(false);
      expect(got.equals(bad)).toBe(true);
    });

    it('lists 1,200 objects in one prefix completely (more than one page)', async () => {
      const { remote } = await make();
      // The remote does not check content against oids, so one source file serves all of them.
      const s = source(Buffer.from('same bytes'));
      const oids = contentsWithPrefix('7f', 1200, 'many').map((b) => sha256(b));
      const queue = [...oids];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let oid = queue.pop(); oid; oid = queue.pop()) await remote.put(oid, s.file, s.size);
        }),
      );
      const listed = await remote.listPrefix('7f');
      expect(listed.length).toBe(1200);
      expect(new Set(listed)).toEqual(new Set(oids));
      let n = 0;
      for await (const oid of remote.list()) if (oid.startsWith('7f')) n++;
      expect(n).toBe(1200);
    });

    describe('raw layout keys', () => {
      async function keyBytes(remote: Remote, key: string, range?: { start: number; end: number }): Promise<{ bytes: Buffer; size: number | undefined }> {
        const body = await remote.getKey(key, range);
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        return { bytes: Buffer.concat(chunks), size: body.size };
      }

      it('putKey from memory and from a file, then getKey returns the same bytes and states their size', async () => {
        const { remote } = await make();
        const small = Buffer.from('{"layout":2}');
        let reported = 0;
        await remote.putKey('tdv-remote.json', { data: small }, (n) => (reported += n));
        expect(reported).toBe(small.length);
        const big = crypto.randomBytes((9 << 20) + 3); // multipart where the remote has it
        const s = source(big);
        reported = 0;
        await remote.putKey(`packs/${sha256(big)}.pack`, { file: s.file }, (n) => (reported += n));
        expect(reported).toBe(big.length);
        const a = await keyBytes(remote, 'tdv-remote.json');
        expect(a.bytes.equals(small)).toBe(true);
        expect(a.size).toBe(small.length);
        const b = await keyBytes(remote, `packs/${sha256(big)}.pack`);
        expect(b.bytes.equals(big)).toBe(true);
        expect(b.size).toBe(big.length);
        await remote.putKey('index/empty.json.gz', { data: Buffer.alloc(0) });
        expect(await keyBytes(remote, 'index/empty.json.gz')).toEqual({ bytes: Buffer.alloc(0), size: 0 });
      });

      it('getKey with a range returns exactly those bytes: start, middle, past the end (cut), empty', async () => {
        const { remote } = await make();
        const content = crypto.randomBytes(3000);
        await remote.putKey('packs/r.pack', { data: content });
        const cases: [number, number, Buffer][] = [
          [0, 100, content.subarray(0, 100)],
          [1000, 2500, content.subarray(1000, 2500)],
          [2990, 5000, content.subarray(2990)],
          [2999, 3000, content.subarray(2999)],
          [500, 500, Buffer.alloc(0)],
          [3000, 4000, Buffer.alloc(0)],
          [9000, 9500, Buffer.alloc(0)],
        ];
        for (const [start, end, want] of cases) {
          const got = await keyBytes(remote, 'packs/r.pack', { start, end });
          expect(got.bytes.equals(want), `${start}-${end}`).toBe(true);
          expect(got.size, `${start}-${end}`).toBe(want.length);
        }
        // A large key's ranged read streams the middle of it.
        const big = crypto.randomBytes((3 << 20) + 17);
        await remote.putKey('files/sha256/ab/big', { file: source(big).file });
        const mid = await keyBytes(remote, 'files/sha256/ab/big', { start: 1 << 20, end: (3 << 20) + 5 });
        expect(mid.bytes.equals(big.subarray(1 << 20, (3 << 20) + 5))).toBe(true);
      });

      it('a ranged read of an object continues a download: files/sha256/ab/cdef... is a key', async () => {
        const { remote } = await make();
        const content = crypto.randomBytes(5000);
        const oid = await put(remote, content);
        const key = `files/sha256/${oid.slice(0, 2)}/${oid.slice(2)}`;
        expect((await keyBytes(remote, key, { start: 4000, end: 5000 })).bytes.equals(content.subarray(4000))).toBe(true);
        expect(await remote.listKeys(`files/sha256/${oid.slice(0, 2)}`)).toEqual([{ key, size: 5000 }]);
      });

      it('getKey of an absent key throws OBJECT_NOT_ON_REMOTE, ranged or not', async () => {
        const { remote } = await make();
        for (const range of [undefined, { start: 0, end: 10 }]) {
          const err = await remote.getKey('packs/none.pack', range).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(RemoteError);
          expect((err as RemoteError).code).toBe('OBJECT_NOT_ON_REMOTE');
        }
      });

      it('listKeys lists every key below a directory, nested, sorted, with sizes; max stops early; other directories are not included', async () => {
        const { remote } = await make();
        // s3rver lists a directory's files before its subdirectories rather than in byte order,
        // so these names sort the same either way (the directory remote's test checks '-' < '.' < '/').
        const keys = ['packs/b.pack', 'packs/a.pack', 'packs/c/z', 'packs/c/y', 'packs/sub/deep/x.pack', 'index/a.json.gz', 'packsx/not-under'];
        for (const [i, k] of keys.entries()) await remote.putKey(k, { data: Buffer.alloc(i + 1, 1) });
        const listed = await remote.listKeys('packs');
        expect(listed).toEqual([
          { key: 'packs/a.pack', size: 2 },
          { key: 'packs/b.pack', size: 1 },
          { key: 'packs/c/y', size: 4 },
          { key: 'packs/c/z', size: 3 },
          { key: 'packs/sub/deep/x.pack', size: 5 },
        ]);
        const two = await remote.listKeys('packs', 2);
        expect(two.length).toBeLessThanOrEqual(2);
        expect(two).toEqual(listed.slice(0, two.length));
        expect(await remote.listKeys('index')).toEqual([{ key: 'index/a.json.gz', size: 6 }]);
        expect(await remote.listKeys('nothing-here')).toEqual([]);
        expect(await remote.listKeys('packs/sub')).toEqual([{ key: 'packs/sub/deep/x.pack', size: 5 }]);
      });

      it('putKey overwrites a key whole', async () => {
        const { remote } = await make();
        await remote.putKey('tdv-remote.json', { data: Buffer.from('a much longer first version') });
        await remote.putKey('tdv-remote.json', { data: Buffer.from('v2') });
        expect((await keyBytes(remote, 'tdv-remote.json')).bytes.toString()).toBe('v2');
        expect(await remote.listKeys('')).toEqual([{ key: 'tdv-remote.json', size: 2 }]);
      });

      it('deleteKeys deletes keys and returns [] when all went, absent ones included', async () => {
        const { remote } = await make();
        await remote.putKey('packs/1.pack', { data: Buffer.from('1') });
        await remote.putKey('packs/2.pack', { data: Buffer.from('2') });
        await remote.putKey('index/1.json.gz', { data: Buffer.from('i') });
        expect(await remote.deleteKeys(['packs/1.pack', 'index/1.json.gz', 'packs/absent.pack', 'nodir/absent'])).toEqual([]);
        expect(await remote.listKeys('packs')).toEqual([{ key: 'packs/2.pack', size: 1 }]);
        expect(await remote.listKeys('index')).toEqual([]);
        expect(await remote.deleteKeys([])).toEqual([]);
      });

      it('deleteKeys removes more than one batch (1,000 keys)', async () => {
        const { remote } = await make();
        const keys = Array.from({ length: 1003 }, (_, i) => `index/k${String(i).padStart(4, '0')}`);
        const queue = [...keys];
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            for (let k = queue.pop(); k; k = queue.pop()) await remote.putKey(k, { data: Buffer.from(k) });
          }),
        );
        expect((await remote.listKeys('index')).length).toBe(1003);
        expect(await remote.deleteKeys(keys)).toEqual([]);
        expect(await remote.listKeys('index')).toEqual([]);
      });

      it.each(['../x', '/abs', 'a//b', 'x/./y', 'x/../y', '', 'a/', 'sp ace', 'a\\b', 'ü'])('refuses the bad key %j in every raw-key call (BAD_KEY), touching nothing', async (key) => {
        const { remote } = await make();
        const calls: (() => Promise<unknown>)[] = [
          () => remote.putKey(key, { data: Buffer.from('x') }),
          () => remote.getKey(key),
          () => remote.getKey(key, { start: 0, end: 1 }),
          () => remote.deleteKeys(['packs/fine', key]),
        ];
        for (const call of calls) {
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(RemoteError);
          expect((err as RemoteError).code).toBe('BAD_KEY');
          expect((err as RemoteError).message).toContain(remote.name);
        }
        expect(await remote.listKeys('')).toEqual([]);
      });

      it('a putKey whose source fails leaves no key and nothing listed', async () => {
        const { remote } = await make();
        await remote.putKey('packs/p.pack', { data: Buffer.from('old') });
        const missing = path.join(tmpDir('tdv-contract-'), 'gone');
        const err = await remote.putKey('packs/p.pack', { file: missing }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(await remote.putKey('packs/q.pack', { file: missing }).catch(() => 'failed')).toBe('failed');
        expect((await keyBytes(remote, 'packs/p.pack')).bytes.toString()).toBe('old');
        expect(await remote.listKeys('packs')).toEqual([{ key: 'packs/p.pack', size: 3 }]);
      });
    });
  });
}
