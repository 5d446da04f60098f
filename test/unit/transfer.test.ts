import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import type { Oid } from '../../src/formats/oid.js';
import { ObjectStore } from '../../src/cache/store.js';
import { RemoteError } from '../../src/errors.js';
import type { Remote } from '../../src/remote/remote.js';
import { downloadVerified, remoteHas, runJobs } from '../../src/remote/transfer/executor.js';
import { newDir } from '../helpers/expect.js';

/** An in-memory remote that counts requests; `get` can be scripted to misbehave. */
class MemoryRemote implements Remote {
  readonly name = 'mem';
  readonly url = 'mem://';
  readonly defaultJobs = 4;
  calls = { has: 0, listPrefix: 0, list: 0, get: 0 };
  getScript: ((oid: Oid, attempt: number) => AsyncIterable<Uint8Array> | Error | undefined) | undefined;
  constructor(readonly objects = new Map<Oid, Buffer>()) {}
  async has(oid: Oid) {
    this.calls.has++;
    return this.objects.has(oid);
  }
  async stat(oid: Oid) {
    const b = this.objects.get(oid);
    return b ? { size: b.length } : undefined;
  }
  private index?: Map<string, Oid[]>;
  async listPrefix(p: string, max?: number) {
    this.calls.listPrefix++;
    if (!this.index) {
      this.index = new Map();
      for (const o of this.objects.keys()) {
        const l = this.index.get(o.slice(0, 2));
        if (l) l.push(o);
        else this.index.set(o.slice(0, 2), [o]);
      }
    }
    const all = this.index.get(p) ?? [];
    return max === undefined ? all : all.slice(0, max); // like S3: one page when a maximum is given
  }
  async *list() {
    this.calls.list++;
    yield* this.objects.keys();
  }
  async put(oid: Oid, from: string) {
    this.objects.set(oid, fs.readFileSync(from));
  }
  async get(oid: Oid): Promise<AsyncIterable<Uint8Array>> {
    this.calls.get++;
    const scripted = this.getScript?.(oid, this.calls.get);
    if (scripted instanceof Error) throw scripted;
    if (scripted) return scripted;
    const b = this.objects.get(oid);
    if (!b) throw new RemoteError('OBJECT_NOT_ON_REMOTE', `object ${oid} is not on remote "mem"`);
    return (async function* () {
      yield b;
    })();
  }
  async remove() {
    return [];
  }
  async putRun() {}
  async getRun() {
    return undefined;
  }
  async listRuns() {
    return [];
  }
  async putRepoMarker() {}
  async listRepoMarkers() {
    return [];
  }
  async putKey(): Promise<void> {
    throw new Error('no raw keys in this remote');
  }
  async getKey(): Promise<never> {
    throw new Error('no raw keys in this remote');
  }
  async listKeys() {
    return [];
  }
  async deleteKeys() {
    return [];
  }
  close() {}
}

const oidOf = (i: number) => sha256(`object ${i}`);
const many = (n: number, from = 0) => Array.from({ length: n }, (_, i) => oidOf(from + i));
function remoteWith(oids: Oid[]): MemoryRemote {
  return new MemoryRemote(new Map(oids.map((o) => [o, Buffer.from(o)])));
}

describe('remoteHas picks the cheapest way to ask', () => {
  it('asks per object for a handful', async () => {
    const r = remoteWith(many(5));
    const found = await remoteHas(r, many(10), 4);
    expect(found).toEqual(new Set(many(5)));
    expect(r.calls).toMatchObject({ has: 10, listPrefix: 0, list: 0 });
  });

  it('lists a nearly empty remote in one go instead of 256 prefixes', async () => {
    const r = remoteWith(many(3));
    const found = await remoteHas(r, many(5000), 8);
    expect(found).toEqual(new Set(many(3)));
    expect(r.calls).toMatchObject({ has: 0, listPrefix: 1, list: 1 });
  });

  it('lists the needed prefixes of a large remote when many objects are wanted', async () => {
    const r = remoteWith(many(300_000));
    const wanted = [...many(4000, 298_000), ...many(2000, 400_000)]; // half present
    const found = await remoteHas(r, wanted, 8);
    expect(found).toEqual(new Set(many(2000, 298_000)));
    expect(r.calls.has).toBe(0);
    expect(r.calls.list).toBe(0);
    // One page of the first prefix to estimate (it is full: a large remote), then every prefix whole.
    expect(r.calls.listPrefix).toBe(257);
  });

  it('asks per object when a few hundred are wanted from a huge remote', async () => {
    const r = remoteWith(many(300_000));
    const wanted = many(200, 299_900); // 100 present
    const found = await remoteHas(r, wanted, 32);
    expect(found).toEqual(new Set(many(100, 299_900)));
    expect(r.calls.list).toBe(0);
    expect(r.calls.listPrefix).toBe(1);
    expect(r.calls.has).toBeGreaterThan(150);
  });
});

