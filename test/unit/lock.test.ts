import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { LockTimeoutError } from '../../src/errors.js';
import { RepoLock } from '../../src/workspace/mutex.js';
import { sleep, useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

function lockFile(): string {
  return path.join(tmp(), '.tdv', 'tmp', 'lock');
}

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync('true');
  expect(r.pid).toBeGreaterThan(0);
  return r.pid!;
}

const readLock = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number; host: string; cmd: string; since: string };

describe('RepoLock', () => {
  it('creates the lock file (and its directory) holding pid, host and command; release removes it', async () => {
    const file = lockFile();
    const lock = new RepoLock(file, 'add');
    await lock.acquire({ timeoutMs: 1000 });
    expect(readLock(file)).toMatchObject({ pid: process.pid, host: os.hostname(), cmd: 'add' });
    expect(Number.isNaN(Date.parse(readLock(file).since))).toBe(false);
    lock.release();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('makes a second acquirer wait, telling it once who holds the lock, then take it after release', async () => {
    const file = lockFile();
    const first = new RepoLock(file, 'add');
    await first.acquire({ timeoutMs: 1000 });
    const onWait = vi.fn();
    const second = new RepoLock(file, 'checkout');
    let got = false;
    const p = second.acquire({ timeoutMs: 5000, pollMs: 10, onWait }).then(() => (got = true));
    await sleep(150);
    expect(got).toBe(false);
    expect(onWait).toHaveBeenCalledTimes(1);
    expect(onWait.mock.calls[0]![0]).toMatch(/tdv add/);
    expect(onWait.mock.calls[0]![0]).toContain(String(process.pid));
    first.release();
    await p;
    expect(got).toBe(true);
    expect(onWait).toHaveBeenCalledTimes(1);
    expect(readLock(file).cmd).toBe('checkout');
    second.release();
    expect(fs.existsSync(file)).toBe(false);
  });

  it('times out with LockTimeoutError naming the holder', async () => {
    const file = lockFile();
    const first = new RepoLock(file, 'gc');
    await first.acquire({ timeoutMs: 1000 });
    const start = Date.now();
    const err = await new RepoLock(file, 'add').acquire({ timeoutMs: 200, pollMs: 20 }).catch((e: unknown) => e);
    expect(Date.now() - start).toBeGreaterThanOrEqual(150);
    expect(err).toBeInstanceOf(LockTimeoutError);
    const e = err as LockTimeoutError;
    expect(e.code).toBe('LOCK_TIMEOUT');
    expect(e.message).toMatch(/`tdv gc`/);
    expect(e.message).toContain(`pid ${process.pid}`);
    expect(e.message).toContain(file); // tells the user what to delete if nobody runs
    expect(e.data).toMatchObject({ holder: { pid: process.pid, cmd: 'gc' } });
    // The holder still holds it.
    expect(readLock(file).cmd).toBe('gc');
    first.release();
  });

  it('takes over at once a lock left by a dead process', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ pid: deadPid(), host: os.hostname(), cmd: 'add', since: new Date().toISOString() }));
    const onWait = vi.fn();
    const lock = new RepoLock(file, 'status');
    const start = Date.now();
    await lock.acquire({ timeoutMs: 0, onWait, pollMs: 1000 });
    expect(Date.now() - start).toBeLessThan(500);
    expect(onWait).not.toHaveBeenCalled();
    expect(readLock(file)).toMatchObject({ pid: process.pid, cmd: 'status' });
    expect(fs.existsSync(`${file}.takeover`)).toBe(false);
    lock.release();
  });

  it('takes over a lock whose pid is alive but belongs to a newer process (recycled pid)', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    // Our own pid, but a start time that is not ours: the original holder is gone.
    fs.writeFileSync(file, JSON.stringify({ pid: process.pid, host: os.hostname(), start: '1', cmd: 'add', since: new Date().toISOString() }));
    const lock = new RepoLock(file, 'add');
    await lock.acquire({ timeoutMs: 0 });
    expect(readLock(file)).not.toHaveProperty('start', '1');
    lock.release();
  });

  it('does not take over a lock held by a live process on this host', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const holder = { pid: process.ppid, host: os.hostname(), cmd: 'push', since: new Date().toISOString() };
    fs.writeFileSync(file, JSON.stringify(holder));
    await expect(new RepoLock(file, 'add').acquire({ timeoutMs: 50, pollMs: 10 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(readLock(file)).toEqual(holder);
  });

  it('trusts a lock from another host, since it cannot check that pid', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const holder = { pid: deadPid(), host: `not-${os.hostname()}`, cmd: 'add', since: new Date().toISOString() };
    fs.writeFileSync(file, JSON.stringify(holder));
    await expect(new RepoLock(file, 'add').acquire({ timeoutMs: 50, pollMs: 10 })).rejects.toBeInstanceOf(LockTimeoutError);
    expect(readLock(file)).toEqual(holder);
  });

  it('takes over garbage lock content older than 5 s', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, 'garbage{');
    const old = Date.now() / 1000 - 10;
    fs.utimesSync(file, old, old);
    const lock = new RepoLock(file, 'add');
    await lock.acquire({ timeoutMs: 2000, pollMs: 10 });
    expect(readLock(file)).toMatchObject({ pid: process.pid, cmd: 'add' });
    lock.release();
  });

  it('takes over stale garbage without waiting or reporting a holder, even with a zero timeout', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
    const old = Date.now() / 1000 - 10;
    fs.utimesSync(file, old, old);
    const onWait = vi.fn();
    const lock = new RepoLock(file, 'add');
    await lock.acquire({ timeoutMs: 0, onWait });
    expect(onWait).not.toHaveBeenCalled();
    expect(readLock(file).pid).toBe(process.pid);
    lock.release();
  });

  it('waits for fresh garbage (a lock being written right now) instead of deleting it', async () => {
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{"pid":');
    const onWait = vi.fn();
    await expect(new RepoLock(file, 'add').acquire({ timeoutMs: 100, pollMs: 10, onWait })).rejects.toThrow(/another tdv command/);
    expect(onWait).toHaveBeenCalledWith('another tdv command');
    expect(fs.readFileSync(file, 'utf8')).toBe('{"pid":');
  });

  it('waits politely, within its timeout, while another process is taking over a stale lock', async () => {
    // A dead holder, and a fresh take-over guard: another waiter is removing that lock right now.
    const file = lockFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ pid: deadPid(), host: os.hostname(), cmd: 'add', since: new Date().toISOString() }));
    fs.writeFileSync(`${file}.takeover`, '1');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const start = Date.now();
    const outcome = await new RepoLock(file, 'status').acquire({ timeoutMs: 300, pollMs: 20 }).then(
      () => 'acquired',
      (e: unknown) => e,
    );
    const elapsed = Date.now() - start;
    clearInterval(timer);
    // Either outcome is fine; spinning synchronously until the guard is 10 s old is not.
    expect(outcome === 'acquired' || outcome instanceof LockTimeoutError).toBe(true);
    expect(elapsed).toBeLessThan(2000);
    expect(ticks).toBeGreaterThan(0); // the event loop kept running while it waited
  });

  it('release does not delete a lock that someone else now holds', async () => {
    const file = lockFile();
    const lock = new RepoLock(file, 'add');
    await lock.acquire({ timeoutMs: 1000 });
    const other = { pid: process.ppid, host: os.hostname(), cmd: 'gc', since: new Date().toISOString() };
    fs.writeFileSync(file, JSON.stringify(other));
    lock.release();
    expect(readLock(file)).toEqual(other);
  });

  it('release without acquire does nothing', async () => {
    const file = lockFile();
    const holder = new RepoLock(file, 'add');
    await holder.acquire({ timeoutMs: 1000 });
    new RepoLock(file, 'status').release();
    expect(fs.existsSync(file)).toBe(true);
    holder.release();
  });
});

describe('RepoLock ownership', () => {
  it('release leaves alone a lock that another holder (same pid, other token) now owns', async () => {
    const file = lockFile();
    const a = new RepoLock(file, 'add');
    await a.acquire({ timeoutMs: 0 });
    const mine = readLock(file) as { token?: string };
    expect(mine.token).toMatch(/^[0-9a-f]{16}$/);
    fs.writeFileSync(file, JSON.stringify({ ...mine, token: 'f'.repeat(16) }));
    a.release();
    expect(fs.existsSync(file)).toBe(true);
  });

  it('the lock file is never seen without its content, and no temp file is left', async () => {
    const file = lockFile();
    const a = new RepoLock(file, 'add');
    await a.acquire({ timeoutMs: 0 });
    expect(readLock(file).cmd).toBe('add');
    expect(fs.readdirSync(path.dirname(file))).toEqual([path.basename(file)]);
    a.release();
    expect(fs.readdirSync(path.dirname(file))).toEqual([]);
  });
});
