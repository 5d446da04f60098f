import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, filePointer, newRepo, repoWith, sha, state } from '../helpers/expect.js';
import { git, read, tdv, tdvBin, write } from '../helpers/repo.js';
import { expectClean } from '../helpers/api.js';

const exists = (dir: string, rel: string) => fs.existsSync(path.join(dir, rel));
const lines = (dir: string, rel: string) => (exists(dir, rel) ? read(dir, rel).split('\n').filter(Boolean) : []);

const clean = expectClean;

describe('tdv mv', () => {
  it('moves a tracked file and its pointer, fixes the .gitignore lines, and prints the Git command', async () => {
    const dir = await repoWith({ 'data/raw.csv': 'a,b\n', 'data/keep.csv': 'k\n' }, ['data/raw.csv', 'data/keep.csv']);
    const r = await tdvBin(dir, ['mv', 'data/raw.csv', 'data/y2024.csv']);
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'data/y2024.csv')).toBe('a,b\n');
    expect(exists(dir, 'data/raw.csv')).toBe(false);
    expect(exists(dir, 'data/raw.csv.tdv')).toBe(false);
    expect(read(dir, 'data/y2024.csv.tdv')).toBe(filePointer('y2024.csv', 'a,b\n'));
    expect(lines(dir, 'data/.gitignore').sort()).toEqual(['/keep.csv', '/y2024.csv']);
    expect(r.stdout).toContain('Moved data/raw.csv -> data/y2024.csv; pointer data/raw.csv.tdv -> data/y2024.csv.tdv');
    expect(r.stdout).toContain('git add data/y2024.csv.tdv data/.gitignore');
    expect(r.stdout).not.toContain('git rm');
    await clean(dir);
  });

  it("keeps the pointer's desc and meta, at the top and on the out", async () => {
    const dir = await repoWith({ 'a.csv': 'x\n' }, ['a.csv']);
    const text = read(dir, 'a.csv.tdv')
      .replace('outs:\n', 'desc: "weekly export"\nmeta: {"owner": "ops"}\nouts:\n')
      .replace(/(  size: \d+\n)/, '$1  desc: "the file"\n');
    write(dir, 'a.csv.tdv', text);
    const r = await tdv(dir, 'mv', 'a.csv', 'b.csv');
    expect(r.code, r.stderr).toBe(0);
    const moved = read(dir, 'b.csv.tdv');
    expect(moved).toContain('desc: "weekly export"\nmeta: {"owner":"ops"}\nouts:\n- path: b.csv\n');
    expect(moved).toContain('  desc: "the file"\n');
    await clean(dir);
  });

  it('moves into an existing directory as mv does; a .gitignore left empty is deleted; a committed pointer gets `git rm --cached`', async () => {
    const dir = await repoWith({ 'model.bin': 'weights' }, ['model.bin']);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'model');
    fs.mkdirSync(path.join(dir, 'archive'));
    const r = await tdv(dir, 'mv', 'model.bin.tdv', 'archive');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'archive/model.bin')).toBe('weights');
    expect(read(dir, 'archive/model.bin.tdv')).toBe(filePointer('model.bin', 'weights'));
    expect(lines(dir, 'archive/.gitignore')).toEqual(['/model.bin']);
    expect(exists(dir, '.gitignore')).toBe(false);
    expect(r.stdout).toContain('git rm -q --cached --ignore-unmatch model.bin.tdv .gitignore && git add archive/model.bin.tdv archive/.gitignore');
    // The hint works as printed, and Git then sees a clean move.
    await git(dir, 'rm', '-q', '--cached', '--ignore-unmatch', 'model.bin.tdv', '.gitignore');
    await git(dir, 'add', 'archive/model.bin.tdv', 'archive/.gitignore');
    expect((await git(dir, 'status', '--porcelain')).split('\n').sort()).toEqual(['R  .gitignore -> archive/.gitignore', 'R  model.bin.tdv -> archive/model.bin.tdv']);
    await clean(dir);
  });

  it('moves a tracked directory to a new place, making the parents; checkout after a deletion restores it there', async () => {
    const dir = await repoWith({ 'images/a.png': 'A', 'images/sub/b.png': 'B' }, ['images']);
    const r = await tdv(dir, 'mv', 'images/', 'assets/pics');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'assets/pics/sub/b.png')).toBe('B');
    expect(exists(dir, 'images')).toBe(false);
    expect(read(dir, 'assets/pics.tdv')).toContain('path: pics\n');
    expect(lines(dir, 'assets/.gitignore')).toEqual(['/pics']);
    await clean(dir);
    fs.rmSync(path.join(dir, 'assets/pics'), { recursive: true, force: true });
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(read(dir, 'assets/pics/a.png')).toBe('A');
  });

  it('moves only the pointer when the data is not in the workspace', async () => {
    const dir = await repoWith({ 'a.csv': '1\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    const r = await tdv(dir, 'mv', 'a.csv', 'b.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      from: 'a.csv',
      to: 'b.csv',
      pointerFrom: 'a.csv.tdv',
      pointerTo: 'b.csv.tdv',
      movedData: false,
      gitignores: ['.gitignore'],
      gitignoresDeleted: [],
      pointerWasTracked: false,
    });
    expect(exists(dir, 'b.csv')).toBe(false);
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(read(dir, 'b.csv')).toBe('1\n');
  });

  it('refuses a destination that exists, tracked data, an untracked source and a path inside tracked data; nothing changes', async () => {
    const dir = await repoWith({ 'a.csv': '1\n', 'b.csv': '2\n', 'other.txt': 'x', 'd/f': 'F', 'holder/one.csv': 'o' }, ['a.csv', 'b.csv', 'd', 'holder/one.csv']);
    const before = state(dir);
    const cases: [string[], number, string][] = [
      [['a.csv', 'other.txt'], 2, 'other.txt exists; tdv mv will not replace it'],
      [['a.csv', 'b.csv'], 2, 'b.csv is already tracked by b.csv.tdv'],
      [['a.csv', 'd/g'], 2, 'd/g is inside d, which d.tdv tracks'],
      [['other.txt', 'z.txt'], 2, 'other.txt is not tracked by tdv'],
      [['d/f', 'z'], 2, 'd/f is inside tracked d'],
      [['a.csv', 'a.csv/x'], 2, 'inside a.csv, the data being moved'],
      [['a.csv', '.tdv/x'], 2, '.tdv'],
      // A directory holding a pointer is not that pointer's data.
      [['holder', 'elsewhere'], 2, 'holder is not tracked data itself but holds holder/one.csv'],
    ];
    for (const [args, code, needle] of cases) {
      const r = await tdv(dir, 'mv', ...args);
      expect(r.code, `mv ${args.join(' ')}: ${r.stderr}`).toBe(code);
      expectOneLineError(r.stderr, needle);
    }
    write(dir, 'c.csv.tdv', filePointer('c.csv', 'other'));
    const r = await tdv(dir, 'mv', 'a.csv', 'c.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'c.csv is already tracked by c.csv.tdv');
    fs.rmSync(path.join(dir, 'c.csv.tdv'));
    expect(state(dir)).toEqual(before);
    expect(sha('1\n')).toBeTruthy();
  });

  it('undoes the move when the new .gitignore cannot be written (a symlink there): data and pointer stay where they were', async () => {
    const dir = await repoWith({ 'a.csv': '1\n' }, ['a.csv']);
    fs.mkdirSync(path.join(dir, 'dest'));
    fs.symlinkSync('/etc/hostname', path.join(dir, 'dest/.gitignore'));
    const before = state(dir);
    const r = await tdvBin(dir, ['mv', 'a.csv', 'dest/']);
    expect(r.code).toBe(1);
    expectOneLineError(`${r.stderr}\n`, 'dest/.gitignore', 'is a symlink');
    expect(fs.readlinkSync(path.join(dir, 'dest/.gitignore'))).toBe('/etc/hostname');
    expect(exists(dir, 'dest/a.csv.tdv')).toBe(false);
    expect(exists(dir, 'dest/a.csv')).toBe(false);
    expect(state(dir)).toEqual(before);
    await clean(dir);
  });

  it('refuses a stage output, saying to edit tdv.yaml', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  prep:\n    cmd: echo x > out.txt\n    outs: [out.txt]\n');
    const rr = await tdv(dir, 'repro');
    expect(rr.code, rr.stderr).toBe(0);
    const before = state(dir);
    const r = await tdvBin(dir, ['mv', 'out.txt', 'renamed.txt']);
    expect(r.code).toBe(2);
    expectOneLineError(`${r.stderr}\n`, 'out.txt is an output of a stage', 'rename it in tdv.yaml');
    expect(state(dir)).toEqual(before);
    // Nor may tracked data move onto a path the pipeline writes.
    write(dir, 'in.csv', 'i');
    expect((await tdv(dir, 'add', 'in.csv')).code).toBe(0);
    const s = await tdv(dir, 'mv', 'in.csv', 'out.txt');
    expect(s.code).toBe(2);
  });
  it('prints a Git hint that runs as shown in a shell, for names with spaces and shell characters', async () => {
    const dir = await repoWith({ 'model.bin': 'weights' }, ['model.bin']);
    const dst = 'we ird/$(touch PWNED)`touch PWNED2`.bin';
    const r = await tdv(dir, 'mv', 'model.bin', dst);
    expect(r.code, r.stderr).toBe(0);
    const hint = r.stdout.split('\n').find((l) => l.trim().startsWith('git '))!;
    expect(hint).toBeDefined();
    execFileSync('sh', ['-c', hint], { cwd: dir });
    // Nothing in the name ran, and Git staged exactly the new pointer and its .gitignore.
    expect(exists(dir, 'PWNED')).toBe(false);
    expect(exists(dir, 'PWNED2')).toBe(false);
    const staged = execFileSync('git', ['diff', '--cached', '--name-only', '-z'], { cwd: dir }).toString().split('\0').filter(Boolean).sort();
    expect(staged).toEqual([`${dst}.tdv`, 'we ird/.gitignore'].sort());
  });
});
