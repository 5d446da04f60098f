import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addGitignoreEntry, removeGitignoreEntry } from '../../src/workspace/gitignore.js';
import { Guard } from '../../src/workspace/guard.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
const read = (dir: string) => fs.readFileSync(path.join(dir, '.gitignore'), 'utf8');

/** True when Git itself considers `rel` ignored in the repository at `root`. */
function gitIgnores(root: string, rel: string): boolean {
  const r = spawnSync('git', ['check-ignore', '-q', '--no-index', '--', rel], { cwd: root });
  if (r.status !== 0 && r.status !== 1) throw new Error(`git check-ignore failed: ${r.stderr}`);
  return r.status === 0;
}

describe('addGitignoreEntry', () => {
  it('creates .gitignore with an anchored line for the name', () => {
    const d = tmp();
    expect(addGitignoreEntry(new Guard(d), 'data.csv')).toBe(true);
    expect(read(d)).toBe('/data.csv\n');
  });

  it('never duplicates a line', () => {
    const d = tmp();
    addGitignoreEntry(new Guard(d), 'data');
    expect(addGitignoreEntry(new Guard(d), 'data')).toBe(false);
    addGitignoreEntry(new Guard(d), 'model.bin');
    expect(addGitignoreEntry(new Guard(d), 'data')).toBe(false);
    expect(read(d)).toBe('/data\n/model.bin\n');
  });

  it('takes "/name/" as its line for a directory (the same rule to Git), but not for a file', () => {
    const d = tmp();
    execFileSync('git', ['init', '-q', d]);
    fs.mkdirSync(path.join(d, 'logs'));
    fs.writeFileSync(path.join(d, 'model.bin'), 'x');
    fs.writeFileSync(path.join(d, '.gitignore'), '/logs/\n/model.bin/\n');
    expect(addGitignoreEntry(new Guard(d), 'logs')).toBe(false);
    // "/model.bin/" matches only a directory: the file would not be ignored by it.
    expect(addGitignoreEntry(new Guard(d), 'model.bin')).toBe(true);
    expect(read(d)).toBe('/logs/\n/model.bin/\n/model.bin\n');
    expect(gitIgnores(d, 'model.bin')).toBe(true);
    expect(gitIgnores(d, 'logs/a.log')).toBe(true);
  });

  it('recognises its line in a file with CRLF line endings', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), '*.log\r\n/data\r\n');
    expect(addGitignoreEntry(new Guard(d), 'data')).toBe(false);
    expect(read(d)).toBe('*.log\r\n/data\r\n');
  });

  it('appends on a new line when the file lacks a trailing newline', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), 'node_modules');
    addGitignoreEntry(new Guard(d), 'data');
    expect(read(d)).toBe('node_modules\n/data\n');
  });

  it('keeps existing content and the file mode', () => {
    const d = tmp();
    const f = path.join(d, '.gitignore');
    fs.writeFileSync(f, '# mine\n*.tmp\n');
    fs.chmodSync(f, 0o600);
    addGitignoreEntry(new Guard(d), 'data');
    expect(read(d)).toBe('# mine\n*.tmp\n/data\n');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });

  it('does not treat a similar line as its own', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), 'data\n/data/\n/data.csv\n');
    expect(addGitignoreEntry(new Guard(d), 'data')).toBe(true);
    expect(read(d)).toBe('data\n/data/\n/data.csv\n/data\n');
  });

  it.each([
    ['a*b', ['aXb', 'ab']],
    ['a?b', ['acb']],
    ['[x]', ['x']],
    ['#hash', []],
    ['!bang', []],
    ['back\\slash', ['backslash']],
    ['trail ', ['trail']],
    [' lead', ['lead']],
    ['sp ace', []],
    ['caf\u00e9 \u{1F600}', []],
  ])('escapes %j so Git ignores exactly that name', (name, notIgnored) => {
    const d = tmp();
    execFileSync('git', ['init', '-q', d]);
    addGitignoreEntry(new Guard(d), name);
    expect(gitIgnores(d, name)).toBe(true);
    for (const other of [...notIgnored, 'unrelated']) expect(gitIgnores(d, other), other).toBe(false);
    // And remove finds the escaped line again.
    expect(removeGitignoreEntry(new Guard(d), name)).toBe('deleted');
    expect(fs.existsSync(path.join(d, '.gitignore'))).toBe(false);
  });

  it('anchors the line to its directory, so a same-named file deeper down is not ignored', () => {
    const d = tmp();
    execFileSync('git', ['init', '-q', d]);
    addGitignoreEntry(new Guard(d), 'data');
    expect(gitIgnores(d, 'data')).toBe(true);
    expect(gitIgnores(d, 'sub/data')).toBe(false);
  });
});

