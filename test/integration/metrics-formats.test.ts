import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';
import { git, read, tdv, tdvBin, write } from '../helpers/repo.js';

/** A stage that writes `text` to `file` (a metrics file) with printf, quoted for YAML and sh. */
function stage(name: string, file: string, text: string, extra = ''): string {
  const sh = `printf '%s' '${text.replaceAll("'", `'"'"'`)}' > ${file}`;
  return `  ${name}:\n    cmd: ${JSON.stringify(sh)}\n    metrics: [${file}]\n${extra}`;
}

/**
 * Commits everything. Every commit gets the same committer date, so that the
 * history order cannot come from the clock (commits made in one second).
 */
async function commit(dir: string, msg: string): Promise<void> {
  await git(dir, 'add', '-A');
  const date = '2026-01-01T00:00:00Z';
  await execa('git', ['commit', '-qm', msg], {
    cwd: dir,
    env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date },
  });
}

describe('metrics files in JSON, YAML or TOML', () => {
  it('are shown as their leaves under dotted keys, whatever the format', async () => {
    const dir = await newRepo();
    write(
      dir,
      'tdv.yaml',
      `stages:\n${stage('j', 'm.json', '{"acc": 0.9, "loss": {"train": 0.1, "test": 0.2}}')}${stage('y', 'eval/m.yaml', 'acc: 0.8\nper_class:\n  cat: 0.7\n  dog: [0.6, 0.5]\n')}${stage('t', 'm.toml', 'acc = 0.75\nwhen = 2024-07-30\n[loss]\ntest = 0.3\n')}`,
    );
    const r = await tdvBin(dir, ['repro']);
    expect(r.code, r.stderr).toBe(0);
    const show = await tdvBin(dir, ['metrics', 'show', '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({
      'eval/m.yaml': { acc: 0.8, 'per_class.cat': 0.7, 'per_class.dog.0': 0.6, 'per_class.dog.1': 0.5 },
      'm.json': { acc: 0.9, 'loss.train': 0.1, 'loss.test': 0.2 },
      // A TOML date is shown as TOML writes it.
      'm.toml': { acc: 0.75, when: '2024-07-30', 'loss.test': 0.3 },
    });
    const plain = await tdvBin(dir, ['metrics', 'show']);
    expect(plain.stdout).toContain('eval/m.yaml:\n    acc: 0.8\n    per_class.cat: 0.7\n');
    expect(plain.stdout).toContain('m.toml:\n    acc: 0.75\n    when: 2024-07-30\n    loss.test: 0.3');
  });

  it('a metrics file that does not parse fails its stage with one line naming it, and nothing is recorded for that stage', async () => {
    for (const [file, text, why] of [
      ['m.json', '{"acc": 0.9,', /m\.json: invalid JSON/],
      ['m.yaml', 'acc: [0.9\n', /m\.yaml:\d+:\d+: invalid YAML/],
      ['m.toml', 'acc = = 1\n', /m\.toml:1:\d+: invalid TOML/],
      ['m.json', '[0.9]', /m\.json: holds a list, not a mapping of metric names to values/],
    ] as const) {
      const dir = await newRepo();
      write(dir, 'tdv.yaml', `stages:\n${stage('ok', 'good.json', '{"n": 1}')}${stage('train', file, text)}`);
      const r = await tdvBin(dir, ['repro']);
      expect(r.code).toBe(1);
      const lines = r.stderr.split('\n').filter((l) => l.startsWith('error: stage "train"'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(why);
      expect(lines[0]).toContain('stage "train" wrote a metrics file tdv cannot read');
      expect(lines[0]).toContain('nothing was recorded for it');
      // The other stage ran and was recorded; the failed one was not, so the next repro runs it again.
      const lock = read(dir, 'tdv.lock');
      expect(lock).toContain('good.json');
      expect(lock).not.toContain(file);
      const again = await tdv(dir, 'repro', '--dry');
      expect(again.stdout).toContain('train');
    }
  });
});

describe('params files in TOML, and params show', () => {
  it('a stage reads params from TOML: recorded in tdv.lock, shown by params show, a change reruns it and params diff shows it', async () => {
    const dir = await newRepo();
    write(dir, 'params.toml', 'seed = 7\n[train]\nlr = 0.01\nlayers = [64, 32]\nname = "base"\n');
    write(dir, 'params.yaml', 'epochs: 3\n');
    write(dir, 'tdv.yaml', `stages:\n  train:\n    cmd: "cat params.toml > model.txt"\n    params: [epochs, {params.toml: [train.lr, train.name, seed]}]\n    outs: [model.txt]\n`);
    const r = await tdvBin(dir, ['repro']);
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'tdv.lock')).toMatch(/params\.toml:\n\s+seed: 7\n\s+train\.lr: 0\.01\n\s+train\.name: base\n/);
    const show = await tdvBin(dir, ['params', 'show', '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect(JSON.parse(show.stdout)).toEqual({ 'params.yaml': { epochs: 3 }, 'params.toml': { seed: 7, 'train.lr': 0.01, 'train.name': 'base' } });
    const plain = await tdvBin(dir, ['params', 'show']);
    // Sorted by file and key.
    expect(plain.stdout).toBe('params.toml:\n    seed: 7\n    train.lr: 0.01\n    train.name: base\nparams.yaml:\n    epochs: 3');
    await commit(dir, 'lr 0.01');

    write(dir, 'params.toml', 'seed = 7\n[train]\nlr = 0.02\nlayers = [64, 128]\nname = "base"\n');
    const diff = await tdvBin(dir, ['params', 'diff', '--json']);
    expect(diff.code, diff.stderr).toBe(0);
    expect(JSON.parse(diff.stdout)).toEqual([{ file: 'params.toml', key: 'train.lr', old: 0.01, new: 0.02, change: 0.01 }]);
    const rerun = await tdvBin(dir, ['repro', '--dry']);
    expect(rerun.stdout).toContain('train');
  });

  it('a params file in TOML that does not parse is one line naming the file and the line', async () => {
    const dir = await newRepo();
    write(dir, 'params.toml', '[train]\nlr = \n');
    write(dir, 'tdv.yaml', 'stages:\n  train:\n    cmd: echo\n    params: [{params.toml: [train.lr]}]\n');
    const r = await tdvBin(dir, ['params', 'show']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr + '\n', /params\.toml:2:\d+: invalid TOML/);
  });

  it('params show says so when no stage uses params', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo\n');
    const r = await tdvBin(dir, ['params', 'show']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('No params: no stage of tdv.yaml uses params.');
    expect(JSON.parse((await tdvBin(dir, ['params', 'show', '--json'])).stdout)).toEqual({});
  });
});

describe('--all and --md', () => {
  it('metrics diff and params diff list unchanged values with --all and print Markdown tables with --md', async () => {
    const dir = await newRepo();
    write(dir, 'params.yaml', 'a: 1\nb: x|y\n');
    write(dir, 'tdv.yaml', `stages:\n${stage('m', 'm.json', '{"acc": 0.5, "n": 10}', '    params: [a, b]\n')}`);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await commit(dir, 'first');
    write(dir, 'params.yaml', 'a: 2\nb: x|y\n');
    write(dir, 'm.json', '{"acc": 0.75, "n": 10}');

    const changed = await tdv(dir, 'metrics', 'diff');
    expect(changed.stdout).not.toContain('m.json:n');
    const all = await tdv(dir, 'metrics', 'diff', '--all');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split('\n')).toEqual(['path:key    HEAD  workspace  change', 'm.json:acc  0.5   0.75       +0.25', 'm.json:n    10    10         0', '']);
    expect(JSON.parse((await tdv(dir, 'metrics', 'diff', '--all', '--json')).stdout)).toEqual([
      { file: 'm.json', key: 'acc', old: 0.5, new: 0.75, change: 0.25 },
      { file: 'm.json', key: 'n', old: 10, new: 10, change: 0, unchanged: true },
    ]);
    const md = await tdv(dir, 'params', 'diff', '--all', '--md');
    expect(md.code, md.stderr).toBe(0);
    // A `|` in a value is escaped, so it stays in its cell.
    expect(md.stdout).toBe('| path:key | HEAD | workspace | change |\n| --- | --- | --- | --- |\n| params.yaml:a | 1 | 2 | +1 |\n| params.yaml:b | x\\|y | x\\|y |  |\n');
    const showMd = await tdv(dir, 'metrics', 'show', '--md');
    expect(showMd.stdout).toBe('| path | key | value |\n| --- | --- | --- |\n| m.json | acc | 0.75 |\n| m.json | n | 10 |\n');
  });
});

describe('metrics history', () => {
  /** Four commits, three with a metrics file, all with the same date, and a tag on the first with metrics. */
  async function history(): Promise<string> {
    const dir = await newRepo();
    write(dir, 'README', 'no pipeline yet\n');
    await commit(dir, 'start');
    write(dir, 'tdv.yaml', `stages:\n${stage('m', 'm.json', '{"acc": 0.5}')}`);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await commit(dir, 'baseline');
    await git(dir, 'tag', 'v1');
    for (const [acc, msg] of [
      ['0.7', 'more data'],
      ['0.9', 'bigger model'],
    ] as const) {
      write(dir, 'tdv.yaml', `stages:\n${stage('m', 'm.json', `{"acc": ${acc}, "run": {"epochs": 3}}`)}`);
      expect((await tdv(dir, 'repro')).code).toBe(0);
      await commit(dir, msg);
    }
    return dir;
  }

  it('metrics show --all-commits: one row per commit that has metrics, newest first, short id and subject', async () => {
    const dir = await history();
    const ids = (await git(dir, 'log', '--format=%h', '--abbrev=7')).split('\n');
    const r = await tdvBin(dir, ['metrics', 'show', '--all-commits']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'm.json:',
      'commit   acc  run.epochs  subject',
      `${ids[0]}  0.9  3           bigger model`,
      `${ids[1]}  0.7  3           more data`,
      `${ids[2]}  0.5  -           baseline`,
    ]);
    const json = JSON.parse((await tdvBin(dir, ['metrics', 'show', '--all-commits', '--json'])).stdout);
    expect(json.commits.map((c: { subject: string }) => c.subject)).toEqual(['bigger model', 'more data', 'baseline']);
    expect(json.commits[2].metrics).toEqual({ 'm.json': { acc: 0.5 } });
    expect(json.problems).toEqual([]);
    const md = await tdvBin(dir, ['metrics', 'show', '--all-commits', '--md']);
    expect(md.stdout).toContain(`| commit | acc | run.epochs | subject |\n| --- | --- | --- | --- |\n| ${ids[0]} | 0.9 | 3 | bigger model |`);
  });

  it('metrics show --rev (repeatable) lists the revisions in the order given, named as given', async () => {
    const dir = await history();
    const id = (rev: string) => git(dir, 'rev-parse', '--short=7', rev);
    const r = await tdvBin(dir, ['metrics', 'show', '--rev', 'v1', '--rev', 'HEAD']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${await id('v1')} (v1)    0.5  -           baseline\n${await id('HEAD')} (HEAD)  0.9  3           bigger model`);
    // A revision without metrics is still listed when named.
    const none = await tdvBin(dir, ['metrics', 'show', '--rev', 'HEAD~3', '--json']);
    expect(JSON.parse(none.stdout).commits).toEqual([expect.objectContaining({ label: 'HEAD~3', subject: 'start', metrics: {} })]);
    const bad = await tdvBin(dir, ['metrics', 'show', '--rev', 'no-such-rev']);
    expect(bad.code).toBe(2);
    expectOneLineError(bad.stderr + '\n', 'no-such-rev');
  });

  it('a commit whose metrics file does not parse is reported, and the other commits are still shown', async () => {
    const dir = await history();
    write(dir, 'm.json', '{"acc": ');
    await commit(dir, 'broken by hand');
    const r = await tdvBin(dir, ['metrics', 'show', '--all-commits']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('bigger model');
    expect(r.stderr).toMatch(/^warning: [0-9a-f]{7}:m\.json: invalid JSON/m);
  });

  it('a metrics file that was not committed to Git is read at a revision from the cache, by the hash tdv.lock recorded there', async () => {
    const dir = await newRepo();
    const remote = newDir();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
    write(dir, '.gitignore', '/m.json\n');
    write(dir, 'tdv.yaml', `stages:\n${stage('m', 'm.json', '{"acc": 0.5}')}`);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await commit(dir, 'baseline, metrics left out of Git');
    expect(await git(dir, 'ls-files')).not.toContain('m.json');
    write(dir, 'tdv.yaml', `stages:\n${stage('m', 'm.json', '{"acc": 0.6}')}`);
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await commit(dir, 'second');
    const r = await tdvBin(dir, ['metrics', 'show', '--all-commits', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).commits.map((c: { metrics: unknown }) => c.metrics)).toEqual([{ 'm.json': { acc: 0.6 } }, { 'm.json': { acc: 0.5 } }]);
    expect(JSON.parse((await tdvBin(dir, ['metrics', 'diff', 'HEAD~1', 'HEAD', '--json'])).stdout)).toEqual([{ file: 'm.json', key: 'acc', old: 0.5, new: 0.6, change: 0.1 }]);

    // In a clone, whose cache has none of them, each commit is reported with the command that fetches it, which does.
    expect((await tdv(dir, 'push', '--run-cache')).code).toBe(0);
    const clone = newDir();
    await git(clone, 'clone', '-q', dir, '.');
    const missing = await tdvBin(clone, ['metrics', 'show', '--all-commits']);
    expect(missing.code, missing.stderr).toBe(0);
    expect(missing.stdout).toBe('No commit has metrics.');
    const warnings = missing.stderr.split('\n');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(
      /^warning: [0-9a-f]{7}:m\.json was not committed to Git, and the version tdv\.lock records there \([0-9a-f]{12}\) is not in the cache; `tdv fetch --run-cache` fetches it if the run that wrote it was pushed with `tdv push --run-cache`$/,
    );
    const fetched = await tdv(clone, 'fetch', '--run-cache');
    expect(fetched.code, fetched.stderr).toBe(0);
    const back = await tdvBin(clone, ['metrics', 'show', '--all-commits', '--json']);
    expect(back.stderr).toBe('');
    expect(JSON.parse(back.stdout).commits.map((c: { metrics: unknown }) => c.metrics)).toEqual([{ 'm.json': { acc: 0.6 } }, { 'm.json': { acc: 0.5 } }]);
  });
});
