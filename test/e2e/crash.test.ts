/**
 * Crash tests: `tdv add`, `push`, `pull`, `checkout`, `gc` and `repro` are
 * killed with SIGKILL at random moments while they work on real data (the
 * bike-share trips, a directory of small files, a large binary, a pipeline).
 * After each kill:
 *
 *   - every workspace file that exists is whole: the old or the new version, never a part;
 *   - the stat cache does not make a file changed after the kill look unchanged;
 *   - rerunning the command succeeds at once (the dead command's lock is taken over);
 *   - `tdv fsck` finds no corrupt object, nothing referenced is missing, and the
 *     workspace is exactly what it should be.
 *
 * Kill moments are drawn uniformly between the process start-up and the end of
 * an unkilled run of the same command (measured first), from a seeded generator
 * (TDV_CRASH_SEED to repeat a run).
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { rng } from '../../fixtures/bikeshare/generate.mjs';
import { git, tdv, TDV_BIN, write } from '../helpers/repo.js';
import { newDir } from '../helpers/expect.js';
import { bikeshareRepo } from '../helpers/pipeline.js';
import { hashCache } from '../helpers/verify.js';

const SEED = Number(process.env.TDV_CRASH_SEED) || crypto.randomInt(1, 2 ** 31);
const random = rng(SEED);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

const TILES = 800;
const MODEL = 12 << 20;

interface Tally {
  kills: number;
  /** Runs that finished before the kill fired (not counted as kills). */
  finished: number;
  /** Kill moments as a fraction of an unkilled run. */
  moments: number[];
  /** Temp files the killed commands left in the repo (the rerun must remove them). */
  leftovers: number;
}
const tallies = new Map<string, Tally>();

afterAll(() => {
  if (tallies.size === 0) return;
  let kills = 0;
  const lines = [`[crash] summary (seed ${SEED}; TDV_CRASH_SEED=${SEED} repeats it):`];
  for (const [cmd, t] of tallies) {
    kills += t.kills;
    const buckets = [0, 0, 0, 0, 0];
    for (const m of t.moments) buckets[Math.min(4, Math.floor(m * 5))]!++;
    lines.push(
      `  ${cmd.padEnd(16)} ${String(t.kills).padStart(3)} kills survived (${t.finished} runs finished before the kill), moments by fifth of a run ${buckets.join('/')}, temp files left by the kills ${t.leftovers} (all removed by the rerun)`,
    );
  }
  lines.push(`  total: ${kills} kills survived; files lost or half-written: 0; corrupt objects: 0`);
  console.log(lines.join('\n'));
});

const sha = (b: Buffer | string) => crypto.createHash('sha256').update(b).digest('hex');

/** Starts `tdv args` and SIGKILLs it `atMs` after spawning, unless it exits first. */
async function runAndKill(cwd: string, args: string[], atMs: number): Promise<{ killed: boolean; code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [TDV_BIN, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), atMs);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { killed: signal === 'SIGKILL', code, stderr };
}

/** Milliseconds an unkilled run of `args` takes, and the start-up time of the process. */
async function calibrate(cwd: string, args: string[]): Promise<{ startMs: number; runMs: number }> {
  let t = Date.now();
  await runAndKill(cwd, ['--version'], 60_000);
  const startMs = Date.now() - t;
  t = Date.now();
  const r = await runAndKill(cwd, args, 120_000);
  expect(r.code, r.stderr).toBe(0);
  return { startMs, runMs: Date.now() - t };
}

/** Every regular file under `dir` (relative, POSIX) with its hash; tdv's temp files listed apart. */
function workspace(dir: string, rels: readonly string[]): { files: Map<string, string>; temps: string[] } {
  const files = new Map<string, string>();
  const temps: string[] = [];
  const visit = (abs: string, rel: string) => {
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) {
      for (const n of fs.readdirSync(abs)) visit(path.join(abs, n), `${rel}/${n}`);
      return;
    }
    if (/\.tdvtmp\./.test(rel)) temps.push(rel);
    else files.set(rel, sha(fs.readFileSync(abs)));
  };
  for (const r of rels) visit(path.join(dir, r), r);
  return { files, temps };
}

