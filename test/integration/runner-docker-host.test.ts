/**
 * The `docker` runner type (remote Docker hosts) against this machine's own
 * daemon used as a "remote" host through its socket URL: nothing is
 * bind-mounted, so everything a job sees came through the input tar, and
 * everything that comes back came through `docker cp` out. The SSH tests
 * (a second dockerd in a network namespace) run the same runner end to end.
 */
import { ownerAlive, ownerLabel } from '../../src/repo/lib/runners.js';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, expect, it, onTestFinished } from 'vitest';
import type { JobRunner, RunnerConfig } from '../../src/stages/job.js';
import { runnerModule } from '../../src/stages/runners/docker-host.js';
import { jobRunnerContract, listTree, makeJobIO, runJob } from '../contract/runners.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';
import { tmpDir } from '../helpers/repo.js';

/**
 * This machine's daemon, as a URL the runner must reach it by (no DOCKER_HOST,
 * no default). TDV_TEST_DOCKER_HOST runs the same tests against another host
 * (an ssh:// one: PATH must then hold an ssh that knows it).
 */
const SOCKET = process.env.TDV_TEST_DOCKER_HOST || 'unix:///var/run/docker.sock';
const LOCAL = SOCKET === 'unix:///var/run/docker.sock';
/** A second host for the pool tests: this daemon by another path, or TDV_TEST_DOCKER_HOST2 (another daemon). */
const SECOND = process.env.TDV_TEST_DOCKER_HOST2 || (LOCAL ? 'unix:///run/docker.sock' : undefined);

/** The docker CLI on the host under test. */
function dockerOn(args: string[], opts: { reject?: boolean } = {}) {
  return execa('docker', [`--host=${SOCKET}`, ...args], opts);
}
const repoId = `t${process.pid.toString(16)}x${Math.random().toString(16).slice(2, 8)}`;

function make(cfg: Partial<RunnerConfig> = {}, env: NodeJS.ProcessEnv = process.env): JobRunner {
  return runnerModule.create({ name: 'remote', type: 'docker', hosts: [SOCKET], ...cfg }, { root: '/nonexistent/repo', repoId, env });
}

/** Containers of this test run (label tdv.repo), running or not. */
async function containers(id = repoId): Promise<string[]> {
  const r = await dockerOn(['ps', '--all', `--filter=label=tdv.repo=${id}`, '--format={{.Names}}']);
  return r.stdout.split('\n').filter(Boolean);
}

