import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheObjects, expectOneLineError, newDir, newRepo, remoteObjects, sha } from '../helpers/expect.js';
import { read, tdv, tdvBin, write } from '../helpers/repo.js';
import { status } from '../../src/repo/status.js';
import { withRepo } from '../helpers/api.js';

const PIPELINE = `stages:
  prep:
    cmd: echo prepared > prep.txt
    outs: [prep.txt]
  train:
    cmd: cat prep.txt > model.txt && echo trained >> model.txt
    deps: [prep.txt]
    outs: [model.txt]
  other:
    cmd: echo other > other.txt
    outs: [other.txt]
  later:
    cmd: echo later > later.txt
    outs: [later.txt]
`;
const PREP = sha('prepared\n');
const MODEL = sha('prepared\ntrained\n');
const OTHER = sha('other\n');

/** A repo with a three-stage pipeline run (prep -> train, and other), a tracked raw.csv, a local default remote. */
async function pipelineRepo(): Promise<{ dir: string; remote: string }> {
  const dir = await newRepo();
  const remote = newDir();
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
  write(dir, 'tdv.yaml', PIPELINE);
  write(dir, 'raw.csv', 'r\n');
  expect((await tdv(dir, 'add', 'raw.csv')).code).toBe(0);
  const r = await tdv(dir, 'repro', 'prep', 'train', 'other');
  expect(r.code, r.stderr).toBe(0);
  return { dir, remote };
}

describe('stage names as targets', () => {
  it("push <stage> uploads that stage's outputs; --with-deps adds the stages upstream", async () => {
    const { dir, remote } = await pipelineRepo();
    const r = await tdvBin(dir, ['push', 'train']);
    expect(r.code, r.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual([MODEL]);
    // status --remote takes stage names too: prep's output is not pushed yet, train's is.
    const st = await tdv(dir, 'status', '--remote', 'train', '--with-deps', '--json');
    expect(st.code, st.stderr).toBe(0);
    expect((JSON.parse(st.stdout) as { data: { path: string; missingOnRemote: number }[] }).data).toEqual([expect.objectContaining({ path: 'prep.txt', missingOnRemote: 1 })]);
    const d = await tdvBin(dir, ['push', 'train', '--with-deps']);
    expect(d.code, d.stderr).toBe(0);
    expect(remoteObjects(remote).sort()).toEqual([MODEL, PREP].sort());
    expect(remoteObjects(remote)).not.toContain(OTHER);
  });

  it('fetch and pull <stage> --with-deps restore the stage and its upstream, nothing else', async () => {
    const { dir } = await pipelineRepo();
    expect((await tdv(dir, 'push')).code).toBe(0);
    for (const f of ['prep.txt', 'model.txt', 'other.txt']) fs.rmSync(path.join(dir, f));
    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
    const f = await tdv(dir, 'fetch', 'train');
    expect(f.code, f.stderr).toBe(0);
    expect(cacheObjects(dir)).toEqual([MODEL]);
    const p = await tdv(dir, 'pull', 'train', '--with-deps');
    expect(p.code, p.stderr).toBe(0);
    expect(read(dir, 'model.txt')).toBe('prepared\ntrained\n');
    expect(read(dir, 'prep.txt')).toBe('prepared\n');
    expect(fs.existsSync(path.join(dir, 'other.txt'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'raw.csv'))).toBe(true);
  });

  it('checkout <stage> restores only its outputs; --with-deps also upstream ones; a path target an output of a stage brings its upstream with --with-deps', async () => {
    const { dir } = await pipelineRepo();
    for (const f of ['prep.txt', 'model.txt', 'other.txt']) fs.rmSync(path.join(dir, f));
    const c = await tdv(dir, 'checkout', 'train');
    expect(c.code, c.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'model.txt'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'prep.txt'))).toBe(false);
    fs.rmSync(path.join(dir, 'model.txt'));
    const d = await tdv(dir, 'checkout', 'model.txt', '--with-deps');
    expect(d.code, d.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'model.txt'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'prep.txt'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'other.txt'))).toBe(false);
  });

  it("status <stage> reports that stage's outputs and the stage alone, not the rest of the pipeline", async () => {
    const { dir } = await pipelineRepo();
    write(dir, 'tdv.yaml', PIPELINE.replace('echo other >', 'echo changed >'));
    write(dir, 'model.txt', 'tampered\n');
    const s = await tdv(dir, 'status', 'train', '--json');
    expect(s.code, s.stderr).toBe(0);
    const doc = JSON.parse(s.stdout) as { clean: boolean; data: { path: string }[]; stages: { name: string }[] };
    expect(doc.data.map((x) => x.path)).toEqual(['model.txt']);
    // train's output changed, so train would run; "other" changed too, but was not asked about.
    expect(doc.stages.map((x) => x.name)).toEqual(['train']);
    expect(await withRepo(dir, (r) => status(r, { targets: [path.join(dir, 'prep')] }))).toEqual({ clean: true, data: [], stages: [] });
    const o = await tdv(dir, 'status', 'other', '--json');
    expect((JSON.parse(o.stdout) as { stages: { name: string }[] }).stages.map((x) => x.name)).toEqual(['other']);
  });

  it('a target that is both a path and a stage name is the path, as in DVC', async () => {
    const { dir, remote } = await pipelineRepo();
    write(dir, 'train', 'a file named like the stage\n');
    expect((await tdv(dir, 'add', 'train')).code).toBe(0);
    const r = await tdv(dir, 'push', 'train');
    expect(r.code, r.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual([sha('a file named like the stage\n')]);
    // Deleted from the workspace, it is still the tracked path.
    fs.rmSync(path.join(dir, 'train'));
    const c = await tdv(dir, 'checkout', 'train');
    expect(c.code, c.stderr).toBe(0);
    expect(read(dir, 'train')).toBe('a file named like the stage\n');
    expect(fs.existsSync(path.join(dir, 'model.txt'))).toBe(true);
    // `tdv.yaml:<stage>` names the stage all the same.
    const s = await tdv(dir, 'push', 'tdv.yaml:train');
    expect(s.code, s.stderr).toBe(0);
    expect(remoteObjects(remote)).toContain(MODEL);
  });

  it('a stage that has not run, and --with-deps without targets, are usage errors', async () => {
    const { dir } = await pipelineRepo();
    const r = await tdv(dir, 'push', 'later');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'stage "later" has not run yet', 'tdv repro later');
    const w = await tdv(dir, 'checkout', '--with-deps');
    expect(w.code).toBe(2);
    expectOneLineError(w.stderr, '--with-deps needs targets');
    const u = await tdv(dir, 'push', 'nosuchstage');
    expect(u.code).toBe(2);
    expectOneLineError(u.stderr, 'nosuchstage is not tracked by tdv');
  });
});
