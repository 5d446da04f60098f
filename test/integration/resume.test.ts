import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import { ObjectStore } from '../../src/cache/store.js';
import { RemoteError } from '../../src/errors.js';
import type { Oid } from '../../src/formats/oid.js';
import { LocalRemote } from '../../src/remote/local.js';
import type { ByteRange, ObjectBody, Remote } from '../../src/remote/remote.js';
import { downloadVerified, RESUME_MIN } from '../../src/remote/transfer/executor.js';
import { newDir } from '../helpers/expect.js';

/**
 * Resumed downloads of large objects (issue 14 §4): a download cut off keeps
 * its bytes (`part.<sha>.<pid>` in the cache's tmp directory) and the next
 * attempt, or the next process, fetches only the rest with a ranged read.
 * Bytes are counted where the remote hands them out.
 */

const MiB = 1 << 20;
const SIZE = 12 * MiB;

interface Counted {
  remote: Remote;
  /** Bytes the remote's bodies yielded. */
  sent: () => number;
  ranges: ByteRange[];
}

/**
 * A directory remote whose bodies are counted; `cut(n)` makes the next `times`
 * bodies (get or ranged) fail after n bytes, as a dropped connection does.
 */
function counted(inner: LocalRemote): Counted & { cut: (after: number, times?: number) => void; noRanges: () => void } {
  let sent = 0;
  let cutAfter: number | undefined;
  let cuts = 0;
  let ranged = true;
  const ranges: ByteRange[] = [];
  const wrap = (body: ObjectBody): ObjectBody => {
    const fail = cuts > 0 ? cutAfter : undefined;
    if (cuts > 0) cuts--;
    async function* gen() {
      let n = 0;
      for await (const c of body) {
        if (fail !== undefined && n + c.length > fail) {
          const head = c.subarray(0, fail - n);
          sent += head.length;
          yield head;
          throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
        }
        n += c.length;
        sent += c.length;
        yield c;
      }
    }
    return Object.assign(gen(), { size: body.size });
  };
  const remote = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'get') return async (oid: Oid) => wrap(await target.get(oid));
      if (prop === 'getKey')
        return async (key: string, range?: ByteRange) => {
          if (!ranged) throw new RemoteError('OBJECT_NOT_ON_REMOTE', `${key} is not on remote`);
          if (range) ranges.push(range);
          return wrap(await target.getKey(key, range));
        };
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  }) as Remote;
  return {
    remote,
    sent: () => sent,
    ranges,
    cut: (after, times = 1) => {
      cutAfter = after;
      cuts = times;
    },
    noRanges: () => (ranged = false),
  };
}

async function setup() {
  const base = newDir();
  fs.mkdirSync(path.join(base, 'remote'));
  const inner = new LocalRemote('origin', path.join(base, 'remote'));
  const content = crypto.randomBytes(SIZE);
  const oid = sha256(content);
  const src = path.join(base, 'src');
  fs.writeFileSync(src, content);
  await inner.put(oid, src, SIZE);
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'cache', 'tmp'));
  return { base, inner, content, oid, store, ...counted(inner) };
}

const partials = (store: ObjectStore) => (fs.existsSync(store.tmpDir) ? fs.readdirSync(store.tmpDir).filter((n) => n.startsWith('part.')) : []);

