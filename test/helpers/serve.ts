import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { makeRepo, TDV_BIN, tdv, write } from './repo.js';

/** A running `bin/tdv.js serve`, as users start it. */
export interface Serving {
  url: string;
  port: number;
  bucket: string;
  /** The token it printed (generated off loopback), if any. */
  token?: string;
  child: ChildProcess;
  /** Stops it with `signal` and gives its exit code and output. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

const running = new Set<Serving>();

/**
 * Starts `tdv serve --port 0 ...args` in `cwd` and waits for its
 * "Serving <root> at <url> (bucket <name>)" line (and the token line that
 * follows it when one was generated). Rejects with its output when it exits first.
 */
export async function startServe(cwd: string, args: string[] = [], env: Record<string, string> = {}): Promise<Serving> {
  const child = spawn('node', [TDV_BIN, 'serve', '--port', '0', ...args], { cwd, env: { ...process.env, NO_COLOR: '1', TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const check = () => {
      const m = /^Serving .* at (http:\/\/\S+) \(bucket (\S+)\)\n/m.exec(stdout);
      const wantToken = args.includes('--host') && !args.includes('--token') && !/--host\s+(127\.0\.0\.1|localhost|::1)\b/.test(args.join(' '));
      if (m && (!wantToken || /^Token: \S+/m.test(stdout))) resolve(m);
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`tdv serve exited (${code}) before serving:\n${stdout}${stderr}`)));
  });
  const s: Serving = {
    url: ready[1]!,
    port: Number(new URL(ready[1]!).port),
    bucket: ready[2]!,
    token: /^Token: (\S+)/m.exec(stdout)?.[1],
    child,
    async stop(signal = 'SIGTERM') {
      running.delete(s);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
  running.add(s);
  return s;
}

/** Stops every server still running (call in afterAll/afterEach). */
export async function stopAllServes(): Promise<void> {
  await Promise.all([...running].map((s) => s.stop()));
}

/** Runs git with a fixed author and committer date (`date`: ISO 8601). */
export async function gitAt(cwd: string, date: string, ...args: string[]): Promise<void> {
  await execa('git', args, {
    cwd,
    env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
  });
}

export const TRIPS_V1 = 'day,trips\n2016-07-29,10\n2016-07-30,12\n';
export const TRIPS_V2 = `${TRIPS_V1}2016-08-01,15\n`;

/**
 * The served repository: two commits on main at fixed dates, a tag and a
 * branch with a slash.
 *
 *   2016-07-30 12:00Z  first   data/ (trips.csv v1, zones/a.csv, zones/b.csv), model.bin (256 KiB), README.md
 *   2016-08-02 12:00Z  second  trips.csv v2, model.bin changed          <- main, tag v1.0
 *   feature/x: at first, plus notes.txt in Git
 */
export async function servedRepo(): Promise<{ dir: string; first: string; second: string; model1: Buffer; model2: Buffer }> {
  const dir = await makeRepo();
  const model1 = Buffer.alloc(256 * 1024, 1);
  const model2 = Buffer.from(Array.from({ length: 256 * 1024 }, (_, i) => (i * 7) % 251));
  write(dir, 'data/trips.csv', TRIPS_V1);
  write(dir, 'data/zones/a.csv', 'zone\na\n');
  write(dir, 'data/zones/b c.csv', 'zone\nb c\n');
  write(dir, 'model.bin', model1);
  write(dir, 'README.md', '# served\n');
  await mustTdv(dir, 'add', 'data', 'model.bin');
  await gitAt(dir, '2016-07-30T12:00:00Z', 'add', '-A');
  await gitAt(dir, '2016-07-30T12:00:00Z', 'commit', '-qm', 'first');
  const first = (await execa('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout;
  write(dir, 'data/trips.csv', TRIPS_V2);
  write(dir, 'model.bin', model2);
  await mustTdv(dir, 'add', 'data', 'model.bin');
  await gitAt(dir, '2016-08-02T12:00:00Z', 'add', '-A');
  await gitAt(dir, '2016-08-02T12:00:00Z', 'commit', '-qm', 'second');
  const second = (await execa('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout;
  await gitAt(dir, '2016-08-02T12:00:00Z', 'tag', 'v1.0');
  await gitAt(dir, '2016-08-03T12:00:00Z', 'checkout', '-q', '-b', 'feature/x', first);
  write(dir, 'notes.txt', 'notes\n');
  await gitAt(dir, '2016-08-03T12:00:00Z', 'add', 'notes.txt');
  await gitAt(dir, '2016-08-03T12:00:00Z', 'commit', '-qm', 'notes');
  await gitAt(dir, '2016-08-03T12:00:00Z', 'checkout', '-q', 'main');
  await mustTdv(dir, 'checkout', '-q');
  return { dir, first, second, model1, model2 };
}

async function mustTdv(dir: string, ...args: string[]): Promise<void> {
  const r = await tdv(dir, ...args);
  if (r.code !== 0) throw new Error(`tdv ${args.join(' ')}: ${r.stderr}`);
}

/** The work tree's files (not .git, not .tdv), .git/index and HEAD, and the refs: what a reading server must leave alone. */
export function workspaceState(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && (e.name === '.git' || e.name === '.tdv')) continue;
      const p = path.join(d, e.name);
      const st = fs.lstatSync(p);
      if (e.isDirectory()) visit(p, r);
      else out[r] = `${st.mode} ${st.mtimeMs} ${fs.readFileSync(p).toString('base64')}`;
    }
  };
  visit(dir, '');
  for (const f of ['.git/index', '.git/HEAD', '.git/packed-refs']) if (fs.existsSync(path.join(dir, f))) out[f] = fs.readFileSync(path.join(dir, f)).toString('base64');
  const refs = (d: string, rel: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }))
      e.isDirectory() ? refs(path.join(d, e.name), `${rel}/${e.name}`) : (out[`${rel}/${e.name}`] = fs.readFileSync(path.join(d, e.name), 'utf8'));
  };
  refs(path.join(dir, '.git', 'refs'), '.git/refs');
  return out;
}
