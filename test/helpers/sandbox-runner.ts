/**
 * A JobRunner for tests of the job path (repro's side of runners elsewhere):
 * it shares nothing with the workspace but what the spec lists. Each input
 * is copied from `io.inputPath` into a temp directory of its own, every
 * command runs there with `sh -c` in the stage's wdir, and the declared
 * outputs that exist are copied into `io.staging` and hashed. `tamper` and
 * `claims` let a test make it misbehave as a broken or hostile engine could.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { JobFile, JobIO, JobResult, JobRunner, JobSpec } from '../../src/stages/job.js';

export interface SandboxOptions {
  name?: string;
  /** Changes the staging directory after the outputs were copied in (before hashing). */
  tamper?: (staging: string) => void;
  /** Changes the claimed outputs before they are returned. */
  claims?: (outputs: JobFile[]) => JobFile[];
  /** Every spec it was given, for assertions. */
  specs?: JobSpec[];
  /** What sweep reports as stopped. */
  leftovers?: string[];
  /** Offers resolveImage, answering with this. */
  resolve?: (ref: string) => string | undefined;
  /** The image ID it reports having run. */
  ranImage?: string;
}

function hashTree(root: string, rel: string, out: JobFile[]): void {
  const abs = path.join(root, rel);
  const st = fs.lstatSync(abs);
  if (st.isDirectory()) {
    for (const n of fs.readdirSync(abs).sort()) hashTree(root, rel ? `${rel}/${n}` : n, out);
  } else if (st.isFile()) {
    out.push({ path: rel, sha256: createHash('sha256').update(fs.readFileSync(abs)).digest('hex'), size: st.size });
  }
}

export function sandboxRunner(opts: SandboxOptions = {}): JobRunner & { swept: string[] } {
  const swept: string[] = [];
  return {
    name: opts.name ?? 'sandbox',
    type: 'sandbox',
    swept,
    ...(opts.resolve ? { resolveImage: async (ref: string) => opts.resolve!(ref) } : {}),
    async sweep(repoId: string) {
      swept.push(repoId);
      return opts.leftovers ?? [];
    },
    async run(spec: JobSpec, io: JobIO): Promise<JobResult> {
      opts.specs?.push(spec);
      const started = new Date().toISOString();
      const box = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-sandbox-'));
      try {
        for (const f of spec.inputs) {
          const dest = path.join(box, f.path);
          fs.mkdirSync(path.dirname(dest), { recursive: true });
          fs.copyFileSync(io.inputPath(f), dest);
          fs.chmodSync(dest, f.exec ? 0o755 : 0o644);
        }
        const cwd = path.join(box, spec.wdir);
        fs.mkdirSync(cwd, { recursive: true });
        for (const o of spec.outputs) fs.mkdirSync(path.dirname(path.join(box, o)), { recursive: true });
        let exitCode: number | null = 0;
        for (const cmd of spec.cmd) {
          if (io.signal?.aborted) return { exitCode: null, signal: 'SIGTERM', started, ended: new Date().toISOString(), where: 'sandbox', outputs: [] };
          exitCode = await new Promise<number | null>((resolve) => {
            // Its own process group, so that stopping it stops what the shell started too.
            const child = spawn('sh', ['-c', cmd], { cwd, env: { PATH: process.env.PATH, ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
            child.stdout.on('data', (c: Buffer) => io.onOutput(c, 'stdout'));
            child.stderr.on('data', (c: Buffer) => io.onOutput(c, 'stderr'));
            const stop = () => {
              try {
                process.kill(-child.pid!, 'SIGKILL');
              } catch {
                /* gone */
              }
            };
            io.signal?.addEventListener('abort', stop, { once: true });
            child.on('close', (code) => {
              io.signal?.removeEventListener('abort', stop);
              resolve(code);
            });
          });
          if (exitCode !== 0) break;
        }
        const ended = new Date().toISOString();
        if (io.signal?.aborted) return { exitCode: null, signal: 'SIGTERM', started, ended, where: 'sandbox', outputs: [] };
        if (exitCode !== 0) return { exitCode, started, ended, where: 'sandbox', outputs: [] };
        for (const o of spec.outputs) {
          const from = path.join(box, o);
          if (!fs.existsSync(from)) continue;
          fs.mkdirSync(path.dirname(path.join(io.staging, o)), { recursive: true });
          execFileSync('cp', ['-a', from, path.join(io.staging, o)]);
        }
        opts.tamper?.(io.staging);
        let outputs: JobFile[] = [];
        hashTree(io.staging, '', outputs);
        if (opts.claims) outputs = opts.claims(outputs);
        return { exitCode: 0, started, ended, where: `sandbox:${os.hostname()}`, ...(opts.ranImage ? { image: opts.ranImage } : {}), outputs };
      } finally {
        fs.rmSync(box, { recursive: true, force: true });
      }
    },
  };
}
