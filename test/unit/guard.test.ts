import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLegalRelPath, quotePath, relPathProblem } from '../../src/formats/paths.js';
import { parseIndex, readIndexPaths, TrackedPaths } from '../../src/git/index-file.js';
import { Guard, UnsafePathError } from '../../src/workspace/guard.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs('tdv-guard-');

/** Every file and symlink under `dir`, with its content or target: a picture of what changed. */
function survey(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (d: string, rel: string) => {
    for (const n of fs.readdirSync(d)) {
      const abs = path.join(d, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(abs);
      if (st.isSymbolicLink()) out[r] = `-> ${fs.readlinkSync(abs)}`;
      else if (st.isDirectory()) visit(abs, r);
      else out[r] = fs.readFileSync(abs, 'utf8');
    }
  };
  visit(dir, '');
  return out;
}

describe('relPathProblem: the one definition of a legal relative path', () => {
  it('accepts ordinary names, hidden files, odd but legal characters and a backslash (ordinary on POSIX)', () => {
    for (const p of ['a', 'a/b/c.csv', '.hidden', 'a/.b', '..foo', 'a/...', 'x y/z', 'back\\slash', 'ünïcode/日本', 'new\nline', 'data.tdv', 'a/.gitignore', '.gitx/y']) {
      expect(relPathProblem(p), p).toBeUndefined();
    }
  });

  it("refuses what could leave the root or name Git's and tdv's own files", () => {
    const bad: [unknown, RegExp][] = [
      ['', /empty/],
      ['/etc/passwd', /absolute/],
      ['a/../../b', /"\.\." component/],
      ['..', /"\.\." component/],
      ['./a', /"\." component/],
      ['a//b', /empty component/],
      ['a/', /empty component/],
      ['.git/hooks/pre-commit', /\.git/],
      ['data/sub/.git', /\.git/],
      ['data/.GIT/config', /\.git/],
      ['.tdv/config.yaml', /\.tdv/],
      ['a\0b', /NUL/],
      ['x'.repeat(4097), /longer than 4096/],
      [`${'é'.repeat(200)}/a`, /longer than 255 bytes/],
      ['a\ud800b', /Unicode/],
      [42, /not a string/],
    ];
    for (const [p, why] of bad) {
      expect(relPathProblem(p), String(p).slice(0, 40)).toMatch(why);
      expect(isLegalRelPath(p)).toBe(false);
    }
  });

  it('answers plain ASCII paths (its one-regex fast path) exactly as the full rules do', () => {
    // The full rules, restated without the fast path, on random paths of the characters that matter.
    const full = (p: string) =>
      p === '' || p.startsWith('/') || p.split('/').some((c) => c === '' || c === '.' || c === '..' || c.toLowerCase() === '.git' || c === '.tdv' || Buffer.byteLength(c) > 255) || p.length > 4096;
    const alphabet = ['a', 'Z', '0', '_', '-', '.', '/', 'git', 'GIT', 'tdv', '.git', '.tdv', '..'];
    let seed = 11;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let k = 0; k < 5000; k++) {
      let p = '';
      for (let n = rnd(12); n >= 0; n--) p += alphabet[rnd(alphabet.length)];
      expect(isLegalRelPath(p), JSON.stringify(p)).toBe(!full(p));
    }
    for (const p of ['a'.repeat(255), `${'a'.repeat(256)}`, `x/${'a'.repeat(256)}`, `${'a/'.repeat(2048)}a`]) expect(isLegalRelPath(p), `${p.length} chars`).toBe(!full(p));
  });

  it('quotePath escapes control characters, newlines, quotes and backslashes as git does, and leaves plain names alone', () => {
    expect(quotePath('data/a.csv')).toBe('data/a.csv');
    expect(quotePath('ünï')).toBe('ünï');
    expect(quotePath('a\nb')).toBe('"a\\nb"');
    expect(quotePath('a\x1b[31mred')).toBe('"a\\u001b[31mred"');
    expect(quotePath('q"b\\s')).toBe('"q\\"b\\\\s"');
    expect(quotePath('x\u2028y')).toBe('"x\\u2028y"');
  });
});