/** Each file present is whole: one of the versions it may have. `complete`: every file must be present. */
function expectWhole(dir: string, rels: readonly string[], versions: ReadonlyMap<string, ReadonlySet<string>>, complete: boolean, what: string): number {
  const ws = workspace(dir, rels);
  for (const [rel, h] of ws.files) {
    const ok = versions.get(rel);
    expect(ok, `${what}: unexpected file ${rel}`).toBeDefined();
    expect(ok!.has(h), `${what}: ${rel} is not a whole version of itself (half-written?)`).toBe(true);
  }
  if (complete) for (const rel of versions.keys()) expect(ws.files.has(rel), `${what}: ${rel} was lost`).toBe(true);
  return ws.temps.length;
}

/** tdv's temp files anywhere in the repo: beside workspace files, in .tdv/tmp, in the cache. */
function tempsIn(dir: string, rels: readonly string[]): string[] {
  const tmp = path.join(dir, '.tdv', 'tmp');
  const inTmp = fs.existsSync(tmp)
    ? fs
        .readdirSync(tmp)
        .filter((n) => /^\.tdvtmp\./.test(n))
        .map((n) => `.tdv/tmp/${n}`)
    : [];
  const atRoot = fs.readdirSync(dir).filter((n) => /^\.tdvtmp\./.test(n));
  return [...workspace(dir, rels).temps, ...hashCache(dir).leftovers, ...inTmp, ...atRoot];
}

/** Exactly these files, with these contents. */
function expectExactly(dir: string, rels: readonly string[], want: ReadonlyMap<string, string>, what: string): void {
  const ws = workspace(dir, rels).files;
  expect([...ws.keys()].sort(), what).toEqual([...want.keys()].sort());
  for (const [rel, h] of want) expect(ws.get(rel), `${what}: ${rel}`).toBe(h);
}

/**
 * The stat cache must not hide a change: rewrite `rel` with other bytes of the
 * same size and put its mtime back, then status must report it. In place
 * (copy mode), or by rename (hard links share their bytes with the cache). Restored after.
 */
async function expectChangeSeen(dir: string, rel: string, inPlace: boolean): Promise<void> {
  const file = path.join(dir, rel);
  const before = fs.statSync(file);
  const original = fs.readFileSync(file);
  const changed = Buffer.from(original);
  changed[0] = changed[0]! ^ 0x01;
  const put = (bytes: Buffer) => {
    if (inPlace) {
      fs.chmodSync(file, 0o644);
      fs.writeFileSync(file, bytes);
    } else {
      fs.writeFileSync(`${file}.swap`, bytes);
      fs.renameSync(`${file}.swap`, file);
    }
    fs.utimesSync(file, before.atime, before.mtime);
  };
  put(changed);
  const st = JSON.parse((await tdv(dir, 'status', '--json')).stdout) as { data: { path: string; workspace: string; files?: { modified: string[] } }[] };
  const seen = st.data.some((d) => d.path === rel || (rel.startsWith(`${d.path}/`) && d.files?.modified.includes(rel.slice(d.path.length + 1))));
  expect(seen, `status did not see ${rel} change: ${JSON.stringify(st)}`).toBe(true);
  put(original);
}

/** The rerun succeeds, without waiting for the dead command's lock. */
async function rerun(dir: string, ...args: string[]): Promise<void> {
  const r = await tdv(dir, ...args);
  expect(r.code, `rerun of ${args.join(' ')}: ${r.stderr}`).toBe(0);
  expect(r.stderr).not.toContain('waiting for the repository lock');
}

async function expectFsckClean(dir: string): Promise<void> {
  const r = await tdv(dir, 'fsck', '--json');
  const res = JSON.parse(r.stdout);
  expect(res.corrupt, 'fsck found corrupt objects').toEqual([]);
  expect(res.missing, 'fsck found missing objects').toEqual([]);
  expect(r.code, r.stderr).toBe(0);
}

/** Waits until no process (a stage a killed repro started) still works in `dir`. */
async function waitForOrphans(dir: string): Promise<number> {
  let seen = 0;
  for (let i = 0; i < 100; i++) {
    const busy = fs.readdirSync('/proc').filter((p) => {
      if (!/^\d+$/.test(p)) return false;
      try {
        return fs.readlinkSync(`/proc/${p}/cwd`).startsWith(dir);
      } catch {
        return false;
      }
    });
    if (busy.length === 0) return seen;
    seen = Math.max(seen, busy.length);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`processes still running in ${dir} 10 s after the kill`);
}

