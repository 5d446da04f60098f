import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TDV_BIN, tdv, tdvBin, tmpDir, write } from '../helpers/repo.js';
import { commitAt, isolateUserCache, makeSource } from '../helpers/source.js';

/** End-to-end: `tdv cat`, `ls` and `get` as spawned processes, between programs. Needs `npm run build` first. */
const userCache = isolateUserCache();

describe('tdv cat in a pipe', () => {
  it('`tdv cat big | head -c 10`: the reader leaves early, tdv stops quietly with exit 0', async () => {
    const src = await makeSource();
    write(src.dir, 'big.bin', Buffer.alloc(8 * 2 ** 20, 7));
    expect((await tdv(src.dir, 'add', 'big.bin')).code).toBe(0);
    await commitAt(src.dir, '2016-09-01T00:00:00Z', 'big');
    const child = spawn('bash', ['-c', `node ${JSON.stringify(TDV_BIN)} cat big.bin | head -c 10 | od -An -tx1; echo "tdv exit \${PIPESTATUS[0]}"`], {
      cwd: src.dir,
      env: { ...process.env, NO_COLOR: '1' },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect({ code, err, out: out.trim() }).toEqual({ code: 0, err: '', out: '07 07 07 07 07 07 07 07 07 07\ntdv exit 0' });
  });

  it('a spawned tdv ls and cat of another repository, outside any', async () => {
    const src = await makeSource();
    const env = { TDV_CACHE_HOME: userCache() };
    const ls = await tdvBin(tmpDir(), ['ls', src.url, 'images', '--rev', 'v1'], env);
    expect(ls).toEqual({ code: 0, stdout: 'data  a.png\ndata  sub/', stderr: '' });
    const cat = await tdvBin(tmpDir(), ['cat', '--url', src.dir, 'data/trips.csv'], env);
    expect(cat).toEqual({ code: 0, stdout: 'id,km\n1,v2\n2,v2', stderr: '' });
  });

  it('two commands at once share one clone of the other repository (a lock serialises its update)', async () => {
    const src = await makeSource();
    const env = { TDV_CACHE_HOME: userCache() };
    const runs = await Promise.all([0, 1, 2].map(() => tdvBin(tmpDir(), ['ls', src.url, 'images', '-R'], env)));
    for (const r of runs) expect(r).toEqual({ code: 0, stdout: 'data  a.png\ndata  c.png\ndata  sub/b.png', stderr: '' });
  });

  it('tdv get outside any repository, as a spawned process; an unreadable repository is one line', async () => {
    const src = await makeSource();
    const env = { TDV_CACHE_HOME: userCache() };
    const out = tmpDir();
    const r = await tdvBin(out, ['get', src.url, 'images', '-q'], env);
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(fs.readFileSync(path.join(out, 'images', 'sub', 'b.png'), 'utf8')).toBe('B');
    const none = await tdvBin(out, ['get', path.join(out, 'no-such-repo'), 'x'], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^error: cannot read the Git repository .*no-such-repo: [^\n]+\n?$/);
  });
});
