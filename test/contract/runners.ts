/**
 * The contract every JobRunner (stages/job.ts) must keep, wherever it runs the
 * job: bytes in by hash, the exit code out, outputs back under the staging
 * directory hashed, nothing else. A new engine calls `jobRunnerContract` with
 * a way to make one (see runner-docker-host.test.ts).
 *
 * The JobIO here is what repro gives a runner: inputs in a content-addressed
 * directory (named by sha256, as in .tdv/cache), an empty staging directory.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { CleanupAction, JobFile, JobIO, JobResult, JobRunner, JobSpec } from '../../src/stages/job.js';
import { tmpDir } from '../helpers/repo.js';

export interface JobRunnerUnderTest {
  runner: JobRunner;
  /** What jobs run in (`image:` or `build:`), when the engine needs one. */
  image?: JobSpec['image'];
  /** Containers, Jobs or processes of earlier runs still there (an aborted run must leave none). */
  leftovers(): Promise<string[]>;
}

/** Files a job reads, by repo-relative path: content, or content and exec bit. */
export type InputFiles = Record<string, string | Buffer | { content: string | Buffer; exec: boolean }>;

export interface Ran {
  result: JobResult;
  stdout: string;
  stderr: string;
  staging: string;
  cache: string;
  cleanups: { action: CleanupAction; done: boolean }[];
}

/** A JobIO over a content-addressed temp cache holding `files`, with an empty staging directory. */
export function makeJobIO(files: InputFiles, over: Partial<JobIO> = {}): { io: JobIO; inputs: JobFile[]; cache: string; out: { stdout: string; stderr: string }; cleanups: Ran['cleanups'] } {
  const cache = fs.realpathSync(tmpDir('tdv-jobcache-'));
  const staging = path.join(fs.realpathSync(tmpDir('tdv-jobstage-')), 'staging');
  fs.mkdirSync(staging);
  const inputs: JobFile[] = [];
  for (const [p, spec] of Object.entries(files)) {
    const content = typeof spec === 'string' || Buffer.isBuffer(spec) ? spec : spec.content;
    const exec = typeof spec === 'object' && !Buffer.isBuffer(spec) ? spec.exec : false;
    const buf = Buffer.from(content);
    const sha256 = createHash('sha256').update(buf).digest('hex');
    fs.writeFileSync(path.join(cache, sha256), buf);
    inputs.push({ path: p, sha256, size: buf.length, ...(exec ? { exec: true } : {}) });
  }
  const out = { stdout: '', stderr: '' };
  const cleanups: Ran['cleanups'] = [];
  const io: JobIO = {
    openInput: (f) => fs.createReadStream(path.join(cache, f.sha256)),
    inputPath: (f) => path.join(cache, f.sha256),
    staging,
    onOutput: (c, s) => (out[s] += c.toString('utf8')),
    onCleanup: (action) => {
      const entry = { action, done: false };
      cleanups.push(entry);
      return () => (entry.done = true);
    },
    ...over,
  };
  return { io, inputs, cache, out, cleanups };
}

/** Runs `cmd` (one command or several) with `files` as inputs. */
export async function runJob(
  r: JobRunnerUnderTest,
  cmd: string | string[],
  opts: { files?: InputFiles; outputs?: string[]; env?: Record<string, string>; wdir?: string; io?: Partial<JobIO>; resources?: JobSpec['resources'] } = {},
): Promise<Ran> {
  const { io, inputs, cache, out, cleanups } = makeJobIO(opts.files ?? {}, opts.io);
  const result = await r.runner.run(
    {
      stage: 'test',
      image: r.image,
      cmd: Array.isArray(cmd) ? cmd : [cmd],
      env: opts.env ?? {},
      wdir: opts.wdir ?? '.',
      inputs,
      outputs: opts.outputs ?? [],
      ...(opts.resources ? { resources: opts.resources } : {}),
    },
    io,
  );
  return { result, stdout: out.stdout, stderr: out.stderr, staging: io.staging, cache, cleanups };
}

/** Every entry under `dir`, relative, with its kind: what the runner left in staging. */
export function listTree(dir: string): string[] {
  const found: string[] = [];
  const walk = (abs: string, rel: string) => {
    for (const n of fs.readdirSync(abs).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(abs, n));
      if (st.isDirectory()) {
        found.push(`${r}/`);
        walk(path.join(abs, n), r);
      } else found.push(st.isFile() ? r : `${r} (${st.isSymbolicLink() ? 'symlink' : 'special'})`);
    }
  };
  walk(dir, '');
  return found;
}

