/**
 * The SSH Docker host the remote runner's tests stand on (test/helpers/docker-ssh.sh):
 * what runner-ssh.test.ts relies on, checked without tdv, so that a failure
 * there says whether the runner or the host is at fault.
 */
import { execa } from 'execa';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it, type TestContext } from 'vitest';
import { describeSshDocker, startSshHosts, type SshHosts } from '../helpers/docker-ssh.js';
import { TEST_IMAGE } from '../helpers/docker-probe.js';
import { newDir } from '../helpers/expect.js';

let ssh: SshHosts | undefined;
let startError: Error | undefined;

function started(ctx: TestContext): SshHosts {
  if (ssh) return ssh;
  const why = `the SSH Docker host did not start: ${startError?.message ?? 'unknown error'}`;
  if (process.env.CI === 'true') throw new Error(`${why} (CI=true: SSH Docker host tests must not be skipped)`);
  console.warn(`skipping: ${why}`);
  ctx.skip();
  throw new Error('unreachable');
}

describeSshDocker('docker-ssh.sh: a Docker host reachable only over SSH', () => {
  beforeAll(async () => {
    try {
      ssh = await startSshHosts(1);
    } catch (err) {
      startError = err as Error;
    }
  }, 180_000);
  afterAll(async () => {
    await ssh?.stop();
  }, 120_000);

  it('has the test image, and cannot see this machine: a bind mount of a directory here is empty there', async (ctx) => {
    const s = started(ctx);
    const [h] = s.hosts;
    const here = newDir();
    fs.writeFileSync(path.join(here, 'secret.txt'), 'only here\n');
    const r = await s.docker(h!, 'run', '--rm', `--volume=${here}:/x`, TEST_IMAGE, 'sh', '-c', 'ls -A /x | wc -l');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('0');
    // The host's state is not here either.
    expect(fs.existsSync(h!.socket)).toBe(false);
    expect(fs.existsSync(path.dirname(h!.socket))).toBe(false);
  });

  it('cut kills the SSH connection of a running container; new connections work', async (ctx) => {
    const s = started(ctx);
    const [h] = s.hosts;
    const attached = execa('docker', ['--host', h!.url, 'run', '--rm', '--name=cut-me', TEST_IMAGE, 'sleep', '30'], { env: s.env, reject: false, timeout: 60_000 });
    for (let i = 0; i < 300; i++) {
      if ((await s.docker(h!, 'ps', '--quiet', '--filter', 'name=cut-me', '--filter', 'status=running')).stdout.trim()) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const t = Date.now();
    await s.cut(h!, 'kill');
    const r = await attached;
    expect(r.exitCode).not.toBe(0);
    expect(Date.now() - t).toBeLessThan(20_000); // well before the sleep ends
    // The container itself runs on: only the connection went.
    expect((await s.docker(h!, 'ps', '--quiet', '--filter', 'name=cut-me')).stdout.trim()).not.toBe('');
    expect((await s.docker(h!, 'rm', '--force', 'cut-me')).code).toBe(0);
  }, 120_000);

  it('stop leaves no namespace, link or daemon behind', async (ctx) => {
    const s = started(ctx);
    const [h] = s.hosts;
    const pids = (await execa('ip', ['netns', 'pids', h!.netns])).stdout.split('\n').filter(Boolean);
    expect(pids.length).toBeGreaterThanOrEqual(2); // sshd, dockerd (and containerd)
    await s.stop();
    ssh = undefined;
    startError = new Error('stopped by the previous test');
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toMatch(new RegExp(`^${h!.netns}\\b`, 'm'));
    expect((await execa('ip', ['link', 'show', `tdvdh${h!.n}`], { reject: false })).exitCode).not.toBe(0);
    for (const p of pids) expect(fs.existsSync(`/proc/${p}`)).toBe(false);
  }, 120_000);
});