describeDocker('docker runner (remote hosts), on the local daemon as a remote', () => {
  beforeAll(async () => {
    await dockerOn(['image', 'inspect', TEST_IMAGE]);
  });

  jobRunnerContract('docker host', async () => ({ runner: make(), image: { ref: TEST_IMAGE }, leftovers: () => containers() }));

  it('nothing is bind-mounted: the container sees neither the cache nor the staging directory, and has no mounts of this machine', async () => {
    const { io, inputs, cache } = makeJobIO({ 'in.txt': 'x' });
    let stdout = '';
    io.onOutput = (c) => (stdout += c.toString());
    const r = await make().run(
      {
        stage: 'mounts',
        image: { ref: TEST_IMAGE },
        cmd: [`test ! -e '${cache}' && test ! -e '${io.staging}' && test ! -e '${path.dirname(io.staging)}' && echo isolated`, 'cat /proc/mounts | grep -c "^/dev/" || true', 'pwd'],
        env: {},
        wdir: '.',
        inputs,
        outputs: [],
      },
      io,
    );
    expect(r.exitCode).toBe(0);
    const [isolated, binds, pwd] = stdout.trim().split('\n');
    expect(isolated).toBe('isolated');
    // Docker's own /etc/hosts, /etc/resolv.conf and /etc/hostname are the only mounts from a block device.
    expect(Number(binds)).toBeLessThanOrEqual(3);
    expect(pwd).toBe('/tdv/repo');
  });

  it('inputs are owned by the container user (4242:4343 here), who can write outputs beside them', async () => {
    const ran = await runJob({ runner: make({ user: '4242:4343' }), image: { ref: TEST_IMAGE }, leftovers: () => containers() }, ['id -u; id -g; stat -c %u:%g . sub sub/f', 'echo made > sub/out'], {
      files: { 'sub/f': 'f' },
      outputs: ['sub/out'],
    });
    expect(ran.result.exitCode).toBe(0);
    expect(ran.stdout).toBe('4242\n4343\n4242:4343\n4242:4343\n4242:4343\n');
    expect(ran.result.outputs.map((o) => o.path)).toEqual(['sub/out']);
  });

  it('a user by name is looked up in the image (nobody)', async () => {
    const ran = await runJob({ runner: make({ user: 'nobody' }), image: { ref: TEST_IMAGE }, leftovers: () => containers() }, ['id -u', 'echo ok > o'], { outputs: ['o'] });
    expect(ran.result.exitCode).toBe(0);
    expect(ran.stdout).toBe('65534\n');
  });

  it('the result names the host, the image ID that ran, and the engine’s start and end', async () => {
    const runner = make();
    const id = await runner.resolveImage!(TEST_IMAGE);
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const ran = await runJob({ runner, image: { ref: TEST_IMAGE, id }, leftovers: () => containers() }, 'true');
    expect(ran.result).toMatchObject({ exitCode: 0, image: id, where: SOCKET, outputs: [] });
    expect(ran.cleanups[0]!.action).toMatchObject({ kind: 'docker-rm', docker: 'docker', args: [`--host=${SOCKET}`, 'rm', '--force', '--', expect.stringMatching(/^tdv-/)] });
    // The cleanup record carries no secrets of the caller's environment.
    const env = (ran.cleanups[0]!.action as { env?: Record<string, string> }).env ?? {};
    expect(Object.keys(env).every((k) => ['PATH', 'HOME', 'SSH_AUTH_SOCK', 'DOCKER_CONFIG', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH'].includes(k))).toBe(true);
  });

  it.runIf(!LOCAL)('an image only this machine has is copied to the host (docker save | docker load), said in a debug line, and runs by the same ID', async () => {
    const tag = `tdv-test/copied:${process.pid}-${Date.now()}`;
    await execa('docker', ['tag', TEST_IMAGE, tag]);
    onTestFinished(async () => {
      await execa('docker', ['rmi', tag], { reject: false });
      await dockerOn(['rmi', tag], { reject: false });
    });
    const localId = (await execa('docker', ['image', 'inspect', '--format={{.Id}}', tag])).stdout.trim();
    const debug: string[] = [];
    const ran = await runJob({ runner: make(), image: { ref: tag }, leftovers: () => containers() }, 'true', { io: { onDebug: (l) => debug.push(l) } });
    expect(ran.result).toMatchObject({ exitCode: 0, image: localId });
    expect(debug.some((l) => l.includes(`lacks image ${tag}; copying it from this machine`))).toBe(true);
    expect((await dockerOn(['image', 'inspect', '--format={{.Id}}', tag])).stdout.trim()).toBe(localId);
  });

  it('a stage with nothing to send that exits 0 costs two docker calls before the removal: create and start (each is an SSH connection)', async () => {
    const runner = make();
    const id = await runner.resolveImage!(TEST_IMAGE);
    const debug: string[] = [];
    const ran = await runJob({ runner, image: { ref: TEST_IMAGE, id }, leftovers: () => containers() }, 'true', { io: { onDebug: (l) => debug.push(l) } });
    expect(ran.result).toMatchObject({ exitCode: 0, image: id });
    expect(debug.map((l) => l.split(' ')[2])).toEqual(['create', 'start']);
    // A failure is confirmed with `docker inspect` (a cut connection also makes the client exit non-zero).
    const failed: string[] = [];
    const f = await runJob({ runner, image: { ref: TEST_IMAGE, id }, leftovers: () => containers() }, 'exit 3', { io: { onDebug: (l) => failed.push(l) } });
    expect(f.result.exitCode).toBe(3);
    expect(failed.map((l) => l.split(' ')[2])).toEqual(['create', 'start', 'inspect']);
  });

  it('resolveImage of an image no one has is IMAGE_NOT_FOUND naming the host and the fix', async () => {
    const err = (await make().resolveImage!('tdv-fixtures/absent:nope').catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('IMAGE_NOT_FOUND');
    expect(err.message).toContain(SOCKET);
    expect(err.message).toContain('pull tdv-fixtures/absent:nope');
    expect(err.message).not.toContain('\n');
  });

  it('a build: stage is built on the host from the context files sent as a tar, content-tagged, and runs', async () => {
    const stamp = `${Date.now()}-${Math.random()}`;
    const { io, inputs } = makeJobIO({ 'img/Dockerfile': `FROM ${TEST_IMAGE}\nCOPY data.txt /ctx/data.txt\n`, 'img/data.txt': `built ${stamp}\n` });
    let stdout = '';
    io.onOutput = (c, s) => {
      if (s === 'stdout') stdout += c.toString();
    };
    const runner = make();
    const job = { stage: 'built', image: { build: { context: inputs, dir: 'img' } }, cmd: ['cat /ctx/data.txt'], env: {}, wdir: '.', inputs: [], outputs: [] };
    const r = await runner.run(job, io);
    const tags = (await dockerOn(['image', 'ls', '--filter=label=tdv.build=1', '--format={{.Repository}} {{.ID}}'])).stdout;
    onTestFinished(async () => {
      for (const line of tags.split('\n').filter((l) => l.startsWith('tdv-build/'))) {
        const info = await dockerOn(['image', 'inspect', '--format={{.Id}}', line.split(' ')[0]!], { reject: false });
        if (info.stdout.trim() === r.image) await dockerOn(['rmi', '--force', line.split(' ')[0]!], { reject: false });
      }
    });
    expect(r.exitCode).toBe(0);
    expect(stdout).toBe(`built ${stamp}\n`);
    expect(r.image).toMatch(/^sha256:/);
    // The same context again: the tag exists, no second build, the same image.
    const again = await runner.run(job, makeJobIO({}).io);
    expect(again.image).toBe(r.image);
  });

  it.runIf(SECOND)('a pool spreads concurrent jobs over its hosts (fewest in flight first)', async () => {
    const runner = make({ hosts: [SOCKET, SECOND!] });
    const [a, b] = await Promise.all([
      runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: () => containers() }, 'sleep 1'),
      runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: () => containers() }, 'sleep 1'),
    ]);
    expect([a.result.where, b.result.where].sort()).toEqual([SOCKET, SECOND].sort());
    // One at a time: always the first host.
    const c = await runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: () => containers() }, 'true');
    expect(c.result.where).toBe(SOCKET);
  });

  it.runIf(process.env.TDV_TEST_DOCKER_HOST2)('a pool builds a build: image once, on its first host, and runs that very image ID on the others (copied by save | load)', async () => {
    const stamp = `${Date.now()}-${Math.random()}`;
    // The context lives in one cache; each run reads it from there.
    const ctx = makeJobIO({ 'img/Dockerfile': `FROM ${TEST_IMAGE}\nRUN echo "${stamp} $(date +%s%N)" > /stamp\n` });
    const inputs = ctx.inputs;
    const runner = make({ hosts: [SOCKET, SECOND!] });
    const job = (s: string) => ({ stage: s, image: { build: { context: inputs, dir: 'img' } }, cmd: ['cat /stamp', 'sleep 1'], env: {}, wdir: '.', inputs: [], outputs: [] });
    const runs = [makeJobIO({}), makeJobIO({})];
    for (const r of runs) r.io.inputPath = ctx.io.inputPath;
    const [a, b] = await Promise.all([runner.run(job('a'), runs[0]!.io), runner.run(job('b'), runs[1]!.io)]);
    expect([a.where, b.where].sort()).toEqual([SOCKET, SECOND].sort());
    expect(a.image).toBe(b.image);
    expect(runs[0]!.out.stdout).toBe(runs[1]!.out.stdout);
    expect(runs[0]!.out.stdout).toContain(stamp);
  });

  it('sweep removes the containers of this repository id on every host, and only those', async () => {
    const other = `${repoId}-other`;
    for (const id of [repoId, other]) {
      await dockerOn(['create', `--label=tdv.repo=${id}`, '--entrypoint=sh', TEST_IMAGE, '-c', 'sleep 60']);
    }
    onTestFinished(async () => {
      for (const n of await containers(other)) await dockerOn(['rm', '--force', n], { reject: false });
    });
    const swept = await make().sweep!(repoId);
    expect(swept).toHaveLength(1);
    expect(await containers()).toEqual([]);
    expect(await containers(other)).toHaveLength(1);
  });

  it('sweep leaves alone a container whose tdv still runs (another repro of a clone with the same id), and removes one whose tdv is gone', async () => {
    const live = ownerLabel();
    // This machine, a pid that is not running (or runs with another start time).
    const dead = live.replace(/\.(\d+)\.(\d+)$/, '.4194300.1');
    for (const owner of [live, dead]) {
      await dockerOn(['create', `--label=tdv.repo=${repoId}`, `--label=tdv.owner=${owner}`, '--entrypoint=sh', TEST_IMAGE, '-c', 'sleep 60']);
    }
    onTestFinished(async () => {
      for (const n of await containers()) await dockerOn(['rm', '--force', n], { reject: false });
    });
    const runner = runnerModule.create({ name: 'remote', type: 'docker', hosts: [SOCKET] }, { root: '/nonexistent/repo', repoId, env: process.env, owner: live, ownerAlive });
    expect(await runner.sweep!(repoId)).toHaveLength(1);
    const left = await dockerOn(['ps', '--all', `--filter=label=tdv.repo=${repoId}`, '--format={{.Label "tdv.owner"}}']);
    expect(left.stdout.trim()).toBe(live);
  });

  it('an unreachable host is DOCKER_DAEMON_DOWN naming it, in one line', async () => {
    const runner = make({ hosts: ['unix:///nonexistent/docker.sock'] });
    const err = (await runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'true').catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('DOCKER_DAEMON_DOWN');
    expect(err.message).toContain('unix:///nonexistent/docker.sock');
    expect(err.message).not.toContain('\n');
  });

  it('a sweep skips a host it cannot reach and sweeps the others; with no host reachable it fails', async () => {
    await dockerOn(['create', `--label=tdv.repo=${repoId}`, '--entrypoint=sh', TEST_IMAGE, '-c', 'true']);
    const swept = await make({ hosts: ['unix:///nonexistent/docker.sock', SOCKET] }).sweep!(repoId);
    expect(swept).toHaveLength(1);
    expect(await containers()).toEqual([]);
    await expect(make({ hosts: ['unix:///nonexistent/docker.sock'] }).sweep!(repoId)).rejects.toMatchObject({ code: 'DOCKER_DAEMON_DOWN' });
  });

  it.runIf(SOCKET.startsWith('ssh://'))('an SSH host that refuses us (no key, unknown host key) is DOCKER_PERMISSION saying to set up the key', async () => {
    // Only the system's directories on PATH: the plain ssh, without the test's key and known_hosts.
    const PATH = (process.env.PATH ?? '')
      .split(':')
      .filter((d) => /^\/(usr\/|bin|sbin)/.test(d))
      .join(':');
    const err = (await runJob({ runner: make({}, { ...process.env, PATH }), image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'true').catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('DOCKER_PERMISSION');
    expect(err.message).toContain(`ssh refused the connection to ${SOCKET}`);
    expect(err.message).not.toContain('\n');
  });

  it('a missing docker CLI is DOCKER_NOT_INSTALLED', async () => {
    const runner = make({}, { ...process.env, PATH: '/nonexistent' });
    await expect(runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'true')).rejects.toMatchObject({ code: 'DOCKER_NOT_INSTALLED' });
  });

  it('a connection cut mid-stage (the attach client dies, the container runs on) is RUNNER_LOST, and the container is removed', async () => {
    // A docker CLI whose `start --attach` loses its connection after the command started: it prints
    // what the CLI prints when its ssh transport dies, and exits, while the container keeps running.
    const dir = fs.realpathSync(tmpDir('tdv-fakedocker-'));
    const fake = path.join(dir, 'docker');
    const real = (await execa('sh', ['-c', 'command -v docker'])).stdout.trim();
    fs.writeFileSync(
      fake,
      `#!/bin/sh\nfor a; do [ "$a" = start ] && { "${real}" "$@" >/dev/null 2>&1 & sleep 1; echo 'error during connect: Post "http://docker.example.com/v1.41/containers/x/attach": command [ssh -- host docker system dial-stdio] has exited with signal: killed' >&2; exit 1; }; done\nexec "${real}" "$@"\n`,
      { mode: 0o755 },
    );
    const runner = make({ docker: fake });
    const err = (await runJob({ runner, image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'sleep 30', { outputs: ['x'] }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('RUNNER_LOST');
    expect(err.message).toMatch(new RegExp(`^runner remote: lost the connection to ${SOCKET.replace(/[/.]/g, '\\$&')} during stage test \\(.*\\); nothing was recorded for it; run tdv repro again$`));
    expect(await containers()).toEqual([]);
  });

  it.each([
    ['many small files', 2000, 100],
    ['one large file (streamed)', 1, 8 << 20],
  ])('a connection cut while the inputs travel (%s) is RUNNER_LOST, without hanging, and the container is removed', async (_what, n, size) => {
    // A docker CLI whose `cp -` reads 64 KiB of the tar, then dies as it does when its ssh transport is cut.
    const dir = fs.realpathSync(tmpDir('tdv-fakedocker-'));
    const fake = path.join(dir, 'docker');
    const real = (await execa('sh', ['-c', 'command -v docker'])).stdout.trim();
    fs.writeFileSync(fake, `#!/bin/sh\nfor a; do [ "$a" = cp ] && [ "$3" = - ] && { head -c 65536 >/dev/null; echo 'write |1: broken pipe' >&2; exit 1; }; done\nexec "${real}" "$@"\n`, {
      mode: 0o755,
    });
    const files: Record<string, Buffer> = {};
    for (let i = 0; i < n; i++) files[`in/f${i}`] = Buffer.alloc(size, i % 200);
    const err = (await runJob({ runner: make({ docker: fake }), image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'true', { files }).catch((e: unknown) => e)) as Error & {
      code: string;
    };
    expect(err.code).toBe('RUNNER_LOST');
    expect(err.message).toContain('sending the inputs');
    expect(await containers()).toEqual([]);
  });

  it.each([
    ['missing', 10],
    ['missing', 1 << 20],
    ['shorter than its size', 10],
  ])('an input whose cached object is %s (%i bytes) is JOB_FAILED naming it, not a lost connection', async (what, size) => {
    const dir = fs.realpathSync(tmpDir('tdv-badcache-'));
    const short = path.join(dir, 'short');
    fs.writeFileSync(short, 'x');
    const files = { 'ok.txt': 'fine', 'bad/input.bin': Buffer.alloc(size, 1) };
    const err = (await runJob({ runner: make(), image: { ref: TEST_IMAGE }, leftovers: async () => [] }, 'true', {
      files,
      io: { inputPath: (f) => (f.path === 'bad/input.bin' ? (what === 'missing' ? path.join(dir, 'gone') : short) : path.join(dir, 'never-read-ok')) },
    }).catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('JOB_FAILED');
    expect(err.message).toMatch(/^input (ok\.txt|bad\/input\.bin): /);
    expect(await containers()).toEqual([]);
  });

  it("resources become the container's limits (--cpus, --memory), as its cgroup shows", async () => {
    const ran = await runJob(
      { runner: make(), image: { ref: TEST_IMAGE }, leftovers: () => containers() },
      ['cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes', 'cut -d" " -f1 /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us'],
      { resources: { cpus: 0.5, memory: 64 << 20 } },
    );
    expect(ran.result.exitCode).toBe(0);
    expect(ran.stdout).toBe(`${64 << 20}\n50000\n`);
  });

  it('a create the host refuses (more CPUs than it has) is DOCKER_FAILED naming the host; its cleanup record is settled, no container is left', async () => {
    const { io, cleanups } = makeJobIO({});
    const err = (await make()
      .run({ stage: 'greedy', image: { ref: TEST_IMAGE }, cmd: ['true'], env: {}, wdir: '.', inputs: [], outputs: [], resources: { cpus: 4096 } }, io)
      .catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('DOCKER_FAILED');
    expect(err.message).toContain(SOCKET);
    expect(err.message).toMatch(/CPU/i);
    expect(cleanups).toHaveLength(1);
    expect(cleanups[0]!.done).toBe(true);
    expect(await containers()).toEqual([]);
  });

  it('a tdv that exits while its container runs (process.exit, not SIGKILL) removes it on the way out', async () => {
    // The runner bundled into a plain script, run by its own node process, which exits mid-stage.
    const dir = fs.realpathSync(tmpDir('tdv-exithook-'));
    const esbuild = await import('esbuild');
    await esbuild.build({
      entryPoints: [path.resolve(import.meta.dirname, '../../src/stages/runners/docker-host.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      outfile: path.join(dir, 'dh.mjs'),
      packages: 'external',
      logLevel: 'silent',
    });
    fs.symlinkSync(path.resolve(import.meta.dirname, '../../node_modules'), path.join(dir, 'node_modules'));
    fs.mkdirSync(path.join(dir, 'staging'));
    const script = `
      import { runnerModule } from './dh.mjs';
      const runner = runnerModule.create({ name: 'r', type: 'docker', hosts: [${JSON.stringify(SOCKET)}] }, { root: '/x', repoId: ${JSON.stringify(repoId)}, env: process.env });
      void runner.run({ stage: 'exiting', image: { ref: ${JSON.stringify(TEST_IMAGE)} }, cmd: ['echo up; sleep 60'], env: {}, wdir: '.', inputs: [], outputs: [] },
        { openInput() {}, inputPath() {}, staging: ${JSON.stringify(path.join(dir, 'staging'))}, onOutput: (c) => { if (String(c).includes('up')) process.exit(3); } });
    `;
    fs.writeFileSync(path.join(dir, 'run.mjs'), script);
    const r = await execa('node', [path.join(dir, 'run.mjs')], { reject: false, timeout: 60_000 });
    expect(r.exitCode).toBe(3);
    expect(await containers()).toEqual([]);
  });

  it('output paths the container cannot fake: staging gets only regular files under declared outputs', async () => {
    const ran = await runJob({ runner: make(), image: { ref: TEST_IMAGE }, leftovers: () => containers() }, 'mkdir -p out/.. out/x && echo a > out/x/f && echo b > undeclared', {
      outputs: ['out'],
    });
    expect(ran.result.exitCode).toBe(0);
    expect(listTree(ran.staging)).toEqual(['out/', 'out/x/', 'out/x/f']);
  });
});
