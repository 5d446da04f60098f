/**
 * Run-cache records are data from a remote (issue 11, failure class 1). A
 * record whose outputs or metrics are not exactly the stage's declared ones is
 * never applied (the stage runs instead, with a warning); restoring one goes
 * through the checkout engine and the workspace guard, so it never deletes an
 * undeclared directory, overwrites a Git-tracked file or writes through a
 * symlink. Each test plants a hostile record the way a remote would deliver
 * it: run once so a record exists under its key, then rewrite its JSON.
 *
 * Also here: checkout through a symlinked directory inside tracked data, and
 * `checkout --to` with a symlink inside the snapshot directory, never write
 * outside; nor do `unprotect` and `remove` of a pointer whose path leads
 * through a symlink out of the repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, sha } from '../helpers/expect.js';
import { repro } from '../helpers/api.js';

interface Locked {
  path: string;
  sha256: string;
  size: number;
  nfiles?: number;
}
interface Record {
  outs: Locked[];
  metrics: Locked[];
}

/** Every run record in the cache, by file. */
function records(dir: string): Map<string, Record> {
  const runs = path.join(dir, '.tdv', 'cache', 'runs');
  const out = new Map<string, Record>();
  for (const p of fs.existsSync(runs) ? fs.readdirSync(runs) : []) {
    for (const n of fs.readdirSync(path.join(runs, p))) {
      const f = path.join(runs, p, n);
      out.set(f, JSON.parse(fs.readFileSync(f, 'utf8')) as Record);
    }
  }
  return out;
}

/** Rewrites the one record whose outputs include `out`, as a hostile remote would have delivered it. */
function plant(dir: string, out: string, edit: (r: Record) => Record): void {
  const hits = [...records(dir)].filter(([, r]) => r.outs.some((o) => o.path === out));
  expect(hits, `one run record for ${out}`).toHaveLength(1);
  fs.writeFileSync(hits[0]![0], JSON.stringify(edit(hits[0]![1])));
}

/** A committed repository with `files` and `tdv.yaml`, its pipeline run once (so records exist). */
async function pipeline(yaml: string, files: { [rel: string]: string } = {}): Promise<string> {
  const dir = await newRepo();
  for (const [rel, content] of Object.entries(files)) write(dir, rel, content);
  write(dir, 'tdv.yaml', yaml);
  const r = await tdv(dir, 'repro');
  expect(r.code, r.stderr).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'pipeline');
  return dir;
}

const ONE_STAGE = 'stages:\n  s:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n';
const HI = { path: 'out.txt', sha256: sha('hi\n'), size: 3 };
const WITH_METRICS = 'stages:\n  s:\n    cmd: sh gen.sh\n    deps: [gen.sh]\n    outs: [out.txt]\n    metrics: [m.json]\n';
const GEN = 'echo hi > out.txt\necho \'{"a": 1}\' > m.json\n';

