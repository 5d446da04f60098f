/**
 * Stages on Docker hosts reached over SSH (issue 15 §2), with the real bin/tdv:
 * a runner `far` of type `docker` whose hosts are throwaway Docker daemons in
 * network namespaces (test/helpers/docker-ssh.sh). Those hosts share no
 * directory with this machine in either direction, so a stage that finds its
 * inputs got them sent, and an output that appears here was brought back.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it, onTestFinished, type TestContext } from 'vitest';
import { newRepo } from '../helpers/expect.js';
import { git, read, TDV_BIN, tdvBin, write } from '../helpers/repo.js';
import { describeSshDocker, startSshHosts, type SshHost, type SshHosts } from '../helpers/docker-ssh.js';
import { TEST_IMAGE } from '../helpers/docker-probe.js';

const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A committed repo with `files` in Git, `data` (files under data/) tracked by
 * tdv, the pipeline `yaml`, and runner `far` on `hosts` written straight into
 * .tdv/config.yaml (as `tdv runner add far docker --host ...` would).
 */
async function farRepo(hosts: SshHost[], yaml: string | ((root: string) => string), files: Record<string, string> = {}, data: Record<string, string> = {}): Promise<string> {
  const dir = await newRepo();
  for (const [rel, content] of Object.entries(data)) write(dir, rel, content);
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  write(dir, 'tdv.yaml', typeof yaml === 'string' ? yaml : yaml(dir));
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `\nrunner:\n  far:\n    type: docker\n    hosts: [${hosts.map((h) => h.url).join(', ')}]\n`);
  if (Object.keys(data).length) {
    const added = await tdvBin(dir, ['add', '-q', 'data'], env());
    if (added.code !== 0) throw new Error(`tdv add data: ${added.stderr}`);
  }
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'pipeline on far');
  return dir;
}

let ssh: SshHosts | undefined;
let startError: Error | undefined;
const env = () => ssh!.env;

/** The hosts, or (locally) the test skipped saying why they could not start; under CI=true a failure. */
function hosts(ctx: TestContext): SshHosts {
  if (ssh) return ssh;
  const why = `the SSH Docker hosts did not start: ${startError?.message ?? 'unknown error'}`;
  if (process.env.CI === 'true') throw new Error(`${why} (CI=true: SSH Docker host tests must not be skipped)`);
  console.warn(`skipping: ${why}`);
  ctx.skip();
  throw new Error('unreachable');
}

/** Containers (any state) on `host`. */
async function containersOn(host: SshHost): Promise<string[]> {
  const r = await ssh!.docker(host, 'ps', '--all', '--quiet', '--no-trunc');
  if (r.code !== 0) throw new Error(`docker ps on ${host.url}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

/** IDs of the containers `host` started between two Unix times (seconds): the host's own account, whatever tdv says. */
async function startedOn(host: SshHost, since: number, until: number): Promise<string[]> {
  const r = await ssh!.docker(host, 'events', '--since', String(since), '--until', String(until), '--filter', 'type=container', '--filter', 'event=start', '--format', '{{.Actor.ID}}');
  if (r.code !== 0) throw new Error(`docker events on ${host.url}: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean);
}

