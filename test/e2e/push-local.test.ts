import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { git, read, tdvBin, write } from '../helpers/repo.js';
import { newDir, newRepo } from '../helpers/expect.js';

/** Every file under a local remote's object directory, with its content hash. */
function remoteFiles(remote: string): { name: string; oid: string; hash: string; mode: number }[] {
  const base = path.join(remote, 'files', 'sha256');
  const out = [];
  for (const p of fs.readdirSync(base)) {
    for (const rest of fs.readdirSync(path.join(base, p))) {
      const f = path.join(base, p, rest);
      out.push({ name: rest, oid: p + rest, hash: createHash('sha256').update(fs.readFileSync(f)).digest('hex'), mode: fs.statSync(f).mode & 0o777 });
    }
  }
  return out;
}

describe('push to a local remote with bin/tdv (two-thread path)', () => {
  it('publishes 2,500 objects whole and read-only, leaves no temp file, and a clone pulls them back', async () => {
    const dir = await newRepo();
    const remote = newDir();
    // The plain layout's two-thread path (the packed layout writes packs: test/api/packed.test.ts).
    fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `core:\n  remote: r\nremote:\n  r:\n    url: ${remote}\n    layout: plain\n`);
    for (let i = 0; i < 2500; i++) write(dir, `data/d${i % 25}/f${i}.txt`, `line ${i}\n`.repeat(1 + (i % 7)));
    expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    const r = await tdvBin(dir, ['push', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ transferred: 2501, failed: 0 });
    const files = remoteFiles(remote);
    expect(files).toHaveLength(2501);
    expect(files.filter((f) => f.name.startsWith('.tmp.'))).toEqual([]);
    for (const f of files) {
      expect(f.hash).toBe(f.oid.slice(0, 64));
      expect(f.mode & 0o222).toBe(0);
    }
    const b = path.join(newDir(), 'clone');
    await git(path.dirname(b), 'clone', '-q', dir, b);
    const p = await tdvBin(b, ['pull', '-q']);
    expect(p.code, p.stderr).toBe(0);
    expect(read(b, 'data/d24/f2499.txt')).toBe('line 2499\n'.repeat(1 + (2499 % 7)));
  });
});