describe('a run record that names other paths than the stage declares is never applied', () => {
  it('(a) an undeclared existing directory named in its outputs is not deleted; the stage runs', async () => {
    const dir = await pipeline(ONE_STAGE);
    write(dir, 'keep/precious.txt', 'only copy\n');
    plant(dir, 'out.txt', (r) => ({ ...r, outs: [...r.outs, { ...HI, path: 'keep' }] }));
    fs.rmSync(path.join(dir, 'out.txt'));
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'keep/precious.txt')).toBe('only copy\n');
    expect(r.stderr).toMatch(
      /^warning: run record [0-9a-f]{8}: its outputs \(out\.txt, keep\) are not the outputs tdv\.yaml declares for stage "s" \(out\.txt\); not restoring from it, the stage runs instead$/m,
    );
    expect(r.stdout).toMatch(/^running s/m);
    expect(read(dir, 'out.txt')).toBe('hi\n');
  });

  it('(b) a Git-tracked file named in its outputs is not overwritten', async () => {
    const dir = await pipeline(ONE_STAGE, { 'README.md': 'committed\n' });
    plant(dir, 'out.txt', (r) => ({ ...r, outs: [{ ...HI, path: 'README.md' }] }));
    fs.rmSync(path.join(dir, 'out.txt'));
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'README.md')).toBe('committed\n');
    expect(r.stderr).toContain('its outputs (README.md) are not the outputs tdv.yaml declares for stage "s" (out.txt)');
    expect(read(dir, 'out.txt')).toBe('hi\n');
    expect(await git(dir, 'status', '--porcelain')).toBe('');
  });

  it('(d) an extra output (an untracked file of the user) is not written; a missing one is not left out', async () => {
    const dir = await pipeline(ONE_STAGE);
    write(dir, 'mine.txt', 'my notes\n');
    plant(dir, 'out.txt', (r) => ({ ...r, outs: [...r.outs, { ...HI, path: 'mine.txt' }] }));
    fs.rmSync(path.join(dir, 'out.txt'));
    const extra = await tdv(dir, 'repro');
    expect(extra.code, extra.stderr).toBe(0);
    expect(read(dir, 'mine.txt')).toBe('my notes\n');
    expect(extra.stdout).toMatch(/^running s/m);

    // A record with no outputs at all: "restoring" it would record a stage that produced nothing.
    plant(dir, 'out.txt', (r) => ({ ...r, outs: [] }));
    fs.rmSync(path.join(dir, 'out.txt'));
    const missing = await tdv(dir, 'repro');
    expect(missing.code, missing.stderr).toBe(0);
    expect(missing.stderr).toContain('its outputs (none) are not the outputs tdv.yaml declares for stage "s" (out.txt)');
    expect(missing.stdout).not.toContain('restored s');
    expect(read(dir, 'out.txt')).toBe('hi\n');
    expect(read(dir, 'tdv.lock')).toContain('path: out.txt');
  });

  it('(d) metrics other than the declared ones: a user file named there is not overwritten', async () => {
    const dir = await pipeline(WITH_METRICS, { 'gen.sh': GEN });
    write(dir, 'notes.txt', 'mine\n');
    plant(dir, 'out.txt', (r) => ({ ...r, metrics: [{ ...r.metrics[0]!, path: 'notes.txt' }] }));
    fs.rmSync(path.join(dir, 'out.txt'));
    const r = await tdv(dir, 'repro');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'notes.txt')).toBe('mine\n');
    expect(r.stderr).toContain('its metrics (notes.txt) are not the metrics tdv.yaml declares for stage "s" (m.json)');
    expect(JSON.parse(read(dir, 'm.json'))).toEqual({ a: 1 });
  });

  it('a record naming exactly the declared outputs and metrics is restored, a committed metrics file included', async () => {
    const dir = await pipeline(WITH_METRICS, { 'gen.sh': GEN });
    // m.json is committed (metrics live in Git): a restore may rewrite it, being declared.
    expect(await git(dir, 'ls-files', 'm.json')).toBe('m.json');
    fs.rmSync(path.join(dir, 'out.txt'));
    write(dir, 'm.json', '{"a": 2}\n');
    const r = await repro(dir);
    expect(r).toMatchObject({ ran: [], restored: ['s'], failed: [], warnings: [] });
    expect(read(dir, 'out.txt')).toBe('hi\n');
    expect(JSON.parse(read(dir, 'm.json'))).toEqual({ a: 1 });
    expect(fs.lstatSync(path.join(dir, 'm.json')).nlink).toBe(1); // a copy, never a link into the cache
  });
});

describe('restoring a run record never writes through a symlink', () => {
  it('(c) an output behind a committed symlink out of the repository: refused, nothing outside changes', async () => {
    // tdv.yaml's own check refuses this when loading, before any restore.
    const dir = await pipeline('stages:\n  s:\n    cmd: mkdir -p link && echo hi > link/out.txt\n    outs: [link/out.txt]\n');
    const outside = newDir();
    write(outside, 'out.txt', 'precious\n');
    const before = snapshot(outside);
    fs.rmSync(path.join(dir, 'link'), { recursive: true });
    fs.symlinkSync(outside, path.join(dir, 'link'));
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'link');
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: tdv\.yaml:\d+:\d+: .*link/);
    expect(snapshot(outside)).toEqual(before);
  });

  it('(c) an output whose parent became a symlink out of the repository after tdv.yaml was loaded: nothing outside is deleted or written', async () => {
    const outside = newDir();
    write(outside, 'out.txt', 'precious\n');
    const before = snapshot(outside);
    const yaml = (mk: string) => `stages:\n  mk:\n    cmd: ${mk}\n    outs: [made.txt]\n  s:\n    cmd: cat made.txt > link/out.txt\n    deps: [made.txt]\n    outs: [link/out.txt]\n`;
    const dir = await pipeline(yaml('mkdir -p link && echo 1 > made.txt'));
    expect(read(dir, 'link/out.txt')).toBe('1\n');
    // The upstream stage now leaves `link` a symlink to a directory outside; its output is the same,
    // so stage s has the same run key and its (genuine) record is restored.
    write(dir, 'tdv.yaml', yaml(`rm -rf link && ln -s ${outside} link && echo 1 > made.txt`));
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /^error: run record [0-9a-f]{8}: link\/out\.txt goes through the symlink link -> /, 'never reads or writes through a symlink');
    expect(snapshot(outside)).toEqual(before);
  });

  it('(c) an output behind a committed symlink into .git: nothing is written there', async () => {
    const dir = await pipeline('stages:\n  s:\n    cmd: mkdir -p link && echo "echo owned" > link/post-checkout\n    outs: [link/post-checkout]\n');
    fs.rmSync(path.join(dir, 'link'), { recursive: true });
    fs.symlinkSync('.git/hooks', path.join(dir, 'link'));
    const hooks = path.join(dir, '.git', 'hooks');
    const before = snapshot(hooks);
    const r = await tdv(dir, 'repro');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, /link\/post-checkout/, /symlink/);
    expect(snapshot(hooks)).toEqual(before);
    expect(fs.existsSync(path.join(hooks, 'post-checkout'))).toBe(false);
  });
});

