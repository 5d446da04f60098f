import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { read, tdv, write } from '../helpers/repo.js';
import { dirPointer, expectOneLineError, filePointer, manifest, newRepo, objPath, sha } from '../helpers/expect.js';

/**
 * The driver on its own, as Git calls it: three temp files (base, ours,
 * theirs) and the pointer's path; the result is written over ours.
 */

type Files = Record<string, string>;
const spec = (files: Files) => Object.entries(files).map(([relpath, content]) => ({ relpath, content }));

/** A repo whose cache holds the manifests (and files) of each version, by `tdv add` of each in turn. */
async function repoWithVersions(...versions: Files[]): Promise<string> {
  const dir = await newRepo();
  for (const v of versions) {
    fs.rmSync(path.join(dir, 'data'), { recursive: true, force: true });
    for (const [f, c] of Object.entries(v)) write(dir, `data/${f}`, c);
    const r = await tdv(dir, 'add', 'data');
    expect(r.code, r.stderr).toBe(0);
  }
  return dir;
}

async function drive(dir: string, base: string, ours: string, theirs: string, name = 'data.tdv') {
  write(dir, '.merge_base', base);
  write(dir, '.merge_ours', ours);
  write(dir, '.merge_theirs', theirs);
  const r = await tdv(dir, 'merge-driver', '.merge_base', '.merge_ours', '.merge_theirs', name);
  return { ...r, result: read(dir, '.merge_ours') };
}

