import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { git, tdv } from '../helpers/repo.js';
import { newDir, sampleRepo } from '../helpers/expect.js';

// Blobs bounded at 1,000 bytes here, so a 5 MiB file's recipe (about 20 chunks, 1.6 KB) is
// "too large", as the recipe of a file of about 200 GiB is against the real 64 MiB bound.
vi.mock('../../src/remote/transfer/pack.js', async (orig) => ({ ...(await orig<typeof import('../../src/remote/transfer/pack.js')>()), MAX_BLOB: 1000 }));

describe('a large file whose recipe is larger than a blob may be', () => {
  it('is stored as one plain object, not as a recipe no reader accepts; a clone pulls it', async () => {
    const { dir, remote } = await sampleRepo({ commit: true });
    const big = randomBytes(5 << 20);
    fs.writeFileSync(path.join(dir, 'big.bin'), big);
    expect((await tdv(dir, 'add', 'big.bin')).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    const r = await tdv(dir, 'push');
    expect(r.stderr).toBe('');
    const oid = createHash('sha256').update(big).digest('hex');
    expect(fs.existsSync(path.join(remote, 'files', 'sha256', oid.slice(0, 2), oid.slice(2)))).toBe(true);
    const b = path.join(newDir(), 'clone');
    await git(path.dirname(b), 'clone', '-q', dir, b);
    expect((await tdv(b, 'pull')).stderr).toBe('');
    expect(
      createHash('sha256')
        .update(fs.readFileSync(path.join(b, 'big.bin')))
        .digest('hex'),
    ).toBe(oid);
  });
});
