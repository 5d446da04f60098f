import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tripsCsv } from '../../fixtures/bikeshare/generate.mjs';
import { git, read, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, filePointer, isReadOnly, newDir, newRepo, setConfig, state } from '../helpers/expect.js';
import { commitData, day, files, julyHistory, julyUpTo } from '../helpers/history.js';
import { checkout } from '../../src/repo/checkout.js';
import { expectClean, withRepo } from '../helpers/api.js';

/** Workspace-relative state of everything but data/ and the stat cache: what checkout --rev must not touch. */
function outsideData(dir: string): Record<string, string> {
  const s = state(dir);
  for (const k of Object.keys(s)) if (k.startsWith('data/')) delete s[k];
  return s;
}

describe('tdv checkout --rev: the bike-share month', () => {
  it('restores exactly the files of the July 31 commit after August changed them, and --to writes the same snapshot without touching the workspace', async () => {
    const { dir, commits } = await julyHistory();
    // August: July 31 is re-exported (a correction), July 1 is dropped, August 1 arrives.
    write(dir, `data/trips/${day(31)}.csv`, tripsCsv(31, 20) + '3199999,2024-07-31T23:59,Pier 40,12\n');
    fs.rmSync(path.join(dir, `data/trips/${day(1)}.csv`));
    write(dir, 'data/trips/2024-08-01.csv', 'trip_id,start,station,minutes\n1,2024-08-01T08:00,Wall St,9\n');
    await commitData(dir, 'August 1, and a corrected July 31', ['data']);
    const july31 = commits[30]!;

    // --to first: a snapshot beside today's data; the workspace stays as it is.
    const before = state(dir);
    const snap = path.join(newDir(), 'as-of-july-31');
    const s = await withRepo(dir, (repo) => checkout(repo, { rev: july31.slice(0, 9), to: snap }));
    expect({ restored: s.restored.length, deleted: s.deleted, missing: s.missing, commit: s.commit }).toEqual({ restored: 32, deleted: [], missing: [], commit: july31 });
    expect(files(path.join(snap, 'data'))).toEqual(julyUpTo(31));
    expect(Object.keys(files(snap)).every((f) => f.startsWith('data/'))).toBe(true);
    expect(state(dir)).toEqual(before);

    // Into the workspace, by tag: the August file goes, July 1 and the old July 31 come back.
    const pointersBefore = outsideData(dir);
    const r = await withRepo(dir, (repo) => checkout(repo, { rev: 'july-end' }));
    expect(r.deleted).toEqual(['data/trips/2024-08-01.csv']);
    expect([...r.restored].sort()).toEqual([`data/trips/${day(1)}.csv`, `data/trips/${day(31)}.csv`]);
    expect(r.commit).toBe(july31);
    expect(files(path.join(dir, 'data'))).toEqual(julyUpTo(31));
    // Pointers and Git are untouched: the workspace now differs from HEAD's pointer, and says so.
    expect(outsideData(dir)).toEqual(pointersBefore);
    expect(await git(dir, 'status', '--porcelain')).toBe('');
    const st = await tdv(dir, 'status', '--json');
    expect(JSON.parse(st.stdout).data[0]).toMatchObject({
      path: 'data',
      workspace: 'modified',
      files: { added: ['trips/2024-07-01.csv'], deleted: ['trips/2024-08-01.csv'], modified: ['trips/2024-07-31.csv'] },
    });

    // Back to HEAD's data with a plain checkout.
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect(fs.existsSync(path.join(dir, 'data/trips/2024-08-01.csv'))).toBe(true);
    await expectClean(dir);
  });

  it('restores any day of the month by HEAD~N, branch or commit id, each exactly as committed', async () => {
    const { dir, commits } = await julyHistory(10);
    await git(dir, 'branch', 'day-4', commits[3]!);
    for (const [rev, d] of [
      ['HEAD~9', 1],
      ['day-4', 4],
      [commits[6]!, 7],
      ['HEAD', 10],
    ] as const) {
      const r = await tdv(dir, 'checkout', '--rev', rev);
      expect(r.code, `${rev}: ${r.stderr}`).toBe(0);
      expect(files(path.join(dir, 'data')), rev).toEqual(julyUpTo(d));
    }
  });
});

