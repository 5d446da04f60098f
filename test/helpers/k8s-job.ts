/**
 * Running the Kubernetes runner directly (runnerModule.create(...).run(job,
 * io)) with a JobIO built here: inputs from files, a temp staging directory,
 * the byte exchange of remote/exchange.ts on the current S3 test server.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { S3Exchange } from '../../src/remote/exchange.js';
import { S3Remote } from '../../src/remote/s3.js';
import type { CleanupAction, JobFile, JobIO } from '../../src/stages/job.js';
import { S3_BUCKET, s3RemoteConfig } from './s3.js';
import { TEST_IMAGE } from './docker.js';

/** The test image pinned as the fake cluster (and podman) can run it: NAME@<local image ID>. */
export function pinnedTestImage(): string {
  const id = spawnSync('docker', ['image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE], { encoding: 'utf8' }).stdout.trim();
  if (!id.startsWith('sha256:')) throw new Error(`cannot inspect ${TEST_IMAGE}`);
  return `${TEST_IMAGE}@${id}`;
}

export interface TestIO extends JobIO {
  out: string;
  cleanups: CleanupAction[];
  finished: number;
  remote: S3Remote;
  prefix: string;
}

/** Input files (repo-relative path -> content; a path ending in `*` is executable) written under `dir`. */
export function inputsIn(dir: string, files: Record<string, string>): { inputs: JobFile[]; where: Map<string, string> } {
  const inputs: JobFile[] = [];
  const where = new Map<string, string>();
  for (const [p, content] of Object.entries(files)) {
    const exec = p.endsWith('*');
    const rel = exec ? p.slice(0, -1) : p;
    const abs = path.join(dir, 'inputs', rel);
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    const f: JobFile = { path: rel, sha256: createHash('sha256').update(content).digest('hex'), size: Buffer.byteLength(content), ...(exec ? { exec: true } : {}) };
    inputs.push(f);
    where.set(f.sha256, abs);
  }
  return { inputs, where };
}

export function testIO(dir: string, where: Map<string, string>, signal?: AbortSignal): TestIO {
  const prefix = `k8s-${randomBytes(6).toString('hex')}`;
  const remote = new S3Remote('s3', s3RemoteConfig(prefix), { bucket: S3_BUCKET, prefix });
  const staging = path.join(dir, 'staging');
  fs.mkdirSync(staging, { recursive: true });
  const io: TestIO = {
    out: '',
    cleanups: [],
    finished: 0,
    remote,
    prefix,
    staging,
    signal,
    exchange: new S3Exchange(remote),
    openInput: (f) => fs.createReadStream(where.get(f.sha256)!),
    inputPath: (f) => where.get(f.sha256)!,
    onOutput: (chunk) => {
      io.out += chunk.toString();
    },
    onCleanup: (a) => {
      io.cleanups.push(a);
      return () => {
        io.finished++;
      };
    },
  };
  return io;
}
