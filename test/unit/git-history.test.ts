import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { GitHistory, ShallowCloneError, UnknownRevisionError } from '../../src/git/history.js';
import { findGitWorkTree } from '../../src/git/git.js';
import { applyDelta } from '../../src/git/objects.js';
import { git, write } from '../helpers/repo.js';
import { useTmpDirs } from '../helpers/tmp.js';

/**
 * The history reader against real repositories built with the git CLI, which
 * is the oracle: every resolved revision and every file read is compared with
 * what `git rev-parse` and `git show` say.
 */

const tmp = useTmpDirs('tdv-git-');

/**
 * main: c1 - c2 - c3 ------ M (merge) - c5
 *                  \       /
 * feature:          f1 - f2
 * Tags: v1 (lightweight, c1), v2 (annotated, c3).
 */
async function history(): Promise<string> {
  const dir = tmp();
  await git(dir, 'init', '-q', '-b', 'main');
  const commit = async (file: string, content: string, msg: string) => {
    write(dir, file, content);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', msg);
  };
  await commit('data.tdv', 'v: 1\n', 'c1');
  await git(dir, 'tag', 'v1');
  await commit('data.tdv', 'v: 2\n', 'c2');
  await commit('sub/deep/model.tdv', 'm: 1\n', 'c3');
  await git(dir, 'tag', '-a', 'v2', '-m', 'release two');
  await git(dir, 'checkout', '-qb', 'feature');
  await commit('sub/other.tdv', 'o: 1\n', 'f1');
  await commit('sub/other.tdv', 'o: 2\n', 'f2');
  await git(dir, 'checkout', '-q', 'main');
  await commit('code.py', 'print(1)\n', 'c4');
  await git(dir, 'merge', '-q', '--no-ff', '-m', 'merge feature', 'feature');
  await commit('data.tdv', 'v: 3\n', 'c5');
  return dir;
}

const open = (dir: string) => GitHistory.open(findGitWorkTree(dir));

const REVS = ['HEAD', '@', 'HEAD~1', 'HEAD^', 'HEAD~1^2', 'HEAD^^2~1', 'HEAD~3', 'HEAD~0', 'main', 'feature', 'feature~1', 'v1', 'v2', 'v2^{commit}', 'v2~1', 'refs/heads/main', 'heads/feature'];

async function expectSameAsGit(dir: string, revs = REVS) {
  const h = open(dir);
  for (const rev of revs) expect(h.resolve(rev), rev).toBe(await git(dir, 'rev-parse', '--verify', '-q', `${rev}^{commit}`));
  const head = await git(dir, 'rev-parse', 'HEAD');
  expect(h.resolve(head)).toBe(head);
  expect(h.resolve(head.slice(0, 7))).toBe(head);
  h.close();
}

/** Every version of every file, read through the history reader, equals `git show`. */
async function expectFilesAsGit(dir: string) {
  const h = open(dir);
  for (const c of (await git(dir, 'rev-list', '--all')).split('\n')) {
    const files = (await git(dir, 'ls-tree', '-r', '--name-only', c)).split('\n').filter(Boolean);
    for (const f of files) expect(h.readFileAt(c, f)?.toString('utf8'), `${c}:${f}`).toBe(`${await git(dir, 'show', `${c}:${f}`)}\n`);
    expect(h.readFileAt(c, 'no/such/file')).toBeUndefined();
    const pointers = h.filesAt(h.commit(c).tree, '.tdv').map((x) => x.path);
    expect(pointers.sort()).toEqual(files.filter((f) => f.endsWith('.tdv')).sort());
  }
  h.close();
}

