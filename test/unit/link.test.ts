import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { effectiveLinkTypes, isProtected, type LinkType, Linker, parseLinkTypes, unprotectFile } from '../../src/workspace/link.js';
import { ObjectStore } from '../../src/cache/store.js';
import { FormatError } from '../../src/errors.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();
/** Link mechanics as an ordinary user sees them (the tests may run as root, who gets copies by default). */
const AS_USER = { asRoot: false };

/** A store holding one object, and an empty workspace directory. */
function setup(content = 'cached bytes\n') {
  const base = tmp();
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
  const oid = store.addBufferSync(content);
  const ws = path.join(base, 'ws');
  fs.mkdirSync(ws);
  return { store, object: store.pathOf(oid), ws, content };
}

/** Linker.link returned `{ type, st }` in an earlier version and the type alone now; accept both. */
function typeOf(r: unknown): LinkType {
  return (typeof r === 'string' ? r : (r as { type: LinkType }).type) as LinkType;
}

const mode = (p: string) => fs.lstatSync(p).mode & 0o777;

describe('Linker', () => {
  it('copy gives an independent, writable copy: editing it leaves the object intact', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    expect(typeOf(new Linker(['copy']).link(object, dest))).toBe('copy');
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
    expect(fs.statSync(dest).ino).not.toBe(fs.statSync(object).ino);
    expect(mode(dest) & 0o200).toBe(0o200);
    expect(mode(dest) & 0o111).toBe(0);
    expect(mode(dest)).toBe(0o666 & ~process.umask());
    fs.appendFileSync(dest, 'edited');
    expect(fs.readFileSync(object, 'utf8')).toBe(content);
    expect(mode(object)).toBe(0o444);
  });

  it('hardlink shares the object inode and is read-only', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    expect(typeOf(new Linker(['hardlink'], AS_USER).link(object, dest))).toBe('hardlink');
    expect(fs.statSync(dest).ino).toBe(fs.statSync(object).ino);
    expect(fs.statSync(object).nlink).toBe(2);
    expect(mode(dest) & 0o222).toBe(0);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
  });

  it('symlink makes a symbolic link to the object', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    expect(typeOf(new Linker(['symlink'], AS_USER).link(object, dest))).toBe('symlink');
    expect(fs.lstatSync(dest).isSymbolicLink()).toBe(true);
    expect(path.resolve(ws, fs.readlinkSync(dest))).toBe(object);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
  });

  it('reflink,copy falls back to a real copy where reflinks are unsupported (ext4), and remembers it', () => {
    const { object, ws, content } = setup();
    const linker = new Linker(['reflink', 'copy']);
    const dest = path.join(ws, 'a.txt');
    const type = typeOf(linker.link(object, dest));
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
    expect(fs.statSync(dest).ino).not.toBe(fs.statSync(object).ino);
    expect(mode(dest) & 0o200).toBe(0o200);
    if (type === 'copy')
      expect(linker.current).toBe('copy'); // reflink failed once: not tried again
    else expect(type).toBe('reflink'); // a file system with reflinks (btrfs, xfs): still a separate inode
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
  });

  it('a lone reflink that is unsupported still materialises the file by copying', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    new Linker(['reflink']).link(object, dest);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
  });

  it('gives executables the exec bit under copy', () => {
    const { object, ws } = setup('#!/bin/sh\necho hi\n');
    const dest = path.join(ws, 'run.sh');
    new Linker(['copy']).link(object, dest, true);
    expect(mode(dest) & 0o100).toBe(0o100);
    expect(mode(dest)).toBe(0o777 & ~process.umask());
    expect(mode(object)).toBe(0o444);
  });

  it('copies executables even under hardlink or symlink, since the object cannot carry the exec bit', () => {
    for (const t of ['hardlink', 'symlink'] as const) {
      const { object, ws } = setup(`#!/bin/sh\necho ${t}\n`);
      const dest = path.join(ws, 'run.sh');
      expect(typeOf(new Linker([t], AS_USER).link(object, dest, true))).toBe('copy');
      expect(fs.lstatSync(dest).isFile()).toBe(true);
      expect(fs.statSync(dest).ino).not.toBe(fs.statSync(object).ino);
      expect(mode(dest) & 0o100).toBe(0o100);
    }
  });

  it('replaces an existing workspace file atomically, leaving no temp file', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    fs.writeFileSync(dest, 'old local content');
    new Linker(['copy']).link(object, dest);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
  });

  it('relinking a hard link that already points at the object leaves no temp file behind', () => {
    // rename(2) between two links of the same inode is a no-op that keeps the source name.
    const { object, ws } = setup();
    const dest = path.join(ws, 'a.txt');
    const linker = new Linker(['hardlink'], AS_USER);
    linker.link(object, dest);
    linker.link(object, dest);
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
    expect(fs.statSync(object).nlink).toBe(2);
  });

  it('relinking a symlink over an existing one leaves a single link', () => {
    const { object, ws } = setup();
    const dest = path.join(ws, 'a.txt');
    const linker = new Linker(['symlink'], AS_USER);
    linker.link(object, dest);
    linker.link(object, dest);
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
    expect(fs.lstatSync(dest).isSymbolicLink()).toBe(true);
  });

  it('reports a missing object instead of falling back', () => {
    const { ws } = setup();
    expect(() => new Linker(['hardlink', 'copy'], AS_USER).link(path.join(ws, 'no-such-object'), path.join(ws, 'x'))).toThrow(/ENOENT/);
    expect(fs.readdirSync(ws)).toEqual([]);
  });
});

