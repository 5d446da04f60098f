import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../src/cache/hash.js';
import { StatCache } from '../../src/cache/statcache.js';
import { ObjectStore } from '../../src/cache/store.js';
import { type ManifestEntry } from '../../src/formats/manifest.js';
import { applyCheckout, type CheckoutContext, type CheckoutTarget, planCheckout } from '../../src/workspace/checkout.js';
import { Guard } from '../../src/workspace/guard.js';
import { useTmpDirs } from '../helpers/tmp.js';

const tmp = useTmpDirs();

/** A destination root, a cache holding `objects`, and the engine's context over them (no Repo). */
function setup(opts: { protect?: (rel: string, dir: boolean) => string | undefined } = {}) {
  const base = tmp();
  const root = path.join(base, 'ws');
  fs.mkdirSync(root);
  const store = new ObjectStore(path.join(base, 'cache'), path.join(base, 'tmp'));
  const ctx: CheckoutContext = {
    guard: new Guard(root, { protect: opts.protect }),
    store,
    statCache: new StatCache(path.join(base, 'tmp')),
    record: true,
    linkTypes: ['copy'],
  };
  const obj = (content: string) => store.addBufferSync(content);
  const dir = (files: { [relpath: string]: string }, exec: string[] = []): { oid: string; size: number; nfiles: number } => {
    const entries: ManifestEntry[] = Object.entries(files)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([relpath, content]) => ({ relpath, sha256: obj(content), size: Buffer.byteLength(content), ...(exec.includes(relpath) ? { isexec: true } : {}) }));
    return { oid: store.writeManifest(entries), size: entries.reduce((n, e) => n + e.size, 0), nfiles: entries.length };
  };
  const put = (rel: string, content: string) => {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
  };
  const read = (rel: string) => fs.readFileSync(path.join(root, rel), 'utf8');
  return { base, root, store, ctx, obj, dir, put, read };
}

const target = (rel: string, v: { oid: string; size: number; nfiles?: number }, extra: Partial<CheckoutTarget> = {}): CheckoutTarget => ({
  rel,
  oid: v.oid,
  size: v.size,
  nfiles: v.nfiles,
  source: `${rel}.tdv`,
  ...extra,
});

