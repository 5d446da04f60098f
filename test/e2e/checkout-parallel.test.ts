import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeRepo, tdvBin } from '../helpers/repo.js';

/** More files than PARALLEL_MIN, so the real binary links half of them on a worker thread. */
const N = 2200;

function makeTree(root: string): void {
  for (let i = 0; i < N; i++) {
    const d = path.join(root, 'data', `p${i % 20}`);
    if (i < 20) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, `f${i}.txt`), `file ${i}\n`);
  }
}

describe('checkout of a large directory (two threads)', () => {
  it('restores every file with its content, and status is clean afterwards', async () => {
    const dir = await makeRepo();
    makeTree(dir);
    expect((await tdvBin(dir, ['add', '-q', 'data'])).code).toBe(0);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdvBin(dir, ['checkout']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Restored ${N} files`);
    for (let i = 0; i < N; i++) expect(fs.readFileSync(path.join(dir, 'data', `p${i % 20}`, `f${i}.txt`), 'utf8')).toBe(`file ${i}\n`);
    expect(fs.readdirSync(path.join(dir, 'data', 'p0')).filter((n) => n.includes('tdvtmp'))).toEqual([]);
    expect((await tdvBin(dir, ['status'])).stdout.trim()).toBe('Data and pipelines are up to date.');
  });

  it('a missing object holds back only its own file: both threads restore every other one (issue 12)', async () => {
    const dir = await makeRepo();
    makeTree(dir);
    expect((await tdvBin(dir, ['add', '-q', 'data'])).code).toBe(0);
    // The last file in plan order goes to the worker; drop its object from the cache.
    const last = `file ${N - 1}\n`;
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256').update(last).digest('hex');
    const obj = path.join(dir, '.tdv', 'cache', 'files', 'sha256', sha.slice(0, 2), sha.slice(2));
    fs.rmSync(obj);
    fs.rmSync(path.join(dir, 'data'), { recursive: true });
    const r = await tdvBin(dir, ['checkout']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*data\/p\d+\/f2199\.txt.*tdv pull/);
    expect(r.stderr).not.toContain('bug');
    expect(r.stdout).toContain(`Restored ${N - 1} files`);
    for (let i = 0; i < N - 1; i++) expect(fs.readFileSync(path.join(dir, 'data', `p${i % 20}`, `f${i}.txt`), 'utf8')).toBe(`file ${i}\n`);
    expect(fs.existsSync(path.join(dir, 'data', `p${(N - 1) % 20}`, `f${N - 1}.txt`))).toBe(false);
  });
});
