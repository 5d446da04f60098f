import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo } from '../helpers/expect.js';

/** Every entry under `dir` with its content or link target: proof that nothing there changed. */
function survey(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const abs = path.join(e.parentPath, e.name);
    const st = fs.lstatSync(abs);
    out[path.relative(dir, abs)] = st.isSymbolicLink() ? `-> ${fs.readlinkSync(abs)}` : st.isFile() ? fs.readFileSync(abs, 'utf8') : 'dir';
  }
  return out;
}

describe("tdv's own directories and files must be real, never links a clone could bring", () => {
  for (const rel of ['.tdv/tmp', '.tdv/config.local.yaml']) {
    it(`a symlink at ${rel} is refused by every command, and nothing is written where it points`, async () => {
      const dir = await newRepo();
      const elsewhere = newDir();
      write(elsewhere, 'keep', 'precious\n');
      fs.rmSync(path.join(dir, rel), { recursive: true, force: true });
      fs.symlinkSync(rel.endsWith('.yaml') ? path.join(elsewhere, 'keep') : elsewhere, path.join(dir, rel));
      write(dir, 'data.csv', 'a\n');
      const before = survey(elsewhere);
      for (const args of [['add', 'data.csv'], ['status'], ['checkout'], ['remote', 'add', 'r', path.join(elsewhere, 'r')]]) {
        const r = await tdv(dir, ...args);
        expect(r.code, args.join(' ')).toBe(1);
        expectOneLineError(r.stderr, rel, 'symlink', 'Replace');
      }
      expect(survey(elsewhere)).toEqual(before);
    });
  }

  it('a symlinked .tdv is refused', async () => {
    const dir = await newRepo();
    const elsewhere = newDir();
    fs.renameSync(path.join(dir, '.tdv'), path.join(elsewhere, '.tdv'));
    fs.symlinkSync(path.join(elsewhere, '.tdv'), path.join(dir, '.tdv'));
    const before = survey(elsewhere);
    write(dir, 'data.csv', 'a\n');
    const r = await tdv(dir, 'add', 'data.csv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.tdv is a symlink');
    expect(survey(elsewhere)).toEqual(before);
  });

  it("a committed .tdv/cache symlink is refused; a local one (a shared cache) is the user's choice", async () => {
    const dir = await newRepo();
    const shared = newDir();
    fs.symlinkSync(shared, path.join(dir, '.tdv', 'cache'));
    write(dir, 'data.csv', 'a\n');
    expect((await tdv(dir, 'add', 'data.csv')).code).toBe(0);
    expect(fs.readdirSync(shared)).toContain('files');
    await git(dir, 'add', '-f', '.tdv/cache');
    write(dir, 'more.csv', 'b\n');
    const r = await tdv(dir, 'add', 'more.csv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.tdv/cache is a symlink committed to Git', 'git rm -r --cached .tdv/cache');
  });

  for (const deeper of ['files', 'files/sha256', 'runs']) {
    it(`a committed symlink at .tdv/cache/${deeper} is refused before anything is written or deleted through it (review F1)`, async () => {
      const victim = await newRepo();
      write(victim, 'v.txt', 'victim data\n');
      expect((await tdv(victim, 'add', 'v.txt')).code).toBe(0);
      const before = survey(path.join(victim, '.tdv'));
      const dir = await newRepo();
      fs.mkdirSync(path.join(dir, '.tdv', 'cache', path.dirname(deeper)), { recursive: true });
      fs.symlinkSync(path.join(victim, '.tdv', 'cache', deeper), path.join(dir, '.tdv', 'cache', deeper));
      await git(dir, 'add', '-f', `.tdv/cache/${deeper}`);
      write(dir, 'a.txt', 'mine\n');
      for (const args of [['gc', '--workspace', '-f'], ['add', 'a.txt'], ['status']]) {
        const r = await tdv(dir, ...args);
        expect(r.code, args.join(' ')).toBe(1);
        expectOneLineError(r.stderr, `.tdv/cache/${deeper} is a symlink committed to Git inside .tdv/cache`);
      }
      expect(survey(path.join(victim, '.tdv'))).toEqual(before);
    });
  }

  it('a local symlink inside the cache layout makes gc treat the cache as shared', async () => {
    const dir = await newRepo();
    const elsewhere = newDir();
    fs.mkdirSync(path.join(dir, '.tdv', 'cache'), { recursive: true });
    fs.symlinkSync(elsewhere, path.join(dir, '.tdv', 'cache', 'files'));
    write(dir, 'a.txt', 'mine\n');
    expect((await tdv(dir, 'add', 'a.txt')).code).toBe(0);
    fs.rmSync(path.join(dir, 'a.txt.tdv'));
    const r = await tdv(dir, 'gc', '--workspace', '-f');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--shared-cache');
    expect(survey(elsewhere)).not.toEqual({});
  });
});