/**
 * Kills `args` `kills` times at random moments. Before each run `prepare`
 * sets up work for it; after each kill `check` inspects what it left (and
 * returns temp files counted), then the command is rerun and `after` checks the end state.
 */
async function killLoop(
  label: string,
  dir: string,
  rels: readonly string[],
  args: string[],
  kills: number,
  hooks: { prepare: () => Promise<void>; check: () => Promise<number>; after: () => Promise<void> },
): Promise<void> {
  const tally: Tally = { kills: 0, finished: 0, moments: [], leftovers: 0 };
  tallies.set(label, tally);
  await hooks.prepare();
  const { startMs, runMs } = await calibrate(dir, args);
  await hooks.after();
  for (let attempt = 0; tally.kills < kills; attempt++) {
    expect(attempt, `${label}: the command kept finishing before the kill`).toBeLessThan(kills * 6);
    await hooks.prepare();
    const at = startMs + random() * Math.max(50, runMs - startMs);
    const r = await runAndKill(dir, args, at);
    await waitForOrphans(dir);
    if (!r.killed) {
      expect(r.code, r.stderr).toBe(0);
      tally.finished++;
    } else {
      tally.kills++;
      tally.moments.push(Math.min(0.999, (at - startMs) / Math.max(1, runMs - startMs)));
      tally.leftovers += await hooks.check();
      await rerun(dir, ...args);
      expect(tempsIn(dir, rels), 'temp files of the killed command are still there after the rerun').toEqual([]);
    }
    await hooks.after();
  }
  console.log(`[crash] ${label}: ${tally.kills} kills survived (unkilled run ${runMs} ms, start-up ${startMs} ms), ${tally.finished} runs finished first, ${tally.leftovers} temp files left`);
}

/**
 * A repo with real data: the bike-share trips and weather, TILES small files, a
 * MODEL-byte binary. A short lock timeout, so a rerun blocked by a dead command's
 * lock would fail in seconds instead of waiting a minute.
 */
async function dataRepo(opts: { hardlink?: boolean; remote?: string; layout?: 'plain' } = {}): Promise<{ dir: string; rels: string[] }> {
  const dir = await bikeshareRepo({ days: 31, trips: 1500 });
  let config = `core:\n  lock_timeout: 10\n${opts.remote ? `  remote: store\nremote:\n  store:\n    url: ${opts.remote}\n${opts.layout ? `    layout: ${opts.layout}\n` : ''}` : ''}`;
  if (opts.hardlink) config += 'cache:\n  type: hardlink\n  allow_root_links: true\n';
  fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), config);
  for (let i = 0; i < TILES; i++) write(dir, `data/tiles/t${String(i).padStart(4, '0')}.bin`, crypto.randomBytes(200 + Math.floor(random() * 3000)));
  write(dir, 'model.bin', crypto.randomBytes(MODEL));
  const r = await tdv(dir, 'add', 'data', 'model.bin');
  expect(r.code, r.stderr).toBe(0);
  await git(dir, 'add', '-A');
  await git(dir, 'commit', '-qm', 'data');
  return { dir, rels: ['data', 'model.bin'] };
}

/** What the workspace holds now, as the one version of each file. */
function current(dir: string, rels: readonly string[]): Map<string, string> {
  return workspace(dir, rels).files;
}

function versions(...maps: ReadonlyMap<string, string>[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of maps) for (const [k, v] of m) (out.get(k) ?? out.set(k, new Set()).get(k)!).add(v);
  return out;
}

/** New content for some tiles and the model, so `add` has real work. */
function mutate(dir: string): void {
  for (let i = 0; i < 60; i++) {
    const f = path.join(dir, 'data/tiles', `t${String(Math.floor(random() * TILES)).padStart(4, '0')}.bin`);
    fs.rmSync(f, { force: true }); // hard-linked files are read-only links into the cache: replace, never write through
    fs.writeFileSync(f, crypto.randomBytes(200 + Math.floor(random() * 3000)));
  }
  const m = path.join(dir, 'model.bin');
  fs.rmSync(m, { force: true });
  fs.writeFileSync(m, crypto.randomBytes(MODEL));
}

