import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newDir, newRepo } from '../helpers/expect.js';
import { execa } from 'execa';
import { git, TDV_BIN, tdvBin, write } from '../helpers/repo.js';

/**
 * Progress and summaries of transfers to a packed remote, where what goes on
 * the wire (compressed, only the chunks the remote lacks) is much less than
 * the objects' size. The bar's total is the objects' size, so what it counts
 * done must be too: else it ends at a few percent with an ETA of minutes.
 */

/** The last bar frame TDV_PROGRESS=1 printed for `label`: percentage and bytes done/total. */
function lastFrame(stderr: string, label: string): { pct: number; done: string; total: string } {
  const frames = [...stderr.matchAll(new RegExp(`^${label} \\S+ (\\d+)% \\| \\d+/\\d+ \\w+ \\| ([\\d.]+ \\w+)/([\\d.]+ \\w+)`, 'gm'))];
  expect(frames.length, stderr).toBeGreaterThan(0);
  const m = frames[frames.length - 1]!;
  return { pct: Number(m[1]), done: m[2]!, total: m[3]! };
}

/** About `mib` MiB of CSV text: compresses well with zstd. */
function csv(mib: number, from = 0): string {
  const rows: string[] = [];
  let n = 0;
  for (let i = from; n < mib * 1048576; i++) {
    const r = `${i},station-${i % 97},${(i * 7) % 1000},2024-07-${String((i % 28) + 1).padStart(2, '0')}\n`;
    rows.push(r);
    n += r.length;
  }
  return rows.join('');
}

async function packedRepo(): Promise<{ dir: string; remote: string }> {
  const dir = await newRepo();
  const remote = path.join(newDir(), 'store');
  fs.mkdirSync(remote);
  expect((await tdvBin(dir, ['remote', 'add', '-d', 'st', remote])).code).toBe(0);
  return { dir, remote };
}

