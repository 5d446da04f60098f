import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/errors.js';
import { parsePointer } from '../../src/formats/pointer.js';
import { add } from '../../src/repo/add.js';
import { checkout } from '../../src/repo/checkout.js';
import { fsck } from '../../src/repo/fsck.js';
import { gc } from '../../src/repo/gc.js';
import { remoteStatus } from '../../src/repo/lib/remote-status.js';
import { checkImports } from '../../src/repo/lib/imports.js';
import { findPointers, selectTargets } from '../../src/repo/lib/pointers.js';
import { move } from '../../src/repo/mv.js';
import { importData, type ImportOptions } from '../../src/repo/import.js';
import { pull } from '../../src/repo/pull.js';
import { push } from '../../src/repo/push.js';
import { status } from '../../src/repo/status.js';
import { update, type UpdateOptions } from '../../src/repo/update.js';
import { expectClean, rejectsWith, withRepo } from '../helpers/api.js';
import { cacheObjects, newDir, remoteObjects, sha, state } from '../helpers/expect.js';
import { git, makeRepo, read, tdv, write } from '../helpers/repo.js';
import { commitAt, isolateUserCache, makeSource, type SourceRepo } from '../helpers/source.js';

/**
 * Porcelain layer: `tdv import` from a second repository on this machine
 * (test/helpers/source.ts: a file:// URL with its own directory remote).
 */
isolateUserCache();

const imported = (dir: string, opts: Omit<ImportOptions, 'out'> & { out?: string }) =>
  withRepo(dir, (r) => importData(r, { ...opts, out: path.join(dir, opts.out ?? path.posix.basename(opts.path)) }));

async function pointerOf(dir: string, rel: string) {
  return parsePointer(fs.readFileSync(path.join(dir, rel), 'utf8'), path.join(dir, rel));
}

describe('import (API)', () => {
  it('imports a tracked file: data from the source remote into this cache, pointer with the import record', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    const res = await imported(here, { url: src.url, path: 'data/trips.csv' });
    expect(res).toMatchObject({ path: 'trips.csv', pointer: 'trips.csv.tdv', oid: sha('id,km\n1,v2\n2,v2\n'), import: { url: src.url, path: 'data/trips.csv', commit: src.v2 } });
    expect(res.import.rev).toBeUndefined();
    expect(res.fetch).toMatchObject({ remote: 'store', transferred: 1, failed: [] });
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    expect(read(here, '.gitignore')).toContain('/trips.csv');
    const p = await pointerOf(here, 'trips.csv.tdv');
    expect(p.outs).toEqual([{ path: 'trips.csv', sha256: sha('id,km\n1,v2\n2,v2\n'), size: 16 }]);
    expect(p.import).toEqual({ url: src.url, path: 'data/trips.csv', commit: src.v2 });
    expect(cacheObjects(here)).toEqual([sha('id,km\n1,v2\n2,v2\n')]);
    await expectClean(here);
  });

  it('imports a tracked directory at a tag into -o, and a Git file', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    const res = await imported(here, { url: src.url, path: 'images', rev: 'v1', out: 'data/img' });
    expect(res).toMatchObject({ path: 'data/img', pointer: 'data/img.tdv', nfiles: 2, import: { rev: 'v1', commit: src.v1 } });
    expect(read(here, 'data/img/a.png')).toBe('A');
    expect(read(here, 'data/img/sub/b.png')).toBe('B');
    expect(fs.existsSync(path.join(here, 'data/img/c.png'))).toBe(false);
    const git = await imported(here, { url: src.dir, path: 'src/x.py' });
    expect(git.fetch.transferred).toBe(0);
    expect(read(here, 'x.py')).toBe('print(1)\n');
    // A directory of Git files and tracked data (data/ holds trips.csv's pointer and its data).
    const mixed = await imported(here, { url: src.url, path: 'src', out: 'code' });
    expect(mixed.nfiles).toBe(1);
    expect(read(here, 'code/x.py')).toBe('print(1)\n');
    await expectClean(here);
  });

  it('refuses an existing file, a path tracked already, and a path the source lacks, writing nothing', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    fs.writeFileSync(path.join(here, 'trips.csv'), 'mine');
    await rejectsWith(imported(here, { url: src.url, path: 'data/trips.csv' }), 'EXISTS');
    expect(read(here, 'trips.csv')).toBe('mine');
    await rejectsWith(imported(here, { url: src.url, path: 'nope.csv' }), 'NOT_FOUND');
    expect(fs.existsSync(path.join(here, 'nope.csv'))).toBe(false);
    await imported(here, { url: src.url, path: 'data/trips.csv', out: 't.csv' });
    await rejectsWith(imported(here, { url: src.url, path: 'data/trips.csv', out: 't.csv' }), 'EXISTS');
    // An existing directory: inside it.
    fs.mkdirSync(path.join(here, 'raw'));
    expect((await imported(here, { url: src.url, path: 'data/trips.csv', out: 'raw' })).path).toBe('raw/trips.csv');
    // A date revision: the last commit at or before it; status never asks (a date does not move).
    const dated = await imported(here, { url: src.url, path: 'images', rev: '@2016-07-31', out: 'july' });
    expect(dated.import).toMatchObject({ rev: '@2016-07-31', commit: src.v1 });
    expect((await statusOf(here)).imports!.find((i) => i.path === 'july')).toMatchObject({ state: 'pinned' });
  });
});

