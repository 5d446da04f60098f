import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, manifest, newDir, objPath, repoWith, sha } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv checkout` words its CheckoutResult and errors, its exit
 * codes and its --json document, in one place. What checkout does is tested
 * through the API, in test/api/checkout.test.ts.
 */
describe('tdv checkout: output', () => {
  it('summary line: restored and deleted counts, singular and plural, and each deletion in words', async () => {
    const one = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(path.join(one, 'a.csv'));
    const r1 = await tdv(one, 'checkout');
    expect(r1).toEqual({ code: 0, stdout: 'Restored 1 file, deleted 0 files.\n', stderr: '' });

    const dir = await repoWith({ 'data/keep': 'k', 'data/change': 'old', 'data/gone': 'g' }, ['data']);
    const v1 = fs.readFileSync(path.join(dir, 'data.tdv'), 'utf8');
    write(dir, 'data/change', 'new');
    write(dir, 'data/extra/added', 'added');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    write(dir, 'data.tdv', v1);
    const r2 = await tdv(dir, 'checkout');
    expect(r2.code).toBe(0);
    // In words: `D  path` would read as git's staged deletion.
    expect(r2.stdout).toBe('deleted: data/extra/added\nRestored 1 file, deleted 1 file.\n');
  });

  it('nothing to do: "Workspace already matches the pointers."', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    expect(await tdv(dir, 'checkout')).toEqual({ code: 0, stdout: 'Workspace already matches the pointers.\n', stderr: '' });
  });

  it('--dry: "restore:" and "delete:" lines, then "Would restore ..."', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'b.csv': 'b' }, ['data', 'b.csv']);
    fs.rmSync(path.join(dir, 'b.csv'));
    write(dir, 'data/copy', 'a');
    const r = await tdv(dir, 'checkout', '--dry');
    expect(r).toEqual({ code: 0, stdout: 'restore: b.csv\ndelete: data/copy\nWould restore 1 file and delete 1 file.\n', stderr: '' });
  });

  it('a conflict is one error line naming the files and both ways out, exit 1, nothing on stdout', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    write(dir, 'a.csv', 'precious edit\n');
    fs.rmSync(path.join(dir, 'b.csv'));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'a.csv', 'not in the cache', '`tdv add`', '`tdv checkout --force`');
    expect(r.stderr).not.toContain('b.csv');

    const many = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'c.csv': 'c' }, ['data', 'c.csv']);
    for (const f of ['data/a', 'data/b', 'c.csv']) write(many, f, `${f}!`);
    const r3 = await tdv(many, 'checkout');
    expect(r3.code).toBe(1);
    expectOneLineError(r3.stderr, '3 workspace file(s)', 'data/a', 'data/b', 'c.csv', '--force');
  });

  it('an uncached extra file in a tracked directory: "would be lost"', async () => {
    const dir = await repoWith({ 'data/a': 'a' }, ['data']);
    write(dir, 'data/notes.txt', 'only copy of my notes');
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data/notes.txt', 'would be lost', '--force');
    const forced = await tdv(dir, 'checkout', '--force');
    expect(forced).toEqual({ code: 0, stdout: 'deleted: data/notes.txt\nRestored 0 files, deleted 1 file.\n', stderr: '' });
  });

  it('objects missing from the cache: the list on stdout, one error line suggesting tdv pull, exit 1', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('Restored 1 file, deleted 0 files.\nNot restored, not in the cache (1 file):\n    a.csv  [a.csv.tdv]\n');
    expectOneLineError(r.stderr, '1 file not restored, not in the cache: a.csv; everything else was restored; run `tdv pull` to fetch them');
  });

  it('never says the workspace already matches when the only file could not be restored', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('already matches');
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):');
  });

  it('the pull hint keeps the targets; files of a directory are listed with its pointer', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'data/b': 'b', 'data/c': 'c' }, ['data']);
    fs.rmSync(path.join(dir, 'data/b'));
    fs.rmSync(path.join(dir, 'data/c'));
    fs.rmSync(objPath(dir, sha('b')));
    fs.rmSync(objPath(dir, sha('c')));
    const r = await tdv(dir, 'checkout', 'data');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Not restored, not in the cache (2 files):\n    data/b  [data.tdv]\n    data/c  [data.tdv]\n');
    expectOneLineError(r.stderr, '2 files not restored', 'data/b', 'data/c', '`tdv pull data` to fetch them');
  });

  it('a missing manifest is shown as the directory and the short id of its list of files', async () => {
    const dir = await repoWith({ 'data/a': 'a', 'm.bin': 'm' }, ['data', 'm.bin']);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const m = manifest([{ relpath: 'a', content: 'a' }]).oid;
    fs.rmSync(objPath(dir, m));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`Not restored, not in the cache (1 directory):\n    data/ (its list of files, ${m.slice(0, 12)})  [data.tdv]\n`);
    expectOneLineError(r.stderr, '1 directory not restored', 'data/', '`tdv pull`');
  });

  it('a missing stage output is shown with its stage, and the error says `tdv repro` rebuilds it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: echo made > out.txt\n    outs: [out.txt]\n');
    const rr = await tdv(dir, 'repro');
    expect(rr.code, rr.stderr).toBe(0);
    fs.rmSync(path.join(dir, 'out.txt'));
    fs.rmSync(objPath(dir, sha('made\n')));
    const r = await tdv(dir, 'checkout');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Not restored, not in the cache (1 file):\n    out.txt  [output of stage "make"]\n');
    expectOneLineError(r.stderr, '1 file not restored, not in the cache: out.txt; everything else was restored; run `tdv pull` to fetch them if they were pushed, or `tdv repro make` to rebuild them');
  });

  it('--json: one document, the error and what was restored and not', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n', 'b.csv': 'b\n' }, ['a.csv', 'b.csv']);
    fs.rmSync(path.join(dir, 'a.csv'));
    fs.rmSync(path.join(dir, 'b.csv'));
    fs.rmSync(objPath(dir, sha('a\n')));
    const r = await tdv(dir, 'checkout', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({
      error: { code: 'MISSING_OBJECTS', message: expect.stringContaining('a.csv'), data: { paths: ['a.csv'] } },
      restored: 1,
      deleted: 0,
      missing: [{ path: 'a.csv', oid: sha('a\n'), pointer: 'a.csv.tdv' }],
      kept: [],
    });
  });

  it('an untracked target: exit 2 and one error line naming it', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    const r = await tdv(dir, 'checkout', 'nope.csv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'nope.csv is not tracked by tdv');
  });
});

describe('tdv checkout: output after a branch switch took a pointer away', () => {
  it('each kept path gets one "kept:" line saying why it stayed and what to do', async () => {
    const dir = await repoWith({ 'a.csv': 'a\n' }, ['a.csv']);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'a');
    await git(dir, 'branch', 'old');
    write(dir, 'b.csv', 'b\n');
    write(dir, 'c.csv', 'c\n');
    write(dir, 'data/y', 'y');
    expect((await tdv(dir, 'add', 'b.csv', 'c.csv', 'data')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'b, c and data');
    await git(dir, 'checkout', '-q', 'old');
    fs.chmodSync(path.join(dir, 'b.csv'), 0o644);
    fs.writeFileSync(path.join(dir, 'b.csv'), 'my edit\n');
    fs.rmSync(objPath(dir, sha('y')));
    const r = await tdv(dir, 'checkout');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      [
        'deleted: c.csv',
        'Restored 0 files, deleted 1 file.',
        'kept: b.csv (no pointer tracks it now, and it changed since tdv placed it; delete it yourself, or `tdv add b.csv` to track this version)',
        'kept: data (no pointer tracks it now, and the cache lacks its data, so deleting it would lose it)',
        '',
      ].join('\n'),
    );
    expect(r.stdout).not.toMatch(/^D {2}/m);

    await git(dir, 'checkout', '-q', 'main');
    expect((await tdv(dir, 'checkout', '--force', 'c.csv')).code).toBe(0);
    fs.rmSync(path.join(dir, 'c.csv.tdv'));
    const byHand = await tdv(dir, 'checkout', '--force');
    expect(byHand.stdout).toContain('kept: c.csv (c.csv.tdv was deleted, but Git still tracks it: `tdv remove` stops tracking data, `git checkout -- c.csv.tdv` brings the pointer back)');
  });
});

describe('tdv checkout --rev: output', () => {
  it('names the revision once: as typed with its short id, or the short id alone; --to names the directory', async () => {
    const dir = await repoWith({ 'model.bin': 'weights v1' }, ['model.bin']);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'v1');
    await git(dir, 'tag', 'v1');
    const id = await git(dir, 'rev-parse', 'HEAD');
    write(dir, 'model.bin', 'weights v2');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    expect(await tdv(dir, 'checkout', '--rev', 'v1')).toEqual({ code: 0, stdout: `Restored 1 file of v1 (${id.slice(0, 12)}), deleted 0 files.\n`, stderr: '' });
    const snap = path.join(newDir(), 'snap');
    expect(await tdv(dir, 'checkout', '--rev', id.slice(0, 9), '--to', snap)).toEqual({ code: 0, stdout: `Restored 1 file of ${id.slice(0, 12)} in ${snap}, deleted 0 files.\n`, stderr: '' });
    expect((await tdv(dir, 'checkout', '--rev', 'v1')).stdout).toBe(`Workspace already matches the data of v1 (${id.slice(0, 12)}).\n`);
  });
});