/** A pid no process has any more. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

describe('resumed downloads of large objects', () => {
  it('resumes at 8 MiB and up only: the threshold is the one documented', () => {
    expect(RESUME_MIN).toBe(8 * MiB);
  });

  it('the next attempt goes on where a dropped connection stopped: the object is sent once, not 1.4 times', async () => {
    const t = await setup();
    t.cut(5 * MiB);
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
    expect(t.ranges).toEqual([{ start: 5 * MiB, end: SIZE }]);
    expect(t.sent()).toBe(SIZE);
    expect(partials(t.store)).toEqual([]);
    expect(fs.statSync(t.store.pathOf(t.oid)).mode & 0o222).toBe(0); // admitted read-only, like every object
  });

  it('a download that failed every attempt keeps its bytes, and the next run receives only the rest', async () => {
    const t = await setup();
    t.cut(3 * MiB, 3); // three attempts, each cut 3 MiB further on
    const err = await downloadVerified(t.remote, t.store, t.oid, { size: SIZE }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RemoteError);
    expect((err as RemoteError).code).toBe('DOWNLOAD_FAILED');
    expect(t.store.has(t.oid)).toBe(false);
    const [part] = partials(t.store);
    expect(part).toBe(`part.${t.oid}.${process.pid}`);
    expect(fs.statSync(path.join(t.store.tmpDir, part!)).size).toBe(9 * MiB);
    const before = t.sent();
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(t.sent() - before).toBe(3 * MiB);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
  });

  it("a dead process's partial is claimed and continued; the whole file is still verified", async () => {
    const t = await setup();
    fs.mkdirSync(t.store.tmpDir, { recursive: true });
    const dead = path.join(t.store.tmpDir, `part.${t.oid}.${deadPid()}`);
    fs.writeFileSync(dead, t.content.subarray(0, 6 * MiB), { mode: 0o644 });
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(t.sent()).toBe(6 * MiB);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
    expect(partials(t.store)).toEqual([]);
  });

  it('a partial whose bytes are wrong is deleted and the object fetched again from zero, never admitted wrong', async () => {
    const t = await setup();
    fs.mkdirSync(t.store.tmpDir, { recursive: true });
    fs.writeFileSync(path.join(t.store.tmpDir, `part.${t.oid}.${deadPid()}`), crypto.randomBytes(6 * MiB));
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
    expect(t.sent()).toBe(6 * MiB + SIZE);
  });

  it("a live process's partial is not touched: this download goes its own way, from zero", async () => {
    const t = await setup();
    const child = spawn('sleep', ['30']);
    onTestFinished(() => {
      child.kill();
    });
    fs.mkdirSync(t.store.tmpDir, { recursive: true });
    const theirs = path.join(t.store.tmpDir, `part.${t.oid}.${child.pid}`);
    fs.writeFileSync(theirs, t.content.subarray(0, 6 * MiB));
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(t.sent()).toBe(SIZE);
    expect(t.ranges).toEqual([]);
    expect(fs.readFileSync(theirs).equals(t.content.subarray(0, 6 * MiB))).toBe(true);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
  });

  it('a symlink planted at the partial name is not written through', async () => {
    const t = await setup();
    fs.mkdirSync(t.store.tmpDir, { recursive: true });
    const victim = path.join(t.base, 'victim');
    fs.writeFileSync(victim, 'keep');
    fs.symlinkSync(victim, path.join(t.store.tmpDir, `part.${t.oid}.${process.pid}`));
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(fs.readFileSync(victim, 'utf8')).toBe('keep');
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
  });

  it('a remote that cannot serve the range (another layout) is read from zero instead', async () => {
    const t = await setup();
    t.noRanges();
    fs.mkdirSync(t.store.tmpDir, { recursive: true });
    fs.writeFileSync(path.join(t.store.tmpDir, `part.${t.oid}.${deadPid()}`), t.content.subarray(0, 6 * MiB));
    expect(await downloadVerified(t.remote, t.store, t.oid, { size: SIZE })).toBe(SIZE);
    expect(t.sent()).toBe(SIZE);
    expect(fs.readFileSync(t.store.pathOf(t.oid)).equals(t.content)).toBe(true);
  });

  it('smaller objects are not kept partially: a failed attempt starts over', async () => {
    const t = await setup();
    const small = crypto.randomBytes(2 * MiB);
    const oid = sha256(small);
    const src = path.join(t.base, 'small');
    fs.writeFileSync(src, small);
    await t.inner.put(oid, src, small.length);
    t.cut(1 * MiB);
    expect(await downloadVerified(t.remote, t.store, oid, { size: small.length })).toBe(small.length);
    expect(t.sent()).toBe(3 * MiB);
    expect(t.ranges).toEqual([]);
  });
});
