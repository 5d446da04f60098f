import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { addRemote, getDefaultRemote, listRemotes, MASK, modifyRemote, removeRemote, setDefaultRemote } from '../../src/repo/remote.js';
import { read } from '../helpers/repo.js';
import { newRepo, state } from '../helpers/expect.js';
import { rejectsWith, withRepo } from '../helpers/api.js';

/**
 * Porcelain layer: the remote configuration verbs called directly, their
 * results (what was written where, what is in effect) and error codes
 * checked. The CLI's wording of them is in test/integration/remote-config.test.ts.
 */
describe('remotes (API)', () => {
  it('add: stores the url, optionally as the default, and says which file it wrote', async () => {
    const dir = await newRepo();
    expect(await withRepo(dir, (r) => addRemote(r, { name: 'storage', url: 's3://bucket/prefix', makeDefault: true }))).toEqual({
      name: 'storage',
      url: 's3://bucket/prefix',
      isDefault: true,
      replaced: false,
      files: ['.tdv/config.yaml'],
      gitignored: false,
    });
    expect(await withRepo(dir, async (r) => getDefaultRemote(r))).toEqual({ name: 'storage', configured: true });
    expect(await withRepo(dir, async (r) => listRemotes(r))).toEqual([{ name: 'storage', url: 's3://bucket/prefix', isDefault: true, options: {} }]);
  });

  it('add: a relative path is stored relative to the root, whatever the directory it was given in', async () => {
    const dir = await newRepo();
    const sub = path.join(dir, 'data', 'raw');
    fs.mkdirSync(sub, { recursive: true });
    expect((await withRepo(dir, (r) => addRemote(r, { name: 'sibling', url: '../../../tdv-store', cwd: sub }))).url).toBe('../tdv-store');
    expect((await withRepo(dir, (r) => addRemote(r, { name: 'inside', url: 'store', cwd: sub }))).url).toBe('data/raw/store');
  });

  it('add: an existing name is REMOTE_EXISTS unless force replaces it; nothing is written on refusal', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRemote(r, { name: 's', url: '/srv/a' }));
    const before = state(dir);
    expect(
      (
        await rejectsWith(
          withRepo(dir, (r) => addRemote(r, { name: 's', url: '/srv/b' })),
          'REMOTE_EXISTS',
        )
      ).exitCode,
    ).toBe(2);
    expect(state(dir)).toEqual(before);
    expect(await withRepo(dir, (r) => addRemote(r, { name: 's', url: '/srv/b', force: true }))).toMatchObject({ replaced: true, url: '/srv/b' });
  });

  it('default: set, unset, and an unknown remote is UNKNOWN_REMOTE', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRemote(r, { name: 's', url: '/srv/a' }));
    expect(await withRepo(dir, (r) => setDefaultRemote(r, 's'))).toMatchObject({ default: 's', changed: true });
    expect(await withRepo(dir, (r) => setDefaultRemote(r, 's'))).toMatchObject({ default: 's', changed: false });
    expect(await withRepo(dir, (r) => setDefaultRemote(r, undefined, { unset: true }))).toMatchObject({ changed: true });
    expect(await withRepo(dir, async (r) => getDefaultRemote(r))).toBeUndefined();
    await rejectsWith(
      withRepo(dir, (r) => setDefaultRemote(r, 'nope')),
      'UNKNOWN_REMOTE',
    );
  });

  it('modify: typed values, credentials only in config.local.yaml (which is git-ignored) and never returned', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRemote(r, { name: 's3', url: 's3://b/p' }));
    expect(await withRepo(dir, (r) => modifyRemote(r, 's3', 'jobs', '8'))).toMatchObject({ key: 'jobs', value: 8, changed: true });
    await rejectsWith(
      withRepo(dir, (r) => modifyRemote(r, 's3', 'secret_access_key', 'hunter2')),
      'USAGE',
    );
    const secret = await withRepo(dir, (r) => modifyRemote(r, 's3', 'secret_access_key', 'hunter2', { local: true }));
    expect(secret).toMatchObject({ value: MASK, files: ['.tdv/config.local.yaml'] });
    expect(read(dir, '.tdv/config.yaml')).not.toContain('hunter2');
    expect(JSON.stringify(await withRepo(dir, async (r) => listRemotes(r)))).not.toContain('hunter2');
    expect((await withRepo(dir, async (r) => listRemotes(r)))[0]!.options).toEqual({ jobs: 8, secret_access_key: MASK });
    await rejectsWith(
      withRepo(dir, (r) => modifyRemote(r, 's3', 'nope', 'x')),
      'USAGE',
    );
  });

  it('remove: gone from both files, and a default naming it is unset', async () => {
    const dir = await newRepo();
    await withRepo(dir, (r) => addRemote(r, { name: 's', url: '/srv/a', makeDefault: true }));
    expect(await withRepo(dir, (r) => removeRemote(r, 's'))).toMatchObject({ name: 's', unsetDefault: true });
    expect(await withRepo(dir, async (r) => listRemotes(r))).toEqual([]);
    await rejectsWith(
      withRepo(dir, (r) => removeRemote(r, 's')),
      'UNKNOWN_REMOTE',
    );
  });
});