describe('checkout never writes outside through a symlink inside the destination', () => {
  /** A committed repository tracking data/ (with sub/) and its pointer. */
  async function tracked(): Promise<string> {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a\n');
    write(dir, 'data/sub/b.csv', 'b\n');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    return dir;
  }

  it('a directory inside tracked data replaced by a symlink out of the repository: a conflict, then replaced with --force, never followed', async () => {
    const dir = await tracked();
    const outside = newDir();
    write(outside, 'b.csv', 'precious\n');
    const before = snapshot(outside);
    fs.rmSync(path.join(dir, 'data', 'sub'), { recursive: true });
    fs.symlinkSync(outside, path.join(dir, 'data', 'sub'));
    for (const target of [[], ['data/sub/b.csv']]) {
      const r = await tdv(dir, 'checkout', ...target);
      expect(r.code).toBe(1);
      expectOneLineError(r.stderr, 'data/sub', '--force');
      expect(snapshot(outside)).toEqual(before);
    }
    expect((await tdv(dir, 'checkout', '--force')).code).toBe(0);
    expect(fs.lstatSync(path.join(dir, 'data', 'sub')).isDirectory()).toBe(true);
    expect(read(dir, 'data/sub/b.csv')).toBe('b\n');
    expect(snapshot(outside)).toEqual(before);
  });

  it('checkout --to: a symlink inside the snapshot directory, at a tracked path or deeper, is never written through', async () => {
    const dir = await tracked();
    const snap = newDir();
    const outside = newDir();
    write(outside, 'b.csv', 'precious\n');
    const before = snapshot(outside);
    fs.mkdirSync(path.join(snap, 'data'));
    fs.symlinkSync(outside, path.join(snap, 'data', 'sub'));
    for (const target of [[], ['data/sub/b.csv'], ['data/sub']]) {
      const r = await tdv(dir, 'checkout', '--rev', 'HEAD', '--to', snap, ...target);
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, 'data/sub', '--force');
      expect(snapshot(outside)).toEqual(before);
    }
    const f = await tdv(dir, 'checkout', '--rev', 'HEAD', '--to', snap, '--force');
    expect(f.code, f.stderr).toBe(0);
    expect(fs.lstatSync(path.join(snap, 'data', 'sub')).isDirectory()).toBe(true);
    expect(read(snap, 'data/sub/b.csv')).toBe('b\n');
    expect(snapshot(outside)).toEqual(before);
  });

  it('checkout --to: a snapshot directory that is itself a symlink is followed (the user named it), but nothing below it is', async () => {
    const dir = await tracked();
    const real = newDir();
    const link = path.join(newDir(), 'snap');
    fs.symlinkSync(real, link);
    const r = await tdv(dir, 'checkout', '--rev', 'HEAD', '--to', link);
    expect(r.code, r.stderr).toBe(0);
    expect(read(real, 'data/a.csv')).toBe('a\n');
    expect(read(real, 'data/sub/b.csv')).toBe('b\n');
  });
});

describe('unprotect and remove go through the guard', () => {
  /** A pointer whose path leads through `link`, a symlink to a directory outside holding a read-only, hard-linked `x` and a .gitignore naming it. */
  async function hostile(): Promise<{ dir: string; outside: string; ino: number }> {
    const dir = await newRepo();
    const outside = newDir();
    write(outside, 'x', 'x');
    fs.linkSync(path.join(outside, 'x'), path.join(outside, 'x-other-name'));
    fs.chmodSync(path.join(outside, 'x'), 0o444);
    write(outside, '.gitignore', '/x\n');
    fs.symlinkSync(outside, path.join(dir, 'link'));
    write(dir, 'evil.tdv', `outs:\n- path: link/x\n  sha256: ${sha('x')}\n  size: 1\n`);
    return { dir, outside, ino: fs.statSync(path.join(outside, 'x')).ino };
  }

  it('tdv unprotect of a path behind a symlink out of the repository changes nothing there', async () => {
    const { dir, outside, ino } = await hostile();
    const r = await tdv(dir, 'unprotect', 'link/x');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'evil.tdv: link/x goes through the symlink link');
    expect(fs.statSync(path.join(outside, 'x')).ino).toBe(ino);
    expect(fs.statSync(path.join(outside, 'x')).mode & 0o777).toBe(0o444);
  });

  it('tdv remove of such a pointer edits no .gitignore and replaces no file outside; it drops the pointer, with a warning (review F16)', async () => {
    const { dir, outside, ino } = await hostile();
    const r = await tdv(dir, 'remove', 'evil.tdv');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('link/x goes through the symlink link');
    expect(read(outside, '.gitignore')).toBe('/x\n');
    expect(fs.statSync(path.join(outside, 'x')).ino).toBe(ino);
    expect(fs.existsSync(path.join(dir, 'evil.tdv'))).toBe(false);
  });
});
