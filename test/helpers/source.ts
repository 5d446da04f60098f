/**
 * A second tdv repository on this machine, the "source" that `tdv ls URL`,
 * `tdv get` and `tdv import` read: its own directory remote (outside it), a
 * history with dated commits, data files and a tracked directory, all pushed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { beforeEach } from 'vitest';
import { makeRepo, tdv, tmpDir, write } from './repo.js';

export interface SourceRepo {
  /** The source repository's root (a plain path URL). */
  dir: string;
  /** `file://` URL of it. */
  url: string;
  /** Its directory remote "store". */
  remote: string;
  /** Commit ids: v1 (2016-07-01), v2 (2016-08-15, HEAD of main). */
  v1: string;
  v2: string;
}

/** Commits everything in `dir` with the given author and committer date. */
export async function commitAt(dir: string, date: string, message: string): Promise<string> {
  const env = { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_AUTHOR_DATE: date, GIT_COMMITTER_DATE: date };
  await execa('git', ['add', '-A'], { cwd: dir, env });
  await execa('git', ['commit', '-q', '-m', message], { cwd: dir, env });
  return (await execa('git', ['rev-parse', 'HEAD'], { cwd: dir })).stdout.trim();
}

async function ok(dir: string, ...args: string[]): Promise<void> {
  const r = await tdv(dir, ...args);
  if (r.code !== 0) throw new Error(`tdv ${args.join(' ')} failed: ${r.stderr}`);
}

/**
 * The source: `data/trips.csv` (data), `images/` (a tracked directory of
 * two files), `README.md` and `src/x.py` (Git files). v1 on 2016-07-01 with
 * trips "v1", v2 on 2016-08-15 with trips "v2" and a third image; tag `v1`.
 */
export async function makeSource(): Promise<SourceRepo> {
  const dir = await makeRepo();
  const remote = fs.realpathSync(tmpDir('tdv-src-remote-'));
  await ok(dir, 'remote', 'add', '-d', 'store', remote);
  write(dir, 'README.md', '# source\n');
  write(dir, 'src/x.py', 'print(1)\n');
  write(dir, 'data/trips.csv', 'id,km\n1,v1\n');
  write(dir, 'images/a.png', 'A');
  write(dir, 'images/sub/b.png', 'B');
  await ok(dir, 'add', 'data/trips.csv', 'images');
  const v1 = await commitAt(dir, '2016-07-01T12:00:00Z', 'v1');
  await execa('git', ['tag', 'v1'], { cwd: dir });
  await ok(dir, 'push');
  write(dir, 'data/trips.csv', 'id,km\n1,v2\n2,v2\n');
  write(dir, 'images/c.png', 'C');
  await ok(dir, 'add', 'data/trips.csv', 'images');
  const v2 = await commitAt(dir, '2016-08-15T12:00:00Z', 'v2');
  await ok(dir, 'push');
  return { dir, url: pathToFileURL(dir).href, remote, v1, v2 };
}

/** Every object file of a directory remote or cache (`files/sha256/ab/cdef...`). */
export function objectFiles(root: string): string[] {
  const base = path.join(root, 'files', 'sha256');
  if (!fs.existsSync(base)) return [];
  return fs.readdirSync(base).flatMap((d) => fs.readdirSync(path.join(base, d)).map((f) => path.join(base, d, f)));
}

/**
 * Points the per-user cache (clones of other repositories, their objects) at a
 * fresh temporary directory for each test, so tests never touch ~/.cache.
 * Returns a getter of the current one.
 */
export function isolateUserCache(): () => string {
  let current = '';
  beforeEach(() => {
    current = fs.realpathSync(tmpDir('tdv-usercache-'));
    process.env.TDV_CACHE_HOME = current;
  });
  return () => current;
}