describe('downloadVerified', () => {
  const setup = () => {
    const dir = newDir();
    const store = new ObjectStore(path.join(dir, 'cache'), path.join(dir, 'tmp'));
    const data = Buffer.from('the real bytes\n');
    const oid = sha256(data);
    const remote = new MemoryRemote(new Map([[oid, data]]));
    return { dir, store, data, oid, remote };
  };
  const tmpLeft = (dir: string) => (fs.existsSync(path.join(dir, 'tmp')) ? fs.readdirSync(path.join(dir, 'tmp')) : []);

  it('admits good bytes, read-only', async () => {
    const { store, data, oid, remote } = setup();
    expect(await downloadVerified(remote, store, oid)).toBe(data.length);
    expect(fs.readFileSync(store.pathOf(oid))).toEqual(data);
    expect(fs.statSync(store.pathOf(oid)).mode & 0o222).toBe(0);
  });

  it('retries a body cut off mid-stream and then succeeds', async () => {
    const { dir, store, data, oid, remote } = setup();
    remote.getScript = (_o, attempt) =>
      attempt === 1
        ? (async function* () {
            yield data.subarray(0, 4);
            throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
          })()
        : undefined;
    let bytes = 0;
    await downloadVerified(remote, store, oid, (n) => (bytes += n));
    expect(remote.calls.get).toBe(2);
    expect(bytes).toBe(data.length); // the lost attempt's bytes are taken back
    expect(fs.readFileSync(store.pathOf(oid))).toEqual(data);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('retries bytes altered in flight, then fails naming object and remote, admitting nothing', async () => {
    const { dir, store, oid, remote } = setup();
    remote.getScript = () =>
      (async function* () {
        yield Buffer.from('the fake bytes\n');
      })();
    const err = await downloadVerified(remote, store, oid).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe('CORRUPT_ON_REMOTE');
    expect(err.message).toContain(`object ${oid} on remote "mem" (mem://) is corrupt`);
    expect(remote.calls.get).toBe(3);
    expect(fs.existsSync(store.pathOf(oid))).toBe(false);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('bytes altered differently on every attempt are blamed on the way, not on the stored object', async () => {
    const { dir, store, oid, remote } = setup();
    remote.getScript = (_o, attempt) =>
      (async function* () {
        yield Buffer.from(`the fake bytes ${attempt}\n`);
      })();
    const err = await downloadVerified(remote, store, oid).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe('DOWNLOAD_FAILED');
    expect(err.message).toContain(`could not download ${oid} from remote "mem" (mem://): its bytes arrived altered, and differently on different attempts`);
    expect(err.message).not.toContain('Delete files/sha256');
    expect(fs.existsSync(store.pathOf(oid))).toBe(false);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('does not retry an object the remote does not have', async () => {
    const { store, remote } = setup();
    const err = await downloadVerified(remote, store, sha256('absent')).catch((e) => e);
    expect(err.code).toBe('OBJECT_NOT_ON_REMOTE');
    expect(remote.calls.get).toBe(1);
  });

  it('streams a large object to disk in pieces and verifies it', async () => {
    const { store, remote } = setup();
    const big = Buffer.alloc(5 << 20, 7);
    const oid = sha256(big);
    remote.objects.set(oid, big);
    remote.getScript = (o) =>
      o === oid
        ? (async function* () {
            for (let i = 0; i < big.length; i += 1 << 18) yield big.subarray(i, i + (1 << 18));
          })()
        : undefined;
    expect(await downloadVerified(remote, store, oid)).toBe(big.length);
    expect(fs.statSync(store.pathOf(oid)).size).toBe(big.length);
  });
});

describe('downloadVerified: bounded by the recorded size (review F13)', () => {
  const setup = () => {
    const dir = newDir();
    const store = new ObjectStore(path.join(dir, 'cache'), path.join(dir, 'tmp'));
    const data = Buffer.from('the real bytes\n');
    const oid = sha256(data);
    const remote = new MemoryRemote(new Map([[oid, data]]));
    return { dir, store, data, oid, remote };
  };
  const tmpLeft = (dir: string) => (fs.existsSync(path.join(dir, 'tmp')) ? fs.readdirSync(path.join(dir, 'tmp')) : []);

  it('a body that states another size is refused unread, once, and released', async () => {
    const { dir, store, data, oid, remote } = setup();
    let read = 0;
    remote.getScript = () => {
      const body = (async function* () {
        for (let i = 0; i < 1000; i++) {
          read++;
          yield Buffer.alloc(1 << 20);
        }
      })();
      return Object.assign(body, { size: 1000 << 20 });
    };
    const err = await downloadVerified(remote, store, oid, { size: data.length }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe('CORRUPT_ON_REMOTE');
    expect(err.message).toContain(`object ${oid} on remote "mem" (mem://) is corrupt: it is ${1000 << 20} bytes, where ${data.length} bytes are recorded for it`);
    expect(remote.calls.get).toBe(1); // the remote says so itself: not retried
    expect(read).toBe(0);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('a body that states no size is cut off at the recorded size: nothing written past it, never read to its end', async () => {
    const { dir, store, data, oid, remote } = setup();
    let chunks = 0;
    remote.getScript = () =>
      (async function* () {
        for (let i = 0; i < 10_000; i++) {
          chunks++;
          yield Buffer.alloc(4096, 1);
        }
      })();
    const err = await downloadVerified(remote, store, oid, { size: data.length }).catch((e) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect(err.code).toBe('CORRUPT_ON_REMOTE');
    expect(err.message).toContain(`is more than ${data.length} bytes long, where ${data.length} bytes are recorded for it`);
    // One chunk per attempt: the first chunk already passes the bound. Twice the same: the stored object.
    expect(remote.calls.get).toBe(2);
    expect(chunks).toBe(2);
    expect(fs.existsSync(store.pathOf(oid))).toBe(false);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('a manifest (.dir) is bounded by the manifest limit even when no size is given', async () => {
    const { dir, store, remote } = setup();
    const oid = `${sha256('a manifest')}.dir`;
    remote.getScript = () => Object.assign((async function* () {})(), { size: (256 << 20) + 1 });
    const err = await downloadVerified(remote, store, oid).catch((e) => e);
    expect(err.code).toBe('CORRUPT_ON_REMOTE');
    expect(err.message).toContain(`is ${(256 << 20) + 1} bytes, more than the ${256 << 20} bytes a directory manifest may have`);
    expect(remote.calls.get).toBe(1);
    expect(tmpLeft(dir)).toEqual([]);
  });

  it('the right size still downloads', async () => {
    const { store, data, oid, remote } = setup();
    expect(await downloadVerified(remote, store, oid, { size: data.length })).toBe(data.length);
    expect(fs.readFileSync(store.pathOf(oid))).toEqual(data);
  });
});

describe('runJobs', () => {
  const job = (i: number) => ({ oid: oidOf(i), size: 1, path: `f${i}` });

  it('collects per-object failures and goes on with the rest', async () => {
    const res = await runJobs([job(1), job(2), job(3)], 2, async (j) => {
      if (j.path === 'f2') throw new RemoteError('REMOTE_FAILED', 'boom');
    });
    expect(res.done.map((j) => j.path).sort()).toEqual(['f1', 'f3']);
    expect(res.failed).toEqual([{ oid: oidOf(2), path: 'f2', error: 'boom' }]);
  });

  it('stops at the first failure that concerns the whole remote', async () => {
    let started = 0;
    const err = await runJobs(
      Array.from({ length: 50 }, (_, i) => job(i)),
      2,
      async () => {
        started++;
        throw new RemoteError('REMOTE_ACCESS_DENIED', 'denied', { wide: true });
      },
    ).catch((e) => e);
    expect(err.code).toBe('REMOTE_ACCESS_DENIED');
    expect(started).toBeLessThanOrEqual(2);
  });

  it('reports a bug as a bug, not as a failed object', async () => {
    const err = await runJobs([job(1)], 1, async () => {
      throw new TypeError('x is undefined');
    }).catch((e) => e);
    expect(err).toBeInstanceOf(TypeError);
  });
});
