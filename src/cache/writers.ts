import fs from 'node:fs';

/** A file by device and inode, as fs.Stats gives them. */
export interface FileId {
  dev: number;
  ino: number;
}

const key = (f: FileId) => `${f.dev}:${f.ino}`;

/**
 * Which of `files` another process may still write: it holds the file open
 * for writing (an fd opened O_WRONLY or O_RDWR), or has it mapped shared and
 * writable. Returns the matches (by "dev:ino") with one such pid each, or
 * undefined where this cannot be known (not Linux, no /proc).
 *
 * Linux only, by one pass over /proc: a stat of every fd of every process
 * this user may inspect (the fd's flags are read only for the rare fd that is
 * one of `files`), and each process's map list. On a desktop with a few
 * hundred processes and tens of thousands of fds this costs tens of
 * milliseconds, so it is done once per batch of files, not per file.
 * Processes of other users are invisible to a non-root user; they cannot
 * write the user's files unless the files' mode lets them. A shared mapping on
 * an overlay file system names the underlying inode and may be missed.
 */
export function openForWriting(files: readonly FileId[]): Map<string, number> | undefined {
  if (process.platform !== 'linux' || files.length === 0) return files.length === 0 ? new Map() : undefined;
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  const wanted = new Set(files.map(key));
  const inos = new Set(files.map((f) => f.ino));
  const found = new Map<string, number>();
  const self = String(process.pid);
  for (const pid of pids) {
    if (!/^[0-9]+$/.test(pid) || pid === self) continue;
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      /* gone, or not ours to see */
    }
    for (const fd of fds) {
      const st = statOrUndefined(`/proc/${pid}/fd/${fd}`);
      if (!st || !inos.has(st.ino) || !wanted.has(key(st)) || found.has(key(st))) continue;
      if (writable(pid, fd)) found.set(key(st), Number(pid));
    }
    let maps = '';
    try {
      maps = fs.readFileSync(`/proc/${pid}/maps`, 'latin1');
    } catch {
      continue;
    }
    // "start-end perms offset dev inode path": a shared writable mapping has perms "?w?s".
    for (const line of maps.split('\n')) {
      const f = line.split(/\s+/, 5);
      const perms = f[1];
      if (!perms || perms[1] !== 'w' || perms[3] !== 's') continue;
      const ino = Number(f[4]);
      if (!inos.has(ino)) continue;
      // Match by inode alone: the device numbering of maps differs on some file systems, and a
      // false match only costs a copy instead of a link.
      for (const fl of files) if (fl.ino === ino && !found.has(key(fl))) found.set(key(fl), Number(pid));
    }
  }
  return found;
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined; // closed meanwhile, or not ours to see
  }
}

/** True when fd `fd` of process `pid` was opened for writing (its fdinfo flags), or when that cannot be read. */
function writable(pid: string, fd: string): boolean {
  try {
    const m = /^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
    if (!m) return true;
    const acc = parseInt(m[1]!, 8) & 3;
    return acc === 1 || acc === 2; // O_WRONLY, O_RDWR
  } catch {
    return true;
  }
}
