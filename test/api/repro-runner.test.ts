import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ReproEvent, type ReproOptions, reproduce } from '../../src/repo/repro.js';
import { cloneId } from '../../src/repo/lib/runners.js';
import type { JobSpec } from '../../src/stages/job.js';
import { git, read, snapshot, tdv, write } from '../helpers/repo.js';
import { newDir, sha } from '../helpers/expect.js';
import { openRepo, withRepo } from '../helpers/api.js';
import { pipelineRepo } from '../helpers/pipeline.js';
import { type SandboxOptions, sandboxRunner } from '../helpers/sandbox-runner.js';

/**
 * Porcelain layer: stages run on a runner elsewhere (the job path of
 * repro), through a test runner that shares nothing with the workspace but
 * the inputs the spec lists (test/helpers/sandbox-runner.ts). The engines
 * themselves (Docker hosts, Kubernetes) have their own contract tests.
 */
const PIPELINE = `stages:
  s:
    cmd:
      - mkdir -p out/parts
      - cat data/a.csv data/sub/b.csv > out/parts/all.csv
      - ./scripts/count.sh out/parts/all.csv > out/n.txt
      - 'printf ''{"rows": %s}\\n'' "$(cat out/n.txt)" > m.json'
    deps: [data, scripts/count.sh]
    params: [scale]
    outs: [out/parts, out/n.txt]
    metrics: [m.json]
    resources: {cpus: 2, memory: 1G}
`;

async function sandboxRepo(yaml = PIPELINE): Promise<string> {
  const dir = await pipelineRepo(yaml, { 'scripts/count.sh': '#!/bin/sh\nwc -l < "$1" | tr -d " "\n', 'params.yaml': 'scale: 2\n' });
  fs.chmodSync(path.join(dir, 'scripts/count.sh'), 0o755);
  write(dir, 'data/a.csv', 'a,1\n');
  write(dir, 'data/sub/b.csv', 'b,2\n');
  const added = await tdv(dir, 'add', 'data');
  expect(added.stderr).toBe('');
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'data');
  return dir;
}

async function run(dir: string, sandbox: SandboxOptions = {}, opts: ReproOptions = {}) {
  const events: ReproEvent[] = [];
  const { repo, warnings } = await openRepo(dir);
  const runner = sandboxRunner(sandbox);
  const res = await reproduce(repo, { runner: 'sandbox', jobRunners: { sandbox: runner }, ...opts, onEvent: (e) => (events.push(e), opts.onEvent?.(e)) });
  return { ...res, events, warnings, runner };
}

/** The workspace's files, without tdv's own directory (the cache gains the inputs sent). */
const workspace = (dir: string) => Object.fromEntries(Object.entries(snapshot(dir)).filter(([k]) => !k.startsWith('.tdv/')));

