import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { describeFsError, errnoCode, LockTimeoutError } from '../errors.js';
import { tmpSuffix } from '../util/fs.js';
import { rmQuiet } from './raw.js';

interface LockInfo {
  pid: number;
  host: string;
  /** Process start time from /proc, so a recycled pid is not mistaken for the holder. */
  start?: string;
  cmd: string;
  since: string;
  /** Random per acquisition: identifies this holder for release and take-over, whatever pids collide. */
  token?: string;
}

export interface LockOptions {
  timeoutMs: number;
  /** Called once when the lock is busy, with a description of the holder. */
  onWait?: (holder: string) => void;
  pollMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

function procStart(pid: number): string | undefined {
  try {
    // Field 22 of /proc/<pid>/stat, counted after the parenthesised command name.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isAlive(info: LockInfo): boolean {
  if (info.host !== os.hostname()) return true; // cannot tell for another machine: trust it
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
  const start = procStart(info.pid);
  return info.start === undefined || start === undefined || start === info.start;
}

/**
 * A lock file's text: a small regular file, read without following a symlink
 * or blocking on a FIFO (a clone could have planted either); undefined otherwise.
 */
function readText(file: string): string | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.size > 64 * 1024) return undefined;
    return fs.readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function readInfo(file: string): LockInfo | undefined {
  try {
    const text = readText(file);
    if (text === undefined) return undefined;
    const j = JSON.parse(text) as LockInfo;
    return typeof j.pid === 'number' && typeof j.host === 'string' ? j : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The repo lock: a file holding the owner's pid and a random token, created
 * complete in one step (written to a temp file, then hard-linked into place,
 * which fails if the lock exists), so nobody ever sees it empty. A busy lock is
 * waited for (the caller is told once) up to a timeout; a lock whose owner died
 * is taken over. Take-overs are serialised through a second, short-lived lock
 * file so two waiters cannot both remove the stale lock and delete each other's
 * fresh one; release and take-over compare tokens, not pids.
 */
export class RepoLock {
  private held = false;
  private readonly token = randomBytes(8).toString('hex');
  /** The holder of a stale lock this acquisition took over: a command on this host that died holding it. */
  deadHolder?: { pid: number; cmd: string };

  constructor(
    readonly file: string,
    readonly cmd: string,
  ) {}

  async acquire(opts: LockOptions): Promise<void> {
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const deadline = Date.now() + opts.timeoutMs;
    let told = false;
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    const info: LockInfo = { pid: process.pid, host: os.hostname(), start: procStart(process.pid), cmd: this.cmd, since: new Date().toISOString(), token: this.token };
    for (;;) {
      if (this.tryCreate(info)) {
        this.held = true;
        return;
      }
      const holder = readInfo(this.file);
      // A dead holder, or garbage older than a few seconds (a live writer fills it at once), is stale.
      const stale = holder ? !isAlive(holder) : Date.now() - (fs.statSync(this.file, { throwIfNoEntry: false })?.mtimeMs ?? 0) > 5000;
      if (stale && this.takeOver(holder)) continue;
      if (Date.now() >= deadline) {
        const who = holder ? `\`tdv ${holder.cmd}\` (pid ${holder.pid}, since ${holder.since})` : 'another tdv command';
        throw new LockTimeoutError(`the repository is locked by ${who}; waited ${Math.round(opts.timeoutMs / 1000)} s. If no tdv command is running, delete ${this.file}`, {
          holder,
        });
      }
      if (!told) {
        told = true;
        opts.onWait?.(holder ? `\`tdv ${holder.cmd}\` (pid ${holder.pid})` : 'another tdv command');
      }
      await sleep(opts.pollMs ?? 100);
    }
  }

  /** Creates the lock file with its content in one step; false if it exists. */
  private tryCreate(info: LockInfo): boolean {
    const tmp = `${this.file}.${tmpSuffix()}`;
    try {
      fs.writeFileSync(tmp, JSON.stringify(info), { flag: 'wx' });
      try {
        fs.linkSync(tmp, this.file);
        return true;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'EEXIST') return false;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
        // No hard links here: fall back to an exclusive create (briefly empty).
        fs.writeFileSync(this.file, JSON.stringify(info), { flag: 'wx' });
        return true;
      }
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw describeFsError(err, this.file);
    } finally {
      rmQuiet(tmp);
    }
  }

  /** Removes a stale lock; true if the caller should retry at once. */
  private takeOver(stale: LockInfo | undefined): boolean {
    const guard = `${this.file}.takeover`;
    try {
      fs.writeFileSync(guard, this.token, { flag: 'wx' });
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
      const st = fs.statSync(guard, { throwIfNoEntry: false });
      if (st && Date.now() - st.mtimeMs > 10_000) rmQuiet(guard); // its owner died mid take-over
      return false; // someone else is taking over: wait like any waiter
    }
    try {
      const now = readInfo(this.file);
      const same = stale === undefined ? now === undefined : now !== undefined && now.pid === stale.pid && now.since === stale.since && now.token === stale.token;
      if (!same) return true; // changed meanwhile: look again
      fs.unlinkSync(this.file);
      if (stale && stale.host === os.hostname()) this.deadHolder = { pid: stale.pid, cmd: stale.cmd };
      return true;
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return true;
      throw new LockTimeoutError(`cannot remove the stale lock ${this.file} (${(err as Error).message}); delete it by hand`);
    } finally {
      if (readText(guard) === this.token) rmQuiet(guard);
    }
  }

  release(): void {
    if (!this.held) return;
    this.held = false;
    if (readInfo(this.file)?.token === this.token) rmQuiet(this.file);
  }
}
