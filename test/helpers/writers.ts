import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

/** Starts `cmd args`, resolving once it prints its first line (its "ready"). Killed when `stop` is called. */
async function startReady(cmd: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`${cmd} writer exited (${code}) before it was ready`)));
    child.stdout!.once('data', () => resolve());
  });
  return child;
}

/** Kills a writer and waits until it is gone, so that the file is stable afterwards. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await gone;
}

/** A process that appends numbered lines to `file` in a loop, holding it open. */
export function appender(file: string): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'a');
    fs.writeSync(fd, 'first line\\n');
    process.stdout.write('ready\\n');
    let i = 0;
    for (;;) fs.writeSync(fd, 'line ' + (i++) + '\\n');`;
  return startReady(process.execPath, ['-e', script, file]);
}

/** A process that holds `file` open for writing, idle, and overwrites its first bytes on SIGUSR1 (then prints a line). */
export function holder(file: string): Promise<ChildProcess> {
  const script = `
    const fs = require('node:fs');
    const fd = fs.openSync(process.argv[1], 'r+');
    process.on('SIGUSR1', () => { fs.writeSync(fd, 'WRITTEN LATER', 0); process.stdout.write('wrote\\n'); });
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);`;
  return startReady(process.execPath, ['-e', script, file]);
}

/**
 * A process that keeps rewriting the first 8 bytes of `file` (a counter)
 * through a shared mapping. Once the mapped page is dirty these writes change
 * neither mtime, ctime nor size: no stat check can see them. Python's mmap is
 * the only way to get a shared writable mapping from a test.
 */
export function mmapWriter(file: string): Promise<ChildProcess> {
  const script = [
    'import mmap, os, sys, struct',
    'fd = os.open(sys.argv[1], os.O_RDWR)',
    'm = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)',
    "m[0:8] = struct.pack('<Q', 0)",
    "sys.stdout.write('ready\\n'); sys.stdout.flush()",
    'i = 0',
    'while True:',
    '    i += 1',
    "    m[0:8] = struct.pack('<Q', i)",
  ].join('\n');
  return startReady('python3', ['-c', script, file]);
}

export const hasPython = spawnSync('python3', ['-c', 'import mmap'], { stdio: 'ignore' }).status === 0;