describe('planCheckout / applyCheckout (the engine, no Repo)', () => {
  it('plans writes, deletes, chmods, conflicts and missing objects as a value, touching nothing; apply makes the destination match', async () => {
    const s = setup();
    const v = s.dir({ 'a.csv': 'a\n', 'sub/b.csv': 'b\n', 'run.sh': 'echo\n' }, ['run.sh']);
    s.put('data/a.csv', 'a\n'); // same content: left alone
    s.put('data/run.sh', 'echo\n'); // same content, executable bit differs: a chmod
    s.put('data/old.csv', 'old\n'); // not in the version, not cached: a conflict, then a delete with --force
    const before = fs.readdirSync(path.join(s.root, 'data')).sort();
    const plan = await planCheckout(s.ctx, [target('data', v)]);
    expect(plan.writes.map((w) => w.rel)).toEqual(['data/sub/b.csv']);
    expect(plan.chmods.map((c) => [c.rel, c.isexec])).toEqual([['data/run.sh', true]]);
    expect(plan.deletes).toEqual([{ rel: 'data/old.csv', source: 'data.tdv' }]);
    expect(plan.conflicts).toEqual(['data/old.csv']);
    expect(plan.missing).toEqual([]);
    expect(fs.readdirSync(path.join(s.root, 'data')).sort()).toEqual(before);

    const forced = await planCheckout(s.ctx, [target('data', v)], { force: true });
    expect(forced.conflicts).toEqual([]);
    await applyCheckout(s.ctx, forced);
    expect(s.read('data/sub/b.csv')).toBe('b\n');
    expect(fs.existsSync(path.join(s.root, 'data/old.csv'))).toBe(false);
    expect(fs.statSync(path.join(s.root, 'data/run.sh')).mode & 0o111).not.toBe(0);
    // Recorded in the stat cache: a second plan has nothing to do.
    const again = await planCheckout(s.ctx, [target('data', v)]);
    expect([again.writes, again.deletes, again.chmods, again.clears, again.conflicts]).toEqual([[], [], [], [], []]);
  });

  it('lists objects the cache lacks as missing', async () => {
    const s = setup();
    const plan = await planCheckout(s.ctx, [target('x.bin', { oid: sha256('not stored'), size: 10 })]);
    expect(plan.missing).toEqual([{ rel: 'x.bin', oid: sha256('not stored'), source: 'x.bin.tdv' }]);
    // Left alone, so applying the plan restores everything else.
    expect(plan.writes).toEqual([]);
  });

  it("refuses a path through a symlink, naming the target's source, before anything is written", async () => {
    const s = setup();
    const outside = tmp();
    fs.symlinkSync(outside, path.join(s.root, 'link'));
    const v = { oid: s.obj('x'), size: 1 };
    await expect(planCheckout(s.ctx, [target('a.bin', v), target('link/b.bin', v, { source: 'run record 1a2b3c4d' })])).rejects.toThrow(
      /^run record 1a2b3c4d: link\/b\.bin goes through the symlink link -> /,
    );
    expect(fs.existsSync(path.join(s.root, 'a.bin'))).toBe(false);
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('refuses to overwrite or delete what the guard protects, at plan time', async () => {
    const s = setup({ protect: (rel) => (rel === 'data/kept.csv' || rel === 'tracked.txt' ? 'it is tracked by Git' : undefined) });
    s.put('tracked.txt', 'mine\n');
    await expect(planCheckout(s.ctx, [target('tracked.txt', { oid: s.obj('theirs\n'), size: 7 })], { force: true })).rejects.toThrow(/tdv will not overwrite tracked\.txt: it is tracked by Git/);
    s.put('data/kept.csv', 'k\n');
    const v = s.dir({ 'a.csv': 'a\n' });
    await expect(planCheckout(s.ctx, [target('data', v)], { force: true })).rejects.toThrow(/tdv will not delete data\/kept\.csv/);
    expect(s.read('tracked.txt')).toBe('mine\n');
    expect(s.read('data/kept.csv')).toBe('k\n');
  });

  it('clears a symlink in the way of a tracked directory (a conflict without force), never following it', async () => {
    const s = setup();
    const outside = tmp();
    fs.writeFileSync(path.join(outside, 'a.csv'), 'precious\n');
    fs.symlinkSync(outside, path.join(s.root, 'data'));
    const v = s.dir({ 'a.csv': 'a\n' });
    const plan = await planCheckout(s.ctx, [target('data', v)]);
    expect(plan.clears).toEqual([{ rel: 'data', source: 'data.tdv' }]);
    expect(plan.conflicts).toEqual(['data']);
    await applyCheckout(s.ctx, await planCheckout(s.ctx, [target('data', v)], { force: true }));
    expect(fs.lstatSync(path.join(s.root, 'data')).isDirectory()).toBe(true);
    expect(s.read('data/a.csv')).toBe('a\n');
    expect(fs.readFileSync(path.join(outside, 'a.csv'), 'utf8')).toBe('precious\n');
  });

  it('a chmod is never planned for a file with other hard links: it is replaced by a copy instead', async () => {
    const s = setup();
    const v = { oid: s.obj('x\n'), size: 2 };
    s.put('x.sh', 'x\n');
    fs.linkSync(path.join(s.root, 'x.sh'), path.join(s.base, 'other-name'));
    const plan = await planCheckout(s.ctx, [target('x.sh', v, { isexec: true })]);
    expect(plan.chmods).toEqual([]);
    expect(plan.writes.map((w) => w.rel)).toEqual(['x.sh']);
    await applyCheckout(s.ctx, plan);
    expect(fs.statSync(path.join(s.root, 'x.sh')).mode & 0o100).not.toBe(0);
    expect(fs.statSync(path.join(s.base, 'other-name')).mode & 0o100).toBe(0);
  });
});