describe('GitHistory: resolving revisions', () => {
  it('resolves branches, tags, abbreviated ids, ~N, ^N and ^{commit} exactly as git rev-parse does (loose objects)', async () => {
    const dir = await history();
    expect(fs.readdirSync(path.join(dir, '.git', 'objects', 'pack')).filter((f) => f.endsWith('.pack'))).toEqual([]);
    await expectSameAsGit(dir);
  });

  it('resolves the same after git gc (packed objects and packed-refs)', async () => {
    const dir = await history();
    await git(dir, 'gc', '-q', '--aggressive');
    await git(dir, 'pack-refs', '--all');
    expect(fs.existsSync(path.join(dir, '.git', 'refs', 'heads', 'main'))).toBe(false);
    await expectSameAsGit(dir);
  });

  it('names a revision that does not exist, with exit code 2', async () => {
    const dir = await history();
    const h = open(dir);
    for (const [rev, why] of [
      ['nope', /unknown revision "nope": no branch, tag or commit of that name/],
      ['HEAD~99', /unknown revision "HEAD~99": commit [0-9a-f]{12} has no parent/],
      ['HEAD~1^3', /only 2 parent\(s\)/],
      ['deadbeef', /unknown revision "deadbeef"/],
      ['f'.repeat(40), /no such commit in this repository/],
      ['~1', /names no branch, tag or commit/],
    ] as const) {
      let err: unknown;
      try {
        h.resolve(rev);
      } catch (e) {
        err = e;
      }
      expect(err, rev).toBeInstanceOf(UnknownRevisionError);
      expect((err as UnknownRevisionError).exitCode).toBe(2);
      expect((err as Error).message).toMatch(why);
    }
  });

  it('refuses a revision that names a tree or a blob', async () => {
    const dir = await history();
    const tree = await git(dir, 'rev-parse', 'HEAD^{tree}');
    expect(() => open(dir).resolve(tree)).toThrow(/it names a tree, not a commit/);
  });

  it('says an abbreviated id is ambiguous when two objects share it', async () => {
    const dir = tmp();
    await git(dir, 'init', '-q');
    // 1,200 blobs: two of them almost surely share their first four hex digits.
    const files = Array.from({ length: 1200 }, (_, i) => write(dir, `b${i}`, `blob ${i}\n`));
    const hashed = (await execa('git', ['hash-object', '-w', '--stdin-paths'], { cwd: dir, input: files.join('\n') })).stdout.split('\n');
    const byPrefix = new Map<string, number>();
    for (const o of hashed) byPrefix.set(o.slice(0, 4), (byPrefix.get(o.slice(0, 4)) ?? 0) + 1);
    const shared = [...byPrefix].find(([, n]) => n > 1)?.[0];
    expect(shared).toBeDefined();
    expect(() => open(dir).resolve(shared!)).toThrow(new RegExp(`the short id ${shared} is ambiguous; give more digits`));
  });

  it('in a shallow clone, says the commit is missing and how to fetch the full history', async () => {
    const origin = await history();
    const dir = path.join(tmp(), 'shallow');
    await git(path.dirname(dir), 'clone', '-q', '--depth', '1', `file://${origin}`, dir);
    const h = open(dir);
    expect(h.isShallow).toBe(true);
    expect(h.resolve('HEAD')).toBe(await git(origin, 'rev-parse', 'HEAD'));
    const old = await git(origin, 'rev-parse', 'HEAD~2');
    for (const rev of ['HEAD~1', old]) {
      let err: unknown;
      try {
        h.resolve(rev);
      } catch (e) {
        err = e;
      }
      expect(err, rev).toBeInstanceOf(ShallowCloneError);
      expect((err as Error).message).toMatch(/shallow clone does not have; run `git fetch --unshallow`/);
      expect((err as ShallowCloneError).exitCode).toBe(1);
    }
    // The walk stops at the boundary instead of failing.
    expect([...h.reachable([h.resolve('HEAD')])].length).toBe(1);
  });

  it('reads from a linked worktree (HEAD of its own, objects and refs of the main repository)', async () => {
    const dir = await history();
    const wt = path.join(tmp(), 'wt');
    await git(dir, 'worktree', 'add', '-q', wt, 'feature');
    const h = open(wt);
    expect(h.headBranch()).toBe('feature');
    expect(h.resolve('HEAD')).toBe(await git(dir, 'rev-parse', 'feature'));
    expect(h.resolve('main')).toBe(await git(dir, 'rev-parse', 'main'));
  });

  it('reads objects borrowed through alternates (git clone --shared)', async () => {
    const dir = await history();
    await git(dir, 'gc', '-q');
    const shared = path.join(tmp(), 'shared');
    await git(path.dirname(shared), 'clone', '-q', '--shared', dir, shared);
    expect(fs.existsSync(path.join(shared, '.git', 'objects', 'info', 'alternates'))).toBe(true);
    await expectSameAsGit(shared, ['HEAD', 'HEAD~2', 'origin/feature', 'v2']);
    await expectFilesAsGit(shared);
  });
});