const statusOf = (dir: string) => withRepo(dir, (r) => status(r));
const updated = (dir: string, opts: UpdateOptions & { at?: string[] } = {}) => withRepo(dir, (r) => update(r, { ...opts, targets: (opts.at ?? []).map((t) => path.join(dir, t)) }));

/** A third version of the source: trips "v3", committed on main. */
async function sourceV3(src: SourceRepo): Promise<string> {
  write(src.dir, 'data/trips.csv', 'id,km\n1,v3\n');
  const r = await tdv(src.dir, 'add', 'data/trips.csv');
  expect(r.code, r.stderr).toBe(0);
  const v3 = await commitAt(src.dir, '2016-09-01T12:00:00Z', 'v3');
  expect((await tdv(src.dir, 'push')).code).toBe(0);
  return v3;
}

describe('status and update of imports (API)', () => {
  it('status says when the source moved; update moves the data and the pointer; status is clean again', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv' });
    await imported(here, { url: src.url, path: 'images', rev: 'v1' });
    let s = await statusOf(here);
    expect(s.clean).toBe(true);
    expect(s.imports!.map((i) => [i.path, i.state])).toEqual([
      ['images', 'current'],
      ['trips.csv', 'current'],
    ]);
    expect((await updated(here)).imports.map((i) => i.state)).toEqual(['current', 'current']);

    const v3 = await sourceV3(src);
    s = await statusOf(here);
    expect(s.clean).toBe(false);
    expect(s.data).toEqual([]);
    expect(s.imports!.find((i) => i.path === 'trips.csv')).toMatchObject({ state: 'moved', commit: src.v2, latest: v3 });
    // The tag did not move.
    expect(s.imports!.find((i) => i.path === 'images')).toMatchObject({ state: 'current', rev: 'v1' });

    const res = await updated(here);
    expect(res.imports.find((i) => i.path === 'trips.csv')).toMatchObject({ state: 'updated', from: src.v2, to: v3, oldOid: sha('id,km\n1,v2\n2,v2\n'), oid: sha('id,km\n1,v3\n') });
    expect(res.gitFiles).toEqual(['trips.csv.tdv']);
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v3\n');
    const p = await pointerOf(here, 'trips.csv.tdv');
    expect(p.import).toEqual({ url: src.url, path: 'data/trips.csv', commit: v3 });
    expect(p.outs).toEqual([{ path: 'trips.csv', sha256: sha('id,km\n1,v3\n'), size: 11 }]);
    await expectClean(here);
    expect((await statusOf(here)).imports!.every((i) => i.state === 'current')).toBe(true);
  });

  it('update --rev moves to a tag and records it; a directory import follows it', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'images', out: 'img' });
    expect(fs.existsSync(path.join(here, 'img/c.png'))).toBe(true);
    const res = await updated(here, { at: ['img'], rev: 'v1' });
    expect(res.imports[0]).toMatchObject({ state: 'updated', rev: 'v1', from: src.v2, to: src.v1 });
    expect(fs.existsSync(path.join(here, 'img/c.png'))).toBe(false);
    expect(read(here, 'img/a.png')).toBe('A');
    const p = await pointerOf(here, 'img.tdv');
    expect(p.import).toEqual({ url: src.url, path: 'images', rev: 'v1', commit: src.v1 });
    expect(p.outs[0]).toMatchObject({ nfiles: 2 });
    await expectClean(here);
  });

  it('update refuses --rev for several imports at once, and a path the new revision lacks, changing nothing', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv' });
    await imported(here, { url: src.url, path: 'images' });
    await rejectsWith(updated(here, { rev: 'v1' }), 'USAGE');
    fs.rmSync(path.join(src.dir, 'images'), { recursive: true });
    fs.rmSync(path.join(src.dir, 'images.tdv'));
    await commitAt(src.dir, '2016-09-01T12:00:00Z', 'no images');
    const before = state(here);
    const err = await rejectsWith(updated(here, { at: ['images'] }), 'NOT_FOUND');
    expect(err.message).toMatch(/^images does not exist in .* at HEAD/);
    expect(state(here)).toEqual(before);
  });

  it('an import pinned to a commit id never reports moved, and update leaves it', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv', rev: src.v1 });
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v1\n');
    await imported(here, { url: src.url, path: 'images', rev: src.v1.slice(0, 10) });
    await sourceV3(src);
    const s = await statusOf(here);
    expect(s.clean).toBe(true);
    expect(s.imports).toMatchObject([
      { path: 'images', state: 'pinned', commit: src.v1 },
      { path: 'trips.csv', state: 'pinned', commit: src.v1 },
    ]);
    expect((await updated(here)).imports).toMatchObject([
      { state: 'current', to: src.v1 },
      { state: 'current', to: src.v1 },
    ]);
  });

  it('a source that never answers: status gives up after its timeout, ends git, and reports it unreachable', async () => {
    // An HTTP "server" that accepts and never replies.
    const sockets: net.Socket[] = [];
    const closed: Promise<void>[] = [];
    const server = net.createServer((sock) => {
      sockets.push(sock);
      closed.push(new Promise((resolve) => sock.on('close', () => resolve())));
      sock.on('error', () => {});
      sock.resume(); // read, so that the end of the connection is seen
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/repo.git`;
      const here = await makeRepo();
      write(here, 'x.csv.tdv', `import:\n  url: "${url}"\n  path: "x.csv"\n  commit: "${'a'.repeat(40)}"\nouts:\n- path: x.csv\n  sha256: ${sha('x')}\n  size: 1\n`);
      const res = await withRepo(here, async (r) => checkImports(r, selectTargets(r, await findPointers(r), []), 300));
      expect(res).toMatchObject([{ path: 'x.csv', state: 'unreachable', error: expect.any(String) }]);
      // git was ended, not left waiting: its connection closes.
      expect(sockets.length).toBeGreaterThan(0);
      await Promise.race([Promise.all(closed), new Promise((_, rej) => setTimeout(() => rej(new Error('git still connected')), 20_000))]);
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('update protects workspace changes the cache lacks, and --force discards them', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv' });
    fs.chmodSync(path.join(here, 'trips.csv'), 0o644);
    fs.writeFileSync(path.join(here, 'trips.csv'), 'my edit');
    await sourceV3(src);
    const err = await rejectsWith(updated(here), 'CONFLICT');
    expect(err.message).toContain('tdv update --force trips.csv.tdv');
    expect(read(here, 'trips.csv')).toBe('my edit');
    expect((await pointerOf(here, 'trips.csv.tdv')).import!.commit).toBe(src.v2);
    await updated(here, { force: true });
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v3\n');
  });

  it('an unreachable source: status warns and stays clean; update fails naming it', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.dir, path: 'data/trips.csv' });
    fs.renameSync(src.dir, `${src.dir}.gone`);
    const s = await statusOf(here);
    expect(s.clean).toBe(true);
    expect(s.imports).toMatchObject([{ state: 'unreachable', error: expect.stringContaining(src.dir) }]);
    const err = await rejectsWith(updated(here), 'GIT_FAILED');
    expect(err.message).toContain(src.dir);
    expect(read(here, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    fs.renameSync(`${src.dir}.gone`, src.dir);
  });
});

describe('imports in pull, push and gc (API)', () => {
  it('a fresh clone pulls imported data from the source remote (this repository has none); push leaves it out; gc keeps it', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv' });
    await imported(here, { url: src.url, path: 'images', rev: 'v1' });
    // What no remote holds: a Git file, and a directory tdv described here (Git files and part of a tracked directory).
    await imported(here, { url: src.url, path: 'src/x.py' });
    await imported(here, { url: src.url, path: 'images/sub', out: 'sub' });
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'imports');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', here, clone);
    expect(cacheObjects(clone)).toEqual([]);
    const res = await withRepo(clone, (r) => pull(r));
    expect(res.fetch.imports!.flatMap((i) => i.failed)).toEqual([]);
    expect(res.fetch.imports!.map((i) => i.remote)).toEqual(['store', 'store']);
    expect(read(clone, 'trips.csv')).toBe('id,km\n1,v2\n2,v2\n');
    expect(read(clone, 'x.py')).toBe('print(1)\n');
    expect(read(clone, 'sub/b.png')).toBe('B');
    expect(read(clone, 'images/sub/b.png')).toBe('B');
    await expectClean(clone);
    // Everything cached: a second pull asks no source.
    expect((await withRepo(clone, (r) => pull(r))).fetch.imports).toBeUndefined();

    // push: imported objects stay on their source's remote.
    const mine = newDir();
    expect((await tdv(clone, 'remote', 'add', '-d', 'mine', mine)).code).toBe(0);
    expect(await withRepo(clone, (r) => push(r))).toMatchObject({ transferred: 0, skipped: 0, failed: [] });
    expect(remoteObjects(mine)).toEqual([]);
    // Nor do status --remote and fsck --remote expect them there.
    expect(await withRepo(clone, (r) => remoteStatus(r))).toMatchObject({ clean: true, data: [] });
    expect((await withRepo(clone, (r) => fsck(r, { remote: true }))).remote).toMatchObject({ missing: [], wrongSize: [] });
    // gc: they are pointers like any other.
    const before = cacheObjects(clone);
    await withRepo(clone, (r) => gc(r, { workspace: true }));
    expect(cacheObjects(clone)).toEqual(before);
  });

  it("a source whose remote is gone: pull reports the import's objects as failed, naming the source once, and restores the rest", async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv' });
    write(here, 'own.csv', 'mine');
    const own = newDir();
    expect((await tdv(here, 'remote', 'add', '-d', 'own', own)).code).toBe(0);
    expect((await tdv(here, 'add', 'own.csv')).code).toBe(0);
    expect((await tdv(here, 'push')).code).toBe(0);
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'imports');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', here, clone);
    fs.rmSync(src.remote, { recursive: true });
    const res = await withRepo(clone, (r) => pull(r));
    expect(res.fetch).toMatchObject({ remote: 'own', transferred: 1, failed: [] });
    expect(res.fetch.imports).toHaveLength(1);
    const failed = res.fetch.imports![0]!.failed;
    expect(failed.map((f) => f.path)).toEqual(['trips.csv']);
    expect(failed[0]!.error.startsWith(`${src.url}: remote "store"`)).toBe(true);
    expect(failed[0]!.error.indexOf(src.url, 1)).toBe(-1);
    expect(read(clone, 'own.csv')).toBe('mine');
    expect(res.checkout.missing.map((m) => m.path)).toEqual(['trips.csv']);
  });

  it('an import of an import: the data comes from where the middle repository imported it (its own remote never had it)', async () => {
    const src = await makeSource();
    const middle = await makeRepo(); // no remote at all
    await imported(middle, { url: src.url, path: 'images', rev: 'v1' });
    await git(middle, 'add', '-A');
    await git(middle, 'commit', '-qm', 'import images');
    const here = await makeRepo();
    const res = await imported(here, { url: middle, path: 'images/sub', out: 'sub' });
    expect(res.import).toMatchObject({ url: middle, path: 'images/sub' });
    expect(read(here, 'sub/b.png')).toBe('B');
    const file = await imported(here, { url: middle, path: 'images/a.png' });
    expect(file.fetch.transferred).toBe(1);
    expect(read(here, 'a.png')).toBe('A');
    // And a fresh clone's pull follows the same chain.
    await git(here, 'add', '-A');
    await git(here, 'commit', '-qm', 'imports');
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', here, clone);
    const pulled = await withRepo(clone, (r) => pull(r));
    expect(pulled.fetch.imports!.flatMap((i) => i.failed)).toEqual([]);
    expect(read(clone, 'sub/b.png')).toBe('B');
    expect(read(clone, 'a.png')).toBe('A');
  });

  it('refuses a source pointer that climbs out with "..", writing nothing', async () => {
    const src = await makeSource();
    write(src.dir, 'evil.tdv', `outs:\n- path: ../../escape\n  sha256: ${sha('x')}\n  size: 1\n`);
    await commitAt(src.dir, '2016-09-01T12:00:00Z', 'evil');
    const here = await makeRepo();
    const before = state(here);
    const err = await imported(here, { url: src.url, path: 'data/trips.csv' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/evil\.tdv.*"\.\.\/\.\.\/escape"/);
    expect(state(here)).toEqual(before);
  });
});

describe('imported data in the other commands (API)', () => {
  it('mv keeps the import record, so update still knows the source', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'data/trips.csv', rev: 'v1' });
    await withRepo(here, (r) => move(r, path.join(here, 'trips.csv'), path.join(here, 'old.csv')));
    expect((await pointerOf(here, 'old.csv.tdv')).import).toEqual({ url: src.url, path: 'data/trips.csv', rev: 'v1', commit: src.v1 });
    expect((await updated(here, { rev: 'main' })).imports).toMatchObject([{ path: 'old.csv', state: 'updated', to: src.v2 }]);
    expect(read(here, 'old.csv')).toBe('id,km\n1,v2\n2,v2\n');
  });

  it('add refuses an imported output (it would record it as its own and drop the source)', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'images' });
    fs.chmodSync(path.join(here, 'images'), 0o755);
    write(here, 'images/mine.png', 'M');
    const err = await rejectsWith(
      withRepo(here, (r) => add(r, { paths: [path.join(here, 'images')] })),
      'USAGE',
    );
    expect(err.message).toContain('tdv update images.tdv');
    expect((await pointerOf(here, 'images.tdv')).import).toMatchObject({ url: src.url, path: 'images' });
  });

  it('checkout restores deleted imported data from the cache, with no source asked', async () => {
    const src = await makeSource();
    const here = await makeRepo();
    await imported(here, { url: src.url, path: 'images' });
    fs.rmSync(path.join(here, 'images'), { recursive: true, force: true });
    fs.renameSync(src.dir, `${src.dir}.gone`);
    try {
      const res = await withRepo(here, (r) => checkout(r));
      expect(res.restored.sort()).toEqual(['images/a.png', 'images/c.png', 'images/sub/b.png']);
      expect(read(here, 'images/c.png')).toBe('C');
    } finally {
      fs.renameSync(`${src.dir}.gone`, src.dir);
    }
  });
});
