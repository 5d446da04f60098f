import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRepo, tdv, tmpDir, write } from '../helpers/repo.js';
import { expectOneLineError } from '../helpers/expect.js';
import { commitAt, isolateUserCache, makeSource } from '../helpers/source.js';

/** CLI layer: how `tdv ls` words its listing, reads its arguments, --json and errors. What it lists: test/api/ls.test.ts. */
isolateUserCache();

describe('tdv ls', () => {
  it('one line per entry: "data" or "git", directories with a trailing slash; -l adds sizes', async () => {
    const src = await makeSource();
    const r = await tdv(src.dir, 'ls');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(['git   .gitignore', 'git   .tdvignore', 'git   README.md', 'git   data/', 'data  images/', 'git   images.tdv', 'git   src/', ''].join('\n'));
    const long = await tdv(path.join(src.dir, 'data'), 'ls', '-l', '.', '--rev', 'v1');
    expect(long.stdout.split('\n')[1]).toBe(`data        11 B  trips.csv`);
  });

  it('a URL as the first argument, from inside another repository and outside any', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    const outside = tmpDir();
    for (const cwd of [here, outside]) {
      const r = await tdv(cwd, 'ls', src.url, 'images', '-R');
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('data  a.png\ndata  c.png\ndata  sub/b.png\n');
    }
    const rel = await tdv(here, 'ls', path.relative(here, src.dir), '--rev', '@2016-07-31', 'images');
    expect(rel.stderr).toBe('');
    expect(rel.stdout).toBe('data  a.png\ndata  sub/\n');
  });

  it('--json: a list of entries', async () => {
    const src = await makeSource();
    const r = await tdv(tmpDir(), 'ls', src.dir, 'data/trips.csv', '--json');
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([{ path: 'trips.csv', kind: 'file', source: 'data', size: 16, oid: expect.any(String) }]);
  });

  it('errors: a missing path, no repository, a URL git would read as an option, ext::', async () => {
    const src = await makeSource();
    const missing = await tdv(src.dir, 'ls', 'nope');
    expect(missing.code).toBe(1);
    expectOneLineError(missing.stderr, 'nope does not exist at HEAD');
    const none = await tdv(tmpDir(), 'ls');
    expect(none.code).toBe(1);
    expectOneLineError(none.stderr, 'not a tdv repository');
    const dash = await tdv(tmpDir(), 'ls', '--', '--upload-pack=touch x');
    expect(dash.code).toBe(2);
    expectOneLineError(dash.stderr, 'starts with "-"');
    const ext = await tdv(tmpDir(), 'ls', 'ext::sh -c touch% /tmp/pwned');
    expect(ext.code).toBe(2);
    expectOneLineError(ext.stderr, 'remote helper');
  });

  it("errors about another repository's revisions and pointers name it, and give advice that works from here", async () => {
    const src = await makeSource();
    const out = fs.realpathSync(tmpDir());
    const rev = await tdv(out, 'ls', src.url, '--rev', 'nope');
    expect(rev.code).toBe(2);
    // Not `git branch -a`: run here, it lists this directory's branches, not the source's.
    expectOneLineError(rev.stderr, `${src.url}: unknown revision "nope"`, `git ls-remote ${src.url}`);
    expect(rev.stderr).not.toContain('git branch -a');
    const id = await tdv(out, 'ls', src.url, '--rev', '0123456789012345678901234567890123456789');
    expectOneLineError(id.stderr, `${src.url}: unknown revision`, `git ls-remote ${src.url}`);
    expect(id.stderr).not.toContain('git log');
    write(src.dir, 'evil.tdv', `outs:\n- path: .git/hooks/pre-commit\n  sha256: ${'a'.repeat(64)}\n  size: 1\n`);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'hostile pointer');
    const ptr = await tdv(out, 'ls', src.url);
    expect(ptr.code).toBe(1);
    // Not "git checkout -- <file>": the pointer is in someone else's repository.
    expectOneLineError(ptr.stderr, `${src.url}: HEAD:evil.tdv`, '.git', 'its owners', '--rev');
    expect(ptr.stderr).not.toContain('git checkout');
  });
});
