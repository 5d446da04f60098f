/**
 * No hangs (issue 11, class 8): a FIFO where a remote or the cache should hold
 * an object, or where tdv reads a file it parses, is an error naming it, never
 * an open that waits forever; files too large to parse are refused before
 * they are read. Each command runs as users run it (bin/tdv in a child
 * process) under a timeout, so a hang fails the test instead of stalling it.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { TDV_BIN, tdv, write } from '../helpers/repo.js';
import { objPath, sampleRepo, SAMPLE_DIR, sha } from '../helpers/expect.js';

/** Far beyond what any of these commands needs; only a hang reaches it. */
const HANG = 20_000;

async function run(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await execa('node', [TDV_BIN, ...args], { cwd, reject: false, timeout: HANG, killSignal: 'SIGKILL', env: { NO_COLOR: '1' } });
  expect(r.timedOut, `tdv ${args.join(' ')} hung: ${r.stderr}`).toBe(false);
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 with exactly one error line, naming every needle, and no stack trace. */
function expectOneError(r: { code: number; stderr: string }, ...needles: (string | RegExp)[]): void {
  expect(r.code, r.stderr).toBe(1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
  expect(errors, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  for (const n of needles) expect(errors[0]).toMatch(n);
}

function fifo(file: string): void {
  fs.rmSync(file, { force: true });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  execFileSync('mkfifo', [file]);
}

const MODEL = sha('weights');
const A_CSV = sha('a,1\n');

/** The sample repository, pushed to its directory remote, with its cache and data then removed (a fresh clone). */
async function pushedAndEmptied(): Promise<{ dir: string; remote: string }> {
  const s = await sampleRepo({ commit: true, layout: 'plain' });
  const p = await tdv(s.dir, 'push');
  expect(p.code, p.stderr).toBe(0);
  fs.rmSync(path.join(s.dir, '.tdv', 'cache'), { recursive: true });
  fs.rmSync(path.join(s.dir, 'data'), { recursive: true });
  fs.rmSync(path.join(s.dir, 'model.bin'));
  return s;
}

const remoteObj = (remote: string, oid: string) => path.join(remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2));

describe('a FIFO in a directory remote where an object should be', () => {
  it.each([
    ['a file', MODEL],
    ['a manifest', SAMPLE_DIR.oid],
  ])('pull and fetch of %s: one error naming it, no hang', async (_what, oid) => {
    const { dir, remote } = await pushedAndEmptied();
    fifo(remoteObj(remote, oid));
    for (const cmd of ['fetch', 'pull']) {
      const r = await run(dir, cmd);
      expectOneError(r, `${remoteObj(remote, oid)} is a FIFO (named pipe), not a regular file`);
    }
  });

  it.each([
    ['a file of a directory', A_CSV],
    ['a file', MODEL],
  ])('fsck --remote reports %s that is a FIFO, naming it', async (_what, oid) => {
    const { dir, remote } = await sampleRepo({ commit: true, layout: 'plain' });
    expect((await tdv(dir, 'push')).code).toBe(0);
    fifo(remoteObj(remote, oid));
    const f = await run(dir, 'fsck', '--remote');
    expectOneError(f, 'fsck found problems');
    expect(f.stderr).toContain(`${remoteObj(remote, oid)} is a FIFO (named pipe), not a regular file`);
  });

  it('push does not take a FIFO for the object: it uploads the object over it', async () => {
    const { dir, remote } = await sampleRepo({ commit: true, layout: 'plain' });
    expect((await tdv(dir, 'push')).code).toBe(0);
    fifo(remoteObj(remote, MODEL));
    const p = await run(dir, 'push');
    expect(p.code, p.stderr).toBe(0);
    expect(fs.lstatSync(remoteObj(remote, MODEL)).isFile()).toBe(true); // checked before reading: a FIFO would block this test
    expect(fs.readFileSync(remoteObj(remote, MODEL), 'utf8')).toBe('weights');
    expect((await run(dir, 'fsck', '--remote')).code).toBe(0);
  });
});

describe('a FIFO in the cache as an object', () => {
  it.each([
    ['a file', MODEL, 'model.bin', 'model.bin'],
    ['a manifest', SAMPLE_DIR.oid, 'data', 'data'],
    ['a file of a directory', A_CSV, 'data', 'data/a.csv'],
  ])('checkout and pull of %s: one error naming it, no hang; fsck moves it aside and pull then restores', async (_what, oid, rel, file) => {
    const { dir } = await sampleRepo({ commit: true, layout: 'plain' });
    expect((await tdv(dir, 'push')).code).toBe(0);
    fifo(objPath(dir, oid));
    fs.rmSync(path.join(dir, rel), { recursive: true });
    for (const cmd of ['checkout', 'pull']) {
      const r = await run(dir, cmd);
      expectOneError(r, `cache object ${objPath(dir, oid)} is a FIFO (named pipe), not a regular file`, '`tdv fsck` moves it aside');
      expect(fs.existsSync(path.join(dir, file))).toBe(false);
    }
    const f = await run(dir, 'fsck');
    expectOneError(f, 'fsck found problems', '1 corrupt object moved to .tdv/tmp/quarantine/');
    expect(f.stdout).toContain('not a regular file (a FIFO (named pipe))');
    const p = await run(dir, 'pull');
    expect(p.code, p.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, file))).toBe(true);
  });

  it('status with the manifest a FIFO: one error, no hang', async () => {
    const { dir } = await sampleRepo({ commit: true, layout: 'plain' });
    fifo(objPath(dir, SAMPLE_DIR.oid));
    write(dir, 'data/new.csv', 'n\n'); // so status must read the manifest
    expectOneError(await run(dir, 'status'), `cache object ${objPath(dir, SAMPLE_DIR.oid)} is a FIFO`);
  });
});

