import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { execa } from 'execa';
import { main } from '../../src/cli/main.js';
import { makeTmpDir } from './tmp.js';

export const TDV_BIN = path.resolve(import.meta.dirname, '../../bin/tdv.js');

/**
 * A fresh temporary directory, removed when the current test ends (made
 * outside a test: after the file's last test). See makeTmpDir in tmp.ts.
 */
export function tmpDir(prefix = 'tdv-test-'): string {
  return makeTmpDir(prefix);
}

export async function git(cwd: string, ...args: string[]): Promise<string> {
  const r = await execa('git', args, { cwd, env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' } });
  return r.stdout;
}

/** A temporary Git repository with `tdv init` done. */
export async function makeRepo(opts: { init?: boolean } = {}): Promise<string> {
  const dir = fs.realpathSync(tmpDir());
  await git(dir, 'init', '-q', '-b', 'main');
  if (opts.init !== false) {
    const r = await tdv(dir, 'init');
    if (r.code !== 0) throw new Error(`tdv init failed: ${r.stderr}`);
  }
  return dir;
}

export function write(root: string, rel: string, content: string | Buffer): string {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

export function read(root: string, rel: string): string {
  return fs.readFileSync(path.join(root, rel), 'utf8');
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs tdv in-process (fast): same code path as the CLI, output captured. */
export async function tdv(cwd: string, ...args: string[]): Promise<RunResult> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const stdin = new PassThrough();
  const code = await main(['node', 'tdv', ...args], { cwd, stdout, stderr, stdin, env: { ...process.env, NO_COLOR: '1' } });
  return { code, stdout: out, stderr: err };
}

/** Runs the real `bin/tdv.js` in a child process, as users do. Needs `npm run build` first. */
export async function tdvBin(cwd: string, args: string[], env: Record<string, string> = {}): Promise<RunResult> {
  const r = await execa('node', [TDV_BIN, ...args], { cwd, reject: false, env: { NO_COLOR: '1', ...env } });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every regular file below `dir` with its content, for before/after comparisons. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) visit(path.join(d, e.name), r);
      else if (e.isFile() || e.isSymbolicLink()) out[r] = fs.readFileSync(path.join(d, e.name)).toString('base64');
    }
  };
  visit(dir, '');
  return out;
}
