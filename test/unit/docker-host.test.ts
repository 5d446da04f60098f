import { spawnSync } from 'node:child_process';
import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import type { JobSpec } from '../../src/stages/job.js';
import { classifyFailure, configSchema, firstLine, createArgs, hostArgs, hostEnv, hostProblem, outputEntryPath, RUN_SCRIPT, runnerModule } from '../../src/stages/runners/docker-host.js';

const ctx = { root: '/repo', repoId: 'abc123', env: {} };

describe('docker host URLs', () => {
  it.each(['ssh://me@gpu1', 'ssh://gpu1', 'ssh://me@gpu1:2222', 'tcp://10.0.0.5:2376', 'unix:///var/run/docker.sock', 'context:gpu-box', 'ssh://me@[::1]:22'])('accepts %s', (url) => {
    expect(hostProblem(url)).toBeUndefined();
  });

  it.each([
    ['', 'is not a host URL'],
    ['gpu1', 'is not a URL'],
    ['http://gpu1:2375', 'has scheme http'],
    ['tcp://gpu1', 'needs a port'],
    ['ssh://me:secret@gpu1', 'holds a password'],
    ['ssh://gpu1/path', 'has a path'],
    ['unix://relative.sock', 'absolute socket path'],
    ['unix:///a/../b.sock', 'absolute socket path'],
    ['context:', 'no valid Docker context'],
    ['context:-x', 'no valid Docker context'],
    ['--host=evil', 'starts with "-"'],
    ['ssh://gpu1 -oProxyCommand=x', 'whitespace'],
    ['ssh://-oProxyCommand=date', 'starting with "-"'],
    ['ssh://-oProxyCommand=date@gpu1', 'starting with "-"'],
  ])('refuses %j: %s', (url, problem) => {
    expect(hostProblem(url)).toContain(problem);
  });

  it('selects the host with one argv element: --host=URL, or --context=NAME', () => {
    expect(hostArgs('ssh://me@gpu1:2222')).toEqual(['--host=ssh://me@gpu1:2222']);
    expect(hostArgs('context:gpu-box')).toEqual(['--context=gpu-box']);
  });

  it('the CLI env drops DOCKER_HOST/DOCKER_CONTEXT and sets the TLS keys for tcp:// hosts only', () => {
    const base = { PATH: '/bin', DOCKER_HOST: 'unix:///elsewhere', DOCKER_CONTEXT: 'x', DOCKER_TLS_VERIFY: '1' };
    expect(hostEnv(base, 'tcp://h:2376', { tls_verify: true, cert_path: '/certs' })).toEqual({ PATH: '/bin', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' });
    expect(hostEnv(base, 'tcp://h:2375', {})).toEqual({ PATH: '/bin' });
    expect(hostEnv(base, 'ssh://h', { tls_verify: true, cert_path: '/certs' })).toEqual({ PATH: '/bin', DOCKER_TLS_VERIFY: '1' });
  });
});

describe('docker runner config', () => {
  it('takes hosts as a list or as one string of several, and booleans as words', () => {
    const out = v.parse(configSchema, { hosts: 'ssh://a, ssh://b', tls_verify: 'true', user: '1000:1000' });
    expect(out).toMatchObject({ hosts: ['ssh://a', 'ssh://b'], tls_verify: true, user: '1000:1000' });
    expect(v.parse(configSchema, { hosts: ['unix:///s'] })).toMatchObject({ hosts: ['unix:///s'] });
  });

  it.each([
    [{}, 'hosts'],
    [{ hosts: [] }, 'at least one'],
    [{ hosts: ['ssh://a', 'ssh://a'] }, 'twice'],
    [{ hosts: ['ssh://ok', 'ftp://bad'] }, '"ftp://bad" has scheme ftp'],
    [{ hosts: ['ssh://a'], user: '0; rm -rf /' }, 'user must be'],
    [{ hosts: ['ssh://a'], cert_path: 'relative' }, 'absolute'],
    [{ hosts: ['ssh://a'], tls_verify: 'maybe' }, 'tls_verify'],
  ])('refuses %j in one line naming the runner and the fix', (cfg, words) => {
    let err: unknown;
    try {
      runnerModule.create({ name: 'gpus', type: 'docker', ...cfg }, ctx);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: 'RUNNER_UNAVAILABLE' });
    const msg = (err as Error).message;
    expect(msg).toMatch(/^runner gpus: /);
    expect(msg).toContain(words);
    expect(msg).toContain('tdv runner modify gpus');
    expect(msg).not.toContain('\n');
  });

  it('documents every key it accepts', () => {
    expect(Object.keys(runnerModule.configKeys).sort()).toEqual(['cert_path', 'docker', 'hosts', 'tls_verify', 'user']);
    const r = runnerModule.create({ name: 'gpus', type: 'docker', hosts: ['ssh://a'] }, ctx);
    expect(r).toMatchObject({ name: 'gpus', type: 'docker' });
  });
});

describe('docker create argv', () => {
  const job: JobSpec = {
    stage: '--privileged -v /:/host',
    cmd: ['echo a; rm -rf /', '--rm'],
    env: { A: 'x\n--privileged', 'B=C': 'never' },
    wdir: 'sub/dir',
    inputs: [],
    outputs: [],
    resources: { cpus: 1.5, memory: 2 * 1024 ** 3, gpus: 1 },
  };

  it('keeps each value in one element; the commands are positional parameters after the image, never script text', () => {
    const args = createArgs({ ...job, env: { A: 'x\n--privileged' } }, { name: 'tdv-n', repoId: 'r1', image: 'sha256:abc', user: '1000:1000' });
    expect(args[0]).toBe('create');
    expect(args).toContain('--label=tdv.repo=r1');
    expect(args).toContain('--label=tdv.stage=--privileged -v /:/host');
    expect(args).not.toContain('--privileged');
    expect(args).not.toContain('-v');
    expect(args).toContain('--env=A=x\n--privileged');
    expect(args).toContain('--user=1000:1000');
    expect(args).toContain('--cpus=1.5');
    expect(args).toContain('--memory=2147483648b');
    expect(args).toContain('--gpus=1');
    expect(args).toContain('--workdir=/tdv/repo/sub/dir');
    expect(args).toContain('--entrypoint=sh');
    expect(args.slice(args.indexOf('--'))).toEqual(['--', 'sha256:abc', '-c', RUN_SCRIPT, 'tdv', 'echo a; rm -rf /', '--rm']);
    expect(args.some((a) => a.startsWith('--mount') || a.startsWith('--volume'))).toBe(false);
  });

  it('without a user or resources: the image user, no limits, the root as workdir', () => {
    const args = createArgs({ ...job, wdir: '.', resources: undefined, env: {} }, { name: 'n', repoId: 'r', image: 'sha256:x' });
    expect(args.filter((a) => /^--(user|cpus|memory|gpus)/.test(a))).toEqual([]);
    expect(args).toContain('--workdir=/tdv/repo');
  });

  it('the run script runs each command by its own sh -c and stops at the first failure with its code', () => {
    const r = spawnSync('sh', ['-c', RUN_SCRIPT, 'tdv', 'echo one; X=1', 'echo "two $X"; exit 7', 'echo three'], { encoding: 'utf8' });
    expect(r.status).toBe(7);
    expect(r.stdout).toBe('one\ntwo \n');
    expect(spawnSync('sh', ['-c', RUN_SCRIPT, 'tdv'], { encoding: 'utf8' }).status).toBe(0);
    expect(spawnSync('sh', ['-c', RUN_SCRIPT, 'tdv', 'true', 'printf \'%s\' "$0"'], { encoding: 'utf8' }).stdout).toBe('sh');
  });
});

describe('docker failure classification', () => {
  it.each([
    ['error during connect: Post "http://docker.example.com/v1.41/containers/create": command [ssh -- gpu1 docker system dial-stdio] has exited with exit status 255', 'connection'],
    ['ssh: connect to host gpu1 port 22: Connection refused', 'connection'],
    ['write |1: broken pipe', 'connection'],
    ['read: connection reset by peer', 'connection'],
    ['error reading from server: EOF', 'connection'],
    ['Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?', 'connection'],
    ['Got permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock', 'permission'],
    ['Error: No such image: tdv/absent', 'no-image'],
    ['Error response from daemon: Could not find the file /tdv/repo/out in container tdv-x', 'no-file'],
    ['Error response from daemon: invalid reference format', 'other'],
  ])('%s -> %s', (stderr, kind) => {
    expect(classifyFailure(stderr).kind).toBe(kind);
  });
});

describe('output tar entries', () => {
  it.each([
    ['out', { name: 'out', type: 'file' }, 'out'],
    ['dir/out', { name: 'out/', type: 'directory' }, 'dir/out'],
    ['dir/out', { name: 'out/a/b.txt', type: 'file' }, 'dir/out/a/b.txt'],
  ])('%s: %j -> %s', (output, header, rel) => {
    expect(outputEntryPath(output, header as never)).toEqual({ path: rel });
  });

  it.each([
    ['out', { name: 'out', type: 'symlink' }, 'symlink'],
    ['out', { name: 'out/l', type: 'link' }, 'link'],
    ['out', { name: 'out/p', type: 'fifo' }, 'fifo'],
    ['out', { name: 'out/d', type: 'character-device' }, 'character-device'],
    ['out', { name: 'out/../../etc/passwd', type: 'file' }, 'escapes'],
    ['out', { name: 'out/a/../../x', type: 'file' }, 'escapes'],
    ['out', { name: 'out//etc/passwd', type: 'file' }, 'escapes'],
    ['out', { name: '/etc/passwd', type: 'file' }, 'outside the declared output'],
    ['out', { name: 'other/x', type: 'file' }, 'outside the declared output'],
    ['out', { name: 'outer', type: 'file' }, 'outside the declared output'],
    ['out', { name: 'out/a\0b', type: 'file' }, 'NUL'],
    ['out', { name: 'out/.git/config', type: 'file' }, '.git'],
  ])('%s: %j is refused (%s)', (output, header, words) => {
    const r = outputEntryPath(output, header as never);
    expect('refused' in r && r.refused).toContain(words);
  });
});

describe('the line shown of a docker failure', () => {
  it("is what ssh said, out of the CLI's logrus line", () => {
    const stderr =
      'time="2026-12-04T10:27:58Z" level=error msg="error waiting for container: command [ssh -o ConnectTimeout=30 -T -l root -- 10.213.201.2 docker system dial-stdio] has exited with exit status 255, make sure the URL is valid, and Docker 18.09 or later is installed on the remote host: stderr=Connection to 10.213.201.2 closed by remote host.\\r\\n"\n';
    expect(firstLine(stderr)).toBe('Connection to 10.213.201.2 closed by remote host.');
  });

  it('is the logrus message when ssh said nothing, else the first error line', () => {
    expect(firstLine('time="x" level=error msg="error waiting for container: unexpected EOF"\n')).toBe('error waiting for container: unexpected EOF');
    expect(firstLine('error during connect: Get "http://x": command [ssh] has exited with exit status 255, ...: stderr=\n')).toMatch(/^error during connect/);
    expect(firstLine('docker: Error response from daemon: boom.\nSee docker run --help.\n')).toBe('Error response from daemon: boom.');
  });
});

describe('docker key', () => {
  it.each(['docker', 'podman-remote', '/usr/local/bin/docker'])('accepts %j', (d) => {
    expect(v.safeParse(configSchema, { hosts: ['ssh://a'], docker: d }).success).toBe(true);
  });
  // A relative path is found from wherever tdv runs, and not at all by the watchdog (cwd /); `-v` is an option.
  it.each(['./wrap.sh', 'bin/docker', '-v', ''])('refuses %j', (d) => {
    const r = v.safeParse(configSchema, { hosts: ['ssh://a'], docker: d });
    expect(r.success).toBe(false);
    expect(r.issues?.[0].message).toContain('command name (found on PATH) or an absolute path');
  });
});
