/**
 * push, fetch and pull of real data (a directory of 2,000 files and one
 * 200 MiB file; pull takes the directory) through a proxy that injects one network fault in five
 * requests, for each kind of fault. Each command must either complete with
 * every object correct, or exit 1 with a clear message; a rerun without faults
 * must then complete; and no object in a cache or on the remote may ever be
 * partial or wrong, which is checked by hashing every one of them: cache
 * objects here, remote objects by comparing the server's MD5 of what it stored
 * (its ETag) with the MD5 of the true content, any mismatch read back and hashed.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { git, TDV_BIN, tmpDir, write } from '../helpers/repo.js';
import { newDir } from '../helpers/expect.js';
import { FAULT_KINDS, type FaultKind, type FaultProxy, type FaultStats, startFaultProxy } from '../helpers/fault-proxy.js';
import { describeS3rver, S3_BUCKET, s3Available, s3RemoteConfig, S3RVER_KEY } from '../helpers/s3.js';
import { cacheMd5s, hashCache, RemoteInspector } from '../helpers/verify.js';

const FILES = 2000;
const BIG = 200 << 20;
/** The client's idle socket timeout under faults, so a held response costs seconds, not a minute. */
const TIMEOUT_MS = 1500;
/** Parallel transfers: enough that requests held past the timeout overlap instead of queueing. */
const JOBS = '64';
const ENV = { AWS_ACCESS_KEY_ID: S3RVER_KEY, AWS_SECRET_ACCESS_KEY: S3RVER_KEY };

interface Row {
  kind: FaultKind;
  command: string;
  outcome: string;
  faults: number;
  sdkRetries: number;
  refetches: number;
  verified: number;
  seconds: number;
}
const rows: Row[] = [];

let proxy: FaultProxy;
let origin: string;
/** Every object the data consists of: oid -> size. */
let expected: Map<string, number>;
/** The workspace content: relpath -> sha256. */
let workspace: Map<string, string>;
let inspector: RemoteInspector;
/** MD5 of each object's true content: what the server's ETag must be. */
let md5s: Map<string, string>;

async function run(cwd: string, args: string[], faulty: boolean) {
  const r = await execa('node', [TDV_BIN, ...args], {
    cwd,
    reject: false,
    timeout: 180_000,
    env: { NO_COLOR: '1', ...ENV, ...(faulty ? { TDV_S3_SOCKET_TIMEOUT_MS: String(TIMEOUT_MS) } : {}) },
  });
  return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
}

/** A failed command must say so clearly: exit 1, an `error:` line last, no stack trace, nothing called a bug. */
function expectCleanFailure(r: { code: number; stderr: string }, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(1);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines.at(-1), r.stderr).toMatch(/^error: \S.*(run `tdv (push|fetch|pull)` again|tdv (push|fetch|pull))/);
  expect(r.stderr).not.toMatch(/this is a bug|^\s+at /m);
}

async function setRemote(dir: string, prefix: string, endpoint?: string): Promise<void> {
  // Plain: the inspector checks every object's key, size and ETag under files/sha256 (the packed layout
  // under a slow, killed link: slow-link.test.ts; hostile packed remotes: packed-hostile.test.ts).
  fs.writeFileSync(path.join(dir, '.tdv', 'config.local.yaml'), `remote:\n  s3:\n    url: s3://${S3_BUCKET}/${prefix}\n    layout: plain\n${endpoint ? `    endpointurl: ${endpoint}\n` : ''}`);
}

/** A clone of the origin talking to the remote through its own endpoint of the proxy, counted apart. */
async function clone(prefix: string, tag: string): Promise<string> {
  const to = path.join(newDir(), 'clone');
  await git(path.dirname(to), 'clone', '-q', origin, to);
  await setRemote(to, prefix, await proxy.endpoint(tag));
  return to;
}

function record(kind: FaultKind, command: string, r: { code: number; stdout: string; stderr: string }, stats: FaultStats, verified: number, t0: number): void {
  const faults = Object.values(stats.faults).reduce((a, b) => a + b, 0);
  const row: Row = {
    kind,
    command,
    outcome: r.code === 0 ? 'completed' : 'exit 1, rerun completed',
    faults,
    sdkRetries: stats.sdkRetries,
    refetches: stats.refetches,
    verified,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
  };
  rows.push(row);
  console.log(
    `[faults] ${kind} ${command}: ${row.outcome}; ${faults} faults in ${stats.requests} requests, ${stats.sdkRetries} SDK retries, ${stats.refetches} re-downloads by tdv, ${verified} objects verified (${row.seconds} s)${r.code ? `\n  ${r.stderr.trimEnd().split('\n').at(-1)}` : ''}`,
  );
}

