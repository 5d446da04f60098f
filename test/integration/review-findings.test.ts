/**
 * Findings of the adversarial review of issue 11 (hostile clones and careless
 * users), each reproduced as the reviewer did it, with the real bin/tdv.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, setConfig } from '../helpers/expect.js';

describe('adversarial review of issue 11', () => {
  it('F3: a directory remote inside tracked data is refused, so a checkout cannot delete it', async () => {
    const dir = await newRepo();
    write(dir, 'data/a', '1\n');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    const r = await tdv(dir, 'remote', 'add', '-d', 'r', 'data/store');
    expect(r.code).not.toBe(0);
    expectOneLineError(r.stderr, 'data/store', 'data.tdv');
    expect(fs.existsSync(path.join(dir, 'data', 'store'))).toBe(false);
  });

  it('F4: a Dockerfile that is a device, or a build context through a symlink, is a tdv.yaml error; nothing hangs, nothing outside is read', async () => {
    const dir = await newRepo();
    write(dir, 'ctx/f', 'x\n');
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo hi\n    build: {context: ctx, dockerfile: /dev/zero}\n    outs: [o.txt]\n');
    const abs = await tdv(dir, 'repro', '--dry');
    expect(abs.code).toBe(1);
    expectOneLineError(abs.stderr, /tdv\.yaml:\d+:\d+/, 'build.dockerfile', 'absolute');
    const secret = newDir();
    write(secret, 'creds', 'TOPSECRET-line-1 value\n');
    fs.rmSync(path.join(dir, 'ctx'), { recursive: true });
    fs.symlinkSync(secret, path.join(dir, 'ctx'));
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: cat /creds\n    build: {context: ctx}\n    outs: [o.txt]\n');
    const link = await tdv(dir, 'repro', '--dry');
    expect(link.code).toBe(1);
    expectOneLineError(link.stderr, /tdv\.yaml:\d+:\d+/, 'build', 'symlink ctx');
    expect(link.stderr + link.stdout).not.toContain('TOPSECRET');
  });

  it('F6: cache.dir that is the repository, or inside its work tree outside .tdv, is a configuration error', async () => {
    for (const d of ['..', '../cachehere']) {
      const dir = await newRepo();
      setConfig(dir, `cache:\n  dir: ${d}\n`);
      write(dir, 'x', 'x\n');
      const r = await tdv(dir, 'add', 'x');
      expect(r.code, d).toBe(1);
      expectOneLineError(r.stderr, 'cache.dir', d === '..' ? 'is the repository' : 'inside the repository');
      expect(fs.existsSync(path.join(dir, 'files'))).toBe(false);
      expect(fs.existsSync(path.join(dir, 'cachehere'))).toBe(false);
    }
  });

  it('F7: a trailing backslash is part of the name on POSIX: add tracks that file, not its namesake', async () => {
    const dir = await newRepo();
    write(dir, 'bs\\', 'B\n');
    write(dir, 'bs', 'A\n');
    const r = await tdv(dir, 'add', 'bs\\');
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'bs\\.tdv'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'bs.tdv'))).toBe(false);
    expect((await tdv(dir, 'status')).code).toBe(0);
  });

  it('F8: a directory named *.tdv is refused by add instead of writing a pointer every later command refuses', async () => {
    const dir = await newRepo();
    write(dir, 'data.tdv/f', '1\n');
    const r = await tdv(dir, 'add', 'data.tdv');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'data.tdv', 'rename');
    expect(fs.existsSync(path.join(dir, 'data.tdv.tdv'))).toBe(false);
    expect((await tdv(dir, 'status')).code).toBe(0);
  });

  it('F9: a stage output that contains the cache (or a remote, or .tdv) is a tdv.yaml error before anything is deleted', async () => {
    const dir = await newRepo();
    const cache = path.join(newDir(), 'cache');
    setConfig(dir, `cache:\n  dir: ${cache}\n`);
    write(dir, 'data', 'v1\n');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    const objects = fs.readdirSync(path.join(cache, 'files', 'sha256'));
    fs.mkdirSync(path.join(dir, 'store'));
    expect((await tdv(dir, 'remote', 'add', '-d', 'r', 'store')).code).toBe(0);
    for (const out of ['store', '.tdv']) {
      write(dir, 'tdv.yaml', `stages:\n  s:\n    cmd: mkdir -p ${out} && echo hi > ${out}/o\n    outs: [${out}]\n`);
      const r = await tdv(dir, 'repro');
      expect(r.code, out).not.toBe(0);
      expect(r.stderr, out).toMatch(/tdv\.yaml:\d+:\d+/);
    }
    expect(fs.existsSync(path.join(dir, 'store'))).toBe(true);
    expect(fs.existsSync(path.join(dir, '.tdv', 'config.yaml'))).toBe(true);
    expect(fs.readdirSync(path.join(cache, 'files', 'sha256'))).toEqual(objects);
    expect(read(dir, 'data')).toBe('v1\n');
    await git(dir, 'status');
  });

  it('F11: stat cache and lock files planted as symlinks to /dev/zero are not read (no hang, no unbounded memory)', async () => {
    const dir = await newRepo();
    write(dir, 'a', 'a\n');
    expect((await tdv(dir, 'add', 'a')).code).toBe(0);
    for (const f of fs.readdirSync(path.join(dir, '.tdv', 'tmp'))) if (f.startsWith('statcache')) fs.rmSync(path.join(dir, '.tdv', 'tmp', f));
    fs.symlinkSync('/dev/zero', path.join(dir, '.tdv', 'tmp', 'statcache-dirs.json'));
    fs.symlinkSync('/dev/zero', path.join(dir, '.tdv', 'tmp', 'statcache-files.bin'));
    const st = await tdv(dir, 'status');
    expect(st.code, st.stderr).toBe(0);
    fs.symlinkSync('/dev/zero', path.join(dir, '.tdv', 'tmp', 'lock'));
    write(dir, 'b', 'b\n');
    const add = await tdv(dir, 'add', 'b');
    expect(add.code, add.stderr).toBe(0);
  });

  it("F14: a stage that turns an output's parent into a symlink gets nothing read or written through it", async () => {
    const dir = await newRepo();
    const host = newDir();
    write(host, 'target.txt', 'host secret\n');
    write(dir, 'tdv.yaml', `stages:\n  s:\n    cmd: rm -rf out && ln -s ${host} out\n    outs: [out/target.txt]\n`);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('symlink');
    expect(fs.readdirSync(host)).toEqual(['target.txt']);
    expect(read(host, 'target.txt')).toBe('host secret\n');
    const cached = fs.existsSync(path.join(dir, '.tdv', 'cache', 'files')) ? fs.readdirSync(path.join(dir, '.tdv', 'cache', 'files', 'sha256'), { recursive: true }) : [];
    for (const f of cached) {
      const p = path.join(dir, '.tdv', 'cache', 'files', 'sha256', String(f));
      if (fs.statSync(p).isFile()) expect(fs.readFileSync(p, 'utf8')).not.toContain('host secret');
    }
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });

  it('F15: a dep through a symlinked directory is a tdv.yaml error; the outside file is never hashed into tdv.lock', async () => {
    const dir = await newRepo();
    const secret = newDir();
    write(secret, 'creds', 'pin 1234\n');
    fs.symlinkSync(secret, path.join(dir, 'lnk'));
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo hi > o\n    deps: [lnk/creds]\n    outs: [o]\n');
    for (const args of [['repro'], ['status'], ['repro', '--dry']]) {
      const r = await tdv(dir, ...args);
      expect(r.code, args.join(' ')).toBe(1);
      expectOneLineError(r.stderr, /tdv\.yaml:\d+:\d+/, 'symlink lnk');
    }
    expect(fs.existsSync(path.join(dir, 'tdv.lock'))).toBe(false);
  });

  it("F16: status and diff do not read a hostile pointer's data through a symlinked parent; remove can drop that pointer", async () => {
    const dir = await newRepo();
    const secret = newDir();
    write(secret, 'creds', 'pin 1234\n');
    fs.symlinkSync(secret, path.join(dir, 'lnk'));
    write(dir, 'evil.tdv', `outs:\n- path: lnk/creds\n  sha256: ${'a'.repeat(64)}\n  size: 1\n`);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'evil');
    const st = await tdv(dir, 'status');
    expect(st.stdout + st.stderr).toContain('lnk');
    expect(st.stdout).toContain('symlink');
    const diff = await tdv(dir, 'diff', '--json');
    expect(diff.code, diff.stderr).toBe(0);
    // Neither reads the file behind the link: its hash and size never appear.
    const outside = (await import('node:crypto')).createHash('sha256').update('pin 1234\n').digest('hex');
    for (const r of [st, diff]) expect(r.stdout + r.stderr).not.toContain(outside);
    const rm = await tdv(dir, 'remove', 'evil.tdv');
    expect(rm.code, rm.stderr).toBe(0);
    expect(fs.existsSync(path.join(dir, 'evil.tdv'))).toBe(false);
    expect(fs.readdirSync(secret)).toEqual(['creds']);
    expect((await tdv(dir, 'status')).code).toBe(0);
  });

  it('F18: tdv.lock or .tdvignore that is a directory is one error line naming it, not a bare EISDIR', async () => {
    for (const name of ['tdv.lock', '.tdvignore']) {
      const dir = await newRepo();
      fs.rmSync(path.join(dir, name), { recursive: true, force: true });
      fs.mkdirSync(path.join(dir, name));
      const r = await tdv(dir, 'status');
      expect(r.code, name).toBe(1);
      expectOneLineError(r.stderr, name, 'a directory');
      expect(r.stderr).not.toContain('EISDIR');
    }
  });

  it('attack suite: a .gitignore that is a FIFO is an error naming it, not a hang of git check-ignore', async () => {
    const dir = await newRepo();
    write(dir, 'notes.txt', 'n\n');
    fs.rmSync(path.join(dir, '.gitignore'), { force: true });
    (await import('node:child_process')).execFileSync('mkfifo', [path.join(dir, '.gitignore')]);
    const r = await tdv(dir, 'add', 'notes.txt');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, '.gitignore is a FIFO');
  });

  it('attack suite: a committed symlink at a Git-tracked metrics file is not deleted by repro', async () => {
    const dir = await newRepo();
    const outside = newDir();
    write(outside, 'secret.txt', 'secret\n');
    write(dir, 'tdv.yaml', 'stages:\n  m:\n    cmd: echo {\\"n\\":1} > metrics.json\n    metrics: [metrics.json]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'metrics');
    fs.rmSync(path.join(dir, 'metrics.json'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(dir, 'metrics.json'));
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'hostile');
    write(dir, 'tdv.yaml', 'stages:\n  m:\n    cmd: echo {\\"n\\":2} > metrics.json\n    metrics: [metrics.json]\n');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('metrics.json');
    expect(fs.lstatSync(path.join(dir, 'metrics.json')).isSymbolicLink()).toBe(true);
    expect(read(outside, 'secret.txt')).toBe('secret\n');
  });
});