describe('GitHistory: repositories it cannot read', () => {
  it('says so for a SHA-256 repository instead of misreading it', async () => {
    const dir = tmp();
    await git(dir, 'init', '-q', '--object-format=sha256');
    expect(() => open(dir)).toThrow(/is a SHA-256 Git repository \(extensions\.objectFormat\), whose history tdv cannot read yet/);
  });

  it('names a damaged loose object', async () => {
    const dir = await history();
    const head = await git(dir, 'rev-parse', 'HEAD');
    const file = path.join(dir, '.git', 'objects', head.slice(0, 2), head.slice(2));
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, 'not zlib');
    expect(() => open(dir).resolve('HEAD')).toThrow(new RegExp(`cannot read the Git repository: loose object ${head} does not inflate; \`git fsck\` tells more`));
  });
});

describe('GitHistory: damaged repositories', () => {
  it('a missing commit object (not a shallow clone) names it', async () => {
    const dir = await history();
    const parent = await git(dir, 'rev-parse', 'HEAD~1');
    fs.rmSync(path.join(dir, '.git', 'objects', parent.slice(0, 2), parent.slice(2)), { force: true });
    const h = open(dir);
    expect(() => h.resolve('HEAD~1')).toThrow(`Git object ${parent} is not in the repository, which is damaged or incomplete; \`git fsck\` tells more`);
  });

  it('a pack index of another version, and a damaged packed object, are named', async () => {
    const dir = await history();
    await git(dir, 'gc', '-q');
    const packDir = path.join(dir, '.git', 'objects', 'pack');
    const idx = fs.readdirSync(packDir).find((f) => f.endsWith('.idx'))!;
    const pack = path.join(packDir, idx.replace(/\.idx$/, '.pack'));
    const commits = (await git(dir, 'rev-list', '--all')).split('\n');
    // Flip bytes in the middle of the pack: some object no longer inflates or has the wrong size.
    const bytes = fs.readFileSync(pack);
    fs.chmodSync(pack, 0o644);
    for (let i = 100; i < bytes.length - 40; i += 7) bytes[i] = bytes[i]! ^ 0xff;
    fs.writeFileSync(pack, bytes);
    const h = open(dir);
    expect(() => {
      for (const c of commits) for (const f of ['data.tdv', 'sub/deep/model.tdv', 'code.py']) h.readFileAt(c, f);
    }).toThrow(/^cannot read the Git repository: .*; `git fsck` tells more$/);
    fs.chmodSync(path.join(packDir, idx), 0o644);
    fs.writeFileSync(path.join(packDir, idx), Buffer.alloc(2000));
    expect(() => open(dir).resolve('HEAD')).toThrow(/is not a version 2 pack index/);
  });

  it('refs in the reftable format are refused with the command that converts them', async () => {
    const dir = await history();
    fs.mkdirSync(path.join(dir, '.git', 'reftable'));
    expect(() => open(dir)).toThrow(/stores its refs in the reftable format, which tdv cannot read yet; `git refs migrate --ref-format=files`/);
  });
});

