import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { newRepo } from '../helpers/expect.js';
import { describeDocker, TEST_IMAGE } from '../helpers/docker.js';
import { bikeshareRepo } from '../helpers/pipeline.js';

const imageId = async (ref: string) => (await execa('docker', ['image', 'inspect', '--format', '{{.Id}}', ref])).stdout.trim();

describeDocker('tdv repro with Docker stages', () => {
  it('runs the bike-share pipeline in the busybox image, records the image ID, and reruns nothing the second time', async () => {
    const dir = await bikeshareRepo({ trips: 20 });
    const yaml = read(dir, 'tdv.yaml').replace(/^( {4}cmd: .*)$/gm, `$1\n    image: ${TEST_IMAGE}`);
    write(dir, 'tdv.yaml', yaml);
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('running sales (docker): never run');
    const report = JSON.parse(read(dir, 'metrics/report.json'));
    expect(report.worst_days[0].date).toMatch(/^2024-07-3[01]$/);
    expect(read(dir, 'tdv.lock')).toContain(`image: ${await imageId(TEST_IMAGE)}`);
    // Written by the container, owned by whoever ran tdv.
    const st = fs.statSync(path.join(dir, 'out/joined.csv'));
    expect([st.uid, st.gid]).toEqual([process.getuid!(), process.getgid!()]);
    const again = await tdv(dir, 'repro');
    expect(again.stdout.trim()).toBe('Pipeline is up to date.');
  });

  it('a build: stage reruns when a file of its build context changes (new image ID)', async () => {
    const dir = await newRepo();
    write(dir, 'docker/Dockerfile', `FROM ${TEST_IMAGE}\nCOPY greeting /greeting\n`);
    write(dir, 'docker/greeting', 'hello\n');
    write(dir, 'tdv.yaml', 'stages:\n  greet:\n    build: {context: docker}\n    cmd: cat /greeting > out.txt\n    outs: [out.txt]\n');
    const first = await tdv(dir, 'repro');
    expect(first.code, first.stderr).toBe(0);
    expect(read(dir, 'out.txt')).toBe('hello\n');
    const id1 = read(dir, 'tdv.lock').match(/image: (sha256:[0-9a-f]{64})/)![1];
    expect((await tdv(dir, 'repro')).stdout.trim()).toBe('Pipeline is up to date.');
    write(dir, 'docker/greeting', 'bonjour\n');
    const second = await tdv(dir, 'repro');
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/running greet \(docker\): image changed/);
    expect(read(dir, 'out.txt')).toBe('bonjour\n');
    expect(read(dir, 'tdv.lock')).not.toContain(id1);
  });

  it('a tag that now names another image is a change, even though tdv.yaml did not change', async () => {
    const dir = await newRepo();
    const tag = `tdv-test/retag-${process.pid}-${Date.now()}`;
    await execa('docker', ['tag', TEST_IMAGE, tag]);
    try {
      write(dir, 'tdv.yaml', `stages:\n  s:\n    image: ${tag}\n    cmd: echo 1 > o.txt\n    outs: [o.txt]\n`);
      expect((await tdv(dir, 'repro')).code).toBe(0);
      // Rebuild "latest" under the same tag: a different image ID.
      write(dir, 'ctx/Dockerfile', `FROM ${TEST_IMAGE}\nLABEL rebuilt=${Date.now()}\n`);
      await execa('docker', ['build', '-q', '-t', tag, path.join(dir, 'ctx')]);
      const dry = await tdv(dir, 'repro', '--dry');
      expect(dry.stdout).toMatch(/would run s: image changed/);
    } finally {
      await execa('docker', ['rmi', '-f', tag], { reject: false });
    }
  });

  it('a missing image is a clear error naming it', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    image: tdv-test/no-such-image:1\n    cmd: "true"\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('tdv-test/no-such-image:1');
  });

  it('independent Docker stages run at the same time with -j 2', async () => {
    const dir = await newRepo();
    const stage = (n: string) => `  ${n}:\n    image: ${TEST_IMAGE}\n    cmd: date +%s > ${n}.txt; sleep 2; date +%s >> ${n}.txt\n    outs: [${n}.txt]\n`;
    write(dir, 'tdv.yaml', `stages:\n${stage('a')}${stage('b')}`);
    const r = await tdv(dir, 'repro', '-j', '2');
    expect(r.code, r.stderr).toBe(0);
    const span = (f: string) => read(dir, f).trim().split('\n').map(Number);
    const [a0, a1] = span('a.txt');
    const [b0, b1] = span('b.txt');
    // Each interval is at least 2 s long; with one stage after the other they could share at most an instant.
    expect(Math.min(a1!, b1!) - Math.max(a0!, b0!)).toBeGreaterThanOrEqual(1);
  });
});