describe('tdv checkout --rev: targets, safety and errors', () => {
  async function twoVersions() {
    const dir = await newRepo();
    write(dir, 'model.bin', 'weights v1');
    write(dir, 'data/a.csv', 'a1');
    const v1 = await commitData(dir, 'v1', ['model.bin', 'data']);
    await git(dir, 'tag', 'v1');
    write(dir, 'model.bin', 'weights v2');
    write(dir, 'data/a.csv', 'a2');
    write(dir, 'data/b.csv', 'b2');
    await commitData(dir, 'v2', ['model.bin', 'data']);
    return { dir, v1 };
  }

  it('restores only the named targets, a file inside a tracked directory included', async () => {
    const { dir } = await twoVersions();
    const r = await tdv(dir, 'checkout', '--rev', 'v1', 'model.bin');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'model.bin')).toBe('weights v1');
    expect(read(dir, 'data/a.csv')).toBe('a2');
    const r2 = await tdv(dir, 'checkout', '--rev', 'v1', 'data/a.csv');
    expect(r2.code, r2.stderr).toBe(0);
    expect(read(dir, 'data/a.csv')).toBe('a1');
    expect(read(dir, 'data/b.csv')).toBe('b2');
  });

  it('restores data whose pointer no longer exists at HEAD', async () => {
    const { dir } = await twoVersions();
    expect((await tdv(dir, 'remove', 'model.bin')).code).toBe(0);
    fs.rmSync(path.join(dir, 'model.bin'));
    await git(dir, 'commit', '-qam', 'drop the model');
    const r = await tdv(dir, 'checkout', '--rev', 'v1', 'model.bin');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'model.bin')).toBe('weights v1');
  });

  it('--dry lists what it would do and changes nothing', async () => {
    const { dir } = await twoVersions();
    const before = state(dir);
    const r = await withRepo(dir, (repo) => checkout(repo, { rev: 'v1', dry: true }));
    expect([...r.restored].sort()).toEqual(['data/a.csv', 'model.bin']);
    expect(r.deleted).toEqual(['data/b.csv']);
    expect(state(dir)).toEqual(before);
  });

  it('refuses to overwrite a workspace change that is not in the cache, and --force discards it', async () => {
    const { dir } = await twoVersions();
    write(dir, 'model.bin', 'precious, never added');
    const before = state(dir);
    const r = await tdv(dir, 'checkout', '--rev', 'v1');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'model.bin', 'tdv checkout --force');
    expect(state(dir)).toEqual(before);
    const f = await tdv(dir, 'checkout', '--rev', 'v1', '--force');
    expect(f.code, f.stderr).toBe(0);
    expect(read(dir, 'model.bin')).toBe('weights v1');
  });

  it('an unknown revision is a usage error naming it', async () => {
    const { dir } = await twoVersions();
    const before = state(dir);
    const r = await tdv(dir, 'checkout', '--rev', 'no-such-tag');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'unknown revision "no-such-tag"');
    const r2 = await tdv(dir, 'checkout', '--rev', 'HEAD~5');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'unknown revision "HEAD~5"', 'has no parent');
    expect(state(dir)).toEqual(before);
  });

  it('a file a tracked directory lacks at the revision is deleted; a path not tracked there is a usage error that names the revision', async () => {
    const { dir } = await twoVersions();
    const r = await withRepo(dir, (repo) => checkout(repo, { rev: 'v1', targets: [path.join(dir, 'data/b.csv')] }));
    expect(r).toMatchObject({ restored: [], deleted: ['data/b.csv'], missing: [] });
    expect(fs.existsSync(path.join(dir, 'data/b.csv'))).toBe(false);
    expect(read(dir, 'data/a.csv')).toBe('a2');
    write(dir, 'notes.txt', 'n');
    const r2 = await tdv(dir, 'checkout', '--rev', 'v1', 'notes.txt');
    expect(r2.code).toBe(2);
    expectOneLineError(r2.stderr, 'notes.txt is not tracked by tdv at v1');
  });

  it('a malformed pointer at the revision is an error naming revision and file', async () => {
    const dir = await newRepo();
    write(dir, 'x.tdv', 'outs:\n- path: x\n  sha256: nothex\n  size: 1\n');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'bad pointer');
    await git(dir, 'tag', 'bad');
    fs.rmSync(path.join(dir, 'x.tdv'));
    const r = await tdv(dir, 'checkout', '--rev', 'bad');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'bad:x.tdv', 'sha256 must be 64 lowercase hex digits');
  });

  it('without the objects, says to pull them with --rev or --pull; --pull fetches them from the remote first', async () => {
    const { dir, v1 } = await twoVersions();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);
    // Push v1's data (from a checkout of v1) and the current data.
    await git(dir, 'checkout', '-q', 'v1');
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    await git(dir, 'checkout', '-q', 'main');
    expect((await tdv(dir, 'checkout')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    expect((await tdv(clone, 'remote', 'add', '--local', '-d', 'store', remote)).code).toBe(0);

    const before = state(clone);
    const r = await tdv(clone, 'checkout', '--rev', 'v1');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not in the cache', 'tdv pull --rev v1', '--pull');
    expect(state(clone)).toEqual(before);

    const p = await tdv(clone, 'checkout', '--rev', v1.slice(0, 8), '--pull');
    expect(p.code, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/Fetched 3 objects .* from remote "store"/); // the model, the manifest and a.csv of v1
    expect(read(clone, 'model.bin')).toBe('weights v1');
    expect(read(clone, 'data/a.csv')).toBe('a1');
  });

  it('--pull with a failing fetch says so, and its retry hint is the command as given', async () => {
    const { dir } = await twoVersions();
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const empty = newDir();
    expect((await tdv(clone, 'remote', 'add', '-d', 'empty', empty)).code).toBe(0);
    const before = state(clone);
    const r = await tdv(clone, 'checkout', '--rev', 'v1', '--pull');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*failed .*nothing was checked out; run `tdv checkout --rev v1 --pull` again/m);
    expect(state(clone)).toEqual(before);
  });

  it('-r without --pull is a usage error', async () => {
    const { dir } = await twoVersions();
    const r = await tdv(dir, 'checkout', '--rev', 'v1', '-r', 'x');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '-r/--remote and -j/--jobs only apply with --pull');
  });

  it('in a shallow clone, an older revision is an error suggesting git fetch --unshallow', async () => {
    const { dir } = await twoVersions();
    const clone = path.join(newDir(), 'shallow');
    await git(path.dirname(clone), 'clone', '-q', '--depth', '1', `file://${dir}`, clone);
    const r = await tdv(clone, 'checkout', '--rev', 'HEAD~1');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'shallow clone', 'git fetch --unshallow');
  });

  it('a tdv repository outside Git has no revisions to check out', async () => {
    const dir = newDir();
    expect((await tdv(dir, 'init', '--no-scm')).code).toBe(0);
    const r = await tdv(dir, 'checkout', '--rev', 'HEAD');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'not in a Git work tree');
  });
});

