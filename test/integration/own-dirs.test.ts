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

  it('a committed .tdv/cache symlink is refused; a local one (a shared cache) is the user\'s choice', async () => {
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
    expectOneLineError(r.stderr, '.tdv/cache is a symlink committed to Git', 'git rm --cached .tdv/cache');
  });
});
