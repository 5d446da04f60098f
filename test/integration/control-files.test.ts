/**
 * Control files (`.gitattributes`, Git hooks, tdv's config files and
 * `.gitignore`, `.tdvignore`, the merge driver's result) are written only as
 * regular files, never through or over a symlink: a clone can commit a
 * symlink at any of them, pointing anywhere. Each case runs the real bin/tdv
 * and checks that it is refused with one line naming the link, and that
 * nothing outside the repository changed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, snapshot, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError as expectOneLine, filePointer, newDir, newRepo } from '../helpers/expect.js';

/** bin/tdv's stderr as execa returns it, without the final newline. */
const expectOneLineError = (stderr: string, ...needles: (string | RegExp)[]) => expectOneLine(`${stderr}\n`, ...needles);

/** A directory outside the repository holding one file, and its snapshot, to prove nothing there changed. */
function outside(): { dir: string; file: string; before: Record<string, string> } {
  const dir = newDir();
  const file = write(dir, 'victim.txt', 'precious outside data\n');
  return { dir, file, before: snapshot(dir) };
}

describe('tdv install', () => {
  it('refuses a committed .gitattributes that is a symlink to a file outside, before writing any hook', async () => {
    const dir = await newRepo();
    const out = outside();
    fs.symlinkSync(out.file, path.join(dir, '.gitattributes'));
    await git(dir, 'add', '.gitattributes');
    await git(dir, 'commit', '-qm', 'attributes');
    const r = await tdvBin(dir, ['install']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.gitattributes', 'symlink');
    expect(snapshot(out.dir)).toEqual(out.before);
    expect(fs.existsSync(path.join(dir, '.git', 'hooks', 'post-checkout'))).toBe(false);
    expect(fs.lstatSync(path.join(dir, '.gitattributes')).isSymbolicLink()).toBe(true);
  });

  it('refuses a .git/hooks directory that is a symlink, naming it, and writes nothing there', async () => {
    const dir = await newRepo();
    const out = outside();
    fs.rmSync(path.join(dir, '.git', 'hooks'), { recursive: true, force: true });
    fs.symlinkSync(out.dir, path.join(dir, '.git', 'hooks'));
    const r = await tdvBin(dir, ['install']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.git', 'the symlink hooks', out.dir);
    expect(snapshot(out.dir)).toEqual(out.before);
    expect(fs.existsSync(path.join(dir, '.gitattributes'))).toBe(false);
  });
});

describe('remote configuration files', () => {
  it('a committed .tdv/config.local.yaml symlink is refused by every command, and its target never written', async () => {
    const dir = await newRepo();
    const out = outside();
    fs.symlinkSync(out.file, path.join(dir, '.tdv', 'config.local.yaml'));
    for (const args of [['remote', 'add', '--local', 'nas', '/mnt/nas'], ['remote', 'list'], ['status']]) {
      const r = await tdvBin(dir, args);
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, '.tdv/config.local.yaml is a symlink');
    }
    expect(snapshot(out.dir)).toEqual(out.before);
  });

  it('a .tdv/.gitignore symlink is refused when config.local.yaml is first written, and neither file is written', async () => {
    const dir = await newRepo();
    const out = outside();
    fs.rmSync(path.join(dir, '.tdv', '.gitignore'));
    fs.symlinkSync(out.file, path.join(dir, '.tdv', '.gitignore'));
    const r = await tdvBin(dir, ['remote', 'add', '--local', 'nas', out.dir]);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.gitignore', 'symlink');
    expect(snapshot(out.dir)).toEqual(out.before);
    expect(fs.existsSync(path.join(dir, '.tdv', 'config.local.yaml'))).toBe(false);
    expect(fs.lstatSync(path.join(dir, '.tdv', '.gitignore')).isSymbolicLink()).toBe(true);
  });
});

describe('tdv init', () => {
  it('refuses a .tdvignore that is a symlink, naming it, and writes nothing', async () => {
    const dir = await newRepo({ init: false });
    const out = outside();
    fs.symlinkSync(out.file, path.join(dir, '.tdvignore'));
    const r = await tdvBin(dir, ['init']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.tdvignore is a symlink', 'victim.txt');
    expect(snapshot(out.dir)).toEqual(out.before);
    expect(fs.existsSync(path.join(dir, '.tdv'))).toBe(false);
  });

  it('refuses a .tdv that is a symlink to a directory outside, and writes nothing there', async () => {
    const dir = await newRepo({ init: false });
    const out = outside();
    fs.symlinkSync(out.dir, path.join(dir, '.tdv'));
    const r = await tdvBin(dir, ['init']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.tdv is a symlink');
    expect(snapshot(out.dir)).toEqual(out.before);
  });

  it('init --force refuses a .tdv/.gitignore that is a symlink instead of writing through or over it', async () => {
    const dir = await newRepo();
    const out = outside();
    fs.rmSync(path.join(dir, '.tdv', '.gitignore'));
    fs.symlinkSync(out.file, path.join(dir, '.tdv', '.gitignore'));
    const r = await tdvBin(dir, ['init', '--force']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.tdv/.gitignore is a symlink');
    expect(snapshot(out.dir)).toEqual(out.before);
  });
});

describe('tdv merge-driver', () => {
  it('refuses to write the merge result through a symlink at %A', async () => {
    const dir = await newRepo();
    const out = outside();
    const pointer = filePointer('a', 'base');
    write(dir, '.merge_base', pointer);
    write(dir, '.merge_theirs', filePointer('a', 'theirs'));
    fs.writeFileSync(out.file, pointer);
    const before = snapshot(out.dir);
    fs.symlinkSync(out.file, path.join(dir, '.merge_ours'));
    const r = await tdvBin(dir, ['merge-driver', '.merge_base', '.merge_ours', '.merge_theirs', 'a.tdv']);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.merge_ours is a symlink');
    expect(snapshot(out.dir)).toEqual(before);
    expect(read(dir, '.merge_base')).toBe(pointer);
  });
});