describe('files tdv parses: never a blocking open, never a huge read', () => {
  it.each(['tdv.yaml', 'tdv.lock', '.tdv/config.local.yaml'])('%s as a FIFO: one error naming it, no hang', async (rel) => {
    const { dir } = await sampleRepo({ commit: true, layout: 'plain' });
    fifo(path.join(dir, rel));
    expectOneError(await run(dir, 'status'), `${rel} is a FIFO (named pipe), not a regular file`);
  });

  it.each([
    ['tdv.yaml', 20 * 2 ** 20, /tdv\.yaml is 20 MiB, more than the 8 MiB tdv reads/],
    ['tdv.lock', 9 * 2 ** 20, /tdv\.lock is 9 MiB, more than the 8 MiB tdv reads for tdv\.lock/],
    ['model.bin.tdv', 2 * 2 ** 20, /model\.bin\.tdv is 2 MiB, more than the 1 MiB tdv reads for a pointer file/],
  ])('a %s of %i bytes is refused before it is read or parsed', async (rel, size, message) => {
    const { dir } = await sampleRepo({ commit: true, layout: 'plain' });
    fs.rmSync(path.join(dir, rel), { force: true });
    fs.writeFileSync(path.join(dir, rel), '');
    fs.truncateSync(path.join(dir, rel), size); // sparse: nothing is written
    expectOneError(await run(dir, 'status'), message);
  });

  it('a manifest larger than the limit is refused by its size, naming the object and the limit, before it is read', async () => {
    const { dir } = await sampleRepo({ commit: true, layout: 'plain' });
    const file = objPath(dir, SAMPLE_DIR.oid);
    fs.chmodSync(file, 0o644);
    fs.truncateSync(file, 300 * 2 ** 20); // sparse; reading it would take 300 MiB of memory, and parsing far more
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    expectOneError(await run(dir, 'checkout'), `${file}: directory manifest is 300 MiB, more than the 256 MiB (about 2 million files)`);
  });
});