describe('tdv checkout --to: snapshots', () => {
  async function history() {
    const dir = await newRepo();
    write(dir, 'data/a.csv', 'a1');
    write(dir, 'data/sub/b.csv', 'b1');
    write(dir, 'model.bin', 'm1');
    const c1 = await commitData(dir, 'one', ['data', 'model.bin']);
    write(dir, 'data/a.csv', 'a2');
    write(dir, 'model.bin', 'm2');
    await commitData(dir, 'two', ['data', 'model.bin']);
    return { dir, c1 };
  }

  it('is read-only when the cache links (hardlink), writable with copies, and a second run into the same directory is a no-op', async () => {
    const { dir, c1 } = await history();
    setConfig(dir, 'cache:\n  type: hardlink\n  allow_root_links: true\n');
    const snap = path.join(newDir(), 'snap');
    const r = await tdv(dir, 'checkout', '--rev', c1, '--to', snap);
    expect(r.code, r.stderr).toBe(0);
    expect(files(snap)).toEqual({ 'data/a.csv': 'a1', 'data/sub/b.csv': 'b1', 'model.bin': 'm1' });
    expect(isReadOnly(path.join(snap, 'data/a.csv'))).toBe(true);
    expect(isReadOnly(path.join(snap, 'model.bin'))).toBe(true);
    const again = await tdv(dir, 'checkout', '--rev', c1, '--to', snap);
    expect(again.code, again.stderr).toBe(0);
    // The commit is named once: it is what was given.
    expect(again.stdout.trim()).toBe(`${snap} already matches the data of ${c1}.`);

    setConfig(dir, 'cache:\n  type: copy\n');
    const snap2 = path.join(newDir(), 'snap2');
    expect((await tdv(dir, 'checkout', '--rev', c1, '--to', snap2, 'model.bin')).code).toBe(0);
    expect(files(snap2)).toEqual({ 'model.bin': 'm1' });
    expect(isReadOnly(path.join(snap2, 'model.bin'))).toBe(false);
  });

  it('without --rev, snapshots the data of the workspace pointers', async () => {
    const { dir } = await history();
    const snap = path.join(newDir(), 'now');
    const r = await tdv(dir, 'checkout', '--to', snap);
    expect(r.code, r.stderr).toBe(0);
    expect(files(snap)).toEqual({ 'data/a.csv': 'a2', 'data/sub/b.csv': 'b1', 'model.bin': 'm2' });
  });

  it('switches an existing snapshot to another revision, deleting files that revision lacks', async () => {
    const { dir, c1 } = await history();
    write(dir, 'data/new.csv', 'n');
    await commitData(dir, 'three', ['data']);
    const snap = path.join(newDir(), 'snap');
    expect((await tdv(dir, 'checkout', '--to', snap)).code).toBe(0);
    const r = await tdv(dir, 'checkout', '--rev', c1, '--to', snap);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('deleted: data/new.csv');
    expect(files(snap)).toEqual({ 'data/a.csv': 'a1', 'data/sub/b.csv': 'b1', 'model.bin': 'm1' });
  });

  it('refuses to overwrite a file in the snapshot directory that is not in the cache, unless --force', async () => {
    const { dir, c1 } = await history();
    const snap = newDir();
    write(snap, 'model.bin', 'my own notes');
    const r = await tdv(dir, 'checkout', '--rev', c1, '--to', snap);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, `in ${snap} are not in the cache`, 'model.bin', '--force');
    expect(read(snap, 'model.bin')).toBe('my own notes');
    expect(fs.existsSync(path.join(snap, 'data'))).toBe(false);
    expect((await tdv(dir, 'checkout', '--rev', c1, '--to', snap, '--force')).code).toBe(0);
    expect(read(snap, 'model.bin')).toBe('m1');
  });

  it('refuses a directory that holds the repository, lies in .tdv, .git or tracked data, or is a file', async () => {
    const { dir, c1 } = await history();
    write(dir, 'plain.txt', 'p');
    // Tracked in the workspace only, not at c1.
    write(dir, 'later/x.csv', 'x');
    expect((await tdv(dir, 'add', 'later')).code).toBe(0);
    const before = state(dir);
    for (const [to, why] of [
      [dir, 'it contains the repository'],
      [path.dirname(dir), 'it contains the repository'],
      [path.join(dir, '.tdv', 'snap'), 'it is inside'],
      [path.join(dir, '.git', 'snap'), 'it is inside'],
      [path.join(dir, 'data', 'snap'), 'it is inside tracked data (data)'],
      [path.join(dir, 'later', 'snap'), 'it is inside tracked data (later)'],
      [path.join(dir, 'plain.txt'), 'it is not a directory'],
    ] as const) {
      const r = await tdv(dir, 'checkout', '--rev', c1, '--to', to);
      expect(r.code, to).toBe(2);
      expectOneLineError(r.stderr, `cannot write a snapshot into ${to}: ${why}`);
    }
    expect(state(dir)).toEqual(before);
  });

  it('never writes through a symlink that leaves the snapshot directory', async () => {
    const dir = await newRepo();
    write(dir, 'models/m.bin', 'm');
    const c = await commitData(dir, 'model', ['models/m.bin']);
    const snap = newDir();
    const elsewhere = newDir();
    fs.symlinkSync(elsewhere, path.join(snap, 'models'));
    const r = await tdv(dir, 'checkout', '--rev', c, '--to', snap);
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, ':models/m.bin.tdv: models/m.bin goes through the symlink models', 'tdv never reads or writes through a symlink');
    expect(fs.readdirSync(elsewhere)).toEqual([]);
  });

  it('replaces a symlink in the way of a tracked directory only with --force, never following it', async () => {
    const { dir, c1 } = await history();
    const snap = newDir();
    const elsewhere = newDir();
    write(elsewhere, 'keep.txt', 'k');
    fs.symlinkSync(elsewhere, path.join(snap, 'data'));
    const r = await tdv(dir, 'checkout', '--rev', c1, '--to', snap, 'data');
    expect(r.code).toBe(1);
    expectOneLineError(r.stderr, 'data', '--force');
    expect((await tdv(dir, 'checkout', '--rev', c1, '--to', snap, 'data', '--force')).code).toBe(0);
    expect(fs.lstatSync(path.join(snap, 'data')).isDirectory()).toBe(true);
    expect(files(path.join(snap, 'data'))).toEqual({ 'a.csv': 'a1', 'sub/b.csv': 'b1' });
    expect(files(elsewhere)).toEqual({ 'keep.txt': 'k' });
  });

  it('a snapshot inside the repository is refused: Git would commit it, and it could overwrite Git-tracked files (review F5)', async () => {
    const { dir, c1 } = await history();
    write(dir, 'snapshots/one/model.bin', 'kept in git\n');
    await git(dir, 'add', 'snapshots/one/model.bin');
    const before = state(dir);
    const r = await tdv(dir, 'checkout', '--rev', c1, '--to', 'snapshots/one');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, 'snapshots/one', 'inside the repository', 'outside');
    expect(state(dir)).toEqual(before);
    expect(read(dir, 'snapshots/one/model.bin')).toBe('kept in git\n');
  });
});

