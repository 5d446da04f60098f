/**
 * Issue 11, class 6: gc never deletes what it cannot see. A shallow clone
 * lacks the commits that may still reference objects; a cache outside the
 * repository may hold other repositories' objects; a cache inside tracked
 * data, or a remote that is the repository's own .git or .tdv, is a
 * configuration error before anything runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, snapshot, tdv, write } from '../helpers/repo.js';
import { cacheObjects, expectOneLineError, newDir, newRepo, remoteObjects, sha } from '../helpers/expect.js';
import { commitData } from '../helpers/history.js';

/** A repository with two committed versions of model.bin (m1 tagged v1, m2 at HEAD), pushed to a directory remote. */
async function published() {
  const dir = await newRepo();
  const remote = newDir();
  expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
  write(dir, 'model.bin', 'm1');
  await commitData(dir, 'one', ['model.bin']);
  await git(dir, 'tag', 'v1');
  write(dir, 'model.bin', 'm2');
  await commitData(dir, 'two', ['model.bin']);
  expect((await tdv(dir, 'push', '--all-commits')).code).toBe(0);
  expect(remoteObjects(remote)).toEqual([sha('m1'), sha('m2')].sort());
  return { dir, remote };
}

describe('gc in a shallow clone', () => {
  async function shallowClone() {
    const { dir, remote } = await published();
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', '--depth', '1', '--no-single-branch', `file://${dir}`, clone);
    expect(fs.existsSync(path.join(clone, '.git', 'shallow'))).toBe(true);
    expect((await tdv(clone, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    // The clone's cache holds both versions (as a CI cache restored from elsewhere might).
    write(clone, 'model.bin', 'm1');
    expect((await tdv(clone, 'add', 'model.bin')).code).toBe(0);
    await git(clone, 'checkout', '-q', '--', 'model.bin.tdv');
    expect((await tdv(clone, 'pull')).code).toBe(0);
    expect(cacheObjects(clone)).toEqual([sha('m1'), sha('m2')].sort());
    return { clone, remote };
  }

  it('--all-commits, --all-branches and --all-tags refuse, naming `git fetch --unshallow`; nothing is deleted', async () => {
    const { clone, remote } = await shallowClone();
    for (const scope of ['--all-commits', '--all-branches', '--all-tags']) {
      const r = await tdv(clone, 'gc', scope, '-f');
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, 'shallow', scope, 'git fetch --unshallow');
    }
    expect(cacheObjects(clone)).toEqual([sha('m1'), sha('m2')].sort());
    expect(remoteObjects(remote)).toEqual([sha('m1'), sha('m2')].sort());
  });

  it('--cloud refuses too, and the remote other clones rely on keeps every object', async () => {
    const { clone, remote } = await shallowClone();
    for (const args of [
      ['--all-commits', '--cloud'],
      ['--workspace', '--cloud'],
    ]) {
      const r = await tdv(clone, 'gc', ...args, '-f');
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, 'shallow', '--cloud', 'the remote', 'git fetch --unshallow');
    }
    expect(remoteObjects(remote)).toEqual([sha('m1'), sha('m2')].sort());
  });

  it('--workspace alone still collects the local cache: it needs no history', async () => {
    const { clone } = await shallowClone();
    const r = await tdv(clone, 'gc', '--workspace', '-f');
    expect(r.code, r.stderr).toBe(0);
    expect(cacheObjects(clone)).toEqual([sha('m2')]);
  });
});

describe('gc of a cache other repositories may use', () => {
  it('a cache.dir outside the repository is not collected without --shared-cache; --dry shows the plan', async () => {
    const shared = path.join(newDir(), 'shared-cache');
    const config = `cache:\n  dir: ${shared}\n`;
    const a = await newRepo();
    const b = await newRepo();
    fs.writeFileSync(path.join(a, '.tdv', 'config.local.yaml'), config);
    fs.writeFileSync(path.join(b, '.tdv', 'config.local.yaml'), config);
    write(a, 'a.bin', 'only a uses this');
    write(b, 'b.bin', 'only b uses this');
    expect((await tdv(a, 'add', 'a.bin')).code).toBe(0);
    expect((await tdv(b, 'add', 'b.bin')).code).toBe(0);
    const before = snapshot(shared);

    const r = await tdv(a, 'gc', '--workspace', '-f');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, shared, 'cache.dir', 'other repository', '--shared-cache');
    expect(snapshot(shared)).toEqual(before);

    const dry = await tdv(a, 'gc', '--workspace', '--dry');
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(sha('only b uses this'));
    expect(dry.stderr).toContain(`the cache ${shared} is outside this repository`);
    const json = await tdv(a, 'gc', '--workspace', '--dry', '--json');
    expect(JSON.parse(json.stdout).sharedCache).toEqual({ dir: shared, via: 'cache.dir' });
    expect(snapshot(shared)).toEqual(before);

    const forced = await tdv(a, 'gc', '--workspace', '-f', '--shared-cache');
    expect(forced.code, forced.stderr).toBe(0);
    expect(fs.existsSync(path.join(shared, 'files', 'sha256', sha('only b uses this').slice(0, 2), sha('only b uses this').slice(2)))).toBe(false);
  });

  it("a .tdv/cache symlink to another project's cache names that project and deletes nothing", async () => {
    const other = await newRepo();
    write(other, 'theirs.bin', 'their only copy');
    expect((await tdv(other, 'add', 'theirs.bin')).code).toBe(0);
    fs.rmSync(path.join(other, 'theirs.bin'));
    const mine = await newRepo();
    fs.rmSync(path.join(mine, '.tdv', 'cache'), { recursive: true, force: true });
    fs.symlinkSync(path.join(other, '.tdv', 'cache'), path.join(mine, '.tdv', 'cache'));
    const before = cacheObjects(other);
    expect(before).toContain(sha('their only copy'));

    const r = await tdv(mine, 'gc', '--workspace', '-f');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, `the repository ${other}`, '.tdv/cache symlink', '--shared-cache');
    expect(cacheObjects(other)).toEqual(before);
  });
});

