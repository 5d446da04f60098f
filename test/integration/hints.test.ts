/**
 * Issue 12 §1, hints and listings: a hint is a command that runs as shown
 * when pasted, a listing names each thing once and in words.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError, newRepo, repoWith } from '../helpers/expect.js';

describe('hints quote names for the shell', () => {
  it('`git add` after `tdv add` of a name with a space quotes it', async () => {
    const dir = await newRepo();
    write(dir, 'my data.csv', '1\n');
    write(dir, "it's.csv", '2\n');
    const r = await tdvBin(dir, ['add', 'my data.csv', "it's.csv"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`git add 'my data.csv.tdv' .gitignore 'it'\\''s.csv.tdv'`);
  });

  it('`git rm` and `git add` after `tdv remove` quote them too', async () => {
    const dir = await repoWith({ 'sub dir/a b.csv': 'a\n', 'sub dir/c.csv': 'c\n' }, ['sub dir/a b.csv', 'sub dir/c.csv']);
    const r = await tdvBin(dir, ['remove', 'sub dir/a b.csv']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`git rm -q --cached --ignore-unmatch 'sub dir/a b.csv.tdv' && git add 'sub dir/.gitignore'`);
  });
});

describe('hints in errors quote names from a hostile repository', () => {
  it('a tracked name holding $(...) is single-quoted in the `tdv remove` hint, which then runs nothing when pasted', async () => {
    const name = 'd/$(touch pwned) `touch pwned2`.csv';
    const dir = await repoWith({ [name]: 'x\n' }, [name]);
    const r = await tdv(dir, 'add', 'd');
    expect(r.code).toBe(2);
    const hint = /run `(tdv remove .*)` first/.exec(r.stderr)?.[1];
    expect(hint).toBe(`tdv remove 'd/$(touch pwned) \`touch pwned2\`.csv.tdv'`);
    // Pasted into a shell (printf standing in for tdv), the name arrives whole and nothing runs.
    const { execFileSync } = await import('node:child_process');
    const got = execFileSync('sh', ['-c', hint!.replace(/^tdv remove /, "printf '%s\\n' ")], { cwd: dir, encoding: 'utf8' });
    expect(got).toBe(`${name}.tdv\n`);
    expect(fs.existsSync(path.join(dir, 'pwned'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'pwned2'))).toBe(false);
  });
});

describe('checkout of a name that is a Git revision, not data', () => {
  it('says to use --rev, or git checkout and then tdv checkout', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'one');
    await git(dir, 'branch', 'experiment');
    const r = await tdvBin(dir, ['checkout', 'experiment']);
    expect(r.code).toBe(2);
    expectOneLineError(
      `${r.stderr}\n`,
      'experiment is not tracked data but a Git revision; `tdv checkout --rev experiment` restores its data, or `git checkout experiment` and then `tdv checkout` switches to it',
    );
    // A name that is neither keeps the plain message.
    const n = await tdvBin(dir, ['checkout', 'nope.csv']);
    expect(n.code).toBe(2);
    expectOneLineError(`${n.stderr}\n`, 'nope.csv is not tracked by tdv');
  });
});

describe('status lists the outputs of tdv.lock under one header', () => {
  it('one `tdv.lock:` line for several changed stage outputs', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  one:\n    cmd: echo 1 > o1.txt\n    outs: [o1.txt]\n  two:\n    cmd: echo 2 > o2.txt\n    outs: [o2.txt]\n');
    const rr = await tdv(dir, 'repro');
    expect(rr.code, rr.stderr).toBe(0);
    fs.rmSync(path.join(dir, 'o1.txt'));
    fs.rmSync(path.join(dir, 'o2.txt'));
    const r = await tdvBin(dir, ['status']);
    const lines = r.stdout.split('\n');
    expect(lines.filter((l) => l === 'tdv.lock:')).toHaveLength(1);
    const at = lines.indexOf('tdv.lock:');
    expect(
      lines
        .slice(at + 1, at + 3)
        .map((l) => l.trim().split(/\s+/).at(-1))
        .sort(),
    ).toEqual(['o1.txt', 'o2.txt']);
  });
});
