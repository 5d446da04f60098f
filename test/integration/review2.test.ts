/**
 * Reproductions of the second adversarial review of issue 12
 * (test/attack/FINDINGS-issue12-review2.md). Each test states the expected
 * behaviour and FAILS on the reviewed branch (i12-attack2 at da90c72); the
 * finding number is in the test's name.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { read, tdv, TDV_BIN, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, objPath, setConfig, sha } from '../helpers/expect.js';

/** Waits (polling, no wall-clock assertion) until `cond` holds or `tries` run out. */
async function until(cond: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await new Promise((r) => setTimeout(r, 50));
}

describe('review 2 of issue 12', () => {
  it('1: a params file with a self-referencing YAML alias is one error line, not a stack overflow reported as a bug', async () => {
    const dir = await newRepo();
    write(dir, 'params.yaml', 'x: &a [*a]\ny: 1\n');
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo hi > o\n    params: [y]\n    outs: [o]\n');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'params.yaml');
    expect(r.stderr).not.toContain('bug');
  });

  it('1: a tdv.yaml vars entry that refers to itself is one error line, not a stack overflow', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'vars:\n  - &v {x: 1, self: *v}\nstages:\n  a:\n    cmd: echo ${self.self.x} > o\n    outs: [o]\n');
    const r = await tdv(dir, 'status');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'tdv.yaml');
    expect(r.stderr).not.toContain('bug');
  });

  it('1: add of changed data whose pointer meta is a self-referencing alias is one error line (or works), never a bug', async () => {
    const dir = await newRepo();
    write(dir, 'd.txt', 'hello\n');
    write(dir, 'd.txt.tdv', `meta: &a [*a]\nouts:\n- path: d.txt\n  sha256: ${sha('hello\n')}\n  size: 6\n`);
    write(dir, 'd.txt', 'changed\n');
    const r = await tdv(dir, 'add', 'd.txt');
    expect(r.stderr).not.toContain('bug');
    if (r.code !== 0) expectOneLineError(r.stderr, 'd.txt.tdv');
  });

  it('2: a stage output at the root named "constructor" (an Object.prototype name) is accepted', async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  s:\n    cmd: echo hi > constructor\n    outs: [constructor]\n');
    const r = await tdv(dir, 'repro');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(read(dir, 'constructor')).toBe('hi\n');
  });

  it('2: tdv add of a root file named "constructor" or "__proto__" tracks it', async () => {
    const dir = await newRepo();
    write(dir, 'constructor', 'c\n');
    write(dir, '__proto__', 'p\n');
    const r = await tdv(dir, 'add', 'constructor', '__proto__');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'constructor.tdv'))).toBe(true);
    expect(fs.existsSync(path.join(dir, '__proto__.tdv'))).toBe(true);
  });

  it('2: tdv add of a missing file named "toString" says it does not exist', async () => {
    const dir = await newRepo();
    const r = await tdv(dir, 'add', 'toString');
    expectOneLineError(r.stderr, 'toString does not exist');
    expect(r.stderr).not.toContain('native code');
  });

  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    it(`3: ${sig} to \`tdv repro\` stops the stage it is running; nothing writes into the workspace after tdv exited`, async () => {
      const dir = await newRepo();
      write(dir, 'tdv.yaml', 'stages:\n  fast:\n    cmd: echo f > f.txt\n    outs: [f.txt]\n  slow:\n    cmd: touch started && sleep 3 && echo s > s.txt\n    deps: [f.txt]\n    outs: [s.txt]\n');
      const child = execa('node', [TDV_BIN, 'repro', '-j', '1'], { cwd: dir, reject: false, env: { NO_COLOR: '1' } });
      let out = '';
      child.stdout?.on('data', (d) => (out += String(d)));
      await until(() => fs.existsSync(path.join(dir, 'started')));
      expect(out).toContain('running slow');
      child.kill(sig);
      const r = await child;
      // 128 + the signal, as a shell reports it, after the cleanup. As for Ctrl-C, the stage
      // that was stopped is named, then one line says what happened.
      expect(r.exitCode).toBe(code);
      expect(r.stderr).toBe(`error: stage "slow" was interrupted; nothing was recorded for it\nerror: stopped by ${sig}; stages that finished are recorded in tdv.lock, the others were not`);
      const lock = read(dir, 'tdv.lock');
      expect(lock).toContain('fast:');
      expect(lock).not.toContain('slow:');
      // The stage's shell would write s.txt about 3 s after it started; give it time to (not) do so.
      await new Promise((r) => setTimeout(r, 4000));
      expect(fs.existsSync(path.join(dir, 's.txt'))).toBe(false);
    }, 20_000);
  }

  it('4: an empty cache.dir is refused at config.yaml:line:col, not used as .tdv itself', async () => {
    const dir = await newRepo();
    setConfig(dir, 'cache:\n  dir: ""\n');
    write(dir, 'h.txt', 'z\n');
    const r = await tdv(dir, 'add', 'h.txt');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'config.yaml', 'cache.dir');
    expect(fs.existsSync(path.join(dir, '.tdv', 'files'))).toBe(false);
  });

  it("5: a run record whose size is not its object's size is not copied into tdv.lock", async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo hi > o\n    outs: [o]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const runs = path.join(dir, '.tdv', 'cache', 'runs');
    const [prefix] = fs.readdirSync(runs);
    const [name] = fs.readdirSync(path.join(runs, prefix!));
    const rec = path.join(runs, prefix!, name!);
    fs.chmodSync(rec, 0o644);
    fs.writeFileSync(rec, JSON.stringify({ outs: [{ path: 'o', sha256: sha('hi\n'), size: 99 }], metrics: [] }));
    expect(fs.existsSync(objPath(dir, sha('hi\n')))).toBe(true);
    fs.rmSync(path.join(dir, 'o'));
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(0);
    // Not restored from the lying record: the stage runs, and says why.
    expect(r.stdout).toContain('running a');
    expect(r.stderr).toContain('is 99 bytes, but its object in the cache is 3 bytes');
    expect(read(dir, 'tdv.lock')).not.toContain('size: 99');
    expect(read(dir, 'tdv.lock')).toContain('size: 3');
    expect((await tdv(dir, 'status')).stdout).not.toContain('modified');
  });

  it("5: a run record whose directory output's size or file count is not its manifest's is not restored", async () => {
    const dir = await newRepo();
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: mkdir -p d && echo hi > d/x && echo there > d/y\n    outs: [d]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    const runs = path.join(dir, '.tdv', 'cache', 'runs');
    const [prefix] = fs.readdirSync(runs);
    const [name] = fs.readdirSync(path.join(runs, prefix!));
    const rec = path.join(runs, prefix!, name!);
    const good = JSON.parse(fs.readFileSync(rec, 'utf8')) as { outs: { size: number; nfiles: number }[] };
    expect(good.outs[0]).toMatchObject({ size: 9, nfiles: 2 });
    fs.chmodSync(rec, 0o644);
    for (const [lie, said] of [
      [{ size: 99 }, 'is 99 bytes, but its object in the cache is 9 bytes'],
      [{ nfiles: 7 }, 'holds 7 files, but its object in the cache lists 2'],
    ] as const) {
      fs.writeFileSync(rec, JSON.stringify({ ...good, outs: [{ ...good.outs[0], ...lie }] }));
      fs.rmSync(path.join(dir, 'd'), { recursive: true });
      fs.rmSync(path.join(dir, 'tdv.lock'));
      const r = await tdv(dir, 'repro');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('running a');
      expect(r.stderr).toContain(said);
      expect(read(dir, 'tdv.lock')).toMatch(/size: 9\n\s+nfiles: 2\n/);
    }
  });

  it('16: odd run records on a directory remote (FIFO, directory, over the cap, a file as prefix) are skipped with a warning each; the rest is fetched and pulled', async () => {
    const dir = await newRepo();
    const remote = newDir();
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: store\nremote:\n  store:\n    url: ${remote}\n`);
    write(dir, 'tdv.yaml', 'stages:\n  a:\n    cmd: echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: echo b > b.txt\n    outs: [b.txt]\n');
    expect((await tdv(dir, 'repro')).code).toBe(0);
    expect((await tdv(dir, 'push', '--run-cache')).code).toBe(0);
    const runs = path.join(remote, 'runs');
    const odd = (c: string) => path.join(runs, c + c, c.repeat(62));
    for (const c of ['1', '2', '3']) fs.mkdirSync(path.dirname(odd(c)), { recursive: true });
    await execa('mkfifo', [odd('1')]);
    fs.mkdirSync(odd('2'));
    fs.writeFileSync(odd('3'), '');
    fs.truncateSync(odd('3'), 9 * 2 ** 20); // sparse: over the 8 MiB cap without writing it
    fs.writeFileSync(path.join(runs, '44'), 'a file where a prefix directory belongs\n');
    const good = fs.readdirSync(runs).filter((p) => !['11', '22', '33', '44'].includes(p));
    expect(good.length).toBeGreaterThan(0);

    fs.rmSync(path.join(dir, '.tdv', 'cache'), { recursive: true, force: true });
    fs.rmSync(path.join(dir, 'a.txt'));
    const r = await tdv(dir, 'pull', '--run-cache');
    expect(r.code).toBe(0);
    expect(read(dir, 'a.txt')).toBe('a\n');
    const warnings = r.stderr.split('\n').filter(Boolean);
    expect(warnings).toHaveLength(3);
    for (const [c, what] of [
      ['1', 'pipe'],
      ['2', 'directory'],
      ['3', 'MiB'],
    ] as const) {
      expect(warnings.find((w) => w.includes(c.repeat(62)))).toMatch(new RegExp(`^warning: .*${what}.*; skipped it`));
    }
    // The two good records came with the data: with the outputs deleted, repro restores both.
    const cached = fs.readdirSync(path.join(dir, '.tdv', 'cache', 'runs')).flatMap((p) => fs.readdirSync(path.join(dir, '.tdv', 'cache', 'runs', p)));
    expect(cached).toHaveLength(2);
    fs.rmSync(path.join(dir, 'a.txt'));
    fs.rmSync(path.join(dir, 'b.txt'));
    fs.rmSync(path.join(dir, 'tdv.lock'));
    const again = await tdv(dir, 'repro');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('restored a');
    expect(again.stdout).toContain('restored b');

    // fetch skips them the same way.
    fs.rmSync(path.join(dir, '.tdv', 'cache', 'runs'), { recursive: true });
    const f = await tdv(dir, 'fetch', '--run-cache');
    expect(f.code).toBe(0);
    expect(f.stderr.split('\n').filter(Boolean)).toHaveLength(3);
  });
});
