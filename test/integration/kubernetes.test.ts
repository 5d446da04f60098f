import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TdvError } from '../../src/errors.js';
import { runnerModule } from '../../src/stages/runners/kubernetes.js';
import type { JobRunner, JobSpec } from '../../src/stages/job.js';
import { tmpDir } from '../helpers/repo.js';
import { describeDocker, dockerAvailable } from '../helpers/docker.js';
import { describeS3, S3_BUCKET, s3Available, s3ClientConfig, s3SkipReason } from '../helpers/s3.js';
import { inputsIn, pinnedTestImage, testIO } from '../helpers/k8s-job.js';
// @ts-expect-error a plain .mjs helper without types
import { makeCert, startFakeK8s, writeKubeconfig } from '../helpers/fake-k8s.mjs';

/**
 * The Kubernetes runner against a fake API server (test/helpers/fake-k8s.mjs)
 * that really runs each Job's pod with Docker, bytes moving through the S3
 * test server by presigned URLs: what was tested here is the runner's
 * requests, the pod's scripts in busybox, and the exchange; not a real
 * cluster (see README, "Kubernetes runner").
 */

interface Fake {
  url: string;
  ca: string;
  jobs: Map<
    string,
    {
      job: { metadata: { labels: Record<string, string> }; spec: Record<string, unknown> };
      pod: { metadata: { name: string }; status: { containerStatuses?: { name: string; state?: { running?: unknown } }[] } };
    }
  >;
  deleted: string[];
  requests: string[];
  state: { down: boolean };
  close(): Promise<void>;
}

const TOKEN = 'fake-token-1234';
const REPO_ID = 'repo0123abcd';

async function fakeCluster(opts: { forbid?: boolean; namespaces?: string[] } = {}): Promise<{ fake: Fake; kubeconfig: string }> {
  const dir = tmpDir();
  const fake = (await startFakeK8s({ dir, token: TOKEN, ...opts })) as Fake;
  const kubeconfig = writeKubeconfig(path.join(dir, 'kubeconfig'), { server: fake.url, ca: fake.ca, token: TOKEN });
  return { fake, kubeconfig };
}

function runner(kubeconfig: string, extra: Record<string, unknown> = {}): JobRunner {
  return runnerModule.create({ name: 'k8s', type: 'kubernetes', kubeconfig, helper_image: pinnedTestImage(), ...extra }, { root: '/nonexistent', repoId: REPO_ID, env: {} });
}

function spec(over: Partial<JobSpec>): JobSpec {
  return { stage: 'train', image: { ref: pinnedTestImage() }, cmd: [], env: {}, wdir: '.', inputs: [], outputs: [], ...over };
}

