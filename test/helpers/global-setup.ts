/**
 * vitest globalSetup: an S3 server for the S3 remote tests.
 *
 * TDV_TEST_S3_ENDPOINT set (CI starts its own server): used as is. Otherwise
 * s3-server.mjs is started on a free port for this run and stopped afterwards.
 * Workers learn the endpoint through `inject('s3Endpoint')` and the
 * environment (forks inherit it, and so do processes tests spawn). If no server
 * can be had, CI=true fails the run; elsewhere the reason is passed on as
 * `s3SkipReason` and the S3 tests skip, saying why.
 *
 * Docker: the same for the daemon and the test image (docker-probe.ts, which
 * creates the image when Docker is there): `dockerSkipReason`, fatal under CI=true.
 *
 * Temp files: the run gets a temp directory of its own, removed at the end
 * (run-tmp.ts), first of all, so the S3 server's directory is in it too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { probeDocker } from './docker-probe.js';
import { useRunTmp } from './run-tmp.js';

declare module 'vitest' {
  export interface ProvidedContext {
    s3Endpoint: string;
    s3SkipReason: string;
    dockerSkipReason: string;
  }
}

const SCRIPT = path.resolve(import.meta.dirname, 's3-server.mjs');
const START_TIMEOUT_MS = 30_000;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const removeRunTmp = useRunTmp();
  let stopServices: () => Promise<void>;
  try {
    stopServices = await startServices(project);
  } catch (err) {
    removeRunTmp();
    throw err;
  }
  return async () => {
    try {
      await stopServices();
    } finally {
      removeRunTmp();
    }
  };
}

async function startServices(project: TestProject): Promise<() => Promise<void>> {
  const noDocker = probeDocker();
  if (noDocker && process.env.CI === 'true') throw new Error(`${noDocker} (CI=true: the Docker tests must run)`);
  project.provide('dockerSkipReason', noDocker ?? '');
  const given = process.env.TDV_TEST_S3_ENDPOINT;
  if (given) {
    project.provide('s3Endpoint', given);
    project.provide('s3SkipReason', '');
    return async () => {};
  }
  let child: ChildProcess | undefined;
  try {
    const started = await startServer();
    child = started.child;
    const endpoint = `http://127.0.0.1:${started.port}`;
    process.env.TDV_TEST_S3_ENDPOINT = endpoint;
    project.provide('s3Endpoint', endpoint);
    project.provide('s3SkipReason', '');
  } catch (err) {
    const reason = `no S3 test server: ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(`${reason} (CI=true: the S3 tests must run)`);
    project.provide('s3Endpoint', '');
    project.provide('s3SkipReason', reason);
  }
  return async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child!.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
}

/** Starts s3-server.mjs on a free port and waits for its READY line. */
function startServer(): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    // --exit-with-stdin: if this process dies without teardown, the server follows.
    const child = spawn(process.execPath, ['--openssl-legacy-provider', SCRIPT, '--port', '0', '--exit-with-stdin'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
      reject(new Error(why));
    };
    const why = () => (err ? `: ${summarize(err)}` : '');
    const timer = setTimeout(() => fail(`s3-server.mjs printed no READY within ${START_TIMEOUT_MS / 1000} s${why()}`), START_TIMEOUT_MS);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /^READY (\d+)$/m.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.removeAllListeners('data').resume();
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', (e) => fail(`cannot run s3-server.mjs: ${e.message}`));
    child.once('exit', (code, signal) => fail(`s3-server.mjs exited (${signal ?? code})${why()}`));
  });
}

/** The telling line of a child's stderr: its own `ERROR ...`, else Node's `...Error: ...`. */
function summarize(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const own = lines.find((l) => l.startsWith('ERROR '));
  if (own) return own.slice(6);
  return lines.find((l) => /^\w*Error\b/.test(l)) ?? lines[0] ?? '';
}
