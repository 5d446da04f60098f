import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, expect, it, onTestFinished } from 'vitest';
import { containerName, DockerRunner, dockerRunArgs, hashContext } from '../../src/stages/runners/docker.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';
import { tmpDir } from '../helpers/repo.js';
import { makeRoot, runCapture, runnerContract } from './runner.contract.js';

/** Containers, running or not, that tdv started for `root`. */
async function containersOf(root: string): Promise<string[]> {
  const r = await execa('docker', ['ps', '--all', '--format={{.Names}}', `--filter=label=tdv.root=${root}`]);
  return r.stdout.split('\n').filter(Boolean);
}

let imageId = '';

/** A build context whose Dockerfile starts from the test image. */
function context(files: Record<string, string>): string {
  const dir = fs.realpathSync(tmpDir('tdv-build-'));
  fs.writeFileSync(path.join(dir, 'Dockerfile'), `FROM ${TEST_IMAGE}\nCOPY . /ctx\n`);
  for (const [name, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

/** Removes the image tag when the test ends (images outlive tests otherwise). */
function dropTag(tag: string): void {
  onTestFinished(async () => {
    await execa('docker', ['rmi', '--force', '--', tag], { reject: false });
  });
}

describeDocker('docker runner', () => {
  beforeAll(async () => {
    imageId = await new DockerRunner().resolveImage(TEST_IMAGE);
  });

  runnerContract('docker', async () => ({
    runner: new DockerRunner(),
    image: imageId,
    leftovers: (root) => containersOf(root),
  }));

  it('resolveImage gives the image ID, the same for the tag and for the ID itself', async () => {
    const runner = new DockerRunner();
    expect(imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await runner.resolveImage(imageId)).toBe(imageId);
  });

  it('resolveImage of an absent image says to pull or build it, in one line', async () => {
    const err = (await new DockerRunner().resolveImage('tdv-fixtures/absent:nope').catch((e: unknown) => e)) as Error & { code: string };
    expect(err.code).toBe('IMAGE_NOT_FOUND');
    expect(err.message).toContain('`docker pull tdv-fixtures/absent:nope`');
    expect(err.message).not.toContain('\n');
  });

  it('running an image ID that is no longer there is IMAGE_NOT_FOUND, not exit 125, and pulls nothing', async () => {
    const missing = `sha256:${'0'.repeat(64)}`;
    const err = await runCapture({ runner: new DockerRunner(), image: missing, leftovers: async () => [] }, makeRoot(), 'true').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'IMAGE_NOT_FOUND' });
  });

  it('an image reference that looks like an option is refused', async () => {
    await expect(new DockerRunner().resolveImage('--help')).rejects.toMatchObject({ code: 'BAD_IMAGE_REF' });
    await expect(runCapture({ runner: new DockerRunner(), image: '-v=/:/x', leftovers: async () => [] }, makeRoot(), 'true')).rejects.toMatchObject({
      code: 'BAD_IMAGE_REF',
    });
  });

  it('an absent daemon is a one-line error saying how to start it or run locally', async () => {
    const runner = new DockerRunner({ env: { ...process.env, DOCKER_HOST: 'unix:///nonexistent.sock' } });
    for (const attempt of [
      () => runner.resolveImage(TEST_IMAGE),
      () => runCapture({ runner, image: imageId, leftovers: async () => [] }, makeRoot(), 'true'),
      () => runner.buildImage(context({ f: 'daemon' })),
    ]) {
      const err = (await attempt().catch((e: unknown) => e)) as Error & { code: string };
      expect(err.code).toBe('DOCKER_DAEMON_DOWN');
      expect(err.message).toContain('unix:///nonexistent.sock');
      expect(err.message).toContain('sudo systemctl start docker');
      expect(err.message).toContain('remove `image:`');
      expect(err.message).not.toContain('\n');
    }
  });

  it('a missing docker CLI is DOCKER_NOT_INSTALLED', async () => {
    const runner = new DockerRunner({ env: { ...process.env, PATH: '/nonexistent' } });
    await expect(runner.resolveImage(TEST_IMAGE)).rejects.toMatchObject({ code: 'DOCKER_NOT_INSTALLED' });
    await expect(runCapture({ runner, image: imageId, leftovers: async () => [] }, makeRoot(), 'true')).rejects.toMatchObject({ code: 'DOCKER_NOT_INSTALLED' });
  });

  it('a stage env cannot redirect the docker CLI itself (PATH, DOCKER_HOST)', async () => {
    const c = await runCapture({ runner: new DockerRunner(), image: imageId, leftovers: async () => [] }, makeRoot(), 'echo "$DOCKER_HOST"', {
      env: { PATH: '/bin', DOCKER_HOST: 'unix:///nonexistent.sock' },
    });
    expect(c.result.exitCode).toBe(0);
    expect(c.stdout).toBe('unix:///nonexistent.sock\n');
  });

  it('the docker argv keeps each value in one element: names sanitized, options cannot be injected', () => {
    const root = '/repo, with "odd",path';
    const args = dockerRunArgs(
      { stage: '--rm -v /:/host', cmd: 'echo hi', root, cwd: `${root}/sub`, env: { A: 'x\n--privileged' }, image: imageId, onOutput: () => {} },
      { name: containerName(root, '--rm -v /:/host'), user: '1000:1000' },
    );
    const name = args.find((a) => a.startsWith('--name='))!;
    expect(name).toMatch(/^--name=tdv-[0-9a-f]{8}---rm_-v____host-[0-9a-f]{8}$/);
    expect(args).not.toContain('-v');
    expect(args).not.toContain('--privileged');
    // Everything after `--` is the image and the container's argv.
    expect(args.slice(args.indexOf('--'))).toEqual(['--', imageId, '-c', 'echo hi']);
    expect(args).toContain('--mount=type=bind,"source=/repo, with ""odd"",path","target=/repo, with ""odd"",path"');
    expect(args).toContain('--env=A=x\n--privileged');
    expect(args).toContain('--user=1000:1000');
  });

  it('container names are tdv-<repo hash>-<stage>-<random>, unique per run', () => {
    const a = containerName('/r', 'train model');
    const b = containerName('/r', 'train model');
    expect(a).toMatch(/^tdv-[0-9a-f]{8}-train_model-[0-9a-f]{8}$/);
    expect(a).not.toBe(b);
    expect(a.slice(0, 13)).not.toBe(containerName('/other', 'x').slice(0, 13));
  });

  it('a repository path with commas and quotes is mounted as is', async () => {
    const base = makeRoot();
    const root = path.join(base, 'odd, "dir"');
    fs.mkdirSync(root);
    const c = await runCapture({ runner: new DockerRunner(), image: imageId, leftovers: async () => [] }, root, 'pwd; echo in > file');
    expect(c.result.exitCode).toBe(0);
    expect(c.stdout).toBe(`${root}\n`);
    expect(fs.readFileSync(path.join(root, 'file'), 'utf8')).toBe('in\n');
  });

  it('--user makes files the given uid:gid, not root (here: 4242:4343)', async () => {
    const root = makeRoot();
    fs.chmodSync(root, 0o777);
    const c = await runCapture({ runner: new DockerRunner({ user: '4242:4343' }), image: imageId, leftovers: async () => [] }, root, 'id -u; id -g; touch owned');
    expect(c.stdout).toBe('4242\n4343\n');
    const st = fs.statSync(path.join(root, 'owned'));
    expect([st.uid, st.gid]).toEqual([4242, 4343]);
  });

  it('the image entrypoint is bypassed: cmd runs under sh -c', async () => {
    const runner = new DockerRunner();
    const ctx = fs.realpathSync(tmpDir('tdv-build-'));
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${TEST_IMAGE}\nENTRYPOINT ["false"]\n`);
    const built = await runner.buildImage(ctx);
    dropTag(built.tag);
    const c = await runCapture({ runner, image: built.id, leftovers: async () => [] }, makeRoot(), 'echo $0');
    expect(c.result.exitCode).toBe(0);
    expect(c.stdout).toBe('sh\n');
  });

  it('abort removes a container that is still starting', async () => {
    const root = makeRoot();
    const ac = new AbortController();
    const running = runCapture({ runner: new DockerRunner(), image: imageId, leftovers: async () => [] }, root, 'touch started; sleep 30', { signal: ac.signal });
    setTimeout(() => ac.abort(), 30);
    const c = await running;
    expect(c.result.exitCode).toBeNull();
    expect(await containersOf(root)).toEqual([]);
  });

  it('buildImage tags by content: the same context gives the same tag and ID; changing a file changes both', async () => {
    const runner = new DockerRunner();
    const ctx = context({ 'data/a.txt': `a ${Date.now()}\n` });
    const first = await runner.buildImage(ctx);
    dropTag(first.tag);
    expect(first.tag).toMatch(/^tdv-build\/[0-9a-f]{32}$/);
    expect(first.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    let output = '';
    const again = await runner.buildImage(ctx, { onOutput: (c) => (output += c) });
    expect(again).toEqual(first);
    expect(output).toBe(''); // the tag existed: no build at all

    fs.writeFileSync(path.join(ctx, 'data/a.txt'), 'changed\n');
    const changed = await runner.buildImage(ctx);
    dropTag(changed.tag);
    expect(changed.tag).not.toBe(first.tag);
    expect(changed.id).not.toBe(first.id);
    const c = await runCapture({ runner, image: changed.id, leftovers: async () => [] }, makeRoot(), 'cat /ctx/data/a.txt');
    expect(c.stdout).toBe('changed\n');
  });

  it('the context hash sees content, modes, names and the Dockerfile, not mtimes', async () => {
    const ctx = context({ 'x.sh': 'echo x\n' });
    const df = path.join(ctx, 'Dockerfile');
    const h0 = await hashContext(ctx, df);
    fs.utimesSync(path.join(ctx, 'x.sh'), new Date(1000), new Date(1000));
    expect(await hashContext(ctx, df)).toBe(h0);
    fs.chmodSync(path.join(ctx, 'x.sh'), 0o755);
    const h1 = await hashContext(ctx, df);
    expect(h1).not.toBe(h0);
    fs.renameSync(path.join(ctx, 'x.sh'), path.join(ctx, 'y.sh'));
    const h2 = await hashContext(ctx, df);
    expect(new Set([h0, h1, h2]).size).toBe(3);
    fs.appendFileSync(df, '# comment\n');
    expect(await hashContext(ctx, df)).not.toBe(h2);
  });

  it('concurrent builds of one context build once', async () => {
    const runner = new DockerRunner();
    const ctx = context({ f: `concurrent ${Date.now()}` });
    const [a, b] = await Promise.all([runner.buildImage(ctx), runner.buildImage(ctx)]);
    dropTag(a.tag);
    expect(a).toEqual(b);
  });

  it('a failing build is BUILD_FAILED with the failing step in one line', async () => {
    const ctx = fs.realpathSync(tmpDir('tdv-build-'));
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM ${TEST_IMAGE}\nRUN echo building; exit 7\n`);
    const err = (await new DockerRunner().buildImage(ctx, { onOutput: () => {} }).catch((e: unknown) => e)) as Error & { code: string; data: { tail: string[] } };
    expect(err.code).toBe('BUILD_FAILED');
    expect(err.message).toContain(ctx);
    expect(err.message).toMatch(/7/);
    expect(err.message).not.toContain('\n');
    expect(err.data.tail.join('\n')).toContain('building');
  });

  it('a build context without a Dockerfile is named in the error', async () => {
    const ctx = fs.realpathSync(tmpDir('tdv-build-'));
    await expect(new DockerRunner().buildImage(ctx)).rejects.toMatchObject({ code: 'BUILD_CONTEXT_MISSING' });
    await expect(new DockerRunner().buildImage(path.join(ctx, 'nope'))).rejects.toMatchObject({ code: 'BUILD_CONTEXT_MISSING' });
  });
});
