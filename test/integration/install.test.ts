import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, state } from '../helpers/expect.js';

const HOOKS = ['post-checkout', 'post-merge', 'pre-push'];
const hook = (dir: string, name: string) => path.join(dir, '.git', 'hooks', name);
const BEGIN = '# >>> tdv: added by `tdv install`; `tdv install --uninstall` removes this block >>>';

/** The hooks, .gitattributes and the Git config: everything install may touch. */
function installed(dir: string): Record<string, string | undefined> {
  const s: Record<string, string | undefined> = {};
  for (const h of HOOKS) s[h] = fs.existsSync(hook(dir, h)) ? read(dir, `.git/hooks/${h}`) : undefined;
  s.attributes = fs.existsSync(path.join(dir, '.gitattributes')) ? read(dir, '.gitattributes') : undefined;
  s.config = read(dir, '.git/config');
  return s;
}

describe('tdv install', () => {
  it('writes the three hooks (executable), the merge attribute and the driver config; a second run changes nothing', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'install');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('.git/hooks/post-checkout: added — tdv checkout after git checkout of a branch');
    expect(r.stdout).toContain('Commit .gitattributes');
    for (const h of HOOKS) {
      const text = read(dir, `.git/hooks/${h}`);
      expect(text.startsWith(`#!/bin/sh\n${BEGIN}\n`)).toBe(true);
      expect(text.endsWith('# <<< tdv <<<\n')).toBe(true);
      expect(fs.statSync(hook(dir, h)).mode & 0o111).toBe(0o111);
    }
    expect(read(dir, '.git/hooks/post-checkout')).toContain('tdv checkout');
    expect(read(dir, '.git/hooks/pre-push')).toContain('tdv push </dev/null');
    expect(read(dir, '.gitattributes')).toBe('*.tdv merge=tdv\n');
    expect(await git(dir, 'config', 'merge.tdv.driver')).toBe('tdv merge-driver %O %A %B %P');
    const once = installed(dir);
    const again = await tdv(dir, 'install');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('.git/hooks/pre-push: already there');
    expect(again.stdout).toContain('git config merge.tdv.driver: already there');
    expect(installed(dir)).toEqual(once);
  });

  it('chains into existing shell hooks, right after the #! line, and --uninstall restores them byte for byte', async () => {
    const dir = await newRepo();
    const own = '#!/usr/bin/env bash\necho "my own checks"\nexit 0\n';
    write(dir, '.git/hooks/pre-push', own);
    fs.chmodSync(hook(dir, 'pre-push'), 0o750);
    write(dir, '.gitattributes', '*.png binary');
    const before = installed(dir);
    const r = await tdv(dir, 'install');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("pre-push: added — tdv push before git push (kept the hook's own commands)");
    const text = read(dir, '.git/hooks/pre-push');
    expect(text.startsWith(`#!/usr/bin/env bash\n${BEGIN}\n`)).toBe(true);
    expect(text.endsWith('# <<< tdv <<<\necho "my own checks"\nexit 0\n')).toBe(true);
    expect(fs.statSync(hook(dir, 'pre-push')).mode & 0o777).toBe(0o750);
    expect(read(dir, '.gitattributes')).toBe('*.png binary\n*.tdv merge=tdv\n');

    const u = await tdv(dir, 'install', '--uninstall');
    expect(u.code, u.stderr).toBe(0);
    expect(u.stdout).toContain('.git/hooks/pre-push: removed');
    const after = installed(dir);
    expect({ ...after, attributes: after.attributes?.trimEnd() }).toEqual({ ...before, attributes: '*.png binary' });
    expect(fs.statSync(hook(dir, 'pre-push')).mode & 0o777).toBe(0o750);
    expect(await git(dir, 'config', '--get-regexp', 'merge').catch(() => '')).toBe('');
  });

  it('--uninstall after a fresh install leaves the repository as it was; twice is harmless', async () => {
    const dir = await newRepo();
    const before = state(dir);
    const config = read(dir, '.git/config');
    expect((await tdv(dir, 'install')).code).toBe(0);
    expect((await tdv(dir, 'install', '--uninstall')).code).toBe(0);
    expect(state(dir)).toEqual(before);
    expect(read(dir, '.git/config').replace(/\n$/, '')).toBe(config.replace(/\n$/, ''));
    const again = await tdv(dir, 'install', '--uninstall');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('pre-push: not there');
    expect(state(dir)).toEqual(before);
  });

  it('refuses, before writing anything, a hook in another language, a disabled hook, or a hook that is a symlink', async () => {
    for (const [setup, why] of [
      [(d: string) => write(d, '.git/hooks/post-merge', '#!/usr/bin/env python3\nprint("hi")\n'), 'is not a shell script (#!/usr/bin/env python3)'],
      [
        (d: string) => {
          write(d, '.git/hooks/post-merge', '#!/bin/sh\necho hi\n');
          fs.chmodSync(path.join(d, '.git/hooks/post-merge'), 0o644);
        },
        'exists but is not executable',
      ],
      [(d: string) => fs.symlinkSync('/bin/true', path.join(d, '.git/hooks/post-merge')), 'is not a regular file'],
    ] as const) {
      const dir = await newRepo();
      setup(dir);
      if (fs.lstatSync(hook(dir, 'post-merge')).isFile() && !why.includes('executable')) fs.chmodSync(hook(dir, 'post-merge'), 0o755);
      const before = installed(dir);
      const r = await tdv(dir, 'install');
      expect(r.code, why).toBe(1);
      expectOneLineError(r.stderr, why);
      expect(installed(dir)).toEqual(before);
    }
  });

  it("a hook with tdv's start marker but not its end is left alone, with a message", async () => {
    const dir = await newRepo();
    write(dir, '.git/hooks/pre-push', `#!/bin/sh\n${BEGIN}\ntdv push\n`);
    fs.chmodSync(hook(dir, 'pre-push'), 0o755);
    const before = installed(dir);
    for (const args of [['install'], ['install', '--uninstall']]) {
      const r = await tdv(dir, ...args);
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, "a Git hook has tdv's start marker but not its end marker", 'fix the hook by hand');
    }
    expect(installed(dir)).toEqual(before);
  });

  it("a git command that fails is reported with Git's own message, and nothing is written", async () => {
    const dir = await newRepo();
    fs.writeFileSync(path.join(dir, '.git', 'HEAD'), 'garbage\n');
    const r = await tdv(dir, 'install');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'git rev-parse --git-path hooks failed: fatal:');
    expect(fs.existsSync(hook(dir, 'pre-push'))).toBe(false);
    expect(fs.existsSync(path.join(dir, '.gitattributes'))).toBe(false);
  });

  it('writes into core.hooksPath when Git is configured to use another hooks directory', async () => {
    const dir = await newRepo();
    await git(dir, 'config', 'core.hooksPath', '.githooks');
    expect((await tdv(dir, 'install')).code).toBe(0);
    expect(fs.existsSync(path.join(dir, '.githooks', 'pre-push'))).toBe(true);
    expect(fs.existsSync(hook(dir, 'pre-push'))).toBe(false);
  });

  it('outside Git there are no hooks to install', async () => {
    const dir = newDir();
    expect((await tdv(dir, 'init', '--no-scm')).code).toBe(0);
    const r = await tdv(dir, 'install');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not in a Git work tree');
  });
});