describe('Guard', () => {
  it('writes and removes inside the root, making real parent directories, leaving no temp file', () => {
    const root = tmp();
    const g = new Guard(root);
    g.writeFile('a/b/c.txt', 'hello');
    expect(fs.readFileSync(path.join(root, 'a/b/c.txt'), 'utf8')).toBe('hello');
    expect(fs.lstatSync(path.join(root, 'a/b')).isDirectory()).toBe(true);
    expect(survey(root)).toEqual({ 'a/b/c.txt': 'hello' });
    expect(g.remove('a')).toBe(true);
    expect(survey(root)).toEqual({});
    expect(g.remove('a')).toBe(false);
  });

  it('refuses illegal paths with one line naming the source and the path', () => {
    const root = tmp();
    const g = new Guard(root);
    for (const p of ['../x', '/etc/x', '.git/config', 'a/.tdv/x', 'a//b']) {
      expect(() => g.writeFile(p, 'x', { source: 'data.tdv' }), p).toThrow(UnsafePathError);
      expect(() => g.remove(p, 'data.tdv'), p).toThrow(/^data\.tdv: /);
    }
    expect(survey(root)).toEqual({});
  });

  it('never writes, deletes, chmods or reads through a symlinked directory on the path', () => {
    const root = tmp();
    const outside = tmp();
    fs.writeFileSync(path.join(outside, 'victim'), 'precious');
    fs.symlinkSync(outside, path.join(root, 'link'));
    fs.mkdirSync(path.join(root, 'real'));
    fs.symlinkSync(outside, path.join(root, 'real', 'deeper'));
    const g = new Guard(root);
    for (const p of ['link/victim', 'link/new', 'real/deeper/victim', 'real/deeper/x/y']) {
      expect(() => g.writeFile(p, 'pwned'), p).toThrow(/goes through the symlink/);
      expect(() => g.remove(p), p).toThrow(/goes through the symlink/);
      expect(() => g.chmod(p, 0o777), p).toThrow(/goes through the symlink/);
      expect(() => g.readFile(p), p).toThrow(/goes through the symlink/);
      expect(() => g.mkdirp(p), p).toThrow(/goes through the symlink/);
    }
    expect(survey(outside)).toEqual({ victim: 'precious' });
  });

  it('replaces a symlink at the path itself instead of writing through it, and removes the link, not its target', () => {
    const root = tmp();
    const outside = tmp();
    fs.writeFileSync(path.join(outside, 'victim'), 'precious');
    fs.symlinkSync(path.join(outside, 'victim'), path.join(root, 'file'));
    fs.symlinkSync(outside, path.join(root, 'dirlink'));
    const g = new Guard(root);
    g.writeFile('file', 'mine');
    expect(fs.lstatSync(path.join(root, 'file')).isFile()).toBe(true);
    g.remove('dirlink');
    expect(fs.existsSync(path.join(root, 'dirlink'))).toBe(false);
    expect(survey(outside)).toEqual({ victim: 'precious' });
  });

  it('refuses to read a symlink named by a file, and a FIFO does not hang the read', () => {
    const root = tmp();
    fs.writeFileSync(path.join(root, 'real.json'), '{}');
    fs.symlinkSync('/etc/passwd', path.join(root, 'metrics.json'));
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    const g = new Guard(root);
    expect(g.readText('real.json')).toBe('{}');
    expect(() => g.readText('metrics.json', { source: 'tdv.yaml:3:5' })).toThrow(/^tdv\.yaml:3:5: metrics\.json is a symlink/);
    expect(() => g.readText('fifo')).toThrow(/not a regular file/);
    expect(g.readText('absent.json')).toBeUndefined();
  });

  it('writes control files only as regular files: a symlink there is refused, not followed or replaced', () => {
    const root = tmp();
    const outside = tmp();
    fs.writeFileSync(path.join(outside, 'target'), 'x');
    fs.symlinkSync(path.join(outside, 'target'), path.join(root, '.gitignore'));
    const g = new Guard(root);
    expect(() => g.writeControlFile('.gitignore', '/data\n')).toThrow(/\.gitignore in the repository is a symlink/);
    expect(() => g.readControlFile('.gitignore')).toThrow(/symlink/);
    expect(fs.lstatSync(path.join(root, '.gitignore')).isSymbolicLink()).toBe(true);
    expect(survey(outside)).toEqual({ target: 'x' });
    g.writeControlFile('sub/.gitignore', '/a\n');
    expect(g.readControlFile('sub/.gitignore')).toBe('/a\n');
  });

  it('never chmods a file with other hard links (they belong to someone else)', () => {
    const root = tmp();
    const outside = tmp();
    fs.writeFileSync(path.join(outside, 'shared'), 'x', { mode: 0o600 });
    fs.linkSync(path.join(outside, 'shared'), path.join(root, 'f'));
    const g = new Guard(root);
    expect(() => g.chmod('f', 0o777)).toThrow(/2 hard links/);
    expect(fs.statSync(path.join(outside, 'shared')).mode & 0o777).toBe(0o600);
  });

  it('refuses writes and deletes the owner protects, with its reason, including a directory holding a protected file', () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'src'));
    fs.writeFileSync(path.join(root, 'src', 'main.py'), 'code');
    const tracked = new TrackedPaths(['src/main.py']);
    const g = new Guard(root, { protect: (rel, dir) => (tracked.has(rel) ? 'it is tracked by Git' : dir && tracked.firstUnder(rel) ? 'it holds Git-tracked files' : undefined) });
    expect(() => g.writeFile('src/main.py', 'x')).toThrow(/will not overwrite src\/main\.py: it is tracked by Git/);
    expect(() => g.remove('src')).toThrow(/will not delete src: it holds Git-tracked files/);
    expect(fs.readFileSync(path.join(root, 'src', 'main.py'), 'utf8')).toBe('code');
    g.writeFile('src/other.py', 'ok');
  });

  it('notices a directory replaced by a symlink after it removed it itself', () => {
    const root = tmp();
    const outside = tmp();
    const g = new Guard(root);
    g.writeFile('d/a', '1');
    g.remove('d');
    fs.symlinkSync(outside, path.join(root, 'd'));
    expect(() => g.writeFile('d/a', '2')).toThrow(/symlink/);
    expect(survey(outside)).toEqual({});
  });
});