describe('transfers to a packed remote: the progress bar counts what the objects hold', () => {
  it('push of a compressible large file, then of a new version sharing most chunks: the bar ends at 100%', async () => {
    const { dir } = await packedRepo();
    write(dir, 'trips.csv', csv(6));
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    const first = await tdvBin(dir, ['push'], { TDV_PROGRESS: '1' });
    expect(first.code, first.stderr).toBe(0);
    let f = lastFrame(first.stderr, 'push');
    expect(f.pct).toBe(100);
    expect(f.done).toBe(f.total);

    fs.appendFileSync(path.join(dir, 'trips.csv'), csv(0.05, 10_000_000));
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    const second = await tdvBin(dir, ['push'], { TDV_PROGRESS: '1' });
    expect(second.code, second.stderr).toBe(0);
    f = lastFrame(second.stderr, 'push');
    expect(f.pct).toBe(100);
    expect(f.done).toBe(f.total);
  });

  it('pull of many small compressible files from packs: the bar ends at 100%', async () => {
    const { dir } = await packedRepo();
    for (let i = 0; i < 60; i++) write(dir, `data/f${i}.csv`, csv(0.02, i * 1000));
    expect((await tdvBin(dir, ['add', 'data'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'data');
    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const pull = await tdvBin(clone, ['fetch'], { TDV_PROGRESS: '1' });
    expect(pull.code, pull.stderr).toBe(0);
    const f = lastFrame(pull.stderr, 'fetch');
    expect(f.pct).toBe(100);
    expect(f.done).toBe(f.total);
  });
});

describe('a damaged blob on a remote that is not the default', () => {
  it('the error names `tdv push --repair -r NAME`, and that command repairs it', async () => {
    const { dir } = await packedRepo();
    const other = path.join(newDir(), 'other');
    fs.mkdirSync(other);
    expect((await tdvBin(dir, ['remote', 'add', 'nas', other])).code).toBe(0);
    write(dir, 'notes.csv', csv(0.1));
    expect((await tdvBin(dir, ['add', 'notes.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push', '-r', 'nas'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'notes');
    // One byte of the stored blob flipped.
    const pack = fs.readdirSync(path.join(other, 'packs')).find((n) => n.endsWith('.pack'))!;
    const file = path.join(other, 'packs', pack);
    fs.chmodSync(file, 0o644);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 10]! ^= 0xff;
    fs.writeFileSync(file, bytes);

    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const bad = await tdvBin(clone, ['pull', '-r', 'nas']);
    expect(bad.code).toBe(1);
    const hint = /Run `(tdv push --repair[^`]*)`/.exec(bad.stderr);
    expect(hint?.[1], bad.stderr).toBe('tdv push --repair -r nas');
    // The command as named (in the clone that has the data) stores it again on that remote.
    const repair = await tdvBin(dir, hint![1]!.split(' ').slice(1));
    expect(repair.code, repair.stderr).toBe(0);
    const again = await tdvBin(clone, ['pull', '-r', 'nas']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'notes.csv'), 'utf8')).toBe(csv(0.1));
  });
});

describe('a large pull that was cut off, then run again', () => {
  it('resumes from the kept chunks and, once the file is in the cache, removes them all', async () => {
    const { dir } = await packedRepo();
    write(dir, 'big.bin', crypto.randomBytes(20 << 20));
    expect((await tdvBin(dir, ['add', 'big.bin'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'big');
    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const spool = path.join(clone, '.tdv', 'tmp', 'chunks');
    const count = () => (fs.existsSync(spool) ? fs.readdirSync(spool, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length : 0);
    // Slowly, and killed once some chunks are kept.
    const slow = execa('node', [TDV_BIN, 'pull', '--limit-rate', '2m'], { cwd: clone, reject: false });
    while (count() < 4 && slow.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    slow.kill('SIGKILL');
    await slow;
    expect(count()).toBeGreaterThanOrEqual(4);

    const again = await tdvBin(clone, ['pull']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'big.bin')).equals(fs.readFileSync(path.join(dir, 'big.bin')))).toBe(true);
    expect(count(), 'chunks kept in .tdv/tmp/chunks after the file is complete').toBe(0);
  });
});

describe('what a push to a packed remote says it sent', () => {
  it('a new version of a large file: the summary and --json say the few bytes sent beside the object size', async () => {
    const { dir, remote } = await packedRepo();
    write(dir, 'trips.csv', crypto.randomBytes(8 << 20));
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    const packs = () => fs.readdirSync(path.join(remote, 'packs')).reduce((n, f) => n + fs.statSync(path.join(remote, 'packs', f)).size, 0);
    const before = packs();
    fs.appendFileSync(path.join(dir, 'trips.csv'), 'one more row\n');
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    const r = await tdvBin(dir, ['push', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { transferred: number; bytes: number; sent: number };
    expect(doc.transferred).toBe(1);
    expect(doc.bytes).toBe((8 << 20) + 13);
    // The last chunk (at most 1 MiB), the recipe and the index: what the packs grew by, and a little more.
    expect(doc.sent).toBeGreaterThanOrEqual(packs() - before);
    expect(doc.sent).toBeLessThan(2 << 20);

    fs.appendFileSync(path.join(dir, 'trips.csv'), 'and another\n');
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    const human = await tdvBin(dir, ['push']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/^Pushed 1 object \(8\.0 MiB; [\d.]+ (B|KiB|MiB) sent\) to remote "st"\.$/m);
  });
});

describe('a small file whose bytes are a chunk of a large file pushed with it', () => {
  it('is stored as an object too, so a clone can pull it', async () => {
    const { dir } = await packedRepo();
    const big = crypto.randomBytes(6_000_000);
    write(dir, 'a.bin', big);
    expect((await tdvBin(dir, ['add', 'a.bin'])).code).toBe(0);
    // The large file's first chunk, found by pushing it to a throwaway remote (its recipe is kept in the cache).
    const scratch = path.join(newDir(), 'scratch');
    fs.mkdirSync(scratch);
    expect((await tdvBin(dir, ['remote', 'add', 'scratch', scratch])).code).toBe(0);
    expect((await tdvBin(dir, ['push', '-r', 'scratch'])).code).toBe(0);
    const recipes = fs.readdirSync(path.join(dir, '.tdv', 'cache', 'recipes'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    const recipe = JSON.parse(fs.readFileSync(path.join(recipes[0]!.parentPath, recipes[0]!.name), 'utf8')) as { chunks: [string, number][] };
    write(dir, 'b.bin', big.subarray(0, recipe.chunks[0]![1]));
    expect((await tdvBin(dir, ['add', 'b.bin'])).code).toBe(0);

    // Both in one push to the (empty) default remote.
    const push = await tdvBin(dir, ['push', '--json']);
    expect(push.code, push.stderr).toBe(0);
    expect(JSON.parse(push.stdout)).toMatchObject({ transferred: 2, failed: 0 });
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'both');
    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const pull = await tdvBin(clone, ['pull']);
    expect(pull.code, pull.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'b.bin')).equals(big.subarray(0, recipe.chunks[0]![1]))).toBe(true);
    expect(fs.readFileSync(path.join(clone, 'a.bin')).equals(big)).toBe(true);
  });
});

describe('push --repair on a packed remote set to layout: plain', () => {
  it('stores the damaged object so that readers use the new copy (a plain copy was never read)', async () => {
    const { dir, remote } = await packedRepo();
    write(dir, 'notes.csv', csv(0.1));
    expect((await tdvBin(dir, ['add', 'notes.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'notes');
    const pack = fs.readdirSync(path.join(remote, 'packs')).find((n) => n.endsWith('.pack'))!;
    const file = path.join(remote, 'packs', pack);
    fs.chmodSync(file, 0o644);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 10]! ^= 0xff;
    fs.writeFileSync(file, bytes);
    // From now on this remote is to be written plain (say, to share it with an older tdv).
    expect((await tdvBin(dir, ['remote', 'modify', 'st', 'layout', 'plain'])).code).toBe(0);
    await git(dir, 'commit', '-qam', 'plain');

    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const bad = await tdvBin(clone, ['pull']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('tdv push --repair -r st');
    const repair = await tdvBin(dir, ['push', '--repair', '-r', 'st']);
    expect(repair.code, repair.stderr).toBe(0);
    const again = await tdvBin(clone, ['pull']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'notes.csv'), 'utf8')).toBe(csv(0.1));
  });
});

describe('a damaged layout record (tdv-remote.json)', () => {
  it('names a fix that works: push --repair cannot read past it, deleting the record as named does', async () => {
    const { dir, remote } = await packedRepo();
    write(dir, 'notes.csv', csv(0.05));
    expect((await tdvBin(dir, ['add', 'notes.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    const record = path.join(remote, 'tdv-remote.json');
    fs.chmodSync(record, 0o644);
    fs.writeFileSync(record, 'garbage');
    const bad = await tdvBin(dir, ['status', '--remote']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).not.toContain('push --repair');
    expect(bad.stderr).toContain('Delete tdv-remote.json on the remote');
    // What the message says not to rely on indeed fails; what it names works.
    expect((await tdvBin(dir, ['push', '--repair'])).code).toBe(1);
    fs.rmSync(record);
    const ok = await tdvBin(dir, ['status', '--remote']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain('in sync');
  });
});

describe('a damaged index', () => {
  it('names a fix that works: delete it, then push --repair (push --repair alone reads every index first and fails the same way)', async () => {
    const { dir, remote } = await packedRepo();
    write(dir, 'notes.csv', csv(0.05));
    expect((await tdvBin(dir, ['add', 'notes.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'notes');
    const name = fs.readdirSync(path.join(remote, 'index'))[0]!;
    const index = path.join(remote, 'index', name);
    fs.chmodSync(index, 0o644);
    const bytes = fs.readFileSync(index);
    bytes[30]! ^= 0xff;
    fs.writeFileSync(index, bytes);

    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const bad = await tdvBin(clone, ['pull']);
    expect(bad.code).toBe(1);
    expect((await tdvBin(dir, ['push', '--repair'])).code).toBe(1);
    expect(bad.stderr).toContain(`index/${name} is damaged`);
    expect(bad.stderr).toContain('Delete it on the remote, then run `tdv push --repair');
    const cmd = /then run `(tdv push[^`]*)`/.exec(bad.stderr)![1]!;
    fs.renameSync(index, path.join(path.dirname(remote), name));
    const push = await tdvBin(dir, cmd.split(' ').slice(1));
    expect(push.code, push.stderr).toBe(0);
    const again = await tdvBin(clone, ['pull']);
    expect(again.code, again.stderr).toBe(0);
    expect(fs.readFileSync(path.join(clone, 'notes.csv'), 'utf8')).toBe(csv(0.05));
  });
});

describe('what a pull from a packed remote says it received', () => {
  it('a new version of a large file into a cache holding the first: a few chunks received, said beside the size', async () => {
    const { dir } = await packedRepo();
    const v1 = crypto.randomBytes(8 << 20);
    write(dir, 'trips.csv', v1);
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'add', '-A');
    await git(dir, 'commit', '-qm', 'v1');
    const clone = newDir();
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    const first = await tdvBin(clone, ['pull', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).received).toBeGreaterThanOrEqual(8 << 20);

    fs.appendFileSync(path.join(dir, 'trips.csv'), 'one more row\n');
    expect((await tdvBin(dir, ['add', 'trips.csv'])).code).toBe(0);
    expect((await tdvBin(dir, ['push'])).code).toBe(0);
    await git(dir, 'commit', '-qam', 'v2');
    await git(clone, 'pull', '-q', 'origin', 'main');
    const second = await tdvBin(clone, ['pull']);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/^Fetched 1 object \(8\.0 MiB; [\d.]+ (B|KiB|MiB) received\) from remote "st"\.$/m);
    const got = /; ([\d.]+) (B|KiB|MiB) received/.exec(second.stdout)!;
    expect(Number(got[1]) * { B: 1, KiB: 1024, MiB: 1 << 20 }[got[2] as 'B']).toBeLessThan(2 << 20);
  });
});