describe('removeGitignoreEntry', () => {
  it('deletes only its line, keeping everything else in order', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), '# comment\n/a\n/data\n/data.bak\n*.log\n');
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBe('edited');
    expect(read(d)).toBe('# comment\n/a\n/data.bak\n*.log\n');
  });

  it('deletes the .gitignore when nothing else is left', () => {
    const d = tmp();
    addGitignoreEntry(new Guard(d), 'data');
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBe('deleted');
    expect(fs.existsSync(path.join(d, '.gitignore'))).toBe(false);
  });

  it('deletes the .gitignore when only blank lines would be left', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), '\n/data\n\n');
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBe('deleted');
    expect(fs.existsSync(path.join(d, '.gitignore'))).toBe(false);
  });

  it('returns undefined and changes nothing when its line is absent', () => {
    const d = tmp();
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBeUndefined();
    expect(fs.existsSync(path.join(d, '.gitignore'))).toBe(false);
    fs.writeFileSync(path.join(d, '.gitignore'), 'data\n/data/\n');
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBeUndefined();
    expect(read(d)).toBe('data\n/data/\n');
  });

  it('leaves the CRLF line endings of the other lines alone', () => {
    const d = tmp();
    fs.writeFileSync(path.join(d, '.gitignore'), '*.log\r\n/data\r\n*.tmp\r\n');
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBe('edited');
    expect(read(d)).toBe('*.log\r\n*.tmp\r\n');
  });

  it('keeps the file mode of a .gitignore it rewrites', () => {
    const d = tmp();
    const f = path.join(d, '.gitignore');
    fs.writeFileSync(f, '*.log\n/data\n');
    fs.chmodSync(f, 0o600);
    expect(removeGitignoreEntry(new Guard(d), 'data')).toBe('edited');
    expect(read(d)).toBe('*.log\n');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600);
  });
});

describe('a .gitignore that is not a regular file', () => {
  it('is refused, never written through: a symlink to a file elsewhere keeps its content', () => {
    const d = tmp();
    const elsewhere = path.join(tmp(), 'victim');
    fs.writeFileSync(elsewhere, 'precious\n');
    fs.symlinkSync(elsewhere, path.join(d, '.gitignore'));
    expect(() => addGitignoreEntry(new Guard(d), 'data')).toThrow(/\.gitignore in the repository is a symlink/);
    expect(() => removeGitignoreEntry(new Guard(d), 'data')).toThrow(/symlink/);
    expect(fs.readFileSync(elsewhere, 'utf8')).toBe('precious\n');
    expect(fs.lstatSync(path.join(d, '.gitignore')).isSymbolicLink()).toBe(true);
  });

  it('lives beside the path it ignores, in a subdirectory too', () => {
    const d = tmp();
    fs.mkdirSync(path.join(d, 'out'));
    expect(addGitignoreEntry(new Guard(d), 'out/sales.csv')).toBe(true);
    expect(fs.readFileSync(path.join(d, 'out', '.gitignore'), 'utf8')).toBe('/sales.csv\n');
    expect(removeGitignoreEntry(new Guard(d), 'out/sales.csv')).toBe('deleted');
    expect(fs.existsSync(path.join(d, 'out', '.gitignore'))).toBe(false);
  });
});
