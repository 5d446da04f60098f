import { describe, expect, it } from 'vitest';
import { makeRepo, tdvBin, write } from '../helpers/repo.js';

describe('bin/tdv', () => {
  it('prints its version and exits 0', async () => {
    const dir = await makeRepo({ init: false });
    const r = await tdvBin(dir, ['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('exits 2 on an unknown option', async () => {
    const dir = await makeRepo({ init: false });
    const r = await tdvBin(dir, ['status', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown option');
  });

  it('init, add, status round-trip through the real binary', async () => {
    const dir = await makeRepo({ init: false });
    expect((await tdvBin(dir, ['init'])).code).toBe(0);
    write(dir, 'data/a.csv', 'a,b\n1,2\n');
    const add = await tdvBin(dir, ['add', 'data']);
    expect(add.code).toBe(0);
    expect(add.stdout).toContain('Added data (1 file');
    const st = await tdvBin(dir, ['status']);
    expect(st.stdout.trim()).toBe('Data and pipelines are up to date.');
  });
});