describe('tdv merge-driver', () => {
  it('merges two branches that changed different files of a directory, and writes the merged manifest to the cache', async () => {
    const base: Files = { 'a.csv': 'a', 'b.csv': 'b', 'c.csv': 'c' };
    const ours: Files = { 'a.csv': 'a-ours', 'b.csv': 'b', 'c.csv': 'c', 'new-ours.csv': 'n1' };
    const theirs: Files = { 'a.csv': 'a', 'b.csv': 'b-theirs', 'new-theirs.csv': 'n2' }; // c.csv deleted
    const dir = await repoWithVersions(base, ours, theirs);
    const r = await drive(dir, dirPointer('data', spec(base)), dirPointer('data', spec(ours)), dirPointer('data', spec(theirs)));
    expect(r.code, r.stderr).toBe(0);
    const merged: Files = { 'a.csv': 'a-ours', 'b.csv': 'b-theirs', 'new-ours.csv': 'n1', 'new-theirs.csv': 'n2' };
    expect(r.result).toBe(dirPointer('data', spec(merged)));
    const m = manifest(spec(merged));
    expect(fs.readFileSync(objPath(dir, m.oid), 'utf8')).toBe(m.text);
    expect(r.stdout).toContain('tdv: merged data file by file');
  });

  it('the same change on both sides is no conflict', async () => {
    const base: Files = { 'a.csv': 'a' };
    const both: Files = { 'a.csv': 'a2', 'x.csv': 'x' };
    const ours: Files = { ...both, 'o.csv': 'o' };
    const theirs: Files = { ...both, 't.csv': 't' };
    const dir = await repoWithVersions(base, ours, theirs);
    const r = await drive(dir, dirPointer('data', spec(base)), dirPointer('data', spec(ours)), dirPointer('data', spec(theirs)));
    expect(r.code, r.stderr).toBe(0);
    expect(r.result).toBe(dirPointer('data', spec({ ...both, 'o.csv': 'o', 't.csv': 't' })));
  });

  it('a file changed differently on both sides is a conflict naming it; ours then holds both versions between markers', async () => {
    const base: Files = { 'a.csv': 'a', 'b.csv': 'b', 'c.csv': 'c' };
    const ours: Files = { 'a.csv': 'a-ours', 'b.csv': 'b', 'c.csv': 'c2' };
    const theirs: Files = { 'a.csv': 'a-theirs', 'b.csv': 'b2' }; // c.csv deleted while ours changed it
    const dir = await repoWithVersions(base, ours, theirs);
    const before = fs.readdirSync(path.join(dir, '.tdv/cache/files/sha256')).length;
    const r = await drive(dir, dirPointer('data', spec(base)), dirPointer('data', spec(ours)), dirPointer('data', spec(theirs)));
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data.tdv: changed differently on both sides: data/a.csv, data/c.csv', 'git checkout --ours data.tdv');
    expect(r.result).toBe(`<<<<<<< ours\n${dirPointer('data', spec(ours))}=======\n${dirPointer('data', spec(theirs))}>>>>>>> theirs\n`);
    expect(fs.readdirSync(path.join(dir, '.tdv/cache/files/sha256')).length).toBe(before);
  });

  it('a single file: one side unchanged takes the other; changed on both sides is a conflict', async () => {
    const dir = await newRepo();
    const v = (c: string) => filePointer('model.bin', c);
    const r1 = await drive(dir, v('m0'), v('m0'), v('m-theirs'), 'model.bin.tdv');
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.result).toBe(v('m-theirs'));
    const r2 = await drive(dir, v('m0'), v('m-ours'), v('m0'), 'model.bin.tdv');
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.result).toBe(v('m-ours'));
    const r3 = await drive(dir, v('m0'), v('m-ours'), v('m-theirs'), 'model.bin.tdv');
    expect(r3.code).toBe(1);
    expectOneLineError(r3.stderr, 'model.bin.tdv: changed differently on both sides: model.bin');
  });

  it('an imported directory: the side that moved the import (tdv update) wins whole, never merged file by file; moved on both sides is a conflict', async () => {
    const v1: Files = { 'a.csv': 'a', 'b.csv': 'b' };
    const v2: Files = { 'a.csv': 'a2', 'b.csv': 'b' };
    const v3: Files = { 'a.csv': 'a', 'b.csv': 'b3' };
    const dir = await repoWithVersions(v1, v2, v3);
    const imported = (files: Files, commit: string) => `import:\n  url: "file:///src"\n  path: "images"\n  commit: ${commit.repeat(40)}\n${dirPointer('data', spec(files))}`;
    // Theirs updated the import, ours left it: theirs' pointer, record and all.
    const r1 = await drive(dir, imported(v1, 'a'), imported(v1, 'a'), imported(v2, 'b'));
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.result).toBe(imported(v2, 'b'));
    const r2 = await drive(dir, imported(v1, 'a'), imported(v2, 'b'), imported(v1, 'a'));
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.result).toBe(imported(v2, 'b'));
    // Both updated to different commits: a file-by-file merge would make a version neither source has.
    const r3 = await drive(dir, imported(v1, 'a'), imported(v2, 'b'), imported(v3, 'c'));
    expect(r3.code).toBe(1);
    expectOneLineError(r3.stderr, 'data.tdv: changed differently on both sides: data');
  });

  it('added on both sides (no base): directories merge against an empty base', async () => {
    const ours: Files = { 'a.csv': 'a', 'o.csv': 'o' };
    const theirs: Files = { 'a.csv': 'a', 't.csv': 't' };
    const dir = await repoWithVersions(ours, theirs);
    const r = await drive(dir, '', dirPointer('data', spec(ours)), dirPointer('data', spec(theirs)));
    expect(r.code, r.stderr).toBe(0);
    expect(r.result).toBe(dirPointer('data', spec({ 'a.csv': 'a', 'o.csv': 'o', 't.csv': 't' })));
  });

  it('a manifest missing from the cache is an error that says which and how to fetch it, and changes nothing', async () => {
    const base: Files = { 'a.csv': 'a' };
    const ours: Files = { 'a.csv': 'a', 'o.csv': 'o' };
    const theirs: Files = { 'a.csv': 'a', 't.csv': 't' };
    const dir = await repoWithVersions(base, ours);
    const r = await drive(dir, dirPointer('data', spec(base)), dirPointer('data', spec(ours)), dirPointer('data', spec(theirs)));
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `cannot merge data: the manifest of their version (${manifest(spec(theirs)).oid}) is not in the cache`, 'tdv fetch');
    expect(r.result).toBe(dirPointer('data', spec(ours)));
  });

  it('a pointer that does not parse is an error naming the side', async () => {
    const dir = await newRepo();
    const r = await drive(dir, filePointer('x', 'x'), 'outs: [oops', filePointer('x', 'y'), 'x.tdv');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: x\.tdv \(ours\)/);
  });

  it('a merge that removes every output of a pointer says to delete the pointer file', async () => {
    const dir = await newRepo();
    const out = (p: string, c: string) => `- path: ${p}\n  sha256: ${sha(c)}\n  size: ${c.length}\n`;
    const r = await drive(dir, `outs:\n${out('a', 'a')}${out('b', 'b')}`, `outs:\n${out('a', 'a')}`, `outs:\n${out('b', 'b')}`, 'pair.tdv');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'pair.tdv: the merge removes every output it tracked', 'git rm pair.tdv');
  });

  it('keeps outputs only one side has, and drops one deleted on a side while the other left it', async () => {
    const dir = await newRepo();
    const two = (a: string, b: string) => `outs:\n- path: a\n  sha256: ${sha(a)}\n  size: ${a.length}\n- path: b\n  sha256: ${sha(b)}\n  size: ${b.length}\n`;
    const onlyA = (a: string) => `outs:\n- path: a\n  sha256: ${sha(a)}\n  size: ${a.length}\n`;
    const r = await drive(dir, two('a', 'b'), onlyA('a2'), two('a', 'b'), 'pair.tdv');
    expect(r.code, r.stderr).toBe(0);
    expect(r.result).toBe(onlyA('a2'));
  });
});