/** Runs `args` under the fault, then (if it failed) again without faults; returns the faulty run's counts. */
async function underFault(kind: FaultKind, cwd: string, args: string[]) {
  proxy.reset();
  proxy.program(kind, 5);
  const r = await run(cwd, args, true);
  const stats = proxy.stats;
  proxy.program(undefined);
  expect(r.timedOut, `${args[0]} under ${kind} hung`).toBe(false);
  if (r.code !== 0) expectCleanFailure(r, `${args[0]} under ${kind}`);
  return { r, stats };
}

// s3rver only: the fault proxy sits in front of it, and what this checks (tdv's
// retries and verification under cut and stalled connections) does not depend on
// the server; a second, slower server would double the longest e2e suite.
describeS3rver('push, fetch and pull under network faults (1 request in 5)', () => {
  beforeAll(async () => {
    proxy = await startFaultProxy(s3Available()!.endpoint, { delayMs: 2 * TIMEOUT_MS });
    inspector = new RemoteInspector(s3Available()!.endpoint);
    // Made outside a test: tmpDir removes it after the file's last test (test/helpers/cleanup.ts).
    origin = path.join(fs.realpathSync(tmpDir('tdv-faults-')), 'origin');
    fs.mkdirSync(origin);
    await git(origin, 'init', '-q', '-b', 'main');
    expect((await run(origin, ['init', '-q'], false)).code).toBe(0);
    fs.appendFileSync(
      path.join(origin, '.tdv', 'config.yaml'),
      `core:\n  remote: s3\nremote:\n  s3:\n    url: s3://${S3_BUCKET}/unused\n    endpointurl: ${proxy.url}\n    force_path_style: true\n    checksum: when_required\n`,
    );
    workspace = new Map();
    for (let i = 0; i < FILES; i++) {
      const b = crypto.randomBytes(500 + ((i * 97) % 6000));
      write(origin, `data/part${i % 10}/f${i}.bin`, b);
      workspace.set(`data/part${i % 10}/f${i}.bin`, sha(b));
    }
    const big = crypto.randomBytes(BIG);
    write(origin, 'big.bin', big);
    workspace.set('big.bin', sha(big));
    const a = await run(origin, ['add', 'data', 'big.bin'], false);
    expect(a.code, a.stderr).toBe(0);
    await git(origin, 'add', '-A');
    await git(origin, 'commit', '-qm', 'data');
    expected = hashCache(origin).objects;
    md5s = cacheMd5s(origin);
    expect(expected.size).toBe(FILES + 2);
  }, 120_000);

  afterAll(async () => {
    await proxy?.close();
    inspector?.close();
    if (rows.length === 0) return;
    const total = (k: keyof Row) => rows.reduce((n, r) => n + (r[k] as number), 0);
    console.log(
      [
        '[faults] summary: fault kind x command, 1 eligible request in 5 faulted',
        ...rows.map(
          (r) =>
            `  ${r.kind.padEnd(12)} ${r.command.padEnd(6)} ${r.outcome.padEnd(24)} faults ${String(r.faults).padStart(4)}  sdk retries ${String(r.sdkRetries).padStart(4)}  re-downloads ${String(r.refetches).padStart(3)}  verified ${r.verified}  (${r.seconds} s)`,
        ),
        `  total: ${rows.length} runs, ${total('faults')} faults injected, ${total('sdkRetries')} SDK retries, ${total('refetches')} re-downloads by tdv, ${total('verified')} objects verified; data lost or wrong: 0`,
      ].join('\n'),
    );
  });

  it.each([
    ['a single PUT', 5000],
    ['a multipart upload', 20 << 20],
  ])('an upload whose bytes are altered on the way is refused by the server, tried again, and never stored wrong: %s', async (_what, size) => {
    const { createS3Remote } = await import('../../src/remote/s3.js');
    const prefix = `faults-md5-${crypto.randomBytes(4).toString('hex')}`;
    const remote = await createS3Remote('s3', s3RemoteConfig(prefix, { endpointurl: proxy.url }), { bucket: S3_BUCKET, prefix });
    const dir = newDir();
    const bytes = crypto.randomBytes(size);
    fs.writeFileSync(path.join(dir, 'obj'), bytes);
    const oid = sha(bytes);
    try {
      // Every upload altered: three attempts, then a failure naming the cause, and nothing stored.
      proxy.reset();
      proxy.program('corrupt', 1);
      const err = await remote.put(oid, path.join(dir, 'obj'), size).catch((e: unknown) => e as Error);
      expect((err as Error).message).toMatch(/BadDigest/);
      if (size < 8 << 20) expect(proxy.stats.faults.corrupt).toBe(3);
      expect([...(await inspector.list(prefix)).keys()]).toEqual([]);
      // Only the first attempts altered (two for a PUT, one part of a multipart upload): a later one gets through, whole and right.
      proxy.reset();
      proxy.program('corrupt', 1, size < 8 << 20 ? 2 : 1);
      await remote.put(oid, path.join(dir, 'obj'), size);
      expect(proxy.stats.faults.corrupt).toBe(size < 8 << 20 ? 2 : 1);
    } finally {
      proxy.program(undefined);
      remote.close();
    }
    const v = await inspector.verify(prefix, new Map([[oid, size]]));
    expect(v).toEqual({ verified: 1, missing: [] });
  });

  for (const kind of FAULT_KINDS) {
    it(`${kind}: push, fetch and pull complete or fail cleanly, a rerun completes, and no object is ever partial or wrong`, async () => {
      const prefix = `faults-${kind}-${crypto.randomBytes(4).toString('hex')}`;
      await setRemote(origin, prefix);

      // push
      let t0 = Date.now();
      const push = await underFault(kind, origin, ['push', '-j', JOBS]);
      let verified = (await inspector.verify(prefix, expected, md5s)).verified; // whatever is there is whole and right
      if (push.r.code !== 0) {
        const again = await run(origin, ['push'], false);
        expect(again.code, again.stderr).toBe(0);
      }
      const after = await inspector.verify(prefix, expected, md5s);
      expect(after.missing, 'objects missing on the remote after a clean push').toEqual([]);
      verified += after.verified;
      record(kind, 'push', push.r, push.stats, verified, t0);

      // fetch and pull at the same time, each into a fresh clone with an empty cache
      proxy.reset();
      proxy.program(kind, 5);
      t0 = Date.now();
      const clones = { fetch: await clone(prefix, 'fetch'), pull: await clone(prefix, 'pull') };
      // pull takes only the directory: the 200 MiB file's way over the network is fetch's (pull
      // is fetch, then checkout), and moving it a third time per fault kind would double the time.
      const args = { fetch: ['fetch', '-j', JOBS], pull: ['pull', 'data', '-j', JOBS] };
      const runs = await Promise.all((['fetch', 'pull'] as const).map((c) => run(clones[c], args[c], true)));
      proxy.program(undefined);
      for (const [i, command] of (['fetch', 'pull'] as const).entries()) {
        const dir = clones[command];
        const r = runs[i]!;
        expect(r.timedOut, `${command} under ${kind} hung`).toBe(false);
        if (r.code !== 0) expectCleanFailure(r, `${command} under ${kind}`);
        let checked = hashCache(dir); // fails on any object whose bytes do not match its name
        expect(checked.leftovers, 'temp files left behind').toEqual([]);
        verified = checked.objects.size;
        if (r.code !== 0) {
          const again = await run(dir, args[command].slice(0, -2), false);
          expect(again.code, again.stderr).toBe(0);
          checked = hashCache(dir);
          verified += checked.objects.size;
        }
        const want = command === 'fetch' ? expected : new Map([...expected].filter(([oid]) => oid !== workspace.get('big.bin')));
        expect(new Set(checked.objects.keys())).toEqual(new Set(want.keys()));
        if (command === 'pull') {
          for (const [rel, h] of workspace) if (rel !== 'big.bin') expect(sha(fs.readFileSync(path.join(dir, rel))), rel).toBe(h);
        }
        record(kind, command, r, proxy.statsOf(command), verified, t0);
      }
    }, 240_000);
  }
});

function sha(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}
