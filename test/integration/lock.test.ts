import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it, onTestFinished } from 'vitest';
import { read, snapshot, tdv, tdvBin, write } from '../helpers/repo.js';
import { dirPointer, filePointer, newRepo, setConfig } from '../helpers/expect.js';

/** Needs `npx tsc -p .` first: some tests spawn the real bin/tdv.js. */

const lockFile = (dir: string) => path.join(dir, '.tdv', 'tmp', 'lock');

function writeLock(dir: string, info: Record<string, unknown>): void {
  write(dir, '.tdv/tmp/lock', JSON.stringify({ host: os.hostname(), cmd: 'gc', since: new Date().toISOString(), ...info }));
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), as a lock records it. */
function procStart(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** A live process (`sleep 30`), killed when the test ends. */
function liveProcess(): ChildProcess {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  return child;
}

async function deadPid(): Promise<number> {
  const p = execa('true');
  await p;
  return p.pid!;
}

describe('repository lock', () => {
  it('concurrent tdv add processes of different paths all succeed with correct pointers', async () => {
    const dir = await newRepo();
    const names = ['a', 'b', 'c', 'd'];
    const files: Record<string, { relpath: string; content: string }[]> = {};
    for (const n of names) {
      files[n] = [];
      for (let i = 0; i < 40; i++) {
        const f = { relpath: `f${String(i).padStart(2, '0')}.txt`, content: `${n}-${i}\n` };
        files[n]!.push(f);
        write(dir, `data/${n}/${f.relpath}`, f.content);
      }
    }
    write(dir, 'data/single.csv', 'single\n');
    const runs = await Promise.all([...names.map((n) => tdvBin(dir, ['add', `data/${n}`])), tdvBin(dir, ['add', 'data/single.csv'])]);
    for (const r of runs) {
      expect(r.stderr.replace(/^warning: waiting for the repository lock held by [^\n]*\n?/gm, '')).toBe('');
      expect(r.code).toBe(0);
    }
    for (const n of names) expect(read(dir, `data/${n}.tdv`)).toBe(dirPointer(n, files[n]!));
    expect(read(dir, 'data/single.csv.tdv')).toBe(filePointer('single.csv', 'single\n'));
    // Every writer's .gitignore line survived the others'.
    expect(read(dir, 'data/.gitignore').split('\n').filter(Boolean).sort()).toEqual(['/a', '/b', '/c', '/d', '/single.csv']);
    expect(fs.existsSync(lockFile(dir))).toBe(false);
    const st = await tdvBin(dir, ['status']);
    expect(st.code).toBe(0);
    expect(st.stdout).toBe('Data and pipelines are up to date.');
  });

  it('a stale lock left by a dead process does not block a command', async () => {
    const dir = await newRepo();
    // lock_timeout 0: a lock that is not taken over fails the command at once.
    setConfig(dir, 'core:\n  lock_timeout: 0\n');
    write(dir, 'a.csv', 'a\n');
    writeLock(dir, { pid: await deadPid() });
    const r = await tdv(dir, 'add', 'a.csv');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(fs.existsSync(lockFile(dir))).toBe(false);
  });

  it('a lock whose pid now belongs to another process (start time differs) is stale', async () => {
    const dir = await newRepo();
    setConfig(dir, 'core:\n  lock_timeout: 0\n');
    write(dir, 'a.csv', 'a\n');
    const child = liveProcess();
    const start = procStart(child.pid!);
    writeLock(dir, { pid: child.pid, start: String(Number(start) - 1) });
    const r = await tdv(dir, 'add', 'a.csv');
    expect(r.code).toBe(0);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
  });

  for (const timeout of [1, 0]) {
    it(`an unreadable lock file older than a few seconds is taken over (lock_timeout ${timeout})`, async () => {
      const dir = await newRepo();
      setConfig(dir, `core:\n  lock_timeout: ${timeout}\n`);
      write(dir, 'a.csv', 'a\n');
      write(dir, '.tdv/tmp/lock', '{"pid": 12');
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(lockFile(dir), old, old);
      const r = await tdv(dir, 'add', 'a.csv');
      expect(r.stderr).not.toContain('error:');
      expect(r.code).toBe(0);
      expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
      expect(fs.existsSync(lockFile(dir))).toBe(false);
    });
  }

  for (const withStart of [true, false]) {
    it(`a lock held by a live process${withStart ? ' (with its start time)' : ' (no start time)'} makes a command fail after core.lock_timeout, naming the holder`, async () => {
      const dir = await newRepo();
      setConfig(dir, 'core:\n  lock_timeout: 1\n');
      write(dir, 'a.csv', 'a\n');
      const child = liveProcess();
      writeLock(dir, withStart ? { pid: child.pid, start: procStart(child.pid!) } : { pid: child.pid });
      const before = snapshot(dir);
      const t0 = Date.now();
      const r = await tdv(dir, 'add', 'a.csv');
      const waited = Date.now() - t0;
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(waited).toBeGreaterThanOrEqual(900);
      expect(waited).toBeLessThan(5000);
      const lines = r.stderr.trimEnd().split('\n');
      // Told once what it waits for, then one error line naming the holder and the fix.
      expect(lines).toHaveLength(2);
      expect(lines[0]).toBe(`warning: waiting for the repository lock held by \`tdv gc\` (pid ${child.pid})...`);
      expect(lines[1]).toMatch(/^error: the repository is locked by `tdv gc` \(pid \d+, since [^)]+\); waited 1 s\./);
      expect(lines[1]).toContain(`pid ${child.pid}`);
      expect(lines[1]).toContain(`delete ${lockFile(dir)}`);
      expect(snapshot(dir)).toEqual(before);
    });
  }

  it('waits for a live holder and proceeds as soon as it exits', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    const child = liveProcess();
    writeLock(dir, { pid: child.pid, start: procStart(child.pid!) });
    const exited = new Promise((r) => child.once('exit', r));
    setTimeout(() => child.kill('SIGKILL'), 400);
    const t0 = Date.now();
    const r = await tdv(dir, 'add', 'a.csv');
    await exited;
    expect(r.code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.stderr.match(/waiting for the repository lock/g)).toHaveLength(1);
    expect(read(dir, 'a.csv.tdv')).toBe(filePointer('a.csv', 'a\n'));
    expect(fs.existsSync(lockFile(dir))).toBe(false);
  });

  it('read-only status is not blocked by the lock', async () => {
    const dir = await newRepo();
    write(dir, 'a.csv', 'a\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    // lock_timeout 0: were status to take the lock, it would fail at once.
    setConfig(dir, 'core:\n  lock_timeout: 0\n');
    const child = liveProcess();
    writeLock(dir, { pid: child.pid });
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('Data and pipelines are up to date.');
  });
});
