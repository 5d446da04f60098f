import { describe, expect, it } from 'vitest';
import { tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, repoWith } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv remove` words its RemoveResult (and the Git commands to
 * record it), its error lines and exit codes, in one place. What remove does
 * is tested through the API, in test/api/remove.test.ts.
 */
describe('tdv remove: output', () => {
  it('"Removed <pointer>", then the Git commands that record it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    expect(await tdv(dir, 'remove', 'a.csv.tdv')).toEqual({
      code: 0,
      stdout: 'Removed a.csv.tdv\n\nTo record this in Git, run:\n  git rm -q --cached --ignore-unmatch a.csv.tdv && git add .gitignore\n',
      stderr: '',
    });
  });

  it('the Git hint names the pointer and the .gitignore of a subdirectory', async () => {
    const dir = await repoWith({ 'keep/k.csv': 'k\n', 'keep/other.csv': 'o\n' }, ['keep/k.csv', 'keep/other.csv']);
    const r = await tdv(dir, 'remove', 'keep/k.csv');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('git rm -q --cached --ignore-unmatch keep/k.csv.tdv');
    expect(r.stdout).toMatch(/git add keep\/\.gitignore\b/);
  });

  it('a stage: "Removed stage ... (its outputs stay)"; files deleted go to `git rm`, files edited to `git add`', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  one:\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const one = await tdv(dir, 'remove', 'one');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toBe('Removed stage "one" (its outputs stay)\n\nTo record this in Git, run:\n  git add tdv.yaml tdv.lock .gitignore\n');
    const two = await tdv(dir, 'remove', 'two');
    expect(two.stdout).toContain('git rm -q --cached --ignore-unmatch tdv.lock .gitignore && git add tdv.yaml\n');
  });

  it('two stages at once whose outputs share a .gitignore: it is deleted, so only `git rm` names it', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  one:\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const r = await tdv(dir, 'remove', 'one', 'two');
    expect(r.code, r.stderr).toBe(0);
    // (`git add .gitignore` after `git rm --cached .gitignore` of a deleted file fails: "pathspec did not match".)
    expect(r.stdout).toBe(
      'Removed stage "one" (its outputs stay)\nRemoved stage "two" (its outputs stay)\n\nTo record this in Git, run:\n  git rm -q --cached --ignore-unmatch tdv.lock .gitignore && git add tdv.yaml\n',
    );
  });
});

describe('tdv remove --json', () => {
  it('prints the RemoveResult as one JSON document and nothing else', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'remove', 'a.csv.tdv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ removed: ['a.csv.tdv'], stages: [] });
  });
});

describe('tdv remove: error lines, exit 2', () => {
  it('a path inside a tracked directory names the pointer to remove', async () => {
    const dir = await repoWith({ 'data/x': 'x', 'data/y': 'y' }, ['data']);
    const r = await tdv(dir, 'remove', 'data/x');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'data/x is inside tracked data', 'data.tdv');
  });

  it('a path that is neither tracked data nor a stage says what remove takes, not to `tdv add` it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'other.csv', 'o');
    const r = await tdv(dir, 'remove', 'a.csv', 'other.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'other.csv is neither data a pointer tracks nor a stage of tdv.yaml; `tdv remove` takes pointer files (data.tdv), the paths they track, or stage names');
    expect(r.stderr).not.toContain('tdv add');
  });

  it('a stage output named by its path: names the stage to remove instead', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  one:\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const r = await tdv(dir, 'remove', 'o1.txt');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'o1.txt is an output of stage "one" (tdv.lock), not data a pointer tracks; `tdv remove one` removes the stage from tdv.yaml and tdv.lock and keeps its outputs');
  });

  it('no targets: commander names the missing argument', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'remove');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, "missing required argument 'targets'");
  });
});