describe('history in a tdv repository below the top of the Git work tree (init --subdir)', () => {
  it('checkout --rev, diff and log read the pointers under the subdirectory', async () => {
    const top = await newRepo({ init: false });
    const dir = path.join(top, 'ml');
    fs.mkdirSync(dir);
    expect((await tdv(dir, 'init', '--subdir')).code).toBe(0);
    write(dir, 'model.bin', 'm1');
    write(top, 'elsewhere/other.tdv', 'not ours: outside the tdv repository\n');
    const c1 = await commitData(dir, 'one', ['model.bin']);
    write(dir, 'model.bin', 'm2');
    await commitData(dir, 'two', ['model.bin']);
    const r = await tdv(dir, 'checkout', '--rev', 'HEAD~1');
    expect(r.code, r.stderr).toBe(0);
    expect(read(dir, 'model.bin')).toBe('m1');
    const d = await tdv(dir, 'diff', c1, 'HEAD', '--json');
    expect(d.code, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout).changes.map((c: { path: string }) => c.path)).toEqual(['model.bin']);
    const l = await tdv(dir, 'log', '--json');
    expect(l.code, l.stderr).toBe(0);
    expect(JSON.parse(l.stdout).commits.map((c: { subject: string; changes: { pointer: string }[] }) => [c.subject, c.changes[0]!.pointer])).toEqual([
      ['two', 'model.bin.tdv'],
      ['one', 'model.bin.tdv'],
    ]);
  });
});