function sha(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

async function slotKeys(prefix: string): Promise<string[]> {
  const client = new S3Client(s3ClientConfig());
  try {
    const res = await client.send(new ListObjectsV2Command({ Bucket: S3_BUCKET, Prefix: `${prefix}/exchange/jobs/` }));
    return (res.Contents ?? []).map((o) => o.Key!);
  } finally {
    client.destroy();
  }
}

/** Docker containers the fake made for `job` that still exist. */
function containersOf(job: string): string[] {
  return spawnSync('docker', ['ps', '-a', '--filter', `name=fake-k8s-${job}`, '--format', '{{.Names}}'], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean);
}

const skipBoth = !dockerAvailable() || !s3Available();

describeDocker('kubernetes runner against a fake API server', () => {
  describeS3('inputs in, outputs back', () => {
    it('runs the commands in order in wdir with the inputs fetched by hash, and brings back the declared outputs, verified', async () => {
      const { fake, kubeconfig } = await fakeCluster();
      const dir = tmpDir();
      const { inputs, where } = inputsIn(dir, {
        'data/in.txt': 'hello\n',
        'src/prep.sh*': 'cat ../data/in.txt ../data/in.txt > ../out/twice.txt\n',
        "odd name's/a b.txt": 'quoted\n',
      });
      const io = testIO(dir, where);
      const job = spec({
        wdir: 'src',
        inputs,
        env: { GREETING: 'hi there; $(not run)' },
        cmd: ['mkdir -p ../out/deep && echo "$GREETING" > ../out/deep/env.txt', './prep.sh', 'cp "../odd name\'s/a b.txt" ../out/copied && echo stage done'],
        outputs: ['out', 'metrics.json'],
      });
      try {
        const res = await runner(kubeconfig).run(job, io);
        expect(res.exitCode, io.out).toBe(0);
        expect(res.image).toBe(pinnedTestImage().split('@')[1]);
        expect(res.where).toMatch(/fake-node.*tdv-train-/);
        expect(io.out).toContain('stage done');
        const files = new Map(res.outputs.map((f) => [f.path, f.sha256]));
        expect([...files.keys()].sort()).toEqual(['out/copied', 'out/deep/env.txt', 'out/twice.txt']);
        expect(fs.readFileSync(path.join(io.staging, 'out/twice.txt'), 'utf8')).toBe('hello\nhello\n');
        expect(fs.readFileSync(path.join(io.staging, 'out/deep/env.txt'), 'utf8')).toBe('hi there; $(not run)\n');
        expect(files.get('out/copied')).toBe(sha('quoted\n'));
        // The Job is labelled, deleted at the end, its cleanup registered and released, its slots removed.
        const name = fake.deleted[0]!;
        expect(name).toMatch(/^tdv-train-[0-9a-f]{8}$/);
        expect(io.cleanups).toEqual([expect.objectContaining({ kind: 'http-delete', url: `${fake.url}/apis/batch/v1/namespaces/default/jobs/${name}?propagationPolicy=Foreground` })]);
        expect(io.finished).toBe(1);
        expect(await slotKeys(io.prefix)).toEqual([]);
        expect(containersOf(name)).toEqual([]);
      } finally {
        io.remote.close();
        await fake.close();
      }
    });
  });

  describe.skipIf(skipBoth)('on s3rver', () => {
    let fake: Fake;
    let kubeconfig: string;
    beforeEach(async () => {
      ({ fake, kubeconfig } = await fakeCluster());
    });
    afterEach(async () => {
      await fake?.close();
    });

    it('a failing command reports its exit code and its log, and the commands after it do not run', async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const res = await runner(kubeconfig).run(spec({ cmd: ['echo before; echo to stderr >&2; exit 3', 'echo never'], outputs: ['out'] }), io);
      expect(res.exitCode).toBe(3);
      expect(io.out).toContain('before');
      expect(io.out).toContain('to stderr');
      expect(io.out).not.toContain('never');
      expect(res.outputs).toEqual([]);
      expect(fs.readdirSync(io.staging)).toEqual([]);
      io.remote.close();
    });

    it('many inputs are fetched several at a time, every one in place (more than one batch)', async () => {
      const dir = tmpDir();
      const files: Record<string, string> = {};
      for (let i = 0; i < 30; i++) files[`in/${i % 3}/f${i}.txt`] = `line ${i}\n`;
      const { inputs, where } = inputsIn(dir, files);
      const io = testIO(dir, where);
      const res = await runner(kubeconfig).run(spec({ inputs, cmd: ['mkdir out && cat in/*/* | sort > out/all'], outputs: ['out'] }), io);
      expect(res.exitCode, io.out).toBe(0);
      const want = Object.values(files).sort().join('');
      expect(fs.readFileSync(path.join(io.staging, 'out/all'), 'utf8')).toBe(want);
      io.remote.close();
    });

    it('an input whose bytes in the exchange were altered is caught by the init container before the stage runs', async () => {
      const dir = tmpDir();
      const { inputs, where } = inputsIn(dir, { 'data/in.txt': 'the real bytes\n' });
      const io = testIO(dir, where);
      // Upload it, then replace it there with bytes of the same size (the exchange only checks sizes).
      await io.exchange!.inputUrls(inputs, (f) => fs.createReadStream(where.get(f.sha256)!));
      const client = new S3Client(s3ClientConfig());
      await client.send(new PutObjectCommand({ Bucket: S3_BUCKET, Key: `${io.prefix}/exchange/objects/${inputs[0]!.sha256}`, Body: 'the fake bytes\n' }));
      client.destroy();
      const err = await runner(kubeconfig)
        .run(spec({ inputs, cmd: ['echo stage ran; cat data/in.txt'], outputs: [] }), io)
        .catch((e: unknown) => e);
      expect((err as TdvError).code).toBe('JOB_FAILED');
      expect((err as TdvError).message).toMatch(
        new RegExp(
          `^runner k8s: Job tdv-train-[0-9a-f]{8}: fetching the inputs failed \\(exit 1: tdv-fetch: data/in\\.txt arrived with sha256 ${sha('the fake bytes\n')}, not ${inputs[0]!.sha256}\\)$`,
        ),
      );
      expect(io.out).not.toContain('stage ran');
      expect(fake.deleted.length).toBe(1);
      io.remote.close();
    });

    it('a main container killed before it writes its exit code ends the run with that status, and the waiting helper goes with the Job', async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const running = runner(kubeconfig).run(spec({ cmd: ['echo started; sleep 60'], outputs: ['out'] }), io);
      let main = '';
      for (let i = 0; i < 600 && !main; i++) {
        const entry = [...fake.jobs.values()][0];
        if (entry?.pod.status.containerStatuses?.find((c) => c.name === 'main')?.state?.running) main = `fake-k8s-${entry.pod.metadata.name}-main`;
        else await new Promise((r) => setTimeout(r, 100));
      }
      const name = [...fake.jobs.keys()][0]!;
      expect(spawnSync('docker', ['kill', main]).status).toBe(0); // as an OOM kill or a node's eviction would
      const res = await running;
      expect(res.exitCode).toBe(137);
      expect(res.outputs).toEqual([]);
      expect(fake.deleted).toEqual([name]);
      expect(containersOf(name)).toEqual([]);
      io.remote.close();
    });

    it("outputs that cannot be uploaded fail the stage with the helper's own words", async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      // The upload forms point at a port where nothing listens.
      const real = io.exchange!;
      io.exchange = {
        inputUrls: (...a) => real.inputUrls(...a),
        outputSlot: async (job, n) => {
          const slot = await real.outputSlot(job, n);
          return { ...slot, form: { ...slot.form!, url: 'http://127.0.0.1:9/bucket' } };
        },
      };
      const err = await runner(kubeconfig)
        .run(spec({ cmd: ['mkdir out && echo x > out/a'], outputs: ['out'] }), io)
        .catch((e: unknown) => e);
      expect((err as TdvError).code).toBe('JOB_FAILED');
      expect((err as TdvError).message).toMatch(/^runner k8s: Job tdv-train-[0-9a-f]{8}: returning the outputs failed \(exit 1: .*tdv-return: uploading \/tdv\/ctl\/out\.b64 failed\)$/);
      io.remote.close();
    });

    it('an API that is out of reach for a moment is waited out; for longer, the run is lost (RUNNER_LOST)', async () => {
      const saved = process.env.TDV_K8S_LOST_MS;
      process.env.TDV_K8S_LOST_MS = '4000';
      try {
        const mainRunning = async () => {
          for (let i = 0; i < 600; i++) {
            const entry = [...fake.jobs.values()].at(-1);
            if (entry?.pod.status.containerStatuses?.find((c) => c.name === 'main')?.state?.running) return;
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        const dir = tmpDir();
        const io = testIO(dir, new Map());
        const blip = runner(kubeconfig).run(spec({ cmd: ['sleep 3; echo survived'], outputs: [] }), io);
        await mainRunning();
        fake.state.down = true;
        await new Promise((r) => setTimeout(r, 1500));
        fake.state.down = false;
        const ok = await blip;
        expect(ok.exitCode).toBe(0);
        expect(io.out).toContain('survived');

        const lost = runner(kubeconfig)
          .run(spec({ cmd: ['sleep 60'], outputs: [] }), io)
          .catch((e: unknown) => e);
        await mainRunning();
        fake.state.down = true;
        const err = (await lost) as TdvError;
        expect(err.code).toBe('RUNNER_LOST');
        expect(err.message).toMatch(
          /^runner k8s: lost the Kubernetes API while Job tdv-train-[0-9a-f]{8} ran: Kubernetes API GET \/apis\/batch\/v1\/namespaces\/default\/jobs\/tdv-train-[0-9a-f]{8}: HTTP 503 ServiceUnavailable: the fake is down \(as an API server restarting\); nothing was recorded/,
        );
        expect(io.finished).toBe(1); // the first run's Job was deleted and released; the lost one's stays registered
        expect(io.cleanups).toHaveLength(2);
        fake.state.down = false;
        io.remote.close();
      } finally {
        if (saved === undefined) delete process.env.TDV_K8S_LOST_MS;
        else process.env.TDV_K8S_LOST_MS = saved;
      }
    });

    it('an output that comes back as a symlink is refused, and nothing is staged under its name', async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const err = await runner(kubeconfig)
        .run(spec({ cmd: ['mkdir out && echo x > out/a && ln -s /etc/passwd out/link'], outputs: ['out'] }), io)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TdvError);
      expect((err as TdvError).code).toBe('JOB_OUTPUT_REFUSED');
      expect((err as TdvError).message).toMatch(/^stage train: output out\/link came back as a symlink to \/etc\/passwd; [^\n]*$/);
      expect(fs.existsSync(path.join(io.staging, 'out/link'))).toBe(false);
      io.remote.close();
    });

    it('aborting deletes the Job (Foreground) and stops its containers; the run resolves with no exit code', async () => {
      const dir = tmpDir();
      const ac = new AbortController();
      const io = testIO(dir, new Map(), ac.signal);
      const running = runner(kubeconfig).run(spec({ cmd: ['echo started; sleep 60'], outputs: [] }), io);
      // Abort once the main container runs.
      for (let i = 0; i < 600; i++) {
        const entry = [...fake.jobs.values()][0];
        if (entry?.pod.status.containerStatuses?.find((c) => c.name === 'main')?.state?.running) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const name = [...fake.jobs.keys()][0]!;
      ac.abort();
      const res = await running;
      expect(res.exitCode).toBeNull();
      expect(fake.deleted).toContain(name);
      expect(fake.requests).toContain(`DELETE /apis/batch/v1/namespaces/default/jobs/${name}?propagationPolicy=Foreground`);
      expect(containersOf(name)).toEqual([]);
      io.remote.close();
    });

    it('an image not pinned by digest is refused before anything is sent, saying how to pin it', async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const before = fake.requests.length;
      const err = await runner(kubeconfig)
        .run(spec({ image: { ref: 'python:3.12' }, cmd: ['true'] }), io)
        .catch((e: unknown) => e);
      expect((err as TdvError).code).toBe('IMAGE_NOT_PINNED');
      expect((err as TdvError).message).toMatch(/^stage train: image python:3\.12 is not pinned by digest, .*image: python:3\.12@sha256:DIGEST/);
      expect(fake.requests.length).toBe(before);
      io.remote.close();
    });

    it("a pod that cannot be scheduled fails the stage with the scheduler's reason", async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const err = await runner(kubeconfig, { pending_seconds: 1 })
        .run(spec({ cmd: ['true'], resources: { gpus: 1 } }), io)
        .catch((e: unknown) => e);
      expect((err as TdvError).code).toBe('JOB_FAILED');
      expect((err as TdvError).message).toMatch(/did not start within 1 s: Unschedulable: 0\/1 nodes are available: 1 Insufficient nvidia\.com\/gpu/);
      io.remote.close();
    });

    it('sweep stops the Jobs of this repository that are still running', async () => {
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      const r = runner(kubeconfig);
      const running = r.run(spec({ cmd: ['sleep 60'] }), io).catch((e: unknown) => e);
      for (let i = 0; i < 300 && fake.jobs.size === 0; i++) await new Promise((res) => setTimeout(res, 100));
      const name = [...fake.jobs.keys()][0]!;
      expect(await runner(kubeconfig).sweep!(REPO_ID)).toEqual([name]);
      expect(await runner(kubeconfig).sweep!('another-repo')).toEqual([]);
      const err = (await running) as TdvError; // its Job vanished under it
      expect(err.code).toBe('JOB_FAILED');
      expect(err.message).toBe(`runner k8s: Job ${name} was deleted while it ran (kubectl delete, a sweep by another tdv, or its namespace's cleanup); nothing was recorded`);
      expect(fake.deleted).toContain(name);
      io.remote.close();
    });
  });

  describe.skipIf(!dockerAvailable() || !s3Available())('API access and refusals', () => {
    it('a client certificate from the kubeconfig authenticates; without it the API answers 401, in one line', async () => {
      const dir = tmpDir();
      const client = makeCert(dir, 'client', 'tdv-user') as { cert: string; key: string };
      const fake = (await startFakeK8s({ dir, client: client.cert })) as Fake;
      try {
        const withCert = writeKubeconfig(path.join(dir, 'kc1'), { server: fake.url, ca: fake.ca, client });
        expect(await runner(withCert).sweep!(REPO_ID)).toEqual([]);
        const withToken = writeKubeconfig(path.join(dir, 'kc2'), { server: fake.url, ca: fake.ca, token: 'not-a-cert' });
        const err = await runner(withToken).sweep!(REPO_ID).catch((e: unknown) => e);
        expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
        expect((err as TdvError).message).toBe('runner k8s: Kubernetes API GET /apis/batch/v1/namespaces/default/jobs: HTTP 401 Unauthorized: Unauthorized; check the credentials in the kubeconfig');
      } finally {
        await fake.close();
      }
    });

    it('a server whose certificate the kubeconfig CA does not sign is refused, naming the TLS error', async () => {
      const dir = tmpDir();
      const other = makeCert(dir, 'other', 'someone-else') as { cert: string };
      const { fake } = await fakeCluster();
      try {
        const kc = writeKubeconfig(path.join(dir, 'kc'), { server: fake.url, ca: other.cert, token: TOKEN });
        const err = await runner(kc).sweep!(REPO_ID).catch((e: unknown) => e);
        expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
        expect((err as TdvError).message).toMatch(/^runner k8s: cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ \(context fake of .*\): [A-Z_]+$/);
      } finally {
        await fake.close();
      }
    });

    it('a 403 from the API is one line with the status and the API message', async () => {
      const { fake, kubeconfig } = await fakeCluster({ forbid: true });
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      try {
        const err = await runner(kubeconfig)
          .run(spec({ cmd: ['true'] }), io)
          .catch((e: unknown) => e);
        expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
        expect((err as TdvError).message).toMatch(
          /^runner k8s: Kubernetes API POST \/apis\/batch\/v1\/namespaces\/default\/jobs: HTTP 403 Forbidden: jobs\.batch is forbidden: User "system:serviceaccount:ci:tdv" cannot create [^\n]*; the account needs create, get, list, delete on jobs/,
        );
      } finally {
        io.remote.close();
        await fake.close();
      }
    });

    it('a namespace that does not exist is one line naming it', async () => {
      const { fake, kubeconfig } = await fakeCluster();
      const dir = tmpDir();
      const io = testIO(dir, new Map());
      try {
        const err = await runner(kubeconfig, { namespace: 'nope' })
          .run(spec({ cmd: ['true'] }), io)
          .catch((e: unknown) => e);
        expect((err as TdvError).code).toBe('RUNNER_UNAVAILABLE');
        expect((err as TdvError).message).toMatch(/HTTP 404 NotFound: namespaces "nope" not found$/);
      } finally {
        io.remote.close();
        await fake.close();
      }
    });
  });
});

if (!s3Available()) console.warn(`kubernetes runner tests: ${s3SkipReason()}`);
