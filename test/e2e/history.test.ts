import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { read, TDV_BIN, tdvBin, write } from '../helpers/repo.js';
import { dirPointer, newDir, newRepo, remoteObjects, sha } from '../helpers/expect.js';
import { files } from '../helpers/history.js';

/**
 * End to end with bin/tdv as Git runs it: `tdv` on PATH, hooks fired by real
 * git checkout, merge and push, and the merge driver called by git merge.
 * Needs `npm run build` first.
 */

function tdvOnPath(): Record<string, string> {
  const bin = newDir();
  fs.writeFileSync(path.join(bin, 'tdv'), `#!/bin/sh\nexec node ${JSON.stringify(TDV_BIN)} "$@"\n`, { mode: 0o755 });
  return { PATH: `${bin}:${process.env.PATH}`, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', NO_COLOR: '1' };
}

async function run(env: Record<string, string>, cwd: string, cmd: string, ...args: string[]) {
  const r = await execa(cmd, args, { cwd, env, reject: false });
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** A repo with `tdv install` done, data/ tracked at commit v1 (tag) and changed at v2 (main). */
async function installedRepo(env: Record<string, string>) {
  const dir = await newRepo();
  const sh = (cmd: string, ...args: string[]) => run(env, dir, cmd, ...args);
  const ok = async (cmd: string, ...args: string[]) => {
    const r = await sh(cmd, ...args);
    expect(r.code, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r;
  };
  await ok('tdv', 'install');
  write(dir, 'data/a.csv', 'a1');
  write(dir, 'data/b.csv', 'b1');
  await ok('tdv', 'add', 'data');
  await ok('git', 'add', '-A');
  await ok('git', 'commit', '-qm', 'v1');
  await ok('git', 'tag', 'v1');
  write(dir, 'data/a.csv', 'a2');
  write(dir, 'data/c.csv', 'c2');
  await ok('tdv', 'add', 'data');
  await ok('git', 'commit', '-qam', 'v2');
  return { dir, sh, ok };
}

describe('Git hooks (bin/tdv)', () => {
  it('after git checkout of a tag or branch, the data follows; git checkout of a single file does not run it', async () => {
    const env = tdvOnPath();
    const { dir, ok, sh } = await installedRepo(env);
    await ok('git', 'checkout', '-q', 'v1');
    expect(files(path.join(dir, 'data'))).toEqual({ 'a.csv': 'a1', 'b.csv': 'b1' });
    await ok('git', 'checkout', '-q', 'main');
    expect(files(path.join(dir, 'data'))).toEqual({ 'a.csv': 'a2', 'b.csv': 'b1', 'c.csv': 'c2' });
    // A file checkout (flag 0): the pointer changes, the data is left to the user.
    await ok('git', 'checkout', 'v1', '--', 'data.tdv');
    expect(read(dir, 'data/a.csv')).toBe('a2');
    expect((await sh('tdv', 'status')).stdout).toContain('modified');
  });

  it('after git merge (a pull), the data follows the merged pointers', async () => {
    const env = tdvOnPath();
    const { dir, ok } = await installedRepo(env);
    await ok('git', 'checkout', '-q', '-b', 'old', 'v1');
    expect(read(dir, 'data/a.csv')).toBe('a1');
    await ok('git', 'merge', '-q', '--ff-only', 'main');
    expect(files(path.join(dir, 'data'))).toEqual({ 'a.csv': 'a2', 'b.csv': 'b1', 'c.csv': 'c2' });
  });

  it('git push runs tdv push first, and an existing pre-push hook still runs', async () => {
    const env = tdvOnPath();
    const dir = await newRepo();
    const marker = path.join(newDir(), 'ran');
    write(dir, '.git/hooks/pre-push', `#!/bin/sh\ncat > ${JSON.stringify(marker)}\n`);
    fs.chmodSync(path.join(dir, '.git/hooks/pre-push'), 0o755);
    const remote = newDir();
    const bare = path.join(newDir(), 'origin.git');
    const sh = (cmd: string, ...args: string[]) => run(env, dir, cmd, ...args);
    for (const c of [
      ['git', 'init', '-q', '--bare', bare],
      ['tdv', 'remote', 'add', '-d', 'store', remote],
      ['tdv', 'install'],
      ['git', 'remote', 'add', 'origin', bare],
    ])
      expect((await sh(c[0]!, ...c.slice(1))).code, c.join(' ')).toBe(0);
    write(dir, 'model.bin', 'weights');
    expect((await sh('tdv', 'add', 'model.bin')).code).toBe(0);
    expect((await sh('git', 'add', '-A')).code).toBe(0);
    expect((await sh('git', 'commit', '-qm', 'model')).code).toBe(0);
    const p = await sh('git', 'push', '-q', 'origin', 'main');
    expect(p.code, p.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual([sha('weights')]);
    // The original hook got Git's ref list on stdin.
    expect(read(marker, '')).toMatch(/^refs\/heads\/main [0-9a-f]{40} refs\/heads\/main [0-9a-f]{40}\n$/);
  });

  it('a failing tdv push stops the git push', async () => {
    const env = tdvOnPath();
    const dir = await newRepo();
    const bare = path.join(newDir(), 'origin.git');
    const sh = (cmd: string, ...args: string[]) => run(env, dir, cmd, ...args);
    expect((await sh('git', 'init', '-q', '--bare', bare)).code).toBe(0);
    expect((await sh('tdv', 'install')).code).toBe(0);
    expect((await sh('git', 'remote', 'add', 'origin', bare)).code).toBe(0);
    write(dir, 'model.bin', 'weights');
    expect((await sh('tdv', 'add', 'model.bin')).code).toBe(0);
    expect((await sh('git', 'add', '-A')).code).toBe(0);
    expect((await sh('git', 'commit', '-qm', 'model')).code).toBe(0);
    const p = await sh('git', 'push', '-q', 'origin', 'main');
    expect(p.code).not.toBe(0);
    expect(p.stderr).toContain('error: no remote configured');
    expect(p.stderr).toContain('tdv push failed, so the Git push is stopped');
    expect((await run(env, bare, 'git', 'branch', '--list')).stdout).toBe('');
  });
});

describe('merge driver (bin/tdv)', () => {
  async function branches(env: Record<string, string>, ours: Record<string, string>, theirs: Record<string, string>) {
    const { dir, ok, sh } = await installedRepo(env);
    await ok('git', 'checkout', '-q', '-b', 'feature');
    for (const [f, c] of Object.entries(theirs)) write(dir, `data/${f}`, c);
    await ok('tdv', 'add', 'data');
    await ok('git', 'commit', '-qam', 'feature');
    await ok('git', 'checkout', '-q', 'main');
    for (const [f, c] of Object.entries(ours)) write(dir, `data/${f}`, c);
    await ok('tdv', 'add', 'data');
    await ok('git', 'commit', '-qam', 'main');
    return { dir, ok, sh };
  }

  it('git merge of branches that changed different files of a tracked directory merges the pointer, and the hook checks the union out', async () => {
    const env = tdvOnPath();
    const { dir, sh } = await branches(env, { 'a.csv': 'a-main' }, { 'b.csv': 'b-feature', 'd.csv': 'd' });
    const m = await sh('git', 'merge', '--no-edit', 'feature');
    expect(m.code, m.stderr + m.stdout).toBe(0);
    const union = { 'a.csv': 'a-main', 'b.csv': 'b-feature', 'c.csv': 'c2', 'd.csv': 'd' };
    expect(read(dir, 'data.tdv')).toBe(
      dirPointer(
        'data',
        Object.entries(union).map(([relpath, content]) => ({ relpath, content })),
      ),
    );
    expect(files(path.join(dir, 'data'))).toEqual(union);
    expect((await sh('tdv', 'status')).stdout.trim()).toBe('Data and pipelines are up to date.');
  });

  it('a file changed differently on both branches is a conflict that names it', async () => {
    const env = tdvOnPath();
    const { dir, sh } = await branches(env, { 'a.csv': 'a-main' }, { 'a.csv': 'a-feature' });
    const m = await sh('git', 'merge', '--no-edit', 'feature');
    expect(m.code).toBe(1);
    expect(m.stderr).toContain('error: data.tdv: changed differently on both sides: data/a.csv');
    expect(m.stdout).toContain('CONFLICT (content): Merge conflict in data.tdv');
    expect(read(dir, 'data.tdv')).toMatch(/^<<<<<<< ours\n/);
    expect((await sh('git', 'status', '--porcelain')).stdout).toContain('UU data.tdv');
  });
});

describe('history commands (bin/tdv)', () => {
  it('checkout --rev --to, diff and log work as a user runs them', async () => {
    const env = tdvOnPath();
    const { dir } = await installedRepo(env);
    const snap = path.join(newDir(), 'v1');
    const c = await tdvBin(dir, ['checkout', '--rev', 'v1', '--to', snap]);
    expect(c.code, c.stderr).toBe(0);
    expect(files(snap)).toEqual({ 'data/a.csv': 'a1', 'data/b.csv': 'b1' });
    const d = await tdvBin(dir, ['diff', 'v1', 'HEAD']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout.trim().split('\n').at(-1)).toBe('2 files changed between v1 and HEAD: 1 added, 1 modified, 0 deleted.');
    const l = await tdvBin(dir, ['log', 'data', '--json']);
    expect(l.code, l.stderr).toBe(0);
    expect(JSON.parse(l.stdout).commits.map((x: { subject: string }) => x.subject)).toEqual(['v2', 'v1']);
    const bad = await tdvBin(dir, ['checkout', '--rev', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: unknown revision "nope": no branch, tag or commit of that name (`git branch -a`, `git tag` and `git log --oneline` list them)');
  });
});
