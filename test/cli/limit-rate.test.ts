import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, packedBytes, remoteObjects, sampleRepo } from '../helpers/expect.js';

/**
 * `--limit-rate` and `remote.<name>.limit_rate` (issue 14 §4): the syntax, its
 * refusals, and that a transfer of N bytes at rate R takes at least
 * (N - burst) / R seconds. Only that lower bound is asserted, never an upper one.
 */

const KiB = 1024;

/** A repository with one random file of `size` bytes added, and an empty directory remote "store". */
async function repoWithData(size: number, remoteYaml = ''): Promise<{ dir: string; remote: string }> {
  const dir = await newRepo();
  const remote = newDir();
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n${remoteYaml}`);
  write(dir, 'data.bin', crypto.randomBytes(size));
  const r = await tdv(dir, 'add', 'data.bin');
  expect(r.code, r.stderr).toBe(0);
  return { dir, remote };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ res: T; seconds: number }> {
  const t0 = performance.now();
  const res = await fn();
  return { res, seconds: (performance.now() - t0) / 1000 };
}

describe('--limit-rate', () => {
  it.each(['push', 'fetch', 'pull'])('%s refuses 0, negatives and junk with one line naming the flag and an example; exit 2', async (cmd) => {
    const { dir } = await sampleRepo();
    for (const bad of ['0', '=-5', 'fast', '4mb', '1e6']) {
      const r = await tdv(dir, cmd, bad.startsWith('=') ? `--limit-rate${bad}` : '--limit-rate', ...(bad.startsWith('=') ? [] : [bad]));
      expect(r.code, `${cmd} ${bad}`).toBe(2);
      expectOneLineError(r.stderr, '--limit-rate must be bytes per second, with an optional k, m or g suffix (1024-based), e.g. 500k or 4M', `got "${bad.replace(/^=/, '')}"`);
    }
  });

  it('a push of N bytes takes at least (N - burst) / rate, and the data arrives whole', async () => {
    const size = 768 * KiB;
    const { dir, remote } = await repoWithData(size);
    const { res, seconds } = await timed(() => tdv(dir, 'push', '--limit-rate', '256k'));
    expect(res.code, res.stderr).toBe(0);
    // Random bytes: what was sent (record headers, the index) is not less than the object, so no "sent".
    expect(res.stdout).toMatch(/^Pushed 1 object \(768(\.0)? KiB\)/);
    // A burst of 64 KiB goes at once; the rest at 256 KiB/s.
    expect(seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
    // Random bytes: stored as they are, in one pack (the packed layout, the default).
    expect(remoteObjects(remote)).toHaveLength(1);
    expect(packedBytes(remote)).toBeGreaterThan(size);
  });

  it('parallel transfers share one rate: 24 files pushed with -j 8 take at least (total - burst) / rate', async () => {
    const dir = await newRepo();
    const remote = newDir();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
    for (let i = 0; i < 24; i++) write(dir, `d/f${i}.bin`, crypto.randomBytes(32 * KiB));
    expect((await tdv(dir, 'add', 'd')).code).toBe(0);
    const total = 24 * 32 * KiB;
    const { res, seconds } = await timed(() => tdv(dir, 'push', '-j', '8', '--limit-rate', '256k'));
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Pushed 25 objects/);
    expect(seconds).toBeGreaterThanOrEqual((total - 64 * KiB) / (256 * KiB));
  });

  it('a pull is paced as it reads: at least (N - burst) / rate', async () => {
    const size = 640 * KiB;
    const { dir } = await repoWithData(size);
    expect((await tdv(dir, 'push')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    const to = path.join(newDir(), 'clone');
    await git(path.dirname(to), 'clone', '-q', dir, to);
    const { res, seconds } = await timed(() => tdv(to, 'pull', '--limit-rate', '256K'));
    expect(res.code, res.stderr).toBe(0);
    expect(fs.statSync(path.join(to, 'data.bin')).size).toBe(size);
    expect(seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
  });
});

describe("--limit-rate on get, import and update (the source repository's remote)", () => {
  async function source(size: number): Promise<string> {
    const { dir } = await repoWithData(size);
    expect((await tdv(dir, 'push')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    return dir;
  }

  it('get and import are paced: at least (N - burst) / rate each', async () => {
    const size = 576 * KiB;
    const src = await source(size);
    const out = newDir();
    const g = await timed(() => tdv(out, 'get', src, 'data.bin', '-o', 'got.bin', '--limit-rate', '256k'));
    expect(g.res.code, g.res.stderr).toBe(0);
    expect(fs.statSync(path.join(out, 'got.bin')).size).toBe(size);
    expect(g.seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
    const here = await newRepo();
    const i = await timed(() => tdv(here, 'import', src, 'data.bin', '--limit-rate', '256k'));
    expect(i.res.code, i.res.stderr).toBe(0);
    expect(fs.statSync(path.join(here, 'data.bin')).size).toBe(size);
    expect(i.seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
  });

  it.each([
    ['get', ['SRC', 'data.bin']],
    ['import', ['SRC', 'data.bin']],
    ['update', []],
  ])('%s refuses a bad rate with one line naming the flag; exit 2', async (cmd, args) => {
    const here = await newRepo();
    const r = await tdv(here, cmd, ...args.map((a) => (a === 'SRC' ? here : a)), '--limit-rate', '0');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '--limit-rate must be bytes per second', 'got "0"');
  });
});

describe('remote.<name>.limit_rate', () => {
  it('is honoured by push when no flag is given', async () => {
    const size = 640 * KiB;
    const { dir } = await repoWithData(size, '    limit_rate: 256k\n');
    const { res, seconds } = await timed(() => tdv(dir, 'push'));
    expect(res.code, res.stderr).toBe(0);
    expect(seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
  });

  it('--limit-rate overrides it (a lower flag under a higher setting still paces)', async () => {
    const size = 640 * KiB;
    const { dir } = await repoWithData(size, '    limit_rate: 1G\n');
    const { res, seconds } = await timed(() => tdv(dir, 'push', '--limit-rate', '256k'));
    expect(res.code, res.stderr).toBe(0);
    expect(seconds).toBeGreaterThanOrEqual((size - 64 * KiB) / (256 * KiB));
  });

  it('`tdv remote modify NAME limit_rate 4M` sets it; 0, negatives and junk are refused naming the key, with an example', async () => {
    const { dir } = await sampleRepo();
    const ok = await tdv(dir, 'remote', 'modify', 'store', 'limit_rate', '4M');
    expect(ok.code, ok.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, '.tdv', 'config.yaml'), 'utf8')).toMatch(/limit_rate: 4M\n/);
    for (const bad of ['0', '-1', 'quick']) {
      const r = await tdv(dir, 'remote', 'modify', 'store', 'limit_rate', '--', bad);
      expect(r.code, bad).toBe(2);
      expectOneLineError(r.stderr, 'remote.store.limit_rate must be bytes per second, with an optional k, m or g suffix (1024-based), e.g. 500k or 4M', `got "${bad}"`);
    }
    expect(fs.readFileSync(path.join(dir, '.tdv', 'config.yaml'), 'utf8')).toMatch(/limit_rate: 4M\n/);
  });

  it('a hand-edited bad value is a config error naming the file and key', async () => {
    const { dir } = await repoWithData(10);
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), '    limit_rate: 0\n');
    const r = await tdv(dir, 'push');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'config.yaml', 'remote.store.limit_rate must be bytes per second', 'got 0');
  });
});
