import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ObjectStore } from '../../src/cache/store.js';
import { walkFingerprint } from '../../src/cache/statcache.js';
import { entryPath, fingerprintWalk, objectLinkOid, walkDir } from '../../src/cache/walk.js';
import { siblingTmp } from '../../src/util/fs.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

function put(root: string, rel: string, content = rel): string {
  const p = path.join(root, ...rel.split('/'));
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

const rels = (entries: { rel: string }[]) => entries.map((e) => e.rel).sort();

describe('walkDir', () => {
  it('lists regular files recursively with POSIX relative paths and their lstat', () => {
    const d = tmp();
    put(d, 'a.csv', '12345');
    put(d, 'sub/b.csv');
    put(d, 'sub/deeper/c.bin');
    fs.mkdirSync(path.join(d, 'empty'));
    const w = walkDir(d);
    expect(rels(w)).toEqual(['a.csv', 'sub/b.csv', 'sub/deeper/c.bin']);
    const a = w.find((e) => e.rel === 'a.csv')!;
    expect(entryPath(d, a.rel)).toBe(path.join(d, 'a.csv'));
    expect(a.size).toBe(5);
    expect(a.ino).toBe(fs.lstatSync(path.join(d, 'a.csv')).ino);
    expect(a.linkOid).toBeUndefined();
  });

  it('skips .git directories at any depth, and says so', () => {
    const d = tmp();
    put(d, '.git/HEAD');
    put(d, 'sub/.git/config');
    put(d, 'keep');
    put(d, '.gitignore');
    const skipped: [string, string][] = [];
    expect(rels(walkDir(d, { onSkip: (a, r) => skipped.push([a, r]) }))).toEqual(['.gitignore', 'keep']);
    expect(skipped.map(([a]) => a).sort()).toEqual([path.join(d, '.git'), path.join(d, 'sub', '.git')]);
    expect(skipped[0]![1]).toMatch(/^Git's own directory \(a nested repository\), which tdv never records/);
  });

  it("skips and reports a submodule's .git file, .git in any letter case and .tdv: names no manifest may hold", () => {
    const d = tmp();
    put(d, 'mod/.git', 'gitdir: ../../.git/modules/mod\n');
    put(d, 'mod/file.csv');
    put(d, 'up/.GIT/config');
    put(d, 'x/.Git');
    put(d, 'own/.tdv/config.yaml');
    put(d, 'own/.tdv2');
    put(d, '.tdvignore');
    const skipped: [string, string][] = [];
    const w = walkDir(d, { onSkip: (a, r) => skipped.push([path.relative(d, a), r]) });
    expect(rels(w)).toEqual(['.tdvignore', 'mod/file.csv', 'own/.tdv2']);
    expect(skipped.sort()).toEqual([
      ['mod/.git', expect.stringMatching(/^Git's own file \(a submodule's link to its repository\)/)],
      ['own/.tdv', expect.stringMatching(/^tdv's own name/)],
      ['up/.GIT', expect.stringMatching(/^Git's own directory/)],
      ['x/.Git', expect.stringMatching(/^Git's own file/)],
    ]);
    // Listed in .tdvignore (the `ignored` option): skipped without a word.
    const quiet: string[] = [];
    walkDir(d, { ignored: (rel) => rel.endsWith('.git') || rel.endsWith('.GIT') || rel.endsWith('.Git') || rel.endsWith('.tdv'), onSkip: (a) => quiet.push(a) });
    expect(quiet).toEqual([]);
    // fingerprintWalk walks the same way.
    expect(fingerprintWalk(d).nfiles).toBe(3);
    expect(fingerprintWalk(d).entries()).toEqual(walkDir(d));
  });

  it('keeps a backslash in a name: on POSIX it is an ordinary character', () => {
    const d = tmp();
    put(d, 'a\\b.csv');
    put(d, 'dir\\x/c.csv');
    expect(rels(walkDir(d))).toEqual(['a\\b.csv', 'dir\\x/c.csv']);
  });

  it("skips tdv's own temp files but not files that merely look similar", () => {
    const d = tmp();
    put(d, 'data.csv');
    put(d, '.x.tdvtmp.123.abcdef12');
    put(d, 'sub/.data.csv.tdvtmp.4567.0011aabb');
    fs.writeFileSync(siblingTmp(path.join(d, 'real.csv')), 'half-written');
    put(d, 'notes.tdvtmp');
    put(d, '.x.tdvtmp.123.ABCDEF12');
    put(d, '.x.tdvtmp.abc.abcdef12');
    expect(rels(walkDir(d))).toEqual(['.x.tdvtmp.123.ABCDEF12', '.x.tdvtmp.abc.abcdef12', 'data.csv', 'notes.tdvtmp']);
  });

  it('leaves out what the ignored callback rejects, pruning ignored directories', () => {
    const d = tmp();
    put(d, 'keep.csv');
    put(d, 'skip.log');
    put(d, 'cache/x');
    put(d, 'cache/y/z');
    put(d, 'sub/skip.log');
    const calls: [string, boolean][] = [];
    const w = walkDir(d, {
      ignored: (rel, isDir) => {
        calls.push([rel, isDir]);
        return rel.endsWith('.log') || (isDir && rel === 'cache');
      },
    });
    expect(rels(w)).toEqual(['keep.csv']);
    expect(calls).toContainEqual(['cache', true]);
    expect(calls).toContainEqual(['sub/skip.log', false]);
    expect(calls).toContainEqual(['sub', true]);
    // Nothing below an ignored directory is even looked at.
    expect(calls.some(([r]) => r.startsWith('cache/'))).toBe(false);
  });

  it('reports a symlink that does not point into the cache through onSkip and leaves it out', () => {
    const d = tmp();
    const outside = put(tmp(), 'secret', 'outside data');
    put(d, 'real');
    fs.symlinkSync(outside, path.join(d, 'link-out'));
    fs.symlinkSync('real', path.join(d, 'link-in'));
    fs.symlinkSync('missing', path.join(d, 'dangling'));
    const skipped: [string, string][] = [];
    const objectsDir = path.join(tmp(), 'files', 'sha256');
    const w = walkDir(d, { objectsDir, onSkip: (abs, reason) => skipped.push([abs, reason]) });
    expect(rels(w)).toEqual(['real']);
    expect(skipped.map(([a]) => a).sort()).toEqual([path.join(d, 'dangling'), path.join(d, 'link-in'), path.join(d, 'link-out')]);
    expect(skipped[0]![1]).toMatch(/symlink/);
  });

  it('does not follow a symlinked directory', () => {
    const d = tmp();
    const other = tmp();
    put(other, 'inner.csv');
    fs.symlinkSync(other, path.join(d, 'linkdir'));
    const skipped: string[] = [];
    expect(walkDir(d, { onSkip: (abs) => skipped.push(abs) })).toEqual([]);
    expect(skipped).toEqual([path.join(d, 'linkdir')]);
  });

  it('includes a symlink into the objects directory, with the object id', () => {
    const base = tmp();
    const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
    const oid = store.addBufferSync('object content');
    const d = path.join(base, 'ws');
    fs.mkdirSync(d);
    fs.symlinkSync(store.pathOf(oid), path.join(d, 'abs-link'));
    fs.symlinkSync(path.relative(d, store.pathOf(oid)), path.join(d, 'rel-link'));
    const skipped: string[] = [];
    const w = walkDir(d, { objectsDir: path.join(store.root, 'files', 'sha256'), onSkip: (a) => skipped.push(a) });
    expect(rels(w)).toEqual(['abs-link', 'rel-link']);
    for (const e of w) {
      expect(e.linkOid).toBe(oid);
      expect(fs.lstatSync(entryPath(d, e.rel)).isSymbolicLink()).toBe(true);
    }
    expect(skipped).toEqual([]);
    fs.writeFileSync(path.join(d, 'plain'), 'x');
    const objectsDir = path.join(store.root, 'files', 'sha256');
    expect(fingerprintWalk(d, { objectsDir }).entries()).toEqual(walkDir(d, { objectsDir }));
  });

  it('does not treat a symlink to a missing object or to a non-object name in the cache as a tdv link', () => {
    const base = tmp();
    const objectsDir = path.join(base, 'cache', 'files', 'sha256');
    const missing = path.join(objectsDir, 'ab', 'c'.repeat(62));
    const junk = put(objectsDir, 'ab/not-an-object');
    const d = path.join(base, 'ws');
    fs.mkdirSync(d);
    fs.symlinkSync(missing, path.join(d, 'gone'));
    fs.symlinkSync(junk, path.join(d, 'junk'));
    const skipped: string[] = [];
    expect(walkDir(d, { objectsDir, onSkip: (a) => skipped.push(a) })).toEqual([]);
    expect(skipped.sort()).toEqual([path.join(d, 'gone'), path.join(d, 'junk')]);
    expect(objectLinkOid(path.join(d, 'gone'), objectsDir)).toBeUndefined();
    expect(objectLinkOid(path.join(d, 'junk'), objectsDir)).toBeUndefined();
    expect(objectLinkOid(path.join(d, 'junk'), undefined)).toBeUndefined();
  });

  it('reports a FIFO as not a regular file', () => {
    const d = tmp();
    execFileSync('mkfifo', [path.join(d, 'pipe')]);
    put(d, 'f');
    const skipped: [string, string][] = [];
    expect(rels(walkDir(d, { onSkip: (a, r) => skipped.push([a, r]) }))).toEqual(['f']);
    expect(skipped).toEqual([[path.join(d, 'pipe'), 'not a regular file']]);
  });
});

describe('walkDir stat values', () => {
  it('match fs.lstatSync exactly for every entry (the fast path reads Node internals, so prove it)', async () => {
    const { default: os } = await import('node:os');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-walk-'));
    try {
      for (let i = 0; i < 50; i++) {
        const f = path.join(dir, `d${i % 5}`, `f${i}`);
        fs.mkdirSync(path.dirname(f), { recursive: true });
        fs.writeFileSync(f, 'x'.repeat(i * 37));
        if (i % 7 === 0) fs.chmodSync(f, 0o755);
        fs.utimesSync(f, new Date(1_700_000_000_123 + i), new Date(1_700_000_000_000 + i * 1_001.5));
      }
      const { walkDir } = await import('../../src/cache/walk.js');
      const entries = walkDir(dir);
      expect(entries).toHaveLength(50);
      for (const e of entries) {
        const st = fs.lstatSync(path.join(dir, e.rel));
        expect({ ino: e.ino, size: e.size, mode: e.mode, mtimeMs: e.mtimeMs, ctimeMs: e.ctimeMs }).toEqual({ ino: st.ino, size: st.size, mode: st.mode, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fingerprintWalk', () => {
  it('equals the fingerprint of the walk walkDir returns, with the same options, sees a touched file, and gives the same entries', () => {
    const d = tmp();
    for (let i = 0; i < 300; i++) put(d, `p${i % 7}/f${i}.bin`, 'x'.repeat(i));
    put(d, 'skip/me.tmp');
    fs.symlinkSync('/etc/hostname', path.join(d, 'outside'));
    fs.chmodSync(path.join(d, 'p1/f1.bin'), 0o755);
    const opts = { ignored: (rel: string) => rel.startsWith('skip') };
    const walk = walkDir(d, opts);
    const f = fingerprintWalk(d, opts);
    expect(walk).toHaveLength(300);
    expect({ fp: f.fp, newestMs: f.newestMs, nfiles: f.nfiles }).toEqual({ ...walkFingerprint(walk), nfiles: 300 });
    expect(f.entries()).toEqual(walk);
    // A file rewritten with its size kept: only its times differ.
    fs.utimesSync(path.join(d, 'p3/f3.bin'), new Date(1_600_000_000_000), new Date(1_600_000_000_000));
    const g = fingerprintWalk(d, opts);
    expect(g.fp).not.toBe(f.fp);
    expect(g.fp).toBe(walkFingerprint(walkDir(d, opts)).fp);
    expect(g.entries()).toEqual(walkDir(d, opts));
  });
});
