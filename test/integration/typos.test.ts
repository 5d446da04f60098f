/**
 * Failure class 10 of issue 11: typos are errors. A target that matches
 * nothing tracked exits 2 naming it, for `checkout`, `status` and `diff` as
 * for `pull` and `log`, including a path inside a tracked directory that
 * neither its recorded version nor the workspace has. And a dangling symlink
 * where data should be is reported with the pointer and the fix.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, sampleRepo, state } from '../helpers/expect.js';
import { git, tdvBin, write } from '../helpers/repo.js';

describe('a target that matches nothing tracked is a usage error', () => {
  const commands: [string, string[]][] = [
    ['status', ['status']],
    ['status --json', ['status', '--json']],
    ['checkout', ['checkout']],
    ['checkout --force', ['checkout', '--force']],
    ['checkout --dry', ['checkout', '--dry']],
    ['checkout --rev HEAD', ['checkout', '--rev', 'HEAD']],
    ['diff --', ['diff', '--']],
    ['diff HEAD --', ['diff', 'HEAD', '--']],
    ['diff HEAD HEAD --', ['diff', 'HEAD', 'HEAD', '--']],
    ['unprotect', ['unprotect']],
  ];
  for (const [what, args] of commands) {
    it(`${what} of a misspelt file inside a tracked directory exits 2 naming it`, async () => {
      const { dir } = await sampleRepo({ commit: true });
      const before = state(dir);
      const r = await tdvBin(dir, [...args, 'data/sub/c.cvs']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expectOneLineError(`${r.stderr}\n`, 'data/sub/c.cvs');
      // With --json the failure is the one document on stdout; otherwise stdout stays empty.
      if (args.includes('--json')) expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'NOT_TRACKED', message: expect.stringContaining('data/sub/c.cvs'), data: null } });
      else expect(r.stdout).toBe('');
      expect(state(dir)).toEqual(before);
    });
  }

  it('a misspelt directory inside a tracked directory, and a misspelt top-level path, too', async () => {
    const { dir } = await sampleRepo({ commit: true });
    for (const args of [
      ['status', 'data/sbu'],
      ['checkout', 'data/sbu/c.csv'],
      ['diff', '--', 'data/sbu'],
      ['status', 'dta'],
      ['checkout', 'dta'],
      ['diff', '--', 'dta'],
    ]) {
      const r = await tdvBin(dir, args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expectOneLineError(`${r.stderr}\n`, args[args.length - 1]!);
    }
  });

  it('what the recorded version or the workspace has is not a typo: a new file, a deleted file, a subdirectory', async () => {
    const { dir } = await sampleRepo({ commit: true });
    write(dir, 'data/new.csv', 'n\n');
    fs.rmSync(path.join(dir, 'data/a.csv'));
    const st = await tdvBin(dir, ['status', 'data/new.csv']);
    expect(st.code, st.stderr).toBe(0);
    const d = await tdvBin(dir, ['diff', '--', 'data/new.csv']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^added:\s+data\/new\.csv/m);
    const co = await tdvBin(dir, ['checkout', 'data/a.csv']);
    expect(co.code, co.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'data/a.csv'), 'utf8')).toBe('a,1\n');
    const sub = await tdvBin(dir, ['checkout', '--rev', 'HEAD', 'data/sub']);
    expect(sub.code, sub.stderr).toBe(0);
  });
});

describe('a dangling symlink where data should be names the pointer and the fix', () => {
  it('at a tracked file: status and diff say what it is and how to put the data back; add refuses it; the fix works', async () => {
    const { dir } = await sampleRepo({ commit: true });
    fs.rmSync(path.join(dir, 'model.bin'));
    fs.symlinkSync('/nonexistent/model.bin', path.join(dir, 'model.bin'));
    const st = await tdvBin(dir, ['status']);
    expect(st.code).toBe(0);
    expect(st.stdout).toContain('model.bin is a symlink to /nonexistent/model.bin, which does not exist, not the data model.bin.tdv tracks; `tdv checkout --force model.bin` puts the data back');
    const js = JSON.parse((await tdvBin(dir, ['status', '--json'])).stdout);
    expect(js.data[0].blocker).toEqual({ path: 'model.bin', kind: 'symlink', target: '/nonexistent/model.bin', dangling: true });
    const d = await tdvBin(dir, ['diff']);
    expect(d.stdout).toMatch(/^modified:\s+model\.bin\s+\(7 B, [0-9a-f]{8} -> a symlink to \/nonexistent\/model\.bin, which does not exist; `tdv checkout --force model\.bin` puts the data back\)$/m);
    const add = await tdvBin(dir, ['add', 'model.bin']);
    expect(add.code).toBe(2);
    expectOneLineError(`${add.stderr}\n`, 'model.bin is a symlink (-> /nonexistent/model.bin, which does not exist), not the data model.bin.tdv tracks', '`tdv checkout --force model.bin`');
    const fix = await tdvBin(dir, ['checkout', '--force', 'model.bin']);
    expect(fix.code, fix.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'model.bin'), 'utf8')).toBe('weights');
  });

  it('on the way to tracked data (a stage output below a directory now a symlink): status names the symlink, the pointer, and the fix', async () => {
    const { dir } = await sampleRepo();
    write(dir, 'tdv.yaml', 'stages:\n  make:\n    cmd: mkdir -p out && echo 1 > out/m.bin\n    outs: [out/m.bin]\n');
    expect((await tdvBin(dir, ['repro'])).code).toBe(0);
    fs.rmSync(path.join(dir, 'out'), { recursive: true });
    fs.symlinkSync('/nonexistent', path.join(dir, 'out'));
    // (A plain `tdv status` also loads tdv.yaml, which now refuses the output for the same link.)
    const st = await tdvBin(dir, ['status', 'out/m.bin']);
    expect(st.code, st.stderr).toBe(0);
    expect(st.stdout).toMatch(/^\s+deleted:\s+out\/m\.bin$/m);
    expect(st.stdout).toContain(
      'out is a symlink to /nonexistent, which does not exist, on the way to the data tdv.lock tracks; tdv never writes through it: replace it with a real directory, then run `tdv checkout out/m.bin`',
    );
  });
});