describe('Linker as root (issue 11, class 5)', () => {
  it('leaves out hardlink and symlink for root, preferring reflink then copy, unless allowed', () => {
    const root = { asRoot: true };
    expect(effectiveLinkTypes(['hardlink'], root)).toEqual({ types: ['reflink', 'copy'], dropped: ['hardlink'] });
    expect(effectiveLinkTypes(['symlink', 'hardlink'], root)).toEqual({ types: ['reflink', 'copy'], dropped: ['symlink', 'hardlink'] });
    expect(effectiveLinkTypes(['reflink', 'hardlink', 'copy'], root)).toEqual({ types: ['reflink', 'copy'], dropped: ['hardlink'] });
    expect(effectiveLinkTypes(['reflink', 'copy'], root)).toEqual({ types: ['reflink', 'copy'], dropped: [] });
    expect(effectiveLinkTypes(['hardlink'], { asRoot: true, allowRootLinks: true })).toEqual({ types: ['hardlink'], dropped: [] });
    expect(effectiveLinkTypes(['hardlink'], AS_USER)).toEqual({ types: ['hardlink'], dropped: [] });
  });

  it('as root, a hardlink configuration makes an independent copy: a write to it cannot reach the object', () => {
    const { object, ws } = setup('precious\n');
    const dest = path.join(ws, 'a');
    const linker = new Linker(['hardlink'], { asRoot: true });
    expect(linker.droppedForRoot).toEqual(['hardlink']);
    expect(linker.link(object, dest)).toBe('copy'); // no reflink on this file system: copy
    fs.writeFileSync(dest, 'changed\n');
    expect(fs.readFileSync(object, 'utf8')).toBe('precious\n');
  });
});

