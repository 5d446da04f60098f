/**
 * Failure class 2 of issue 11: stage outputs that name other things. `tdv
 * repro` deletes an output before its stage runs, so an output that is
 * Git-tracked code, tdv's own files, a pointer, a .gitignore or a path
 * .tdvignore hides must be refused when tdv.yaml is loaded, at its line and
 * column, before anything is touched. So must a path tdv's one definition of a
 * legal path refuses, wherever tdv.yaml names it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, newRepo, state } from '../helpers/expect.js';
import { git, tdvBin, write } from '../helpers/repo.js';

const stage = (body: string) => `stages:\n  a:\n    cmd: echo new > marker.txt\n${body}`;

/** A repo with Git-tracked code in src/, a committed .gitignore and .tdvignore, and data tracked by a pointer. */
async function repoWithNeighbours(): Promise<string> {
  const dir = await newRepo();
  write(dir, 'src/main.py', 'print("precious")\n');
  write(dir, 'docs/.gitignore', '*.tmp\n');
  write(dir, '.tdvignore', 'scratch/\n');
  write(dir, 'data/x.csv', '1\n');
  expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'code and data');
  return dir;
}

/** Every command that loads the pipeline refuses it with the same one line, and nothing changes. */
async function expectRefused(dir: string, ...needles: (string | RegExp)[]): Promise<void> {
  // (A snapshot reads a symlink to a directory as a file: the test with one looks itself.)
  const snap = () => (fs.existsSync(path.join(dir, 'link')) ? {} : state(dir));
  const before = snap();
  for (const cmd of [['repro'], ['repro', '--force'], ['status'], ['dag']]) {
    const r = await tdvBin(dir, cmd);
    expect(r.code, `tdv ${cmd.join(' ')}: ${r.stderr}`).toBe(1);
    expectOneLineError(`${r.stderr}\n`, ...needles);
  }
  expect(snap()).toEqual(before);
  expect(fs.existsSync(path.join(dir, 'marker.txt'))).toBe(false);
}

describe('tdv.yaml: outputs that name other things are refused at load time', () => {
  const cases: [string, string, ...(string | RegExp)[]][] = [
    ['a Git-tracked file', '    outs: [src/main.py]\n', 'tdv.yaml:4:12: outs path src/main.py of stage "a" is tracked by Git', 'git rm -r --cached src/main.py'],
    ['a directory holding Git-tracked files', '    outs: [src]\n', 'tdv.yaml:4:12: outs path src of stage "a" contains src/main.py, which is tracked by Git'],
    ['a Git-tracked metric tdv.lock does not record', '    metrics: [src/main.py]\n', 'tdv.yaml:4:15: metrics path src/main.py of stage "a" is tracked by Git'],
    ['tdv.yaml itself', '    outs: [tdv.yaml]\n', 'tdv.yaml:4:12: outs path tdv.yaml of stage "a" is the pipeline file itself'],
    ['tdv.lock', '    outs: [tdv.lock]\n', 'tdv.yaml:4:12: outs path tdv.lock of stage "a"'],
    ['a pointer file', '    outs: [data.tdv]\n', 'tdv.yaml:4:12: outs path data.tdv of stage "a" ends in .tdv'],
    ['a pointer file in a directory', '    outs: [new/model.tdv]\n', 'tdv.yaml:4:12: outs path new/model.tdv'],
    ['a .gitignore', '    outs: [docs/.gitignore]\n', 'tdv.yaml:4:12: outs path docs/.gitignore of stage "a" is a .gitignore file'],
    ['a new .gitignore', '    metrics: [out/.gitignore]\n', 'tdv.yaml:4:15: metrics path out/.gitignore'],
    ['.tdvignore', '    outs: [.tdvignore]\n', 'tdv.yaml:4:12: outs path .tdvignore'],
    ['a name with a line break (its .gitignore line would write a rule of its own)', '    outs: ["model\\n*"]\n', 'tdv.yaml:4:12: outs path "model\\n*" of stage "a" has a line break in its name'],
    ['a path .tdvignore hides', '    outs: [scratch/model.bin]\n', 'tdv.yaml:4:12: outs path scratch/model.bin of stage "a" is ignored by .tdvignore'],
    ['a path a pointer tracks (at the output, not the stage)', '    deps: [x]\n    outs: [data/y.csv]\n', 'tdv.yaml:5:12: data/y.csv (output of "a") overlaps data, which data.tdv tracks'],
  ];
  for (const [what, body, ...needles] of cases) {
    it(`${what}: one line at tdv.yaml:line:col, nothing run or deleted`, async () => {
      const dir = await repoWithNeighbours();
      write(dir, 'tdv.yaml', stage(body));
      await expectRefused(dir, ...needles);
    });
  }

  it('an output whose parent is a symlink, even one that stays inside the repository, names the symlink', async () => {
    const dir = await repoWithNeighbours();
    fs.mkdirSync(path.join(dir, 'real'));
    fs.symlinkSync('real', path.join(dir, 'link'));
    write(dir, 'tdv.yaml', stage('    outs: [link/model.bin]\n'));
    await expectRefused(dir, 'tdv.yaml:4:12: outs path link/model.bin of stage "a" goes through the symlink link (-> real)', 'replace link with a real directory');
    expect(fs.readdirSync(path.join(dir, 'real'))).toEqual([]);
  });

  it('a Git-tracked metric that tdv.lock records (written by tdv, then committed) is fine: metrics live in Git', async () => {
    const dir = await repoWithNeighbours();
    write(dir, 'params.yaml', 'n: 1\n');
    write(dir, 'make.sh', 'printf \'{"n": %s}\\n\' "$(cut -c4- params.yaml)" > m.json\n');
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: sh make.sh\n    deps: [make.sh]\n    params: [n]\n    metrics: [m.json]\n');
    const first = await tdvBin(dir, ['repro']);
    expect(first.code, first.stderr).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'metrics');
    expect(await git(dir, 'ls-files', 'm.json')).toBe('m.json');
    write(dir, 'params.yaml', 'n: 2\n');
    const again = await tdvBin(dir, ['repro']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'm.json'), 'utf8')).toBe('{"n": 2}\n');
  });
});

describe('tdv.yaml: every path is a legal relative path, with its line and column', () => {
  const cases: [string, string, string][] = [
    ['a .git component below the top in outs', '    outs: [sub/.git/hooks/x]\n', 'tdv.yaml:4:12: outs path "sub/.git/hooks/x" of stage "a" has a ".git" component'],
    ['a .GIT component in deps', '    deps: [vendor/.GIT/config]\n', 'tdv.yaml:4:12: deps path "vendor/.GIT/config" of stage "a" has a ".git" component'],
    ['a .tdv component in metrics', '    metrics: [x/.tdv/cache]\n', 'tdv.yaml:4:15: metrics path "x/.tdv/cache" of stage "a" has a ".tdv" component'],
    ['a NUL in a params file', '    params: [{"p\\0.yaml": [k]}]\n', 'tdv.yaml:4:15: params path "p\\u0000.yaml" of stage "a" contains a NUL character'],
    ['a component longer than 255 bytes in wdir', `    wdir: ${'w'.repeat(256)}\n`, 'tdv.yaml:4:5: wdir path'],
  ];
  for (const [what, body, needle] of cases) {
    it(what, async () => {
      const dir = await repoWithNeighbours();
      write(dir, 'tdv.yaml', stage(body));
      await expectRefused(dir, needle);
    });
  }
});
