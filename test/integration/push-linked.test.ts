import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, tdvBin, write } from '../helpers/repo.js';
import { newDir, newRepo, objPath, remoteObjects, setConfig, sha } from '../helpers/expect.js';

/**
 * Review finding F17: `push` copied a cache object modified in place through a
 * workspace hard link as it was, publishing wrong bytes under the good name
 * (every other clone's pull then failed, and later pushes skipped it). Push
 * now re-hashes an object that has other hard links before uploading it.
 */
const LINKED = 'cache:\n  type: hardlink\n  allow_root_links: true\n';

async function run(dir: string, ...args: string[]) {
  const r = await tdvBin(dir, args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

describe('push never publishes an object modified through a hard link (F17)', () => {
  it('refuses the damaged object naming the workspace file and the fix; the other objects are pushed', async () => {
    const dir = await newRepo();
    const remote = newDir();
    setConfig(dir, LINKED);
    await run(dir, 'remote', 'add', '-q', '-d', 'r', remote);
    await run(dir, 'remote', 'modify', 'r', 'layout', 'plain'); // reads the objects under files/sha256 back
    write(dir, 'f', 'original\n');
    write(dir, 'g', 'untouched\n');
    write(dir, 'd/x', 'in a directory\n');
    await run(dir, 'add', '-q', 'f', 'g', 'd');
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    const oid = sha('original\n');
    expect(fs.statSync(path.join(dir, 'f')).ino).toBe(fs.statSync(objPath(dir, oid)).ino); // linked
    // Edited in place, as an editor does after making the file writable (root needs no chmod).
    fs.chmodSync(path.join(dir, 'f'), 0o644);
    fs.appendFileSync(path.join(dir, 'f'), 'TAMPERED\n');

    const r = await tdvBin(dir, ['push']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`f (${oid.slice(0, 12)}): cache object ${oid.slice(0, 12)} no longer matches its name (f, a hard link of it, was modified in place); not pushing it`);
    expect(r.stderr).toContain('`tdv fsck`');
    expect(r.stderr).toContain('`tdv add f`');
    expect(r.stderr).toContain('`tdv pull`');
    // Nothing under the good name; everything else went.
    expect(remoteObjects(remote)).not.toContain(oid);
    expect(remoteObjects(remote)).toContain(sha('untouched\n'));
    expect(remoteObjects(remote)).toContain(sha('in a directory\n'));
    for (const o of remoteObjects(remote)) {
      if (o.endsWith('.dir')) continue;
      expect(sha(fs.readFileSync(path.join(remote, 'files', 'sha256', o.slice(0, 2), o.slice(2)))), o).toBe(o);
    }

    // The fix the message names: keep the edit with `tdv add`, then push it.
    await run(dir, 'add', '-q', 'f');
    await run(dir, 'push', '-q');
    expect(remoteObjects(remote)).toContain(sha('original\nTAMPERED\n'));
    expect(remoteObjects(remote)).not.toContain(oid);
  });

  it('an intact hard-linked object is pushed as before', async () => {
    const dir = await newRepo();
    const remote = newDir();
    setConfig(dir, LINKED);
    await run(dir, 'remote', 'add', '-q', '-d', 'r', remote);
    await run(dir, 'remote', 'modify', 'r', 'layout', 'plain'); // reads the objects under files/sha256 back
    write(dir, 'f', 'original\n');
    await run(dir, 'add', '-q', 'f');
    expect(fs.statSync(path.join(dir, 'f')).nlink).toBe(2);
    await run(dir, 'push', '-q');
    expect(remoteObjects(remote)).toEqual([sha('original\n')]);
  });
});
