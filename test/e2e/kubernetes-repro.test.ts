import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { makeRepo, TDV_BIN, tdvBin, tmpDir, write } from '../helpers/repo.js';
import { describeDocker } from '../helpers/docker.js';
import { s3RemoteConfig } from '../helpers/s3.js';
import { pinnedTestImage } from '../helpers/k8s-job.js';
// @ts-expect-error a plain .mjs helper without types
import { startFakeK8s, writeKubeconfig } from '../helpers/fake-k8s.mjs';

/**
 * `tdv repro` (the real bin/tdv) with a stage on a `type: kubernetes` runner,
 * against the fake API server (test/helpers/fake-k8s.mjs), bytes through
 * s3rver. Needs the runner wiring (runner.<name> in config, `runner:` per
 * stage, repo/lib/runners.ts) of issue 15's core change: skipped, saying so,
 * in a build without it.
 */
const WIRED = fs.existsSync(path.resolve(import.meta.dirname, '../../src/repo/lib/runners.ts'));
if (!WIRED) console.warn('skipping the kubernetes repro tests: this build has no runner wiring (src/repo/lib/runners.ts) yet');

describeDocker('tdv repro on a Kubernetes runner (fake API server, s3rver)', () => {
  describe.skipIf(!WIRED)('with the runner wiring', () => {
    it('runs the stage as a Job, records it as a local run would, and is up to date after; an unpinned image and a remote that is not S3 are one line each', async () => {
      const work = tmpDir();
      const fake = await startFakeK8s({ dir: work, token: 'tok' });
      const kubeconfig = writeKubeconfig(path.join(work, 'kubeconfig'), { server: fake.url, ca: fake.ca, token: 'tok' });
      try {
        const dir = await makeRepo();
        const image = pinnedTestImage();
        const cfg = s3RemoteConfig(`k8s-repro-${randomBytes(4).toString('hex')}`);
        fs.appendFileSync(
          path.join(dir, '.tdv', 'config.yaml'),
          `core:\n  remote: s3\nremote:\n  disk:\n    url: ${tmpDir()}\nrunner:\n  k8s:\n    type: kubernetes\n    kubeconfig: ${kubeconfig}\n    helper_image: ${image}\n`,
        );
        write(
          dir,
          '.tdv/config.local.yaml',
          `remote:\n  s3:\n${Object.entries(cfg)
            .map(([k, v]) => `    ${k}: ${String(v)}\n`)
            .join('')}`,
        );
        write(dir, 'data/in.txt', 'a\nb\nc\n');
        const stage = (img: string) =>
          `stages:\n  count:\n    image: ${img}\n    runner: k8s\n    cmd: mkdir -p out && wc -l < data/in.txt > out/n.txt && echo counted\n    deps: [data/in.txt]\n    outs: [out]\n`;
        write(dir, 'tdv.yaml', stage(image));
        const r = await tdvBin(dir, ['repro']);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toContain('counted');
        expect(r.stdout).toMatch(/on k8s \(kubernetes node fake-node pod tdv-count-/);
        expect(fs.readFileSync(path.join(dir, 'out/n.txt'), 'utf8')).toBe('3\n');
        const lock = fs.readFileSync(path.join(dir, 'tdv.lock'), 'utf8');
        expect(lock).toContain(`image: ${image.split('@')[1]}`);
        expect(fake.deleted).toHaveLength(1);
        const again = await tdvBin(dir, ['repro']);
        expect(again.code).toBe(0);
        expect(fake.deleted).toHaveLength(1); // nothing ran

        write(dir, 'tdv.yaml', stage('tdv-fixtures/busybox'));
        const unpinned = await tdvBin(dir, ['repro']);
        expect(unpinned.code).toBe(1);
        expect(unpinned.stderr).toMatch(
          /stage count: image tdv-fixtures\/busybox is not pinned by digest, and a Kubernetes node pulls by reference; pin it: image: tdv-fixtures\/busybox@sha256:DIGEST/,
        );

        write(dir, 'tdv.yaml', stage(image));
        write(dir, 'data/in.txt', 'changed\n');
        const onDisk = await tdvBin(dir, ['repro', '-r', 'disk']);
        expect(onDisk.code).toBe(1);
        expect(onDisk.stderr).toMatch(/runner k8s: stage count: a Kubernetes Job fetches its inputs and returns its outputs through an S3 remote/);
        expect(fake.deleted).toHaveLength(1);
      } finally {
        await fake.close();
      }
    });

    it('Ctrl-C stops the Job: the repro exits 130, the Job is deleted and its containers are gone, nothing is recorded', async () => {
      const work = tmpDir();
      const fake = await startFakeK8s({ dir: work, token: 'tok' });
      const kubeconfig = writeKubeconfig(path.join(work, 'kubeconfig'), { server: fake.url, ca: fake.ca, token: 'tok' });
      try {
        const dir = await makeRepo();
        const image = pinnedTestImage();
        const cfg = s3RemoteConfig(`k8s-repro-${randomBytes(4).toString('hex')}`);
        fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: s3\nrunner:\n  k8s:\n    type: kubernetes\n    kubeconfig: ${kubeconfig}\n    helper_image: ${image}\n`);
        write(
          dir,
          '.tdv/config.local.yaml',
          `remote:\n  s3:\n${Object.entries(cfg)
            .map(([k, v]) => `    ${k}: ${String(v)}\n`)
            .join('')}`,
        );
        write(dir, 'tdv.yaml', `stages:\n  slow:\n    image: ${image}\n    runner: k8s\n    cmd: echo started && sleep 120 && mkdir out\n    outs: [out]\n`);
        const child = execa('node', [TDV_BIN, 'repro'], { cwd: dir, reject: false, env: { NO_COLOR: '1' } });
        let pod = '';
        for (let i = 0; i < 600 && !pod; i++) {
          const e = [...(fake.jobs as Map<string, { pod: { metadata: { name: string }; status: { containerStatuses?: { name: string; state?: { running?: unknown } }[] } } }>).values()][0];
          if (e?.pod.status.containerStatuses?.find((c) => c.name === 'main')?.state?.running) pod = e.pod.metadata.name;
          else await new Promise((r) => setTimeout(r, 100));
        }
        expect(pod).not.toBe('');
        child.kill('SIGINT');
        const r = await child;
        expect(r.exitCode, r.stderr).toBe(130);
        expect(fake.deleted).toHaveLength(1);
        expect(spawnSync('docker', ['ps', '-a', '--filter', `name=fake-k8s-${pod}`, '--format', '{{.Names}}'], { encoding: 'utf8' }).stdout.trim()).toBe('');
        expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
      } finally {
        await fake.close();
      }
    });
  });
});
