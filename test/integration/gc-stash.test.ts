import { describe, expect, it } from 'vitest';
import { git, read, tdvBin, write } from '../helpers/repo.js';
import { cacheObjects, newRepo, sha } from '../helpers/expect.js';

/**
 * Review finding F12: `gc --all-commits` ignored `refs/stash`, so data whose
 * pointer only a stash held was deleted for good; and gc ignored the Git
 * index, where a staged pointer may differ from both HEAD and the workspace.
 * Everything runs through the real bin/tdv.
 */
async function run(dir: string, ...args: string[]) {
  const r = await tdvBin(dir, args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

/** A repo with `data` committed at v1. */
async function committedV1() {
  const dir = await newRepo();
  write(dir, 'data', 'v1\n');
  await run(dir, 'add', '-q', 'data');
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'v1');
  return dir;
}

describe('gc keeps what stashes and the Git index reference (F12)', () => {
  it("--all-commits keeps a stashed pointer's data; `git stash pop` + checkout then restores it", async () => {
    const dir = await committedV1();
    write(dir, 'data', 'v2 precious work\n');
    await run(dir, 'add', '-q', 'data'); // v2 now only in the cache and the workspace
    await git(dir, 'stash', '-q');
    await run(dir, 'checkout', '-q'); // the pointer is back at v1
    expect(read(dir, 'data')).toBe('v1\n');
    await run(dir, 'gc', '--all-commits', '-f');
    expect(cacheObjects(dir)).toContain(sha('v2 precious work\n'));
    await git(dir, 'stash', 'pop', '-q');
    await run(dir, 'checkout', '-q');
    expect(read(dir, 'data')).toBe('v2 precious work\n');
  });

  it('keeps every stash entry (stash@{1}), the index commit of a stash and its untracked files (stash -u)', async () => {
    const dir = await committedV1();
    // stash@{1}: a modified pointer.
    write(dir, 'data', 'older stash\n');
    await run(dir, 'add', '-q', 'data');
    await git(dir, 'stash', '-q');
    // stash@{0}: a staged pointer (index commit), the same file changed again (work tree commit),
    // and a new, untracked pointer (untracked-files commit, git stash -u).
    write(dir, 'data', 'staged in the stash\n');
    await run(dir, 'add', '-q', 'data');
    await git(dir, 'add', 'data.tdv');
    write(dir, 'data', 'work tree of the stash\n');
    await run(dir, 'add', '-q', 'data');
    write(dir, 'fresh', 'untracked in the stash\n');
    await run(dir, 'add', '-q', 'fresh');
    await git(dir, 'stash', '-u', '-q');
    await run(dir, 'checkout', '-q');
    expect((await git(dir, 'stash', 'list')).split('\n')).toHaveLength(2);

    await run(dir, 'gc', '--all-commits', '-f');
    const kept = cacheObjects(dir);
    for (const c of ['v1\n', 'older stash\n', 'staged in the stash\n', 'work tree of the stash\n', 'untracked in the stash\n']) expect(kept, c).toContain(sha(c));

    // Without --all-commits the stashes are not kept (only the workspace and the index are).
    await run(dir, 'gc', '--workspace', '-f');
    expect(cacheObjects(dir)).toEqual([sha('v1\n')]);
  });

  it('keeps the data of a pointer staged in the Git index that differs from HEAD and the workspace, even with --workspace', async () => {
    const dir = await committedV1();
    write(dir, 'data', 'staged v2\n');
    await run(dir, 'add', '-q', 'data');
    await git(dir, 'add', 'data.tdv'); // what the next commit records
    write(dir, 'data', 'workspace v3\n');
    await run(dir, 'add', '-q', 'data');
    await run(dir, 'gc', '--workspace', '-f');
    expect(cacheObjects(dir)).toEqual([sha('staged v2\n'), sha('workspace v3\n')].sort());
    // Committing the index and checking it out works: the staged version is still there.
    await git(dir, 'commit', '-qm', 'v2');
    await git(dir, 'checkout', '-q', '--', 'data.tdv');
    await run(dir, 'checkout', '-q', '--force');
    expect(read(dir, 'data')).toBe('staged v2\n');
  });
});
