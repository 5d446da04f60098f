/**
 * Failure class 2 of issue 11, at `tdv add` and `tdv init`: a path that is a
 * stage output, tdv's own pipeline files, a path behind a symlinked directory,
 * or a path whose pointer Git would ignore (so it could never be committed) is
 * refused with the reason, before anything is written. `tdv init` where Git
 * ignores `.tdv` is refused likewise, naming the rule.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, newDir, newRepo, state } from '../helpers/expect.js';
import { git, tdvBin, write } from '../helpers/repo.js';

async function expectAddRefused(dir: string, target: string, ...needles: string[]): Promise<void> {
  const before = state(dir);
  const r = await tdvBin(dir, ['add', target]);
  expect(r.code, r.stderr).toBe(2);
  expectOneLineError(`${r.stderr}\n`, ...needles);
  expect(state(dir)).toEqual(before);
  expect(fs.existsSync(path.join(dir, `${target}.tdv`))).toBe(false);
}

describe('tdv add refuses what is not data to track', () => {
  it('an output a stage declares in tdv.yaml, a path inside one, or a directory holding one', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  train:\n    cmd: "true"\n    outs: [out/model.bin]\n    metrics: [scores.json]\n');
    write(dir, 'out/model.bin', 'weights');
    write(dir, 'scores.json', '{}');
    await expectAddRefused(dir, 'out/model.bin', 'out/model.bin is an output of stage "train" (tdv.yaml:4:12)', '`tdv repro`');
    await expectAddRefused(dir, 'out', 'out contains out/model.bin, an output of stage "train"');
    await expectAddRefused(dir, 'scores.json', 'scores.json is an output of stage "train" (tdv.yaml:5:15)');
  });

  it('an output tdv.lock records from an earlier run, even once tdv.yaml no longer declares it', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: mkdir -p out && echo 1 > out/a.txt\n    outs: [out]\n');
    expect((await tdvBin(dir, ['repro'])).code).toBe(0);
    write(dir, 'tdv.yaml', 'stages: {}\n');
    await expectAddRefused(dir, 'out', 'out is an output of stage "make" (tdv.lock)');
    await expectAddRefused(dir, 'out/a.txt', 'out/a.txt is inside out, an output of stage "make" (tdv.lock)');
  });

  it('tdv.yaml and tdv.lock themselves', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages: {}\n');
    write(dir, 'tdv.lock', 'schema: 1\nstages: {}\n');
    await expectAddRefused(dir, 'tdv.yaml', 'tdv.yaml is the pipeline file; commit it with Git');
    await expectAddRefused(dir, 'tdv.lock', "tdv.lock is tdv's record of the pipeline's runs");
  });

  it('a path inside a symlinked directory, even one that stays inside the repository: names the link and the real path', async () => {
    const dir = await newRepo();
    write(dir, 'real/sub/f.csv', '1');
    fs.symlinkSync('real', path.join(dir, 'link'));
    for (const target of ['link/sub/f.csv', 'link/sub']) {
      const r = await tdvBin(dir, ['add', target]);
      expect(r.code).toBe(2);
      expectOneLineError(`${r.stderr}\n`, `${target} lies behind the symlink link (-> real)`, `add ${target.replace('link', 'real')} instead`);
    }
    expect(fs.readdirSync(path.join(dir, 'real/sub'))).toEqual(['f.csv']);
    expect(fs.existsSync(path.join(dir, 'link/sub.tdv'))).toBe(false);
  });

  it('a path whose pointer Git ignores by a rule of the user: the pointer could never be committed', async () => {
    const dir = await newRepo();
    write(dir, '.gitignore', '# scratch\n*.tdv\n');
    write(dir, 'data.csv', '1');
    await expectAddRefused(dir, 'data.csv', 'Git ignores its pointer data.csv.tdv (rule "*.tdv" in .gitignore:2)');
    // A rule ignoring the directory hides the pointer too; one that only ignores the data does not matter.
    write(dir, '.gitignore', 'raw*\n!raw.csv.tdv\n');
    write(dir, 'raw.csv', '1');
    const ok = await tdvBin(dir, ['add', 'raw.csv']);
    expect(ok.code, ok.stderr).toBe(0);
    write(dir, '.gitignore', 'scratch/\n');
    write(dir, 'scratch/x.bin', '1');
    await expectAddRefused(dir, 'scratch/x.bin', 'Git ignores its pointer scratch/x.bin.tdv (rule "scratch/" in .gitignore:1)');
  });

  it('the rule may come from the global excludes file of the user', async () => {
    const dir = await newRepo();
    const global = path.join(newDir(), 'ignore');
    fs.writeFileSync(global, '*.csv*\n');
    await git(dir, 'config', 'core.excludesFile', global);
    write(dir, 'data.csv', '1');
    await expectAddRefused(dir, 'data.csv', 'Git ignores its pointer data.csv.tdv (rule "*.csv*" in', `${global}:1`);
  });
});

describe('tdv init refuses where Git ignores .tdv', () => {
  for (const [what, rule] of [
    ['.tdv', '.tdv'],
    ['every dot file', '.*'],
    ['every YAML file', '*.yaml'],
  ]) {
    it(`a .gitignore ignoring ${what}: names the rule, writes nothing`, async () => {
      const dir = await newRepo({ init: false });
      write(dir, '.gitignore', `${rule}\n`);
      const r = await tdvBin(dir, ['init']);
      expect(r.code).toBe(1);
      expectOneLineError(`${r.stderr}\n`, `(rule ${JSON.stringify(rule)} in .gitignore:1)`, "tdv's configuration could not be committed");
      expect(fs.existsSync(path.join(dir, '.tdv'))).toBe(false);
      // The fix the message gives works.
      fs.appendFileSync(path.join(dir, '.gitignore'), '!/.tdv/\n!/.tdv/*\n');
      const again = await tdvBin(dir, ['init']);
      expect(again.code, again.stderr).toBe(0);
      await git(dir, 'add', '-A');
      expect((await git(dir, 'ls-files', '.tdv')).split('\n').sort()).toEqual(['.tdv/.gitignore', '.tdv/config.yaml']);
    });
  }

  it('a global excludes file ignoring .tdv', async () => {
    const dir = await newRepo({ init: false });
    const global = path.join(newDir(), 'ignore');
    fs.writeFileSync(global, '# mine\n.tdv/\n');
    await git(dir, 'config', 'core.excludesFile', global);
    const r = await tdvBin(dir, ['init']);
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, `Git ignores .tdv/config.yaml (rule ".tdv/" in ${global}:2)`);
    expect(fs.existsSync(path.join(dir, '.tdv'))).toBe(false);
  });
});