describe('SIGKILL at random moments: nothing is lost, nothing is corrupt, the rerun succeeds', () => {
  for (const mode of ['copy', 'hardlink'] as const) {
    it(`add (cache.type ${mode})`, async () => {
      const { dir, rels } = await dataRepo({ hardlink: mode === 'hardlink' });
      let want = current(dir, rels);
      await killLoop(`add (${mode})`, dir, rels, ['add', ...rels], 6, {
        prepare: async () => {
          mutate(dir);
          want = current(dir, rels);
        },
        check: async () => {
          expectWhole(dir, rels, versions(want), true, 'after a killed add');
          await expectChangeSeen(dir, `data/tiles/t${String(Math.floor(random() * TILES)).padStart(4, '0')}.bin`, mode === 'copy');
          return tempsIn(dir, rels).length;
        },
        after: async () => {
          expectExactly(dir, rels, want, 'after add');
          await expectFsckClean(dir);
          expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout).data).toEqual([]);
        },
      });
    }, 240_000);
  }

  it('push to a directory remote', async () => {
    const remote = newDir();
    // Plain: each round empties files/ and hashes every object there (killed packed pushes: test/e2e/slow-link.test.ts).
    const { dir, rels } = await dataRepo({ remote, layout: 'plain' });
    expect((await tdv(dir, 'gc', '--workspace', '-f')).code).toBe(0); // only what the pointers reference
    const objects = hashCache(dir).objects;
    let remoteTemps = 0;
    await killLoop('push', dir, rels, ['push'], 10, {
      prepare: async () => fs.rmSync(path.join(remote, 'files'), { recursive: true, force: true }),
      check: async () => {
        remoteTemps += hashCache(dir, remote).leftovers.filter((f) => !f.startsWith('.tdv/')).length; // fails on any partial or wrong object on the remote
        return tempsIn(dir, rels).length;
      },
      after: async () => {
        const there = hashCache(dir, remote);
        expect(new Set(there.objects.keys())).toEqual(new Set(objects.keys()));
        const r = await tdv(dir, 'fsck', '--remote', '--json');
        expect(r.code, r.stdout).toBe(0);
        expectExactly(dir, rels, current(dir, rels), 'after push');
      },
    });
    // A killed copy to a directory remote leaves its temp file there (never listed as an object).
    console.log(`[crash] push: ${remoteTemps} temp files left on the directory remote by killed pushes`);
  }, 240_000);

  it('pull into a clone with an empty cache', async () => {
    const remote = newDir();
    const { dir, rels } = await dataRepo({ remote });
    expect((await tdv(dir, 'push')).code).toBe(0);
    const want = current(dir, rels);
    const clone = path.join(newDir(), 'clone');
    await git(path.dirname(clone), 'clone', '-q', dir, clone);
    await killLoop('pull', clone, rels, ['pull'], 10, {
      prepare: async () => {
        fs.rmSync(path.join(clone, '.tdv', 'cache'), { recursive: true, force: true });
        for (const r of rels) fs.rmSync(path.join(clone, r), { recursive: true, force: true });
      },
      check: async () => {
        expectWhole(clone, rels, versions(want), false, 'after a killed pull');
        const present = [...workspace(clone, ['data']).files.keys()];
        if (present.length) await expectChangeSeen(clone, pick(present), true);
        return tempsIn(clone, rels).length;
      },
      after: async () => {
        expectExactly(clone, rels, want, 'after pull');
        await expectFsckClean(clone);
      },
    });
  }, 240_000);

  it('checkout of data deleted and changed in the workspace', async () => {
    const { dir, rels } = await dataRepo();
    const want = current(dir, rels);
    await killLoop('checkout', dir, rels, ['checkout', '--force'], 10, {
      prepare: async () => {
        fs.rmSync(path.join(dir, 'data/tiles'), { recursive: true, force: true });
        fs.rmSync(path.join(dir, 'model.bin'));
        fs.writeFileSync(path.join(dir, 'data/weather.csv'), 'date,precip_mm\n');
      },
      check: async () => {
        expectWhole(dir, rels, versions(want, new Map([['data/weather.csv', sha('date,precip_mm\n')]])), false, 'after a killed checkout');
        const present = [...workspace(dir, ['data/trips']).files.keys()];
        await expectChangeSeen(dir, pick(present), true);
        return tempsIn(dir, rels).length;
      },
      after: async () => {
        expectExactly(dir, rels, want, 'after checkout');
        await expectFsckClean(dir);
        expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout).data).toEqual([]);
      },
    });
  }, 240_000);

  it('gc of many unused objects', async () => {
    const { dir, rels } = await dataRepo();
    const want = current(dir, rels);
    await killLoop('gc', dir, rels, ['gc', '--workspace', '-f'], 8, {
      prepare: async () => {
        // Unused objects: a directory added, then no longer tracked.
        for (let i = 0; i < 1500; i++) write(dir, `junk/j${i}`, crypto.randomBytes(100 + Math.floor(random() * 2000)));
        write(dir, 'junk/big', crypto.randomBytes(8 << 20));
        expect((await tdv(dir, 'add', 'junk')).code).toBe(0);
        expect((await tdv(dir, 'remove', 'junk.tdv')).code).toBe(0);
        fs.rmSync(path.join(dir, 'junk'), { recursive: true, force: true });
      },
      check: async () => {
        expectExactly(dir, rels, want, 'after a killed gc');
        const temps = tempsIn(dir, rels).length;
        await expectFsckClean(dir); // everything referenced is still there, nothing is corrupt
        return temps;
      },
      after: async () => {
        expect(hashCache(dir).objects.size).toBe(TILES + 31 + 1 + 1 + 1); // tiles, trips, weather, manifest, model
        await expectFsckClean(dir);
      },
    });
  }, 420_000); // 8 kill rounds of 1,500 objects: 250 s was seen on a 2-core machine shared with another suite

  it('repro of a pipeline with a directory output and a large output', async () => {
    const { dir } = await dataRepo();
    // Beside the bike-share stages: one output of many files, one of many megabytes.
    fs.appendFileSync(
      path.join(dir, 'tdv.yaml'),
      [
        '  explode:',
        '    cmd: mkdir -p out/by-station && cat data/trips/*.csv | split -l 40 - out/by-station/part-',
        '    deps: [data/trips]',
        '    outs: [out/by-station]',
        '  bulk:',
        '    cmd: for i in 1 2 3; do cat data/trips/*.csv model.bin; done > out/bulk.bin',
        '    deps: [data/trips, model.bin]',
        '    outs: [out/bulk.bin]',
        '',
      ].join('\n'),
    );
    const r = await tdv(dir, 'repro', '--no-run-cache');
    expect(r.code, r.stderr).toBe(0);
    const outs = ['out', 'metrics', 'tdv.lock'];
    const want = current(dir, outs);
    await killLoop('repro', dir, [...outs, 'data', 'model.bin'], ['repro', '-f', '--no-run-cache'], 10, {
      prepare: async () => {},
      check: async () => {
        // tdv's own files are whole. A stage's outputs are removed before it runs, so any may be
        // missing; and the stage killed with tdv (its watchdog stops the stage's processes: none
        // runs on unrecorded) may have left one half-written. tdv.lock never claims such a file:
        // `status` shows the stage changed, and the rerun removes it before running the stage.
        expectWhole(dir, ['tdv.lock'], versions(want), false, 'after a killed repro');
        const ws = workspace(dir, ['out', 'metrics']);
        const ok = versions(want);
        const partial = [...ws.files].filter(([rel, h]) => !ok.get(rel)?.has(h)).map(([rel]) => rel);
        if (partial.length) {
          const st = await tdv(dir, 'status', '--json');
          expect(JSON.parse(st.stdout), `after a killed repro: ${partial.join(', ')} half-written, yet status says clean`).toMatchObject({ clean: false });
        }
        await expectChangeSeen(dir, 'data/weather.csv', true);
        return tempsIn(dir, [...outs, 'data', 'model.bin']).length;
      },
      after: async () => {
        expectExactly(dir, outs, want, 'after repro');
        await expectFsckClean(dir);
        expect(JSON.parse((await tdv(dir, 'status', '--json')).stdout)).toMatchObject({ clean: true });
      },
    });
  }, 300_000);
});

it('has a seed to repeat the run with', () => {
  expect(SEED).toBeGreaterThan(0);
});
