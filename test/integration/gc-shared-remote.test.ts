import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git, read, tdvBin, write } from '../helpers/repo.js';
import { expectOneLineError, newDir, newRepo, remoteObjects, sha } from '../helpers/expect.js';

/**
 * Review finding F10: `gc --cloud` on a remote shared by two repositories
 * deleted the other repository's objects. `push` now marks the remote with
 * the repository's id (`repos/<id>`: the root commit, or a random `core.id`
 * before the first commit) and gc refuses a remote that names another
 * repository, or holds objects without a marker of this one, unless
 * `--shared-remote` is given. Real bin/tdv throughout.
 */
async function run(dir: string, ...args: string[]) {
  const r = await tdvBin(dir, args);
  expect(r.code, r.stderr).toBe(0);
  return r;
}

/** A repo using `remote` as its default remote, holding `file` (committed when `commit`). */
async function repoOn(remote: string, file: string, content: string, commit: boolean) {
  const dir = await newRepo();
  await run(dir, 'remote', 'add', '-q', '-d', 'r', remote);
  write(dir, file, content);
  await run(dir, 'add', '-q', file);
  if (commit) {
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', file);
  }
  await run(dir, 'push', '-q');
  return dir;
}

const markers = (remote: string) => (fs.existsSync(path.join(remote, 'repos')) ? fs.readdirSync(path.join(remote, 'repos')).sort() : []);
const configId = (dir: string) => /\bid: ([0-9a-f]{40})/.exec(read(dir, '.tdv/config.yaml'))?.[1];

describe('gc --cloud never collects a remote other repositories use unasked (F10)', () => {
  it("the reviewer's scenario: B's only remote copy survives A's gc --all-commits --cloud -f; --dry warns; --shared-remote collects", async () => {
    const remote = newDir();
    const a = await repoOn(remote, 'a', 'a\n', true);
    const b = await repoOn(remote, 'b', 'b\n', false); // no commit yet: a random id, recorded in config.yaml
    const aId = (await git(a, 'rev-list', '--max-parents=0', 'HEAD')).trim();
    const bId = configId(b)!;
    expect(bId).toMatch(/^[0-9a-f]{40}$/);
    expect(markers(remote)).toEqual([aId, bId].sort());
    expect(remoteObjects(remote)).toEqual([sha('a\n'), sha('b\n')].sort());

    const r = await tdvBin(a, ['gc', '--all-commits', '--cloud', '-f']);
    expect(r.code).toBe(2);
    expectOneLineError(`${r.stderr}\n`, `remote "r" (${remote}) is shared`, `repos/${bId}`, 'objects only they use would be deleted', '--shared-remote');
    expect(r.stderr).not.toContain(aId);
    expect(remoteObjects(remote)).toEqual([sha('a\n'), sha('b\n')].sort());

    const dry = await tdvBin(a, ['gc', '--all-commits', '--cloud', '--dry']);
    expect(dry.code).toBe(0);
    expect(dry.stderr).toContain(`remote "r" holds objects of other repositories (repos/${bId}): objects only they use would be deleted too`);
    expect(dry.stdout).toContain(`${sha('b\n')}  (remote "r")`);
    expect(remoteObjects(remote)).toEqual([sha('a\n'), sha('b\n')].sort());

    const forced = await tdvBin(a, ['gc', '--all-commits', '--cloud', '-f', '--shared-remote']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(remoteObjects(remote)).toEqual([sha('a\n')]);
  });

  it('a repository whose objects are all there already (pushed by another) still marks the remote', async () => {
    const remote = newDir();
    const a = await repoOn(remote, 'a', 'same content\n', true);
    const c = await repoOn(remote, 'c', 'same content\n', true); // uploads nothing: A stored it
    const cId = (await git(c, 'rev-list', '--max-parents=0', 'HEAD')).trim();
    expect(markers(remote)).toContain(cId);
    // A stops using it; C still does.
    write(a, 'a', 'changed\n');
    await run(a, 'add', '-q', 'a');
    await git(a, 'commit', '-qam', 'changed');
    await run(a, 'push', '-q');
    const r = await tdvBin(a, ['gc', '--workspace', '--cloud', '-f']);
    expect(r.code).toBe(2);
    expectOneLineError(`${r.stderr}\n`, `repos/${cId}`, '--shared-remote');
    expect(remoteObjects(remote)).toContain(sha('same content\n'));
  });

  it('a clone of the same repository shares its id: gc --cloud collects what this history no longer uses', async () => {
    const remote = newDir();
    const a = await repoOn(remote, 'a', 'a\n', true);
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', a, clone);
    await run(clone, 'push', '-q');
    expect(markers(remote)).toEqual([(await git(a, 'rev-list', '--max-parents=0', 'HEAD')).trim()]);
    // An object nobody references (old version): collected without --shared-remote.
    write(a, 'a', 'a2\n');
    await run(a, 'add', '-q', 'a');
    await git(a, 'commit', '-qam', 'a2');
    await run(a, 'push', '-q');
    await run(a, 'gc', '--workspace', '--cloud', '-f');
    expect(remoteObjects(remote)).toEqual([sha('a2\n')]);
  });

  it('a remote written by an older tdv (objects, no repos/) needs --shared-remote, saying why; a push then marks it unmarked too', async () => {
    const remote = newDir();
    const a = await repoOn(remote, 'a', 'a\n', true);
    fs.rmSync(path.join(remote, 'repos'), { recursive: true }); // as an older tdv left it
    const r = await tdvBin(a, ['gc', '--workspace', '--cloud', '-f']);
    expect(r.code).toBe(2);
    expectOneLineError(`${r.stderr}\n`, `remote "r" (${remote}) holds objects but no marker of this repository`, 'pushed by an older tdv or by other repositories', '--shared-remote');

    // Pushing marks the remote; who pushed the objects already there stays unknown.
    await run(a, 'push', '-q');
    expect(markers(remote)).toContain('unmarked');
    const again = await tdvBin(a, ['gc', '--workspace', '--cloud', '-f']);
    expect(again.code).toBe(2);
    expectOneLineError(`${again.stderr}\n`, 'repos/unmarked', 'delete it on the remote if only this repository ever pushed there', '--shared-remote');
    // The owner who knows it was alone says so by deleting the marker.
    fs.rmSync(path.join(remote, 'repos', 'unmarked'));
    await run(a, 'gc', '--workspace', '--cloud', '-f');
    expect(remoteObjects(remote)).toEqual([sha('a\n')]);
  });

  it('gc --help and the README document --shared-remote', async () => {
    const dir = await newRepo();
    const help = await tdvBin(dir, ['gc', '--help']);
    expect(help.stdout).toContain('--shared-remote');
    expect(help.stdout).toContain('repos/<id>');
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### What gc keeps'));
    expect(section.slice(0, section.indexOf('\n## '))).toContain('--shared-remote');
  });
});