function sha(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/** What every JobRunner must do. `make` returns a runner ready to run jobs. */
export function jobRunnerContract(label: string, make: () => Promise<JobRunnerUnderTest>): void {
  describe(`${label}: job runner contract`, () => {
    it('copies an input to an output: the input arrives with its bytes, the output comes back hashed under staging', async () => {
      const r = await make();
      const ran = await runJob(r, 'mkdir -p out && cp data/in.txt out/copy.txt', { files: { 'data/in.txt': 'hello\n' }, outputs: ['out'] });
      expect(ran.result.exitCode).toBe(0);
      expect(ran.result.outputs).toEqual([{ path: 'out/copy.txt', sha256: sha('hello\n'), size: 6 }]);
      expect(fs.readFileSync(path.join(ran.staging, 'out/copy.txt'), 'utf8')).toBe('hello\n');
      expect(listTree(ran.staging)).toEqual(['out/', 'out/copy.txt']);
      expect(Date.parse(ran.result.ended)).toBeGreaterThanOrEqual(Date.parse(ran.result.started));
      expect(ran.result.where).not.toBe('');
    });

    it.each([0, 1, 3, 125, 255])('returns the exit code of the command: %i', async (code) => {
      const r = await make();
      const ran = await runJob(r, `exit ${code}`);
      expect(ran.result.exitCode).toBe(code);
    });

    it('runs the commands in order; a failing command stops the list with its code', async () => {
      const r = await make();
      const ran = await runJob(r, ['echo one', 'echo two >&2; exit 4', 'echo three']);
      expect(ran.result.exitCode).toBe(4);
      expect(ran.stdout).toBe('one\n');
      expect(ran.stderr).toBe('two\n');
    });

    it('env values with shell metacharacters arrive as data', async () => {
      const r = await make();
      const value = `$(touch pwned) \`touch pwned2\` 'q' "d" ; | & > x\nline2 $HOME`;
      const ran = await runJob(r, ['printf %s "$V"', 'test ! -e pwned && test ! -e pwned2 && test ! -e x'], { env: { V: value, 'WITH.DOT': 'ok' } });
      expect(ran.result.exitCode).toBe(0);
      expect(ran.stdout).toBe(value);
    });

    it('commands are data too: each runs by its own sh -c', async () => {
      const r = await make();
      const ran = await runJob(r, ['X=1; echo "a $X"', `echo 'quoted; "$X"'`]);
      expect(ran.result.exitCode).toBe(0);
      expect(ran.stdout).toBe('a 1\nquoted; "$X"\n');
    });

    it('inputs arrive with their modes; the working directory is wdir', async () => {
      const r = await make();
      const ran = await runJob(r, ['./run.sh', 'stat -c %a ../sub/run.sh ../data/plain'], {
        files: { 'sub/run.sh': { content: '#!/bin/sh\necho ran in "$(basename "$PWD")"\n', exec: true }, 'data/plain': 'x' },
        wdir: 'sub',
      });
      expect(ran.stderr).toBe('');
      expect(ran.result.exitCode).toBe(0);
      expect(ran.stdout).toBe('ran in sub\n755\n644\n');
    });

    it('outputs in directories come back, nested, with their exec bits; a declared output not made is absent', async () => {
      const r = await make();
      const ran = await runJob(r, 'mkdir -p out/a/b && echo 1 > out/a/b/c && printf 2 > out/top && chmod +x out/top && echo m > metrics.json', {
        outputs: ['out', 'metrics.json', 'never/made.txt'],
      });
      expect(ran.result.exitCode).toBe(0);
      const byPath = Object.fromEntries(ran.result.outputs.map((o) => [o.path, o]));
      expect(Object.keys(byPath).sort()).toEqual(['metrics.json', 'out/a/b/c', 'out/top']);
      expect(byPath['out/a/b/c']).toMatchObject({ sha256: sha('1\n'), size: 2 });
      expect(byPath['out/top']).toMatchObject({ sha256: sha('2'), size: 1, exec: true });
      expect(fs.statSync(path.join(ran.staging, 'out/top')).mode & 0o111).not.toBe(0);
      expect(fs.existsSync(path.join(ran.staging, 'never'))).toBe(false);
    });

    it('an output that is a directory holding only an empty directory comes back as that directory', async () => {
      const r = await make();
      const ran = await runJob(r, 'mkdir -p out/empty', { outputs: ['out'] });
      expect(ran.result.exitCode).toBe(0);
      expect(ran.result.outputs).toEqual([]);
      expect(listTree(ran.staging)).toEqual(['out/', 'out/empty/']);
    });

    it.each([
      ['a symlink as the output', 'ln -s /etc/passwd out', ['out']],
      ['a symlink inside an output directory', 'mkdir out && echo ok > out/a && ln -s /etc out/link', ['out']],
      ['a symlink to a parent directory', 'mkdir out && ln -s .. out/up', ['out']],
      ['a FIFO', 'mkfifo out', ['out']],
      ['a FIFO inside an output directory', 'mkdir out && mkfifo out/pipe', ['out']],
      ['a hard link inside an output directory', 'mkdir out && echo x > out/a && ln out/a out/b', ['out']],
    ])('a hostile container making %s is refused', async (_what, cmd, outputs) => {
      const r = await make();
      const { io } = makeJobIO({});
      const err = await r.runner.run({ stage: 'test', image: r.image, cmd: [cmd], env: {}, wdir: '.', inputs: [], outputs }, io).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'JOB_OUTPUT_REFUSED' });
      expect((err as Error).message).not.toContain('\n');
      expect(listTree(io.staging).filter((e) => e.includes('(symlink)') || e.includes('(special)'))).toEqual([]);
      expect(await r.leftovers()).toEqual([]);
    });

    it('a container climbing out with ../ through a symlinked parent brings back nothing outside the declared output', async () => {
      const r = await make();
      // `up` points at the container's root; the declared output is below it.
      const ran = await runJob(r, 'ln -s .. up; echo inside > ../escaped 2>/dev/null; true', { outputs: ['up/escaped'] }).catch((e: unknown) => e);
      if (ran instanceof Error) {
        expect(ran).toMatchObject({ code: 'JOB_OUTPUT_REFUSED' });
        return;
      }
      const got = ran as Ran;
      for (const entry of listTree(got.staging)) expect(entry === 'up/' || entry.startsWith('up/escaped')).toBe(true);
      expect(listTree(got.staging).every((e) => !e.includes('symlink') && !e.includes('special'))).toBe(true);
    });

    it('abort stops the job: it resolves with exitCode null and leaves nothing running', async () => {
      const r = await make();
      const ac = new AbortController();
      const running = runJob(r, 'echo started; sleep 60', { io: { signal: ac.signal, onOutput: () => ac.abort() } });
      const ran = await running;
      expect(ran.result.exitCode).toBeNull();
      expect(await r.leftovers()).toEqual([]);
    });

    it('an abort before the start runs nothing', async () => {
      const r = await make();
      const ac = new AbortController();
      ac.abort();
      const ran = await runJob(r, 'echo should-not-run', { io: { signal: ac.signal } });
      expect(ran.result.exitCode).toBeNull();
      expect(ran.stdout).toBe('');
      expect(await r.leftovers()).toEqual([]);
    });

    it('1,000 small input files arrive, every byte', async () => {
      const r = await make();
      const files: InputFiles = {};
      let total = 0;
      for (let i = 0; i < 1000; i++) {
        const content = `file ${i} ${'x'.repeat(i % 37)}\n`;
        files[`many/d${i % 10}/f${String(i).padStart(4, '0')}`] = content;
        total += content.length;
      }
      const ran = await runJob(r, 'find many -type f | wc -l; cat many/*/* | wc -c', { files });
      expect(ran.result.exitCode).toBe(0);
      expect(ran.stdout.split('\n').map((l) => l.trim())).toEqual(['1000', String(total), '']);
    });

    it('a 3 MiB input and output travel intact (streamed, not one buffer)', async () => {
      const r = await make();
      const big = Buffer.alloc(3 << 20);
      for (let i = 0; i < big.length; i += 4096) big.writeUInt32LE(i, i);
      const ran = await runJob(r, 'cp big.bin copy.bin', { files: { 'big.bin': big }, outputs: ['copy.bin'] });
      expect(ran.result.exitCode).toBe(0);
      expect(ran.result.outputs).toEqual([{ path: 'copy.bin', sha256: sha(big), size: big.length }]);
    });

    it('registers how to stop what it started, and marks it done once removed', async () => {
      const r = await make();
      const ran = await runJob(r, 'true');
      expect(ran.result.exitCode).toBe(0);
      expect(ran.cleanups.length).toBeGreaterThan(0);
      expect(ran.cleanups.every((c) => c.done)).toBe(true);
      expect(await r.leftovers()).toEqual([]);
    });
  });
}
