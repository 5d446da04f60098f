import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { decodeUtf8, isInside, lstatOrUndefined, readFileOrUndefined, readTextOrUndefined, siblingTmp, tmpSuffix, toPosix } from '../../src/util/fs.js';
import { pruneEmptyDirs, rmQuiet, writeFileAtomicSync } from '../../src/workspace/raw.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

describe('writeFileAtomicSync', () => {
  it('writes the content with the given mode and leaves no temp file', () => {
    const d = tmp();
    const f = path.join(d, 'x.txt');
    writeFileAtomicSync(f, 'one', 0o600);
    expect(fs.readFileSync(f, 'utf8')).toBe('one');
    expect(fs.statSync(f).mode & 0o777).toBe(0o600 & ~process.umask());
    expect(fs.readdirSync(d)).toEqual(['x.txt']);
  });

  it('replaces an existing file by rename (new inode), so readers never see a prefix', () => {
    const d = tmp();
    const f = path.join(d, 'x.txt');
    fs.writeFileSync(f, 'old content that is long');
    const ino = fs.statSync(f).ino;
    writeFileAtomicSync(f, 'new');
    expect(fs.readFileSync(f, 'utf8')).toBe('new');
    expect(fs.statSync(f).ino).not.toBe(ino);
    expect(fs.readdirSync(d)).toEqual(['x.txt']);
  });

  it('fails without leaving a temp file when the target is a directory', () => {
    const d = tmp();
    fs.mkdirSync(path.join(d, 'dir'));
    expect(() => writeFileAtomicSync(path.join(d, 'dir'), 'x')).toThrow();
    expect(fs.readdirSync(d)).toEqual(['dir']);
  });
});

describe('temp names', () => {
  it('are unique, hidden siblings recognisable as tdv temp files, short whatever the name', () => {
    expect(path.basename(siblingTmp(`/repo/${'a'.repeat(250)}`)).length).toBeLessThan(40);
    const names = new Set(Array.from({ length: 1000 }, () => siblingTmp('/repo/data/file.csv')));
    expect(names.size).toBe(1000);
    for (const n of names) {
      expect(path.dirname(n)).toBe('/repo/data');
      expect(path.basename(n)).toMatch(/^\.tdvtmp\.\d+\.[0-9a-f]{8,}$/);
    }
    expect(tmpSuffix()).toMatch(new RegExp(`^${process.pid}\\.[0-9a-f]+$`));
  });
});

describe('isInside', () => {
  it('is true for the directory itself and anything below it', () => {
    expect(isInside('/repo', '/repo')).toBe(true);
    expect(isInside('/repo', '/repo/a')).toBe(true);
    expect(isInside('/repo', '/repo/a/b/c')).toBe(true);
  });

  it('is false for siblings with a common prefix, parents and other trees', () => {
    expect(isInside('/repo', '/repository')).toBe(false);
    expect(isInside('/repo', '/')).toBe(false);
    expect(isInside('/repo', '/other/repo')).toBe(false);
    expect(isInside('/repo/a', '/repo/b')).toBe(false);
  });

  it('is true for an entry whose name starts with two dots', () => {
    expect(isInside('/repo', '/repo/..data')).toBe(true);
    expect(isInside('/repo', '/repo/...')).toBe(true);
  });
});

describe('pruneEmptyDirs', () => {
  it('removes empty directories up to, but not including, the stop directory', () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'a', 'b', 'c'), { recursive: true });
    pruneEmptyDirs(path.join(root, 'a', 'b', 'c'), root);
    expect(fs.existsSync(path.join(root, 'a'))).toBe(false);
    expect(fs.existsSync(root)).toBe(true);
  });

  it('stops at the first directory that still has content', () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, 'a', 'b', 'c'), { recursive: true });
    fs.writeFileSync(path.join(root, 'a', 'keep'), '');
    pruneEmptyDirs(path.join(root, 'a', 'b', 'c'), root);
    expect(fs.existsSync(path.join(root, 'a', 'b'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'a', 'keep'))).toBe(true);
  });

  it('never touches directories outside the stop directory', () => {
    const base = tmp();
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    pruneEmptyDirs(outside, path.join(base, 'root'));
    expect(fs.existsSync(outside)).toBe(true);
  });
});

describe('small helpers', () => {
  it('readTextOrUndefined and lstatOrUndefined return undefined for missing paths, also below a file', () => {
    const d = tmp();
    const f = path.join(d, 'f');
    fs.writeFileSync(f, 'text');
    expect(readTextOrUndefined(f)).toBe('text');
    expect(readTextOrUndefined(path.join(d, 'missing'))).toBeUndefined();
    expect(readTextOrUndefined(path.join(f, 'below'))).toBeUndefined();
    expect(lstatOrUndefined(path.join(d, 'missing'))).toBeUndefined();
    expect(lstatOrUndefined(f)?.isFile()).toBe(true);
    expect(() => readTextOrUndefined(d)).toThrow(/is a directory, not a regular file/);
  });

  it('rmQuiet removes a file and ignores a missing one', () => {
    const d = tmp();
    const f = path.join(d, 'f');
    fs.writeFileSync(f, '');
    rmQuiet(f);
    expect(fs.existsSync(f)).toBe(false);
    expect(() => rmQuiet(f)).not.toThrow();
  });

  it('toPosix keeps POSIX paths as they are', () => {
    expect(toPosix('a/b/c')).toBe('a/b/c');
  });
});

describe('readFileOrUndefined: files tdv parses', () => {
  it('refuses a FIFO without blocking, and a file over the limit before reading it, naming each', () => {
    const d = tmp();
    execFileSync('mkfifo', [path.join(d, 'pipe')]);
    expect(() => readFileOrUndefined(path.join(d, 'pipe'), 100, 'tdv.yaml')).toThrow(/^tdv\.yaml is a FIFO \(named pipe\), not a regular file/);
    fs.writeFileSync(path.join(d, 'big'), '');
    fs.truncateSync(path.join(d, 'big'), 3 * 2 ** 20);
    expect(() => readFileOrUndefined(path.join(d, 'big'), 2 ** 20, 'x.tdv', 'a pointer file')).toThrow(/^x\.tdv is 3 MiB, more than the 1 MiB tdv reads for a pointer file/);
    fs.writeFileSync(path.join(d, 'ok'), 'fine');
    expect(readFileOrUndefined(path.join(d, 'ok'), 4)?.toString()).toBe('fine');
    expect(readFileOrUndefined(path.join(d, 'missing'), 4)).toBeUndefined();
  });

  it('decodeUtf8 refuses bytes that are not UTF-8, naming the file', () => {
    expect(decodeUtf8(Buffer.from('caf\u00e9'), 'a.tdv')).toBe('caf\u00e9');
    expect(() => decodeUtf8(Buffer.from([0x63, 0xe9]), 'a.tdv', 'Fix it')).toThrow(/^a\.tdv: is not valid UTF-8\. Fix it$/);
  });
});
