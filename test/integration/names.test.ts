/**
 * Names that round-trip (issue 11, class 3): a name `tdv add` accepts is
 * restorable forever, by every later command, from the workspace and from any
 * revision; a name tdv would refuse later is skipped, with a warning, up front.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, manifest, newRepo, objPath, sha } from '../helpers/expect.js';
import { expectClean } from '../helpers/api.js';

async function commitAll(dir: string, msg: string): Promise<void> {
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', msg);
}

function fsckJson(dir: string) {
  return tdv(dir, 'fsck', '--json').then((r) => ({ code: r.code, res: JSON.parse(r.stdout) }));
}

describe('a backslash is an ordinary character on POSIX', () => {
  it('a\\b.csv in a directory and a file named top\\file: add, fsck, checkout, checkout --rev all keep them', async () => {
    const dir = await newRepo();
    write(dir, 'd/a\\b.csv', 'x\n');
    write(dir, 'd/sub\\dir/c.csv', 'c\n');
    write(dir, 'd/ok.csv', 'y\n');
    write(dir, 'top\\file', 'z\n');
    const add = await tdv(dir, 'add', 'd', 'top\\file');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr).toBe('');
    await commitAll(dir, 'data');
    const m = manifest([
      { relpath: 'a\\b.csv', content: 'x\n' },
      { relpath: 'ok.csv', content: 'y\n' },
      { relpath: 'sub\\dir/c.csv', content: 'c\n' },
    ]);
    expect(fs.readFileSync(objPath(dir, m.oid), 'utf8')).toBe(m.text);

    // fsck accepts what add wrote (it used to quarantine this manifest as unsafe).
    const f = await fsckJson(dir);
    expect(f.res).toMatchObject({ clean: true, corrupt: [], errors: [] });
    expect(f.code).toBe(0);
    expect(cacheObjects(dir)).toContain(m.oid);

    fs.rmSync(path.join(dir, 'd'), { recursive: true });
    fs.rmSync(path.join(dir, 'top\\file'));
    const co = await tdv(dir, 'checkout');
    expect(co.code, co.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'd', 'a\\b.csv'), 'utf8')).toBe('x\n');
    expect(fs.readFileSync(path.join(dir, 'd', 'sub\\dir', 'c.csv'), 'utf8')).toBe('c\n');
    expect(fs.readFileSync(path.join(dir, 'top\\file'), 'utf8')).toBe('z\n');
    await expectClean(dir);

    // From history too.
    fs.rmSync(path.join(dir, 'd'), { recursive: true });
    const rev = await tdv(dir, 'checkout', '--rev', 'HEAD');
    expect(rev.code, rev.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'd', 'a\\b.csv'), 'utf8')).toBe('x\n');
  });
});

describe('.git and .tdv inside data', () => {
  it("a submodule's .git file, a nested repository and a .tdv directory are skipped with a warning, and the rest round-trips", async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    write(dir, 'data/mod/.git', 'gitdir: ../../.git/modules/mod\n');
    write(dir, 'data/mod/m.csv', 'm\n');
    write(dir, 'data/nested/.git/HEAD', 'ref: refs/heads/main\n');
    write(dir, 'data/nested/n.csv', 'n\n');
    write(dir, 'data/Up/.GIT/config', '[core]\n');
    write(dir, 'data/own/.tdv/config.yaml', 'core: {}\n');
    const add = await tdv(dir, 'add', 'data');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stderr.split('\n').filter(Boolean).sort()).toEqual([
      "warning: skipped data/Up/.GIT: Git's own directory (a nested repository), which tdv never records; list it in .tdvignore to silence this",
      "warning: skipped data/mod/.git: Git's own file (a submodule's link to its repository), which tdv never records; list it in .tdvignore to silence this",
      "warning: skipped data/nested/.git: Git's own directory (a nested repository), which tdv never records; list it in .tdvignore to silence this",
      "warning: skipped data/own/.tdv: tdv's own name (.tdv), which tdv never records; list it in .tdvignore to silence this",
    ]);
    const m = manifest([
      { relpath: 'a.csv', content: 'a\n' },
      { relpath: 'mod/m.csv', content: 'm\n' },
      { relpath: 'nested/n.csv', content: 'n\n' },
    ]);
    expect(fs.readFileSync(path.join(dir, 'data.tdv'), 'utf8')).toContain(`sha256: ${m.oid}\n`);

    // Every later command accepts it (an older tdv recorded data/mod/.git here, which all of them then refused).
    expect((await fsckJson(dir)).code).toBe(0);
    const st = await tdv(dir, 'status');
    expect(st.code, st.stderr).toBe(0);
    fs.rmSync(path.join(dir, 'data', 'a.csv'));
    const co = await tdv(dir, 'checkout');
    expect(co.code, co.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'data', 'a.csv'), 'utf8')).toBe('a\n');
    // Git's and tdv's files were left alone.
    expect(fs.readFileSync(path.join(dir, 'data', 'mod', '.git'), 'utf8')).toBe('gitdir: ../../.git/modules/mod\n');
    expect(fs.existsSync(path.join(dir, 'data', 'nested', '.git', 'HEAD'))).toBe(true);

    // Listed in .tdvignore: no more warnings.
    fs.appendFileSync(path.join(dir, '.tdvignore'), '.git\n.GIT\n.tdv\n');
    const quiet = await tdv(dir, 'status');
    expect(quiet.stderr).toBe('');
  });
});

describe('fsck never quarantines a manifest whose bytes match its name', () => {
  it('one an older tdv wrote (with a .git entry) is reported, naming the entry, and left in the cache', async () => {
    const dir = await newRepo();
    const m = manifest([
      { relpath: 'a.csv', content: 'a\n' },
      { relpath: 'mod/.git', content: 'gitdir: x\n' },
    ]);
    fs.mkdirSync(path.dirname(objPath(dir, m.oid)), { recursive: true });
    fs.writeFileSync(objPath(dir, m.oid), m.text);
    write(dir, 'data.tdv', `outs:\n- path: data\n  sha256: ${m.oid}\n  size: ${m.size}\n  nfiles: 2\n`);
    const j = await fsckJson(dir);
    expect(j.code).toBe(1);
    expect(j.res.corrupt).toEqual([]);
    expect(j.res.errors).toEqual([expect.stringMatching(/manifest entry 1 has an unsafe relpath mod\/\.git: it has a "\.git" component .*left in the cache/)]);
    expect(fs.readFileSync(objPath(dir, m.oid), 'utf8')).toBe(m.text);
    expect(fs.existsSync(path.join(dir, '.tdv', 'tmp', 'quarantine'))).toBe(false);
    // And checkout refuses it with the same reason, writing nothing.
    const co = await tdv(dir, 'checkout');
    expect(co.code).toBe(1);
    expectOneLineError(co.stderr, 'unsafe relpath mod/.git', '`tdv add` the directory again');
    expect(fs.existsSync(path.join(dir, 'data'))).toBe(false);
  });
});

describe('history is decoded as strictly as the workspace', () => {
  it('a committed pointer whose bytes are not UTF-8 is refused at a revision, naming rev:path, as in the workspace', async () => {
    const dir = await newRepo();
    const bad = Buffer.concat([Buffer.from('outs:\n- path: "caf'), Buffer.from([0xe9]), Buffer.from(`"\n  sha256: ${sha('x')}\n  size: 1\n`)]);
    fs.writeFileSync(path.join(dir, 'cafe.tdv'), bad);
    await commitAll(dir, 'bad pointer');
    const ws = await tdv(dir, 'status');
    expect(ws.code).toBe(1);
    expectOneLineError(ws.stderr, /^error: cafe\.tdv: is not valid UTF-8\. /);
    fs.rmSync(path.join(dir, 'cafe.tdv'));
    const r = await tdv(dir, 'checkout', '--rev', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: HEAD:cafe\.tdv: is not valid UTF-8\. /);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('caf'))).toEqual([]);
  });

  it('a committed pointer whose file name is not UTF-8 is refused at a revision, as the workspace refuses it', async () => {
    const dir = await newRepo();
    const name = Buffer.concat([Buffer.from(`${dir}/caf`), Buffer.from([0xe9]), Buffer.from('.tdv')]);
    fs.writeFileSync(name, `outs:\n- path: x\n  sha256: ${sha('x')}\n  size: 1\n`);
    await commitAll(dir, 'pointer with a Latin-1 name');
    const ws = await tdv(dir, 'status');
    expect(ws.code).toBe(1);
    expectOneLineError(ws.stderr, /^error: caf\uFFFD\.tdv: its name is not valid UTF-8/);
    fs.rmSync(name);
    const r = await tdv(dir, 'checkout', '--rev', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: HEAD:caf\uFFFD\.tdv: is not a path tdv can check out: it is not valid UTF-8\. /);
    expect(fs.existsSync(path.join(dir, 'x'))).toBe(false);
  });

  it('a committed tdv.lock whose bytes are not UTF-8 is refused at a revision and in the workspace alike', async () => {
    const dir = await newRepo();
    const lock = Buffer.concat([Buffer.from(`schema: 1\nstages:\n  s:\n    cmd: x\n    outs:\n    - path: "o`), Buffer.from([0xff]), Buffer.from(`"\n      sha256: ${sha('o')}\n      size: 1\n`)]);
    fs.writeFileSync(path.join(dir, 'tdv.lock'), lock);
    await commitAll(dir, 'bad lock');
    const ws = await tdv(dir, 'checkout');
    expect(ws.code).toBe(1);
    expectOneLineError(ws.stderr, /^error: tdv\.lock: is not valid UTF-8\. /);
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const r = await tdv(dir, 'fetch', '--rev', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: HEAD:tdv\.lock: is not valid UTF-8\. /);
  });
});