describe('configuration that would make tdv delete or take in its own files', () => {
  it('cache.dir inside data a pointer tracks is an error of every command, naming both', async () => {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a');
    expect((await tdv(dir, 'add', 'data')).code).toBe(0);
    fs.writeFileSync(path.join(dir, '.tdv', 'config.local.yaml'), 'cache:\n  dir: ../data/cache\n');
    const before = snapshot(dir);
    for (const args of [['status'], ['checkout', '--force'], ['gc', '--workspace', '-f']]) {
      const r = await tdv(dir, ...args);
      expect(r.code, r.stderr).toBe(1);
      expectOneLineError(r.stderr, 'cache.dir', 'inside data', 'data.tdv');
    }
    expect(snapshot(dir)).toEqual(before);
  });

  it('cache.dir inside a stage output recorded in tdv.lock is an error too', async () => {
    const dir = await newRepo();
    write(
      dir,
      'tdv.lock',
      'schema: "1"\nstages:\n  train:\n    cmd: python train.py\n    deps: []\n    outs:\n      - path: models\n        sha256: 1111111111111111111111111111111111111111111111111111111111111111.dir\n        size: 1\n        nfiles: 1\n',
    );
    fs.writeFileSync(path.join(dir, '.tdv', 'config.local.yaml'), 'cache:\n  dir: ../models/cache\n');
    const r = await tdv(dir, 'status');
    expect(r.code, r.stderr).toBe(1);
    expectOneLineError(r.stderr, 'cache.dir', 'models', 'tdv.lock');
  });

  it("a directory remote that is, or leads by a symlink into, the repository's .git or .tdv is refused by add and by push", async () => {
    const dir = await newRepo();
    write(dir, 'model.bin', 'm');
    expect((await tdv(dir, 'add', 'model.bin')).code).toBe(0);
    const outside = newDir();
    fs.symlinkSync(path.join(dir, '.git'), path.join(outside, 'to-git'));
    fs.symlinkSync(path.join(dir, '.tdv'), path.join(outside, 'to-tdv'));
    fs.symlinkSync(dir, path.join(outside, 'to-repo'));
    for (const target of ['to-git', 'to-git/objects', 'to-tdv/cache', 'to-repo']) {
      const r = await tdv(dir, 'remote', 'add', 'x', path.join(outside, target));
      expect(r.code, `${target}: ${r.stderr}`).toBe(2);
      expectOneLineError(r.stderr, 'after symlinks');
    }
    const direct = await tdv(dir, 'remote', 'add', 'x', '.git');
    expect(direct.code).toBe(2);
    expectOneLineError(direct.stderr, "the repository's .git");
    // Hand-edited into the config: push refuses before writing anything.
    fs.writeFileSync(path.join(dir, '.tdv', 'config.local.yaml'), `remote:\n  x:\n    url: ${path.join(outside, 'to-git')}\n`);
    const before = snapshot(path.join(dir, '.git'));
    const push = await tdv(dir, 'push', '-r', 'x');
    expect(push.code).toBe(1);
    expectOneLineError(push.stderr, 'remote "x"', "the repository's .git", 'tdv remote modify x url PATH');
    expect(snapshot(path.join(dir, '.git'))).toEqual(before);
  });
});