describe('GitHistory: reading trees and files', () => {
  it('reads every version of every file as git show does, loose and packed with deltas', async () => {
    const dir = await history();
    // Many versions of one file, so the pack holds long delta chains.
    for (let i = 0; i < 40; i++) {
      write(dir, 'data.tdv', Array.from({ length: 20 + i }, (_, k) => `line ${k} of a file that grows by a line per version\n`).join(''));
      await git(dir, 'commit', '-qam', `version ${i}`);
    }
    await expectFilesAsGit(dir);
    await git(dir, 'repack', '-q', '-a', '-d', '-f', '--depth=50', '--window=250');
    await git(dir, 'prune-packed');
    const packs = fs.readdirSync(path.join(dir, '.git', 'objects', 'pack')).filter((f) => f.endsWith('.pack'));
    expect(packs.length).toBe(1);
    const verify = await git(dir, 'verify-pack', '-v', path.join(dir, '.git', 'objects', 'pack', packs[0]!));
    expect(verify).toMatch(/chain length = \d+:/); // deltas are really there
    await expectFilesAsGit(dir);
  });

  it('follows long delta chains (git fast-import deltifies each version against the previous one)', async () => {
    const dir = tmp();
    await git(dir, 'init', '-q', '-b', 'main');
    let stream = '';
    for (let i = 0; i < 60; i++) {
      const text = Array.from({ length: 10 + i }, (_, k) => `row ${k}\n`).join('');
      stream += `commit refs/heads/main\nmark :${i + 1}\ncommitter t <t@t> ${1700000000 + i} +0000\ndata 3\nv${i % 10}\n${i > 0 ? `from :${i}\n` : ''}`;
      stream += `M 100644 inline data.tdv\ndata ${text.length}\n${text}\n`;
    }
    await execa('git', ['fast-import', '--quiet'], { cwd: dir, input: stream });
    await git(dir, 'checkout', '-q', 'main');
    const pack = fs.readdirSync(path.join(dir, '.git', 'objects', 'pack')).find((f) => f.endsWith('.pack'))!;
    expect(await git(dir, 'verify-pack', '-v', path.join(dir, '.git', 'objects', 'pack', pack))).toMatch(/chain length = [1-9]\d:/);
    await expectFilesAsGit(dir);
  });

  it('lists tips of branches and tags, and every reachable commit once', async () => {
    const dir = await history();
    const h = open(dir);
    expect(h.tips('refs/heads/').map((t) => t.name)).toEqual(['refs/heads/feature', 'refs/heads/main']);
    expect(h.tips('refs/tags/')).toEqual([
      { name: 'refs/tags/v1', oid: await git(dir, 'rev-parse', 'v1') },
      { name: 'refs/tags/v2', oid: await git(dir, 'rev-parse', 'v2^{commit}') },
    ]);
    const all = [...h.reachable([h.resolve('main')])].map((c) => c.oid).sort();
    expect(all).toEqual((await git(dir, 'rev-list', '--all')).split('\n').sort());
  });

  it('parses commit metadata: parents, author, date and subject', async () => {
    const dir = await history();
    const h = open(dir);
    const merge = h.commit(h.resolve('HEAD~1'));
    expect(merge.parents).toEqual((await git(dir, 'rev-parse', 'HEAD~1^1', 'HEAD~1^2')).split('\n'));
    expect(merge.author.name).toBe('t');
    expect(merge.author.time).toBe(Number(await git(dir, 'log', '-1', '--format=%at', 'HEAD~1')));
    expect(merge.message.split('\n')[0]).toBe('merge feature');
  });
});

describe('applyDelta', () => {
  it('copies and inserts, and refuses a delta that does not fit its base', () => {
    const base = Buffer.from('hello, world');
    // src size 12, dst size 11; copy offset 7 len 5 ("world"), insert " hello".
    const delta = Buffer.from([12, 11, 0x80 | 0x01 | 0x10, 7, 5, 6, ...Buffer.from(' hello')]);
    expect(applyDelta(base, delta).toString()).toBe('world hello');
    expect(() => applyDelta(Buffer.from('short'), delta)).toThrow(/delta does not match its base/);
    expect(() => applyDelta(base, Buffer.from([12, 5, 0x80 | 0x01 | 0x10, 7, 9]))).toThrow(/copies outside its base/);
  });
});