describe('Linker and objects altered through a hard link (issue 11, class 5)', () => {
  it('refuses to link or copy an object that has other links and no longer hashes to its name', () => {
    const base = tmp();
    const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
    const oid = store.addBufferSync('original\n');
    const object = store.pathOf(oid);
    const ws = path.join(base, 'ws');
    fs.mkdirSync(ws);
    new Linker(['hardlink'], AS_USER).link(object, path.join(ws, 'a'));
    // Modified in place through the workspace link (root can; so can a writer that opened it before).
    fs.chmodSync(path.join(ws, 'a'), 0o644);
    fs.writeFileSync(path.join(ws, 'a'), 'altered!\n');
    for (const types of [['hardlink'], ['copy']] as LinkType[][]) {
      expect(() => new Linker(types, AS_USER).link(object, path.join(ws, 'b'))).toThrow(expect.objectContaining({ code: 'DAMAGED_OBJECT' }));
    }
    expect(fs.existsSync(path.join(ws, 'b'))).toBe(false);
  });

  it('links an intact object that is already linked elsewhere, and relinking a path that is that object is a no-op', () => {
    const base = tmp();
    const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
    const object = store.pathOf(store.addBufferSync('same\n'));
    const ws = path.join(base, 'ws');
    fs.mkdirSync(ws);
    const linker = new Linker(['hardlink'], AS_USER);
    linker.link(object, path.join(ws, 'a'));
    expect(linker.link(object, path.join(ws, 'b'))).toBe('hardlink');
    const ctime = fs.statSync(object, { bigint: true }).ctimeNs;
    expect(linker.link(object, path.join(ws, 'a'))).toBe('hardlink');
    expect(fs.statSync(object, { bigint: true }).ctimeNs).toBe(ctime);
    expect(fs.statSync(object).nlink).toBe(3);
  });
});

describe('unprotectFile', () => {
  it('turns a hard link to the cache into an independent writable copy', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    new Linker(['hardlink'], AS_USER).link(object, dest);
    expect(unprotectFile(dest)).toBe(true);
    expect(fs.statSync(dest).ino).not.toBe(fs.statSync(object).ino);
    expect(fs.statSync(object).nlink).toBe(1);
    expect(mode(dest) & 0o200).toBe(0o200);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
    fs.writeFileSync(dest, 'changed');
    expect(fs.readFileSync(object, 'utf8')).toBe(content);
    expect(fs.readdirSync(ws)).toEqual(['a.txt']);
  });

  it('turns a symlink to the cache into a regular writable file', () => {
    const { object, ws, content } = setup();
    const dest = path.join(ws, 'a.txt');
    new Linker(['symlink'], AS_USER).link(object, dest);
    expect(unprotectFile(dest)).toBe(true);
    expect(fs.lstatSync(dest).isFile()).toBe(true);
    expect(mode(dest) & 0o200).toBe(0o200);
    expect(fs.readFileSync(dest, 'utf8')).toBe(content);
  });

  it('leaves an ordinary writable file alone and says so', () => {
    const { object, ws } = setup();
    const dest = path.join(ws, 'a.txt');
    new Linker(['copy']).link(object, dest);
    const ino = fs.statSync(dest).ino;
    expect(unprotectFile(dest)).toBe(false);
    expect(fs.statSync(dest).ino).toBe(ino);
  });
});

describe('parseLinkTypes', () => {
  it('parses a comma-separated list, trimming spaces', () => {
    expect(parseLinkTypes('reflink, copy', 'cfg')).toEqual(['reflink', 'copy']);
    expect(parseLinkTypes('hardlink,symlink,copy', 'cfg')).toEqual(['hardlink', 'symlink', 'copy']);
  });

  it('rejects an unknown type, naming it, the source and the valid types', () => {
    const f = () => parseLinkTypes('reflink,softlink', '.tdv/config.yaml:3');
    expect(f).toThrow(FormatError);
    expect(f).toThrow(/\.tdv\/config\.yaml:3/);
    expect(f).toThrow(/"softlink"/);
    expect(f).toThrow(/reflink, copy, hardlink, symlink/);
  });

  it('rejects an empty list', () => {
    expect(() => parseLinkTypes(' , ', 'cfg')).toThrow(/empty/);
  });

  it('is case-sensitive about type names', () => {
    expect(() => parseLinkTypes('Copy', 'cfg')).toThrow(FormatError);
  });
});

describe('isProtected', () => {
  it('is true exactly for the types that share bytes with the cache', () => {
    expect(['reflink', 'copy', 'hardlink', 'symlink'].filter((t) => isProtected(t as LinkType))).toEqual(['hardlink', 'symlink']);
  });
});
