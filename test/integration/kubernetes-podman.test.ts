import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect, it } from 'vitest';
import { runnerModule, type KubernetesRunner } from '../../src/stages/runners/kubernetes.js';
import type { JobSpec } from '../../src/stages/job.js';
import { tmpDir } from '../helpers/repo.js';
import { describeDocker, dockerAvailable, TEST_IMAGE } from '../helpers/docker.js';
import { describeNeeding } from '../helpers/needs.js';
import { s3Available, s3SkipReason } from '../helpers/s3.js';
import { inputsIn, testIO } from '../helpers/k8s-job.js';

/**
 * The pod the Kubernetes runner generates, run by a real container engine
 * that reads Kubernetes YAML: `podman kube play` (Debian's podman). No
 * Kubernetes server can run here, so this is the check that the manifest is
 * a pod an engine accepts, that init containers run first and share the
 * emptyDir, and that the outputs really come back through the presigned
 * upload form to the S3 test server on loopback (host network: the pod
 * reaches 127.0.0.1). podman runs Pods, not Jobs: the Job's pod template is
 * run as a Pod, which is what a Job controller makes of it.
 */

const PODMAN_IMAGE = `localhost/${TEST_IMAGE}`;
let conf: string | undefined;

/**
 * Where this runs inside a container without CAP_SYS_RESOURCE, podman's
 * default rlimits for a container (RLIMIT_NOFILE and RLIMIT_NPROC at 1048576
 * and more) are above the hard limits and runc fails with "error setting
 * rlimit type 7: operation not permitted": a containers.conf with lower ones.
 */
function podmanEnv(): NodeJS.ProcessEnv {
  if (!conf) {
    conf = path.join(tmpDir('tdv-podman-'), 'containers.conf');
    fs.writeFileSync(conf, '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n');
  }
  return { ...process.env, CONTAINERS_CONF: conf };
}

function podman(args: string[], input?: Buffer) {
  return spawnSync('podman', args, { encoding: 'utf8', env: podmanEnv(), input, timeout: 180_000, maxBuffer: 64 << 20 });
}

/** The test image in podman's store (from Docker's, by docker save), pinned by podman's digest. */
function podmanImage(): string {
  if (podman(['image', 'exists', PODMAN_IMAGE]).status !== 0) {
    const saved = spawnSync('docker', ['save', TEST_IMAGE], { maxBuffer: 64 << 20 });
    const loaded = podman(['load'], saved.stdout);
    if (loaded.status !== 0) throw new Error(`podman load: ${loaded.stderr}`);
  }
  const digest = podman(['image', 'inspect', '--format', '{{.Digest}}', PODMAN_IMAGE]).stdout.trim();
  return `${PODMAN_IMAGE}@${digest}`;
}

/** Why podman cannot run a pod here (the command and its error), or undefined. */
function podmanSkipReason(): string | undefined {
  if (!dockerAvailable()) return 'no Docker to take the test image from';
  const v = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (v.error) return 'podman is not installed (apt-get install podman catatonit)';
  try {
    const image = podmanImage();
    const r = podman(['run', '--rm', '--network=host', image, 'true']);
    if (r.status !== 0) return `\`podman run --rm --network=host ${image} true\` failed: ${r.stderr.trim().split('\n').pop()}`;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
  return undefined;
}

function firstLines(s: string): string {
  return s.trim().split('\n').slice(-3).join(' | ');
}

describeDocker('kubernetes runner: the generated pod under podman kube play', () => {
  describeNeeding('podman', dockerAvailable() ? podmanSkipReason() : 'no Docker', 'podman', () => {
    it('runs the init fetch, the stage and the return helper, and the outputs come back through the presigned upload form', async () => {
      if (!s3Available()) throw new Error(s3SkipReason());
      const image = podmanImage();
      const dir = tmpDir();
      const { inputs, where } = inputsIn(dir, { 'data/in.txt': 'one\ntwo\n', 'bin/count.sh*': 'wc -l < data/in.txt | tr -d " " > out/lines.txt\n' });
      const io = testIO(dir, where);
      const runner = runnerModule.create({ name: 'k8s', type: 'kubernetes', helper_image: image }, { root: '/nonexistent', repoId: 'podmanrepo', env: {} }) as KubernetesRunner;
      const job: JobSpec = {
        stage: 'count',
        image: { ref: image },
        cmd: ['mkdir -p out/nested', './bin/count.sh', 'echo "from the pod" > out/nested/msg; echo ran-in-podman'],
        env: {},
        wdir: '.',
        inputs,
        outputs: ['out'],
      };
      const name = `tdv-podman-${Date.now().toString(36)}`;
      const prepared = await runner.prepare(job, io, name, 'default');
      const template = (prepared.manifest.spec as { template: { metadata: unknown; spec: Record<string, unknown> } }).template;
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, ...(template.metadata as object) }, spec: { ...template.spec, hostNetwork: true } };
      const yaml = path.join(dir, 'pod.yaml');
      fs.writeFileSync(yaml, JSON.stringify(pod, null, 2)); // JSON is YAML
      try {
        const play = podman(['kube', 'play', yaml]);
        expect(play.status, play.stderr).toBe(0);
        const state = (c: string) => podman(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', `${name}-${c}`]).stdout.trim();
        for (let i = 0; i < 600 && !(state('main').startsWith('exited') && state('tdv-return').startsWith('exited')); i++) await new Promise((r) => setTimeout(r, 200));
        const logs = (c: string) => podman(['logs', `${name}-${c}`]);
        expect(state('main'), firstLines(logs('main').stderr)).toBe('exited 0');
        expect(state('tdv-return'), firstLines(logs('tdv-return').stderr)).toBe('exited 0');
        expect(logs('main').stdout).toContain('ran-in-podman');
        const outputs = await runner.collect(job, io, prepared, name);
        expect(outputs.map((f) => f.path).sort()).toEqual(['out/lines.txt', 'out/nested/msg']);
        expect(fs.readFileSync(path.join(io.staging, 'out/lines.txt'), 'utf8')).toBe('2\n');
        expect(fs.readFileSync(path.join(io.staging, 'out/nested/msg'), 'utf8')).toBe('from the pod\n');
      } finally {
        podman(['pod', 'rm', '-f', name]);
        await Promise.allSettled(prepared.slots.map((s) => s.remove()));
        io.remote.close();
      }
    });
  });
});
