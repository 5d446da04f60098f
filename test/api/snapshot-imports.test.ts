import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { withRepo } from '../helpers/api.js';
import { git, makeRepo, tdv } from '../helpers/repo.js';
import { isolateUserCache, makeSource } from '../helpers/source.js';
import { Snapshot } from '../../src/repo/lib/snapshot.js';
import { localSource } from '../../src/repo/lib/local-source.js';

isolateUserCache();

async function ok(dir: string, ...args: string[]): Promise<void> {
  const r = await tdv(dir, ...args);
  if (r.code !== 0) throw new Error(`tdv ${args.join(' ')}: ${r.stderr}`);
}

describe('Snapshot of imported data (what ls, cat, get and serve read)', () => {
  it('fetches an imported file or directory from its source, not from this repository remote, which never has it', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await ok(here, 'import', src.url, 'data/trips.csv');
    await ok(here, 'import', src.url, 'images', '--rev', 'v1');
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'imports');
    // This repository has a remote of its own, which holds none of the imported objects.
    await ok(here, 'remote', 'add', '-d', 'mine', path.join(here, '..', `${path.basename(here)}-remote`));
    fs.rmSync(path.join(here, '.tdv', 'cache'), { recursive: true, force: true });
    await withRepo(here, async (repo) => {
      const s = await Snapshot.open(await localSource(repo), 'HEAD');
      expect((await s.read((await s.stat('trips.csv'))!)).toString()).toBe('id,km\n1,v2\n2,v2\n');
      expect((await s.list('images', { recursive: true }))!.map((e) => e.path)).toEqual(['images/a.png', 'images/sub/b.png']);
      expect((await s.read((await s.stat('images/sub/b.png'))!)).toString()).toBe('B');
    });
    const cat = await tdv(here, 'cat', 'images/a.png');
    expect(cat).toMatchObject({ code: 0, stdout: 'A' });
  });
});