describeSshDocker('stages on Docker hosts over SSH (runner type docker)', () => {
  beforeAll(async () => {
    try {
      ssh = await startSshHosts(2);
    } catch (err) {
      startError = err as Error;
    }
  }, 180_000);
  afterAll(async () => {
    await ssh?.stop();
  }, 120_000);

  it('the host is reachable only over SSH: its socket and data are not on this machine', async (ctx) => {
    const {
      hosts: [h],
    } = hosts(ctx);
    expect((await ssh!.docker(h!, 'info', '--format', '{{.Name}}')).code).toBe(0);
    expect(fs.existsSync(h!.socket)).toBe(false);
    const direct = await execa('docker', ['--host', `unix://${h!.socket}`, 'info'], { reject: false, timeout: 30_000 });
    expect(direct.exitCode).not.toBe(0);
    // Without the test's ssh config (its key and known_hosts), no way in either.
    const { PATH: _path, ...rest } = ssh!.env;
    const plain = await execa('docker', ['--host', h!.url, 'info'], { reject: false, timeout: 60_000, env: { ...rest, PATH: process.env.PATH ?? '' }, extendEnv: false });
    expect(plain.exitCode).not.toBe(0);
  });

  it('inputs travel to the host, outputs come back hashed into the cache and workspace, tdv.lock records the run', async (ctx) => {
    const {
      hosts: [h],
    } = hosts(ctx);
    const dir = await farRepo(
      [h!],
      // The first command fails if the client's repository is visible in the
      // container (tdv.yaml is no input, so only a mount of this machine's path
      // would show it): the inputs must arrive by copy.
      (root) =>
        `stages:\n  count:\n    runner: far\n    image: ${TEST_IMAGE}\n    cmd:\n      - test ! -e '${root}/tdv.yaml'\n      - mkdir -p out && sh scripts/count.sh data > out/count.txt\n    deps: [data, scripts/count.sh]\n    outs: [out/count.txt]\n`,
      { 'scripts/count.sh': '#!/bin/sh\n# lines of every file under $1, sorted by name\nfor f in $(find "$1" -type f | sort); do echo "$f $(wc -l < "$f")"; done\n' },
      { 'data/a.csv': 'x\n1\n2\n', 'data/sub/b.csv': 'y\n3\n' },
    );
    const t0 = Math.floor(Date.now() / 1000) - 1;
    const r = await tdvBin(dir, ['repro'], env());
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'out/count.txt')).toBe('data/a.csv 3\ndata/sub/b.csv 2\n');
    // It ran there (the host's own events), not on this machine.
    expect((await startedOn(h!, t0, Math.ceil(Date.now() / 1000) + 1)).length).toBeGreaterThanOrEqual(1);
    // The output came back, was hashed and cached as a local one is; tdv.lock says so.
    const oid = sha256(path.join(dir, 'out/count.txt'));
    const cached = path.join(dir, '.tdv', 'cache', 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
    expect(fs.readFileSync(cached, 'utf8')).toBe('data/a.csv 3\ndata/sub/b.csv 2\n');
    const lock = read(dir, 'tdv.lock');
    expect(lock).toMatch(new RegExp(`- path: out/count.txt\\n\\s+sha256: ${oid}\\n`));
    expect(lock).toMatch(new RegExp(`- path: scripts/count.sh\\n\\s+sha256: ${sha256(path.join(dir, 'scripts/count.sh'))}\\n`));
    const remoteImage = (await ssh!.docker(h!, 'image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE)).stdout.trim();
    expect(lock).toContain(`image: ${remoteImage}`);
    // The host keeps nothing of the run.
    expect(await containersOn(h!)).toEqual([]);
    // Nothing changed: nothing runs again.
    const again = await tdvBin(dir, ['repro'], env());
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim()).toBe('Pipeline is up to date.');
  }, 120_000);

  /**
   * Cuts the connection once the stage's container runs: `kill` (the host's sshd
   * sessions die: the connection closes at once, the runner can reach the host
   * again to clean up) or `down` (the link goes down: ssh notices within about
   * 3 s, and nothing reaches the host until the link is back, so the rerun must
   * find and remove the first container itself).
   */
  async function cutMidStage(ctx: TestContext, how: 'kill' | 'down'): Promise<void> {
    const {
      hosts: [h],
    } = hosts(ctx);
    if (how === 'down') onTestFinished(() => ssh!.cut(h!, 'up'));
    // The sleep is read from a tracked file, so the rerun can be short while the
    // first run's container (sleeping 60 s) would still be there if nobody stopped it.
    const dir = await farRepo([h!], `stages:\n  slow:\n    runner: far\n    image: ${TEST_IMAGE}\n    cmd: sleep "$(cat delay)" && echo done > slow.txt\n    deps: [delay]\n    outs: [slow.txt]\n`, {
      delay: '60\n',
    });
    const child = execa('node', [TDV_BIN, 'repro', '-q'], { cwd: dir, env: env(), reject: false, timeout: 120_000 });
    onTestFinished(() => void child.kill('SIGKILL'));
    // Once the stage's container runs on the host (within 60 s), its connection goes.
    let running: string[] = [];
    for (const deadline = Date.now() + 60_000; running.length === 0 && child.exitCode === null && Date.now() < deadline;) {
      const ps = await ssh!.docker(h!, 'ps', '--quiet', '--filter', 'status=running');
      running = ps.stdout.split('\n').filter(Boolean);
      if (running.length === 0) await sleep(100);
    }
    expect(running.length, `the stage never started a container on the host (tdv repro exited ${child.exitCode})`).toBe(1);
    await ssh!.cut(h!, how);
    const r = await child;
    expect(r.exitCode).toBe(1);
    // One line for the stage, saying the connection went; no docker or ssh noise.
    const lines = r.stderr.split('\n').filter(Boolean);
    for (const l of lines) expect(l).toMatch(/^error: /);
    expect(
      lines.filter((l) => /\bslow\b/.test(l) && /connection|ssh|lost|closed|timed out|timeout/i.test(l)),
      r.stderr,
    ).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'slow.txt'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'tdv.lock')) ? read(dir, 'tdv.lock') : '').not.toContain('slow:');

    if (how === 'down') await ssh!.cut(h!, 'up');
    write(dir, 'delay', '1\n');
    const again = await tdvBin(dir, ['repro', '-q'], env());
    expect(again.code, again.stderr).toBe(0);
    expect(read(dir, 'slow.txt')).toBe('done\n');
    expect(read(dir, 'tdv.lock')).toContain('slow:');
    expect(await containersOn(h!)).toEqual([]);
  }

  it('the SSH connection killed mid-stage: one clear error, nothing recorded; the rerun succeeds and leaves no container on the host', (ctx) => cutMidStage(ctx, 'kill'), 180_000);

  it('the link to the host down mid-stage: the same, the rerun removing the container the first run could not', (ctx) => cutMidStage(ctx, 'down'), 180_000);

  it('a pool of two hosts: four independent stages with -j 4 run on both', async (ctx) => {
    const { hosts: pool } = hosts(ctx);
    let yaml = 'stages:\n';
    for (let i = 1; i <= 4; i++) yaml += `  s${i}:\n    runner: far\n    image: ${TEST_IMAGE}\n    cmd: sleep 3 && echo ${i} > o${i}.txt\n    outs: [o${i}.txt]\n`;
    const dir = await farRepo(pool, yaml);
    const t0 = Math.floor(Date.now() / 1000) - 1;
    const r = await tdvBin(dir, ['repro', '-j', '4'], env());
    expect(r.code, r.stderr).toBe(0);
    const t1 = Math.ceil(Date.now() / 1000) + 1;
    for (let i = 1; i <= 4; i++) expect(read(dir, `o${i}.txt`)).toBe(`${i}\n`);
    const lock = read(dir, 'tdv.lock');
    for (let i = 1; i <= 4; i++) expect(lock).toContain(`  s${i}:\n`);
    // Each host says it started some of them; together, all four (at least: a host may start a helper container too).
    const started = await Promise.all(pool.map((h) => startedOn(h, t0, t1)));
    for (const s of started) expect(s.length).toBeGreaterThanOrEqual(1);
    expect(started.flat().length).toBeGreaterThanOrEqual(4);
  }, 120_000);
});
