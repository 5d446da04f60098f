/**
 * Docker hosts reachable only over SSH, for the remote Docker runner's tests
 * (issue 15): each is a network namespace with an sshd and a dockerd of its
 * own that share no directory with this machine (test/helpers/docker-ssh.sh
 * says how). A test file starts the hosts it needs in `beforeAll` and stops
 * them in `afterAll`; the tests then run tdv with `hosts.env`, whose PATH puts
 * an `ssh` first that knows the hosts' keys.
 *
 * Why the tests start their own hosts rather than .ci/run: a test that cuts a
 * connection, or leaves a container behind when the runner has a bug, must not
 * change what the next file sees; the hosts start in about 2 s; and a developer
 * runs the file alone exactly as CI runs it.
 */
import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeNeeding } from './needs.js';

export const DOCKER_SSH_SCRIPT = path.resolve(import.meta.dirname, 'docker-ssh.sh');

/** One host, as docker-ssh.sh started it. */
export interface SshHost {
  /** The host number N (network namespace tdv-dh-N, address 10.213.N.2). */
  n: number;
  /** `ssh://root@10.213.N.2`: a DOCKER_HOST, and an entry of a runner's `hosts`. */
  url: string;
  /** The host's directory on this machine: keys, ssh config, logs, pid files (none of the host's state). */
  dir: string;
  netns: string;
  /** Where the host's daemon socket is inside its own mount namespace (from here, nothing is there). */
  socket: string;
}

export interface SshHosts {
  hosts: SshHost[];
  /** The environment to run tdv and docker with: PATH with an `ssh` that knows every host here. */
  env: Record<string, string>;
  /** `docker --host=<host> ARGS` from this machine, over SSH. */
  docker(host: SshHost, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /**
   * Drops the host's SSH connections: `kill` kills its sshd sessions (the
   * connection closes at once, new ones are accepted); `down` takes the link
   * down (ssh notices within about 3 s) until `up`.
   */
  cut(host: SshHost, how?: 'kill' | 'down' | 'up'): Promise<void>;
  stop(): Promise<void>;
}

let staticReason: string | undefined | null = null;

/** Why no SSH Docker host can be started here (checked without starting one), or undefined. */
export function sshHostSkipReason(): string | undefined {
  if (staticReason !== null) return staticReason;
  staticReason = (() => {
    if (process.platform !== 'linux') return 'SSH Docker hosts need Linux network namespaces';
    if (process.getuid?.() !== 0) return 'SSH Docker hosts need root (network namespaces, mounts)';
    if (!fs.existsSync('/usr/sbin/sshd')) return 'no /usr/sbin/sshd; apt-get install openssh-server';
    for (const [bin, pkg] of [
      ['ip', 'iproute2'],
      ['ssh', 'openssh-client'],
      ['ssh-keygen', 'openssh-client'],
      ['dockerd', 'docker.io'],
      ['docker', 'docker.io'],
      ['nsenter', 'util-linux'],
      ['unshare', 'util-linux'],
    ]) {
      if (spawnSync('sh', ['-c', `command -v ${bin}`]).status !== 0) return `no ${bin}; apt-get install ${pkg}`;
    }
    return undefined;
  })();
  return staticReason;
}

/** `describe` for tests that need SSH Docker hosts: skips locally without them, fails under CI=true (see needs.ts). */
export function describeSshDocker(name: string, body: () => void): void {
  describeNeeding('SSH Docker host', sshHostSkipReason(), name, body);
}

/** Host numbers already in use on this machine (network namespaces tdv-dh-N). */
function takenNumbers(): Set<number> {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return new Set([...(r.stdout ?? '').matchAll(/^tdv-dh-(\d+)\b/gm)].map((m) => Number(m[1])));
}

async function startOne(): Promise<SshHost> {
  // Other test files and other checkouts may run hosts at the same time: pick a free
  // number at random, and another when the script says it was taken meanwhile (exit 3).
  let last = '';
  for (let attempt = 0; attempt < 12; attempt++) {
    const taken = takenNumbers();
    const free = Array.from({ length: 250 }, (_, i) => i + 1).filter((n) => !taken.has(n));
    if (free.length === 0) throw new Error('docker-ssh.sh: all 250 host numbers are in use');
    const n = free[Math.floor(Math.random() * free.length)]!;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-dh-'));
    const r = await execa(DOCKER_SSH_SCRIPT, ['start', dir, String(n)], { reject: false, timeout: 120_000 });
    if (r.exitCode === 0) {
      const env = Object.fromEntries([...r.stdout.matchAll(/^(TDV_TEST_SSH_\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
      return { n, url: env.TDV_TEST_SSH_HOST!, dir, netns: env.TDV_TEST_SSH_NETNS!, socket: '/run/tdv-dh/docker.sock' };
    }
    fs.rmSync(dir, { recursive: true, force: true });
    last = `${r.stderr}`.trim() || `exit ${r.exitCode}`;
    if (r.exitCode !== 3) break;
  }
  throw new Error(`docker-ssh.sh could not start a host: ${last}`);
}

async function stopOne(host: SshHost): Promise<void> {
  await execa(DOCKER_SSH_SCRIPT, ['stop', host.dir], { reject: false, timeout: 60_000 });
  fs.rmSync(host.dir, { recursive: true, force: true });
}

const running = new Set<SshHost>();
let exitHook = false;

/** Starts `count` hosts side by side (a pool); on failure stops those that started and throws with the script's message. */
export async function startSshHosts(count: number): Promise<SshHosts> {
  if (!exitHook) {
    exitHook = true;
    // A worker that exits without its afterAll (a crash, a timeout) still stops its hosts.
    process.once('exit', () => {
      for (const h of running) {
        spawnSync(DOCKER_SSH_SCRIPT, ['stop', h.dir], { timeout: 60_000 });
        fs.rmSync(h.dir, { recursive: true, force: true });
      }
    });
  }
  // Hosts of killed earlier runs (their directory removed since) would hold host numbers and memory.
  await execa(DOCKER_SSH_SCRIPT, ['sweep'], { reject: false, timeout: 60_000 });
  const started = await Promise.allSettled(Array.from({ length: count }, () => startOne()));
  const hosts = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  for (const h of hosts) running.add(h);
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(hosts.map((h) => stopOne(h).finally(() => running.delete(h))));
    throw failed.reason;
  }
  // One ssh wrapper that knows every host (the runner may talk to all of them in one run).
  const clientDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-dh-client-'));
  await execa(DOCKER_SSH_SCRIPT, ['client', clientDir, ...hosts.map((h) => h.dir)]);
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: '1', PATH: `${clientDir}/bin:${process.env.PATH ?? ''}` };
  delete env.DOCKER_HOST;
  delete env.DOCKER_CONTEXT;
  return {
    hosts,
    env,
    async docker(host, ...args) {
      const r = await execa('docker', ['--host', host.url, ...args], { env, reject: false, timeout: 60_000 });
      return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
    },
    async cut(host, how = 'kill') {
      await execa(DOCKER_SSH_SCRIPT, ['cut', host.dir, how]);
    },
    async stop() {
      await Promise.all(hosts.map((h) => stopOne(h).finally(() => running.delete(h))));
      fs.rmSync(clientDir, { recursive: true, force: true });
    },
  };
}
