import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RunResult, RunSpec, StageRunner } from '../../src/stages/runner.js';
import { tmpDir } from '../helpers/repo.js';

export interface RunnerUnderTest {
  runner: StageRunner;
  /** The image ID specs run in (Docker). */
  image?: string;
  /**
   * What an aborted run left behind in `root`: containers (Docker), or live
   * processes whose pids the command wrote to `pidFile` (local).
   */
  leftovers(root: string, pidFile: string): Promise<string[]>;
}

export interface Captured {
  result: RunResult;
  stdout: string;
  stderr: string;
  /** Each chunk with the ms since the run started. */
  chunks: { at: number; stream: 'stdout' | 'stderr'; text: string }[];
  ms: number;
}

/** A repository-like temp dir with a `sub` directory. */
export function makeRoot(): string {
  const root = fs.realpathSync(tmpDir('tdv-runner-'));
  fs.mkdirSync(path.join(root, 'sub'));
  return root;
}

export async function runCapture(r: RunnerUnderTest, root: string, cmd: string, over: Partial<RunSpec> = {}): Promise<Captured> {
  const chunks: Captured['chunks'] = [];
  const t0 = performance.now();
  const result = await r.runner.run({
    stage: 'test',
    cmd,
    root,
    cwd: root,
    env: {},
    image: r.image,
    onOutput: (c, stream) => chunks.push({ at: performance.now() - t0, stream, text: c.toString('utf8') }),
    ...over,
  });
  const text = (s: string) =>
    chunks
      .filter((c) => c.stream === s)
      .map((c) => c.text)
      .join('');
  return { result, stdout: text('stdout'), stderr: text('stderr'), chunks, ms: performance.now() - t0 };
}

/**
 * What every StageRunner must do, wherever the command runs. `make` returns a
 * runner (and may register its own cleanup).
 */
export function runnerContract(label: string, make: () => Promise<RunnerUnderTest>): void {
  describe(`${label} runner contract`, () => {
    it.each([0, 1, 3, 125, 255])('returns the exit code of the command: %i', async (code) => {
      const r = await make();
      const c = await runCapture(r, makeRoot(), `exit ${code}`);
      expect(c.result).toEqual({ exitCode: code });
    });

    it('passes stdout and stderr apart, and streams them while the command runs', async () => {
      const r = await make();
      const c = await runCapture(r, makeRoot(), 'echo out1; echo err1 >&2; sleep 1.5; echo out2; echo err2 >&2');
      expect(c.result.exitCode).toBe(0);
      expect(c.stdout).toBe('out1\nout2\n');
      expect(c.stderr).toBe('err1\nerr2\n');
      const first = c.chunks.find((ch) => ch.text.includes('out1'))!;
      // The first line arrived at least a second before the command ended.
      expect(c.ms - first.at).toBeGreaterThan(1000);
    });

    it('runs in the given working directory inside the root', async () => {
      const r = await make();
      const root = makeRoot();
      const c = await runCapture(r, root, 'pwd; echo made > here.txt', { cwd: path.join(root, 'sub') });
      expect(c.result.exitCode).toBe(0);
      expect(c.stdout.trim()).toBe(path.join(root, 'sub'));
      expect(fs.readFileSync(path.join(root, 'sub', 'here.txt'), 'utf8')).toBe('made\n');
    });

    it('passes env values as data: newlines, quotes and shell syntax arrive intact and unexecuted', async () => {
      const r = await make();
      const root = makeRoot();
      const env = {
        MULTI: 'line one\nline two\n',
        SUBST: `$(touch ${root}/pwned) \`touch ${root}/pwned2\``,
        QUOTES: `it's "quoted"; echo injected; -e X=1 --rm`,
        EMPTY: '',
      };
      const c = await runCapture(r, root, `printf '%s|' "$MULTI" "$SUBST" "$QUOTES" "$EMPTY"; env | grep -c '^EMPTY=$'`, { env });
      expect(c.result.exitCode).toBe(0);
      expect(c.stdout).toBe(`${env.MULTI}|${env.SUBST}|${env.QUOTES}||1\n`);
      expect(fs.existsSync(path.join(root, 'pwned'))).toBe(false);
      expect(fs.existsSync(path.join(root, 'pwned2'))).toBe(false);
    });

    it.each(['--rm -v /:/host', '; rm -rf /', '$(touch /tmp/x)', '-e', 'a b\nc', ''])('a stage named %j runs normally and injects nothing', async (stage) => {
      const r = await make();
      const root = makeRoot();
      const c = await runCapture(r, root, 'echo ok; ls /host 2>/dev/null | wc -l', { stage });
      expect(c.result.exitCode).toBe(0);
      expect(c.stdout).toBe('ok\n0\n');
    });

    it('writes outputs owned by the invoking uid and gid', async () => {
      const r = await make();
      const root = makeRoot();
      const c = await runCapture(r, root, 'mkdir -p out && echo x > out/result.txt');
      expect(c.result.exitCode).toBe(0);
      for (const p of ['out', 'out/result.txt']) {
        const st = fs.statSync(path.join(root, p));
        expect([st.uid, st.gid]).toEqual([process.getuid!(), process.getgid!()]);
      }
    });

    it('abort stops a long command within a few seconds, with everything it started', async () => {
      const r = await make();
      const root = makeRoot();
      const ac = new AbortController();
      const pidFile = path.join(root, 'bg.pid');
      const started = path.join(root, 'started');
      const running = runCapture(r, root, `sleep 30 & echo $! > ${pidFile}; touch ${started}; sleep 30`, { signal: ac.signal });
      running.catch(() => undefined); // a failure to start is reported by the await below, not as unhandled
      await waitFor(() => fs.existsSync(started), 20_000);
      const t = performance.now();
      ac.abort();
      const c = await running;
      expect(performance.now() - t).toBeLessThan(7_000);
      expect(c.result.exitCode).toBeNull();
      expect(c.result.signal).toBeTruthy();
      // The kill is sent; the kernel may take a moment to finish the processes off.
      let left = await r.leftovers(root, pidFile);
      for (let i = 0; i < 30 && left.length; i++) {
        await new Promise((res) => setTimeout(res, 100));
        left = await r.leftovers(root, pidFile);
      }
      expect(left).toEqual([]);
    });

    it('does not start a command when already aborted', async () => {
      const r = await make();
      const root = makeRoot();
      const ac = new AbortController();
      ac.abort();
      const c = await runCapture(r, root, 'touch ran', { signal: ac.signal });
      expect(c.result.exitCode).toBeNull();
      expect(fs.existsSync(path.join(root, 'ran'))).toBe(false);
    });

    it('refuses an env name that is not a variable name, before running anything', async () => {
      const r = await make();
      const root = makeRoot();
      await expect(runCapture(r, root, 'touch ran', { env: { 'A=B': 'x' } })).rejects.toMatchObject({ code: 'BAD_STAGE_ENV' });
      expect(fs.existsSync(path.join(root, 'ran'))).toBe(false);
    });

    it('refuses a working directory that does not exist, naming it', async () => {
      const r = await make();
      const root = makeRoot();
      const err = await runCapture(r, root, 'true', { cwd: path.join(root, 'nope') }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'STAGE_WDIR_MISSING' });
      expect((err as Error).message).toMatch(/^stage test: working directory nope does not exist/);
    });
  });
}

export async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