describe('reproduce (API): stages on a runner elsewhere', () => {
  it('a job spec of exactly the declared inputs; outputs verified, cached, checked out and recorded as a local run records them; the run-cache is pushed and restores in another clone', async () => {
    const dir = await sandboxRepo();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', remote)).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'remote');
    const specs: JobSpec[] = [];
    const res = await run(dir, { specs, leftovers: ['container tdv-x'] });
    expect(res).toMatchObject({ ran: ['s'], failed: [], restored: [] });
    expect(res.runs).toEqual([{ stage: 's', runner: 'sandbox', where: expect.stringMatching(/^sandbox:/), started: expect.any(String), ended: expect.any(String) }]);
    expect(res.events.find((e) => e.type === 'done')).toMatchObject({ runner: 'sandbox', where: expect.stringMatching(/^sandbox:/) });
    // Swept once before anything ran, with this clone's id; what it stopped is a warning.
    expect(res.runner.swept).toEqual([cloneId((await openRepo(dir)).repo)]);
    expect(res.warnings).toEqual(['runner sandbox: stopped 1 left over from an earlier run of this clone: container tdv-x']);
    expect(specs).toHaveLength(1);
    expect(specs[0]).toEqual({
      stage: 's',
      cmd: expect.any(Array),
      env: {},
      wdir: '.',
      inputs: [
        { path: 'data/a.csv', sha256: sha('a,1\n'), size: 4 },
        { path: 'data/sub/b.csv', sha256: sha('b,2\n'), size: 4 },
        { path: 'params.yaml', sha256: sha('scale: 2\n'), size: 9 },
        { path: 'scripts/count.sh', sha256: sha(read(dir, 'scripts/count.sh')), size: read(dir, 'scripts/count.sh').length, exec: true },
      ],
      outputs: ['out/parts', 'out/n.txt', 'm.json'],
      resources: { cpus: 2, memory: 2 ** 30 },
    });
    expect(read(dir, 'out/parts/all.csv')).toBe('a,1\nb,2\n');
    expect(read(dir, 'out/n.txt')).toBe('2\n');
    expect(JSON.parse(read(dir, 'm.json'))).toEqual({ rows: 2 });
    expect(read(dir, 'out/.gitignore')).toContain('/n.txt');
    const lock = read(dir, 'tdv.lock');
    // No trace of where it ran in tdv.lock: a run elsewhere is a run.
    expect(lock).not.toMatch(/sandbox/);
    // The same stage run here in a fresh clone, without the run-cache: the same tdv.lock.
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'ran');
    const local = newDir();
    await git(local, 'clone', '-q', dir, '.');
    expect((await tdv(local, 'pull')).code).toBe(0);
    const here = await withRepo(local, (r) => reproduce(r, { runner: 'local', runCache: false, force: true }));
    expect(here).toMatchObject({ ran: ['s'], failed: [] });
    expect(read(local, 'tdv.lock')).toBe(lock);
    // Another fresh clone: the run record pushed after the remote run restores it instead of running.
    const other = newDir();
    await git(other, 'clone', '-q', dir, '.');
    expect((await tdv(other, 'pull', '--run-cache')).code).toBe(0);
    fs.rmSync(path.join(other, 'out'), { recursive: true, force: true });
    const again = await withRepo(other, (r) => reproduce(r, { runner: 'local' }));
    expect(again).toMatchObject({ ran: [], restored: ['s'], failed: [] });
    expect(read(other, 'tdv.lock')).toBe(lock);
    expect(read(other, 'out/parts/all.csv')).toBe('a,1\nb,2\n');
  });

  it('a local run is a run-cache hit for a runner elsewhere: restored, not sent', async () => {
    const dir = await sandboxRepo();
    expect(await withRepo(dir, (r) => reproduce(r))).toMatchObject({ ran: ['s'] });
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const specs: JobSpec[] = [];
    expect(await run(dir, { specs })).toMatchObject({ ran: [], restored: ['s'] });
    expect(specs).toEqual([]);
  });

  const refusals: [string, SandboxOptions, RegExp][] = [
    ['a path the stage does not declare', { tamper: (s) => fs.writeFileSync(path.join(s, 'stray.txt'), 'x') }, /runner sandbox returned stray\.txt, which the stage does not declare as an output/],
    ['a symlink', { tamper: (s) => (fs.rmSync(path.join(s, 'out/n.txt')), fs.symlinkSync('/etc/passwd', path.join(s, 'out/n.txt'))) }, /runner sandbox returned out\/n\.txt, a symlink/],
    [
      'a file whose claimed hash is wrong',
      { claims: (os) => os.map((o) => (o.path === 'out/n.txt' ? { ...o, sha256: sha('3\n') } : o)) },
      /returned out\/n\.txt with content that is not the [0-9a-f]{12} its result claims/,
    ],
    ['a declared output missing', { tamper: (s) => fs.rmSync(path.join(s, 'out/n.txt')) }, /did not produce out\/n\.txt, which tdv\.yaml declares/],
    [
      'a file under a declared directory its result does not list',
      { claims: (os) => os.filter((o) => o.path !== 'out/parts/all.csv') },
      /returned out\/parts\/all\.csv, which its result does not list/,
    ],
  ];
  for (const [what, sandbox, message] of refusals) {
    it(`refused: ${what}; nothing recorded, the workspace untouched, no staging left`, async () => {
      const dir = await sandboxRepo();
      write(dir, 'out/n.txt', 'old\n');
      const before = workspace(dir);
      const res = await run(dir, sandbox);
      expect(res).toMatchObject({ ran: [], failed: [{ stage: 's', error: expect.stringMatching(message) }] });
      expect(workspace(dir)).toEqual(before);
      expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
      expect(fs.readdirSync(path.join(dir, '.tdv/tmp/jobs'))).toEqual([]);
      const { repo } = await openRepo(dir);
      expect(new (await import('../../src/stages/run-cache.js')).RunCache(repo.store).list()).toEqual([]);
    });
  }

  it('inputs are only what is declared: a stage reading an undeclared file fails there', async () => {
    const dir = await sandboxRepo('stages:\n  s:\n    cmd: cat secret.txt > o.txt\n    deps: [data]\n    outs: [o.txt]\n');
    write(dir, 'secret.txt', 'not sent\n');
    expect((await withRepo(dir, (r) => reproduce(r, { runner: 'local', runCache: false }))).ran).toEqual(['s']);
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const res = await run(dir, {}, { runCache: false });
    expect(res).toMatchObject({ ran: [], failed: [{ stage: 's', error: expect.stringMatching(/stage "s" failed on runner sandbox \(sandbox[^)]*\): exit code 1/) }] });
    expect(read(dir, '.tdv/logs/s.log')).toMatch(/secret\.txt/);
  });

  it('aborted while it runs: nothing recorded', async () => {
    const dir = await sandboxRepo('stages:\n  s:\n    cmd: echo started; sleep 10; echo x > o.txt\n    deps: [data]\n    outs: [o.txt]\n');
    const abort = new AbortController();
    const res = await run(dir, {}, { signal: abort.signal, onEvent: (e) => e.type === 'output' && abort.abort() });
    expect(res).toMatchObject({ ran: [], failed: [{ stage: 's', error: 'stage "s" was interrupted; nothing was recorded for it' }] });
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'o.txt'))).toBe(false);
  });

  it('runner: in tdv.yaml picks the runner; --runner local overrides it; an unknown name is UNKNOWN_RUNNER naming tdv.yaml:line:col', async () => {
    const dir = await sandboxRepo('stages:\n  s:\n    cmd: echo hi > o.txt\n    runner: sandbox\n    outs: [o.txt]\n');
    expect((await run(dir, {}, { runner: undefined })).runs).toEqual([expect.objectContaining({ runner: 'sandbox' })]);
    const here = await run(dir, {}, { runner: 'local', force: true });
    expect(here).toMatchObject({ ran: ['s'] });
    expect(here.runs).toBeUndefined();
    const { repo } = await openRepo(dir);
    await expect(reproduce(repo)).rejects.toMatchObject({ code: 'UNKNOWN_RUNNER', message: expect.stringMatching(/^tdv\.yaml:4:5: stage "s" names runner "sandbox", which is not configured/) });
  });

  it('a build: stage elsewhere: its build context travels in the spec, and a changed Dockerfile reruns it (the context hash stands for the image)', async () => {
    const dir = await sandboxRepo('stages:\n  s:\n    cmd: echo hi > o.txt\n    build: img\n    outs: [o.txt]\n');
    write(dir, 'img/Dockerfile', 'FROM busybox\n');
    write(dir, 'img/setup.sh', 'true\n');
    const specs: JobSpec[] = [];
    expect(await run(dir, { specs })).toMatchObject({ ran: ['s'], failed: [] });
    expect(specs[0]!.image).toEqual({
      build: {
        dir: 'img',
        context: [
          { path: 'img/Dockerfile', sha256: sha('FROM busybox\n'), size: 13 },
          { path: 'img/setup.sh', sha256: sha('true\n'), size: 5 },
        ],
      },
    });
    const image = /image: (sha256:[0-9a-f]{64})/.exec(read(dir, 'tdv.lock'))?.[1];
    expect(image).toBeDefined();
    expect(await run(dir)).toMatchObject({ ran: [], skipped: ['s'] });
    write(dir, 'img/Dockerfile', 'FROM alpine\n');
    const again = await run(dir);
    expect(again).toMatchObject({ ran: ['s'] });
    expect(again.events.find((e) => e.type === 'start')).toMatchObject({ reasons: [expect.stringMatching(/^image changed/)] });
    expect(read(dir, 'tdv.lock')).not.toContain(image);
  });

  it('image: elsewhere: the ID the runner resolves; else the digest of a pinned reference; else the ID the run reports (and it runs every time)', async () => {
    const id = (c: string) => `sha256:${c.repeat(64)}`;
    const lockImage = (dir: string) => /image: (sha256:[0-9a-f]{64})/.exec(read(dir, 'tdv.lock'))?.[1];
    const yaml = (ref: string) => `stages:\n  s:\n    cmd: echo hi > o.txt\n    image: ${ref}\n    outs: [o.txt]\n`;
    const dir = await sandboxRepo(yaml('busybox:1'));
    const specs: JobSpec[] = [];
    const resolve = (ref: string) => (ref === 'busybox:1' ? id('a') : id('b'));
    expect(await run(dir, { specs, resolve, ranImage: id('f') })).toMatchObject({ ran: ['s'] });
    expect(specs[0]!.image).toEqual({ ref: 'busybox:1', id: id('a') });
    expect(lockImage(dir)).toBe(id('a'));
    expect(await run(dir, { resolve })).toMatchObject({ skipped: ['s'] });
    write(dir, 'tdv.yaml', yaml('busybox:2'));
    expect(await run(dir, { resolve })).toMatchObject({ ran: ['s'] });
    expect(lockImage(dir)).toBe(id('b'));
    // Not resolvable, pinned: the digest stands for the image; a new digest reruns.
    write(dir, 'tdv.yaml', yaml(`busybox@${id('c')}`));
    expect(await run(dir, { ranImage: id('f') })).toMatchObject({ ran: ['s'] });
    expect(lockImage(dir)).toBe(id('c'));
    expect(await run(dir)).toMatchObject({ skipped: ['s'] });
    // Not resolvable, not pinned: what the run reports is recorded, and nothing proves it unchanged next time.
    write(dir, 'tdv.yaml', yaml('busybox:3'));
    expect(await run(dir, { ranImage: `docker-pullable://busybox@${id('d')}` })).toMatchObject({ ran: ['s'] });
    expect(lockImage(dir)).toBe(id('d'));
    expect(await run(dir, { ranImage: id('d') })).toMatchObject({ ran: ['s'] });
  });
});
