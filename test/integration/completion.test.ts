import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { expectOneLineError, newDir } from '../helpers/expect.js';
import { tdvBin } from '../helpers/repo.js';

const has = (shell: string) =>
  execa(shell, ['-c', 'exit 0'], { reject: false }).then(
    (r) => r.exitCode === 0,
    () => false,
  );

/** What bash completes for the words typed so far (the last one being completed). */
async function bashComplete(script: string, words: string[]): Promise<string[]> {
  const dir = newDir();
  fs.writeFileSync(path.join(dir, 'tdv.bash'), script);
  const arr = words.map((w) => `'${w}'`).join(' ');
  const r = await execa('bash', ['-c', `source tdv.bash; COMP_WORDS=(${arr}); COMP_CWORD=${words.length - 1}; _tdv; printf '%s\\n' "\${COMPREPLY[@]}"`], { cwd: dir });
  return r.stdout.split('\n').filter(Boolean).sort();
}

describe('tdv completion', () => {
  it("bash: completes commands, subcommands and each command's options from the command tree; values of options are left to file names", async () => {
    const r = await tdvBin(newDir(), ['completion', 'bash']);
    expect(r.code, r.stderr).toBe(0);
    const s = r.stdout;
    expect(await bashComplete(s, ['tdv', 're'])).toEqual(['remote', 'remove', 'repro']);
    expect(await bashComplete(s, ['tdv', ''])).toEqual(expect.arrayContaining(['add', 'mv', 'doctor', 'completion', 'gc', 'remote']));
    expect(await bashComplete(s, ['tdv', 'remote', 'a'])).toEqual(['add']);
    expect(await bashComplete(s, ['tdv', 'runner', 'm'])).toEqual(['modify']);
    expect(await bashComplete(s, ['tdv', 'repro', '--run'])).toEqual(['--runner']);
    expect(await bashComplete(s, ['tdv', 'push', '--with'])).toEqual(['--with-deps']);
    expect(await bashComplete(s, ['tdv', 'gc', '--not'])).toEqual(['--not-in-remote']);
    expect(await bashComplete(s, ['tdv', '-q', 'pull', '--all-'])).toEqual(['--all-branches', '--all-commits', '--all-tags']);
    // An option's value is not a command: `-r push` names a remote, and the command is still pull.
    expect(await bashComplete(s, ['tdv', 'pull', '-r', 'push', '--f'])).toEqual(['--force']);
    expect(await bashComplete(s, ['tdv', 'pull', '-r', ''])).toEqual([]);
    // A data path after a command with no subcommands: file names (bash's default, COMPREPLY empty).
    expect(await bashComplete(s, ['tdv', 'add', 'da'])).toEqual([]);
  });

  it('zsh and fish scripts name every command and option; they load in their shell where it is installed', async () => {
    const dir = newDir();
    const zsh = await tdvBin(dir, ['completion', 'zsh']);
    const fish = await tdvBin(dir, ['completion', 'fish']);
    expect(zsh.code, zsh.stderr).toBe(0);
    expect(fish.code, fish.stderr).toBe(0);
    expect(zsh.stdout).toMatch(/^#compdef tdv\n/);
    expect(zsh.stdout).toContain('\nmv:move tracked data and its pointer');
    expect(zsh.stdout).toContain('--not-in-remote:keep a referenced object only if the remote lacks it');
    expect(fish.stdout).toContain("complete -c tdv -n '_tdv_at \\'remote\\'' -f -a 'add'");
    expect(fish.stdout).toContain("complete -c tdv -n '_tdv_at \\'push\\'' -l with-deps");
    expect(fish.stdout).toContain("complete -c tdv -n '_tdv_at \\'gc\\'' -s r -l remote -r");
    if (await has('zsh')) {
      fs.writeFileSync(path.join(dir, '_tdv'), zsh.stdout);
      const z = await execa('zsh', ['-fc', 'autoload -U compinit && compinit -u -D && source ./_tdv && whence -w _tdv _tdv_path && _tdv_path remote -v add'], { cwd: dir, reject: false });
      expect(z.stderr).toBe('');
      expect(z.stdout).toContain('_tdv: function');
      expect(z.stdout.trim().split('\n').at(-1)).toBe('remote add');
      // The completion function itself, with zsh's completion builtins stubbed to print what they are given.
      const drive = [
        'compdef() { :; }',
        'source ./_tdv',
        '_describe() { local arr=${@[-1]}; print -rl -- "${(@P)arr}"; }',
        '_files() { print FILES; }',
        'words=(tdv remote a); CURRENT=3; _tdv; print -- ---',
        'words=(tdv -q pull -r push --f); CURRENT=6; _tdv; print -- ---',
        "words=(tdv pull -r ''); CURRENT=4; _tdv; print -- ---",
        'words=(tdv add da); CURRENT=3; _tdv',
      ].join('\n');
      const d = await execa('zsh', ['-fc', drive], { cwd: dir, reject: false });
      expect(d.stderr).toBe('');
      const [subs, opts, value, file] = d.stdout.split('\n---\n');
      expect(subs!.split('\n').map((l) => l.split(':')[0])).toEqual(['add', 'list', 'remove', 'default', 'modify']);
      expect(opts).toContain('--force:overwrite or delete workspace changes');
      expect(opts).toContain('--all-tags:');
      expect(value!.trim()).toBe('FILES');
      expect(file!.trim()).toBe('FILES');
    }
    if (await has('fish')) {
      fs.writeFileSync(path.join(dir, 'tdv.fish'), fish.stdout);
      const f = await execa('fish', ['-c', 'source tdv.fish; and complete -C "tdv remote a"; and complete -C "tdv push --with"; and complete -C "tdv -q pull -r push --for"'], {
        cwd: dir,
        reject: false,
      });
      expect(f.stderr).toBe('');
      expect(f.stdout).toMatch(/^add\t/m);
      expect(f.stdout).toMatch(/^--with-deps\t/m);
      expect(f.stdout).toMatch(/^--force\t/m);
    }
  });

  it('an unknown shell is a usage error', async () => {
    const r = await tdvBin(newDir(), ['completion', 'tcsh']);
    expect(r.code).toBe(2);
    expectOneLineError(`${r.stderr}\n`, 'no completion for shell "tcsh"; choose bash, zsh, fish');
  });
});
