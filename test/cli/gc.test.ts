import { describe, expect, it } from 'vitest';
import { snapshot, tdv, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, sha } from '../helpers/expect.js';

/**
 * CLI layer: how `tdv gc` words its GcResult and refusals, its exit codes and
 * --json document, in one place. What gc deletes is tested through the API,
 * in test/api/gc.test.ts.
 */

/** Two cached versions of a.csv, the first no longer referenced: one object of 12 bytes to collect, one kept. */
async function oneGarbage(): Promise<string> {
  const dir = await newRepo();
  write(dir, 'a.csv', 'old version\n');
  expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
  write(dir, 'a.csv', 'new version\n');
  expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
  return dir;
}

describe('tdv gc: output', () => {
  it('--dry: one line per object with its size, then "Would remove ..."', async () => {
    const dir = await oneGarbage();
    expect(await tdv(dir, 'gc', '--workspace', '--dry')).toEqual({ code: 0, stdout: `${sha('old version\n')}  12 B\nWould remove 1 object (12 B); kept 1.\n`, stderr: '' });
  });

  it('-f: "Removed ..."; then "Nothing to collect; N objects in use."', async () => {
    const dir = await oneGarbage();
    expect(await tdv(dir, 'gc', '--workspace', '-f')).toEqual({ code: 0, stdout: 'Removed 1 object (12 B); kept 1.\n', stderr: '' });
    expect(await tdv(dir, 'gc', '--workspace', '-f')).toEqual({ code: 0, stdout: 'Nothing to collect; 1 object in use.\n', stderr: '' });
    expect((await tdv(await newRepo(), 'gc', '--workspace', '-f')).stdout).toBe('Nothing to collect; 0 objects in use.\n');
  });

  it('--json: the plan as one object', async () => {
    const dir = await oneGarbage();
    const r = await tdv(dir, 'gc', '--workspace', '--dry', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ removed: false, objects: 1, bytes: 12, kept: 1, unused: [{ oid: sha('old version\n'), size: 12 }], unknown: [] });
  });

  it('without -f and without a terminal: exit 2, one error line saying so, nothing deleted', async () => {
    const dir = await oneGarbage();
    const before = snapshot(dir);
    const r = await tdv(dir, 'gc', '--workspace');
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expectOneLineError(r.stderr, 'without a terminal', '-f');
    expect(snapshot(dir)).toEqual(before);
  });

  it('without --workspace: exit 2, the error line names it', async () => {
    const dir = await oneGarbage();
    const r = await tdv(dir, 'gc', '-f');
    expect(r.code).toBe(2);
    expectOneLineError(r.stderr, '--workspace');
  });

  it('--cloud --dry: remote objects listed with the remote, and a line for the remote', async () => {
    const dir = await oneGarbage();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', remote)).code).toBe(0);
    // Both versions on the remote: the old one is unreferenced there too.
    write(dir, 'a.csv', 'old version\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    write(dir, 'a.csv', 'new version\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    const r = await tdv(dir, 'gc', '--workspace', '--cloud', '--dry');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${sha('old version\n')}  12 B\n${sha('old version\n')}  (remote "store")\n`);
    expect(r.stdout).toContain('Would remove 1 object (12 B); kept 1.');
    expect(r.stdout).toContain('Remote "store": would remove 1, keep 1.');
  });
});

describe('tdv gc --cloud: output on a packed remote', () => {
  it('-f: the remote line says what became of its packs and the bytes reclaimed', async () => {
    const dir = await oneGarbage();
    const remote = newDir();
    expect((await tdv(dir, 'remote', 'add', '-d', 'store', remote)).code).toBe(0);
    // Each version pushed alone: one pack each, the old one then wholly dead.
    write(dir, 'a.csv', 'old version\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    write(dir, 'a.csv', 'new version\n');
    expect((await tdv(dir, 'add', 'a.csv')).code).toBe(0);
    expect((await tdv(dir, 'push')).code).toBe(0);
    const r = await tdv(dir, 'gc', '--workspace', '--cloud', '-f');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/Remote "store": removed 1, kept 1\. Packs: 1 deleted, 0 rewritten into 0, 1 kept; \d+ B reclaimed\./);
  });
});