describe('Git index reader', () => {
  it('lists the paths git ls-files lists, for index versions 2, 3 and 4', () => {
    const root = tmp();
    execFileSync('git', ['init', '-q', root]);
    const names = ['a.txt', 'dir/b.txt', 'dir/sub/c d.txt', 'ünï/x', `${'long'.repeat(30)}/y`, 'dir/sub/c e.txt'];
    for (const n of names) {
      fs.mkdirSync(path.dirname(path.join(root, n)), { recursive: true });
      fs.writeFileSync(path.join(root, n), n);
    }
    execFileSync('git', ['-C', root, 'add', '.']);
    const want = execFileSync('git', ['-C', root, '-c', 'core.quotepath=false', 'ls-files', '-z'], { encoding: 'utf8' }).split('\0').filter(Boolean).sort();
    for (const v of ['2', '3', '4']) {
      execFileSync('git', ['-C', root, 'update-index', '--index-version', v]);
      expect(readIndexPaths(path.join(root, '.git')).sort(), `index v${v}`).toEqual(want);
    }
    expect(readIndexPaths(path.join(root, 'no-such-gitdir'))).toEqual([]);
    // A damaged index (its checksum no longer matches) is never parsed into names.
    const idx = fs.readFileSync(path.join(root, '.git', 'index'));
    idx[20] = idx[20]! ^ 0xff;
    expect(parseIndex(idx, 20)).toBeUndefined();
    expect(parseIndex(Buffer.from('not an index'), 20)).toBeUndefined();
  });

  it("reads a SHA-256 repository's index, also from a linked worktree (its config is in the common dir) (review F2)", () => {
    const root = tmp();
    execFileSync('git', ['init', '-q', '--object-format=sha256', path.join(root, 'main')]);
    const main = path.join(root, 'main');
    fs.writeFileSync(path.join(main, 'code.py'), 'print(1)\n');
    execFileSync('git', ['-C', main, 'add', '.']);
    execFileSync('git', ['-C', main, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'init']);
    execFileSync('git', ['-C', main, 'worktree', 'add', '-q', path.join(root, 'wt')]);
    expect(readIndexPaths(path.join(main, '.git'))).toEqual(['code.py']);
    expect(readIndexPaths(path.join(main, '.git', 'worktrees', 'wt'))).toEqual(['code.py']);
    // Parsed with the wrong id length, the checksum does not match: no garbage names.
    expect(parseIndex(fs.readFileSync(path.join(main, '.git', 'index')), 20)).toBeUndefined();
  });

  it('TrackedPaths answers for a file and for anything below a directory', () => {
    const t = new TrackedPaths(['a/b/c', 'a/bc', 'z']);
    expect(t.has('z')).toBe(true);
    expect(t.firstUnder('a/b')).toBe('a/b/c');
    expect(t.firstUnder('a')).toBe('a/b/c');
    expect(t.firstUnder('a/bc')).toBe('a/bc');
    expect(t.firstUnder('a/b/c/d')).toBeUndefined();
    expect(t.firstUnder('y')).toBeUndefined();
  });
});

describe('Guard.move (tdv mv)', () => {
  it("renames a file or a tree, making the destination's parents", () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'd/sub'), { recursive: true });
    fs.writeFileSync(path.join(root, 'd/sub/x'), 'X');
    fs.writeFileSync(path.join(root, 'f'), 'F');
    const g = new Guard(root);
    g.move('d', 'new/place/d2');
    g.move('f', 'new/f');
    expect(survey(root)).toEqual({ 'new/place/d2/sub/x': 'X', 'new/f': 'F' });
  });

  it('never replaces what is at the destination, never goes through a symlink, never moves what is protected', () => {
    const root = tmp();
    const outside = tmp();
    fs.writeFileSync(path.join(root, 'a'), 'A');
    fs.writeFileSync(path.join(root, 'b'), 'B');
    fs.mkdirSync(path.join(root, 'empty'));
    fs.symlinkSync(outside, path.join(root, 'link'));
    fs.mkdirSync(path.join(root, 'kept'));
    fs.writeFileSync(path.join(root, 'kept/code.py'), 'code');
    const g = new Guard(root, { protect: (rel) => (rel === 'kept' || rel.startsWith('kept/') ? 'it is tracked by Git' : undefined) });
    const before = survey(root);
    expect(() => g.move('a', 'b')).toThrow(/b exists; tdv will not replace it/);
    expect(() => g.move('a', 'empty')).toThrow(/empty exists/);
    expect(() => g.move('a', 'link/a')).toThrow(UnsafePathError);
    expect(() => g.move('link/x', 'c')).toThrow(UnsafePathError);
    expect(() => g.move('kept', 'moved')).toThrow(/kept: it is tracked by Git/);
    expect(survey(root)).toEqual(before);
    expect(fs.readdirSync(outside)).toEqual([]);
  });
});
