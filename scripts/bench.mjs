#!/usr/bin/env node
// tdv benchmark: each row times tdv and its baseline side by side in the same
// run (interleaved, median of RUNS), and prints the ratio against its target.
// Usage: npm run bench [-- --runs 5 --files 20000 --items 100000 --big-mib 1024 --csv-mib 200 --slow-mib 100 --rows-mib 1024 --only add-dir,status,push-s3 --dir /dev/shm]
// Row ids: add-big add-big-cached checkout-big add-dir status status-floor status-one checkout lfs push-local push-s3 push-noop-s3 pull-s3 push-big-s3
// cdc-append cdc-insert cdc-pull text-push pack-requests pack-push-time pack-pull-one random-push slow-link
// diff-rows repro-noop items-add items-noop parallel docker-true docker-true-runner ssh-true ssh-pool ssh-inputs log cat-old lineage serve-get serve-get-ref serve-list version
// The ssh-* rows start two Docker hosts reachable only over SSH (test/helpers/docker-ssh.sh: root,
// iproute2, openssh-server, dockerd) and skip, saying why, when they cannot.
// The transfer rows (cdc-*, text-push, pack-*, random-push, slow-link) count bytes and requests
// at the remote's side (the test proxy, test/helpers/http-proxy.mjs); --csv-mib sizes their CSV
// (MB), --slow-mib the CSV pushed over the 4 Mbit/s link (minutes at 100).
// --dir picks the file system: the default temp dir is the real disk, whose
// speed on shared machines swings several-fold from minute to minute; a tmpfs
// such as /dev/shm shows tdv's own CPU cost against the baseline's.
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : args[i + 1];
};
const RUNS = Number(opt('runs', 5));
const NFILES = Number(opt('files', 20000));
const BIG_MIB = Number(opt('big-mib', 1024));
const ONLY = opt('only', '')?.split(',').filter(Boolean);
const TDV = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/tdv.js');
const work = fs.mkdtempSync(path.join(opt('dir', os.tmpdir()), 'tdv-bench-'));
const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 'b', GIT_AUTHOR_EMAIL: 'b@b', GIT_COMMITTER_NAME: 'b', GIT_COMMITTER_EMAIL: 'b@b' };

function run(cmd, argv, cwd, { env = gitEnv, check = true } = {}) {
  const r = spawnSync(cmd, argv, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  if (check && r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}
/** Wall time of a spawned command, in seconds. */
function timeCmd(cmd, argv, cwd, opts) {
  const t = process.hrtime.bigint();
  run(cmd, argv, cwd, opts);
  return Number(process.hrtime.bigint() - t) / 1e9;
}
async function timeFn(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** A row's figure: seconds (timed rows), bytes or requests (counted rows). */
const fmtUnit = (v, unit = 's') => {
  if (unit === 'B') return v < 1e6 ? `${v} B` : `${(v / 1e6).toFixed(2)} MB`;
  if (unit === 'req') return `${v} requests`;
  return `${v.toFixed(3)} s`;
};
const rows = [];
const enabled = (id) => !ONLY?.length || ONLY.includes(id);

/** Runs `prepare` (untimed) then tdv and baseline alternately RUNS times. */
async function row(id, label, baselineLabel, target, { prepare, tdv, baseline }) {
  if (!enabled(id)) return;
  const a = [];
  const b = [];
  for (let i = 0; i < RUNS; i++) {
    await prepare?.('tdv', i);
    a.push(await tdv());
    await prepare?.('base', i);
    b.push(await baseline());
  }
  const ta = median(a);
  const tb = median(b);
  rows.push({ id, label, baselineLabel, tdv: ta, base: tb, ratio: ta / tb, target });
  process.stderr.write(`  ${label}: ${ta.toFixed(3)} s vs ${tb.toFixed(3)} s\n`);
}

function makeTree(dir, n) {
  const buf = Buffer.alloc(4096);
  for (let i = 0; i < n; i++) {
    const d = path.join(dir, `part${String(i % 100).padStart(3, '0')}`);
    if (i < 100) fs.mkdirSync(d, { recursive: true });
    randomFillSync(buf);
    fs.writeFileSync(path.join(d, `f${i}.bin`), buf);
  }
}
function rm(p) {
  fs.rmSync(p, { recursive: true, force: true });
}
function newRepo(name) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  run('git', ['init', '-q'], dir);
  run('node', [TDV, 'init', '-q'], dir);
  return dir;
}
const tdvCmd = (cwd, ...a) => timeCmd('node', [TDV, ...a], cwd);

process.stderr.write(`bench in ${work}: ${RUNS} runs per row, ${NFILES} files, ${BIG_MIB} MiB file\n`);

// 1 GiB file: tdv add (stat cache cold; cache emptied: the object is new) vs streamed SHA-256.
if (enabled('add-big') || enabled('add-big-cached') || enabled('checkout-big')) {
  const repo = newRepo('big');
  const big = path.join(repo, 'big.bin');
  const fd = fs.openSync(big, 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < BIG_MIB; i++) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
  const hashBaseline = () =>
    timeFn(async () => {
      const h = createHash('sha256');
      for await (const c of createReadStream(big, { highWaterMark: 1 << 20 })) h.update(c);
      h.digest('hex');
    });
  const cold = () => {
    rm(path.join(repo, '.tdv', 'tmp'));
    rm(path.join(repo, 'big.bin.tdv'));
  };
  await row('add-big', `tdv add one ${BIG_MIB} MiB file (new object)`, 'Node crypto SHA-256, streamed', 1.3, {
    prepare: (w) => w === 'tdv' && (cold(), rm(path.join(repo, '.tdv', 'cache'))),
    tdv: () => tdvCmd(repo, 'add', '-q', 'big.bin'),
    baseline: hashBaseline,
  });
  // The deleted file restored from the cache by copying (cache.type copy), against cp of the cached object.
  if (enabled('checkout-big')) {
    run('node', [TDV, 'add', '-q', 'big.bin'], repo);
    fs.appendFileSync(path.join(repo, '.tdv', 'config.yaml'), '\ncache:\n  type: copy\n');
    const oid = /sha256: ([0-9a-f]{64})/.exec(fs.readFileSync(path.join(repo, 'big.bin.tdv'), 'utf8'))[1];
    const obj = path.join(repo, '.tdv', 'cache', 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
    const cpDst = path.join(work, 'big-cp.bin');
    await row('checkout-big', `tdv checkout of a deleted ${BIG_MIB} MiB file (copy mode)`, 'cp of the cached object', 1.05, {
      prepare: (w) => (w === 'tdv' ? rm(big) : rm(cpDst)),
      tdv: () => tdvCmd(repo, 'checkout', '-q', 'big.bin'),
      baseline: () => timeCmd('cp', [obj, cpDst], work),
    });
    rm(cpDst);
  }
  await row('add-big-cached', `tdv add one ${BIG_MIB} MiB file (object already cached)`, 'Node crypto SHA-256, streamed', 1.3, {
    prepare: (w) => w === 'tdv' && cold(),
    tdv: () => tdvCmd(repo, 'add', '-q', 'big.bin'),
    baseline: hashBaseline,
  });
  rm(repo);
}

// The 20,000-file tree: one copy in a tdv repo, one in a plain Git repo.
const needTree = ['add-dir', 'status', 'status-floor', 'status-one', 'checkout', 'lfs'].some(enabled);
if (needTree) {
  const repo = newRepo('tree');
  const gitRepo = path.join(work, 'gittree');
  makeTree(path.join(repo, 'data'), NFILES);
  fs.mkdirSync(gitRepo);
  run('cp', ['-r', path.join(repo, 'data'), path.join(gitRepo, 'data')], work);
  await row('add-dir', `tdv add a directory of ${NFILES} files of 4 KiB`, 'git add of the same tree', 1.0, {
    prepare: (w) => {
      if (w === 'tdv') {
        rm(path.join(repo, '.tdv', 'cache'));
        rm(path.join(repo, '.tdv', 'tmp'));
        rm(path.join(repo, 'data.tdv'));
      } else {
        rm(path.join(gitRepo, '.git'));
        run('git', ['init', '-q'], gitRepo);
      }
    },
    tdv: () => tdvCmd(repo, 'add', '-q', 'data'),
    baseline: () => timeCmd('git', ['add', '.'], gitRepo),
  });
  if (!fs.existsSync(path.join(repo, 'data.tdv'))) run('node', [TDV, 'add', '-q', 'data'], repo);
  if (!fs.existsSync(path.join(gitRepo, '.git'))) run('git', ['init', '-q'], gitRepo);
  run('git', ['add', '.'], gitRepo);
  run('node', [TDV, 'status'], repo); // settle the stat cache, as any second status would
  await row('status', 'tdv status, nothing changed, that tree', 'git status', 3.0, {
    tdv: () => tdvCmd(repo, 'status'),
    baseline: () => timeCmd('git', ['status'], gitRepo),
  });
  // The floor of any status: starting Node and lstat-ing every file of the tree, synchronously.
  const floorScript = path.join(work, 'lstat-walk.cjs');
  fs.writeFileSync(
    floorScript,
    "const fs=require('fs'),p=require('path');(function w(d){for(const e of fs.readdirSync(d,{withFileTypes:true})){const f=p.join(d,e.name);fs.lstatSync(f);if(e.isDirectory())w(f)}})(process.argv[2]);\n",
  );
  await row('status-floor', `tdv status, nothing changed, ${NFILES} files`, 'node + synchronous lstat walk of the tree', 1.3, {
    tdv: () => tdvCmd(repo, 'status'),
    baseline: () => timeCmd('node', [floorScript, path.join(repo, 'data')], work),
  });
  // One file of the tree rewritten before each tdv run (new bytes each time), against the no-op status.
  let edits = 0;
  const edited = path.join(repo, 'data', 'part007', 'f7.bin');
  await row('status-one', `tdv status after one file of ${NFILES} changed`, 'tdv status, nothing changed', 1.3, {
    prepare: (w) => {
      if (w === 'tdv') fs.writeFileSync(edited, `edit ${++edits}\n`.repeat(300));
      else {
        // Back to the recorded bytes, and settled: a true no-op status.
        run('node', [TDV, 'checkout', '-q', '--force', 'data'], repo);
        run('node', [TDV, 'status', '-q'], repo, { check: false });
      }
    },
    tdv: () => timeCmd('node', [TDV, 'status'], repo, { check: false }),
    baseline: () => tdvCmd(repo, 'status'),
  });
  const copyDst = path.join(work, 'cp-dst');
  await row('checkout', 'tdv checkout after deleting the whole tree', 'cp -r of the tree', 1.5, {
    prepare: (w) => (w === 'tdv' ? rm(path.join(repo, 'data')) : rm(copyDst)),
    tdv: () => tdvCmd(repo, 'checkout', '-q'),
    baseline: () => timeCmd('cp', ['-r', path.join(repo, 'data'), copyDst], work),
  });
  if (enabled('lfs')) {
    const lfs = spawnSync('git', ['lfs', 'version']);
    if (lfs.status === 0) {
      const lfsRepo = path.join(work, 'lfstree');
      await row('lfs', `git lfs track + git add of the ${NFILES}-file tree (comparison)`, 'git add of the same tree', null, {
        prepare: (w) => {
          if (w === 'tdv') {
            rm(lfsRepo);
            run('cp', ['-r', gitRepo, lfsRepo], work);
            rm(path.join(lfsRepo, '.git'));
            run('git', ['init', '-q'], lfsRepo);
            run('git', ['lfs', 'install', '--local'], lfsRepo);
          } else {
            rm(path.join(gitRepo, '.git'));
            run('git', ['init', '-q'], gitRepo);
          }
        },
        tdv: () =>
          timeFn(async () => {
            run('git', ['lfs', 'track', 'data/**'], lfsRepo);
            run('git', ['add', '.'], lfsRepo);
          }),
        baseline: () => timeCmd('git', ['add', '.'], gitRepo),
      });
    } else process.stderr.write('  git-lfs is not installed (apt-get install git-lfs): its comparison row is skipped\n');
  }
}

// Remotes: a local directory, and the S3 test server (s3rver) on loopback.
const REMOTE_ROWS = ['push-local', 'push-s3', 'pull-s3', 'push-noop-s3', 'push-big-s3'];
if (REMOTE_ROWS.some(enabled)) await remoteRows();

async function startS3() {
  const { spawn } = await import('node:child_process');
  const script = path.resolve(path.dirname(TDV), '../test/helpers/s3-server.mjs');
  const dir = path.join(work, 's3rver');
  fs.mkdirSync(dir);
  const child = spawn('node', ['--openssl-legacy-provider', script, '--port', '0', '--dir', dir, '--exit-with-stdin'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /READY (\d+)/.exec(buf);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

async function remoteRows() {
  const jobs = Math.max(8, 4 * os.availableParallelism());
  const repo = newRepo('remote');
  makeTree(path.join(repo, 'data'), NFILES);
  run('node', [TDV, 'add', '-q', 'data'], repo);
  const files = [];
  for (const d of fs.readdirSync(path.join(repo, 'data'))) for (const f of fs.readdirSync(path.join(repo, 'data', d))) files.push(path.join(repo, 'data', d, f));
  const baseConfig = fs.readFileSync(path.join(repo, '.tdv', 'config.yaml'), 'utf8');
  const setRemote = (remoteYaml) => fs.writeFileSync(path.join(repo, '.tdv', 'config.yaml'), `${baseConfig}\ncore:\n  remote: r\nremote:\n  r:\n${remoteYaml}`);

  const localRemote = path.join(work, 'local-remote');
  const cpDst = path.join(work, 'cp-remote');
  await row('push-local', `tdv push ${NFILES} files of 4 KiB to a local remote`, 'cp -r of the same files', 2.0, {
    prepare: (w) => {
      if (w === 'tdv') {
        rm(localRemote);
        fs.mkdirSync(localRemote);
        setRemote(`    url: ${localRemote}\n`);
      } else rm(cpDst);
    },
    tdv: () => tdvCmd(repo, 'push', '-q'),
    baseline: () => timeCmd('cp', ['-r', path.join(repo, 'data'), cpDst], work),
  });
  rm(localRemote);
  rm(cpDst);

  if (!['push-s3', 'pull-s3', 'push-noop-s3', 'push-big-s3'].some(enabled)) return;
  const s3 = await startS3();
  try {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const { S3Client, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
    const { Upload } = await import('@aws-sdk/lib-storage');
    const http = await import('node:http');
    // The baseline client: same checksum mode, addressing and connection pool as tdv's.
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { httpAgent: new http.Agent({ keepAlive: true, maxSockets: jobs }) },
    });
    const s3Remote = (prefix) => setRemote(`    url: s3://tdv-test/${prefix}\n    endpointurl: ${s3.endpoint}\n    force_path_style: true\n    checksum: when_required\n`);
    const env = { ...gitEnv, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
    const tdvS3 = (...a) => timeCmd('node', [TDV, ...a], repo, { env });
    const pool = async (items, fn) => {
      let i = 0;
      await Promise.all(
        Array.from({ length: jobs }, async () => {
          while (i < items.length) {
            const k = i++;
            await fn(items[k], k);
          }
        }),
      );
    };
    let run_ = 0;
    await row('push-s3', `tdv push ${NFILES} files of 4 KiB to the S3 test server`, `PutObject loop, ${jobs} at once`, 1.3, {
      prepare: (w) => w === 'tdv' && s3Remote(`push-${run_++}`),
      tdv: () => tdvS3('push', '-q'),
      baseline: () =>
        timeFn(() =>
          pool(files, async (f, k) => {
            const body = fs.readFileSync(f);
            await client.send(new PutObjectCommand({ Bucket: 'tdv-test', Key: `base-${run_}/${k}`, Body: body, ContentLength: body.length }));
          }),
        ),
    });
    // Everything is on the remote now (the last push-s3 prefix, or a fresh full push).
    s3Remote('full');
    run('node', [TDV, 'push', '-q'], repo, { env });
    await row('push-noop-s3', `tdv push again, nothing to do, ${NFILES} objects on S3`, 'tdv status of the same repo', 3.0, {
      tdv: () => tdvS3('push', '-q'),
      baseline: () => tdvS3('status', '-q'),
    });
    const getDst = path.join(work, 'get-dst');
    if (enabled('pull-s3')) {
      await pool(files, async (f, k) => {
        const body = fs.readFileSync(f);
        await client.send(new PutObjectCommand({ Bucket: 'tdv-test', Key: `pullbase/${k}`, Body: body, ContentLength: body.length }));
      });
    }
    await row('pull-s3', `tdv pull ${NFILES} files from S3 into an empty cache and workspace`, `GetObject loop into files, ${jobs} at once`, 1.3, {
      prepare: (w) => {
        if (w === 'tdv') {
          rm(path.join(repo, '.tdv', 'cache'));
          rm(path.join(repo, '.tdv', 'tmp'));
          rm(path.join(repo, 'data'));
        } else {
          rm(getDst);
          fs.mkdirSync(getDst);
        }
      },
      tdv: () => tdvS3('pull', '-q'),
      baseline: () =>
        timeFn(() =>
          pool(files, async (f, k) => {
            const res = await client.send(new GetObjectCommand({ Bucket: 'tdv-test', Key: `pullbase/${k}` }));
            fs.writeFileSync(path.join(getDst, String(k)), await res.Body.transformToByteArray());
          }),
        ),
    });
    rm(getDst);

    if (enabled('push-big-s3')) {
      const bigRepo = newRepo('remote-big');
      const big = path.join(bigRepo, 'big.bin');
      const fd = fs.openSync(big, 'w');
      const chunk = Buffer.alloc(1 << 20);
      for (let i = 0; i < BIG_MIB; i++) fs.writeSync(fd, randomFillSync(chunk));
      fs.closeSync(fd);
      run('node', [TDV, 'add', '-q', 'big.bin'], bigRepo);
      const bigBase = fs.readFileSync(path.join(bigRepo, '.tdv', 'config.yaml'), 'utf8');
      let k = 0;
      const rss = [];
      await row('push-big-s3', `tdv push one ${BIG_MIB} MiB file to the S3 test server`, '@aws-sdk/lib-storage Upload', 1.2, {
        prepare: (w) =>
          w === 'tdv' &&
          fs.writeFileSync(
            path.join(bigRepo, '.tdv', 'config.yaml'),
            `${bigBase}\ncore:\n  remote: r\nremote:\n  r:\n    url: s3://tdv-test/big-${k++}\n    endpointurl: ${s3.endpoint}\n    force_path_style: true\n    checksum: when_required\n`,
          ),
        tdv: () => {
          // GNU time reports the peak resident set of the push.
          const t = process.hrtime.bigint();
          const r = run('/usr/bin/time', ['-f', 'maxrss=%M', 'node', TDV, 'push', '-q'], bigRepo, { env });
          rss.push(Number(/maxrss=(\d+)/.exec(String(r.stderr))?.[1] ?? NaN));
          return Number(process.hrtime.bigint() - t) / 1e9;
        },
        baseline: () =>
          timeFn(() =>
            new Upload({ client, params: { Bucket: 'tdv-test', Key: `big-base-${k}`, Body: fs.createReadStream(big, { highWaterMark: 1 << 20 }) }, partSize: 8 << 20, queueSize: 4 }).done(),
          ),
      });
      if (rss.length) process.stderr.write(`  peak memory of tdv push (${BIG_MIB} MiB file): ${(Math.max(...rss) / 1024).toFixed(0)} MiB max RSS\n`);
      rows.push({ id: 'push-big-rss', label: `peak RSS of tdv push of the ${BIG_MIB} MiB file`, note: `${(Math.max(...rss) / 1024).toFixed(0)} MiB` });
      rm(bigRepo);
    }
    client.destroy();
  } finally {
    s3.stop();
  }
  rm(repo);
}

// Transfer rows (issue 14): what crosses the wire, measured at the remote's side, never
// taken from tdv's own counts. The S3 rows go through the test proxy
// (test/helpers/http-proxy.mjs), which counts requests and body bytes and can shape the
// link; tdv runs as a child process spawned asynchronously, so the proxy, running in
// this process, keeps serving while it works.
const TRANSFER_ROWS = ['cdc-append', 'cdc-insert', 'cdc-pull', 'text-push', 'pack-requests', 'pack-push-time', 'pack-pull-one', 'random-push', 'slow-link'];
if (TRANSFER_ROWS.some(enabled)) await transferRows();

/** Runs a command without blocking this process's event loop (the proxy lives in it); resolves to its wall time in seconds. */
async function timeAsync(cmd, argv, cwd, { env = gitEnv } = {}) {
  const { spawn } = await import('node:child_process');
  const t = process.hrtime.bigint();
  const child = spawn(cmd, argv, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed (${code}): ${stderr}`);
  return Number(process.hrtime.bigint() - t) / 1e9;
}

/** A row whose figures are counts measured once (bytes, requests) or one timing against a computed baseline. */
function ratioRow(id, label, baselineLabel, target, value, base, unit, note) {
  if (!enabled(id)) return;
  rows.push({ id, label, baselineLabel, tdv: value, base, ratio: value / base, target, unit });
  process.stderr.write(`  ${label}: ${fmtUnit(value, unit)} vs ${fmtUnit(base, unit)}${note ? ` (${note})` : ''}\n`);
  if (note) rows.push({ id: `${id}-note`, label: `${id}`, note });
}

async function transferRows() {
  const { writeCsv, writeJsonl, appendCsvRows, insertCsvRows } = await import('./lib/datasets.mjs');
  const { startFaultProxy } = await import('../test/helpers/http-proxy.mjs');
  const CSV_MIB = Number(opt('csv-mib', 200));
  const SLOW_MIB = Number(opt('slow-mib', 100));
  /** 4 Mbit/s, in bytes/s, each way; and its latency. */
  const SLOW = { up: 500_000, down: 500_000, latencyMs: 50 };
  const datasets = path.join(work, 'datasets');
  fs.mkdirSync(datasets);
  const size = (f) => fs.statSync(f).size;
  const configs = new Map();
  /** Points repo's default remote `r` at `url` with `keys`, as `tdv remote add/modify` would write it. */
  const setRemote = (repo, url, keys = {}) => {
    const file = path.join(repo, '.tdv', 'config.yaml');
    if (!configs.has(repo)) configs.set(repo, fs.readFileSync(file, 'utf8'));
    const extra = Object.entries(keys).map(([k, v]) => `    ${k}: ${v}\n`);
    fs.writeFileSync(file, `${configs.get(repo)}\ncore:\n  remote: r\nremote:\n  r:\n    url: ${url}\n${extra.join('')}`);
  };
  const commit = (repo, msg) => {
    run('git', ['add', '-A'], repo);
    run('git', ['commit', '-qm', msg], repo);
  };
  // Does this build know the `layout` setting? Before the packed layout, the baseline
  // ("today's per-object push") and tdv are both today's layout, and the ratios are ~1.
  const probe = newRepo('layout-probe');
  setRemote(probe, path.join(work, 'nowhere'), { layout: 'plain' });
  const hasLayout = run('node', [TDV, 'remote', 'list'], probe, { check: false }).status === 0;
  rm(probe);
  const PLAIN = hasLayout ? { layout: 'plain' } : {};
  if (!hasLayout) process.stderr.write("  this build has no `layout` remote setting: the transfer rows measure today's per-object layout on both sides\n");

  // A directory remote: the 1 GiB random file, packed (the default) against layout: plain.
  if (enabled('random-push')) {
    const repo = newRepo('random');
    const big = path.join(repo, 'random.bin');
    const fd = fs.openSync(big, 'w');
    const chunk = Buffer.alloc(1 << 20);
    for (let i = 0; i < BIG_MIB; i++) fs.writeSync(fd, randomFillSync(chunk));
    fs.closeSync(fd);
    run('node', [TDV, 'add', '-q', 'random.bin'], repo);
    const remote = path.join(work, 'random-remote');
    await row('random-push', `tdv push one ${BIG_MIB} MiB file of random bytes to a local directory remote`, 'the same push with layout: plain', 1.3, {
      prepare: (w) => {
        rm(remote);
        fs.mkdirSync(remote);
        setRemote(repo, remote, w === 'tdv' ? {} : PLAIN);
      },
      tdv: () => tdvCmd(repo, 'push', '-q'),
      baseline: () => tdvCmd(repo, 'push', '-q'),
    });
    rm(remote);
    rm(repo);
  }

  if (!TRANSFER_ROWS.filter((id) => id !== 'random-push').some(enabled)) return;
  const s3 = await startS3();
  const proxy = await startFaultProxy(s3.endpoint, { record: true });
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const { S3Client, paginateListObjectsV2 } = await import('@aws-sdk/client-s3');
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  const env = { ...gitEnv, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };
  const s3Keys = (endpoint) => ({ endpointurl: endpoint, force_path_style: true, checksum: 'when_required' });
  /** Runs tdv with the proxy's counts zeroed first; resolves to the counts and the wall time. */
  const counted = async (repo, ...a) => {
    proxy.reset();
    const seconds = await timeAsync('node', [TDV, ...a], repo, { env });
    return { ...proxy.stats, seconds };
  };
  /** Keys and total size of the objects under `prefix` on the server, by listing it directly. */
  const listed = async (prefix) => {
    const objects = [];
    for await (const page of paginateListObjectsV2({ client }, { Bucket: 'tdv-test', Prefix: prefix })) for (const o of page.Contents ?? []) objects.push({ key: o.Key, size: o.Size });
    return objects;
  };
  const mb = (n) => `${(n / 1e6).toFixed(2)} MB`;
  const methods = (s) =>
    Object.entries(s.byMethod)
      .map(([m, c]) => `${c.requests} ${m}`)
      .join(', ');

  try {
    // The CSV's versions: v1, v2 with 1% rows appended, v3 with 1,000 rows inserted in the middle.
    if (['cdc-append', 'cdc-insert', 'cdc-pull', 'text-push'].some(enabled)) {
      const v1 = path.join(datasets, 'v1.csv');
      const { rows: nrows } = writeCsv(v1, CSV_MIB * 1e6);
      const v2 = path.join(datasets, 'v2-append.csv');
      appendCsvRows(v1, v2, nrows, Math.round(nrows / 100));
      const v3 = path.join(datasets, 'v3-insert.csv');
      insertCsvRows(v1, v3, 1000);
      const repo = newRepo('cdc');
      fs.copyFileSync(v1, path.join(repo, 'orders.csv'));
      const jsonl = path.join(repo, 'events.jsonl');
      writeJsonl(jsonl, (CSV_MIB / 4) * 1e6);
      run('node', [TDV, 'add', '-q', 'orders.csv', 'events.jsonl'], repo);
      setRemote(repo, 's3://tdv-test/cdc', s3Keys(proxy.url));
      commit(repo, 'v1');
      const csvUp = (await counted(repo, 'push', '-q', 'orders.csv')).bytesUp;
      const jsonUp = (await counted(repo, 'push', '-q', 'events.jsonl')).bytesUp;
      const raw = size(v1) + size(jsonl);
      ratioRow(
        'text-push',
        `first push of CSV and JSON-lines text (${mb(size(v1))} CSV + ${mb(size(jsonl))} JSON lines), bytes sent`,
        'their raw bytes',
        0.35,
        csvUp + jsonUp,
        raw,
        'B',
        `CSV ${(csvUp / size(v1)).toFixed(3)}, JSON lines ${(jsonUp / size(jsonl)).toFixed(3)} of raw`,
      );

      // A clone whose cache holds v1, pulled before the second version exists.
      const clone = path.join(work, 'cdc-clone');
      run('git', ['clone', '-q', repo, clone], work);
      await timeAsync('node', [TDV, 'pull', '-q'], clone, { env });

      fs.copyFileSync(v2, path.join(repo, 'orders.csv'));
      run('node', [TDV, 'add', '-q', 'orders.csv'], repo);
      commit(repo, 'v2: 1% rows appended');
      const appendUp = (await counted(repo, 'push', '-q')).bytesUp;
      ratioRow('cdc-append', `second version of a ${mb(size(v1))} CSV, 1% rows appended: bytes sent`, 'the whole file', 0.02, appendUp, size(v2), 'B');

      run('git', ['pull', '-q', '--ff-only'], clone);
      const pulled = await counted(clone, 'pull', '-q');
      if (fs.readFileSync(path.join(clone, 'orders.csv')).compare(fs.readFileSync(v2)) !== 0) throw new Error('cdc-pull: the pulled orders.csv differs from the second version');
      ratioRow('cdc-pull', `pull of that second version into a clone whose cache holds the first: bytes received`, 'the whole file', 0.02, pulled.bytesDown, size(v2), 'B');

      fs.copyFileSync(v3, path.join(repo, 'orders.csv'));
      run('node', [TDV, 'add', '-q', 'orders.csv'], repo);
      commit(repo, 'v3: 1,000 rows inserted');
      const insertUp = (await counted(repo, 'push', '-q')).bytesUp;
      ratioRow('cdc-insert', `second version of the CSV, 1,000 rows inserted in the middle: bytes sent`, 'the whole file', 0.02, insertUp, size(v3), 'B');
      rm(clone);
      rm(repo);
      for (const f of [v1, v2, v3]) rm(f);
    }

    // 20,000 files of 4 KiB on S3: requests of the packed push, its time against layout: plain,
    // and a fresh clone's pull of one file.
    if (['pack-requests', 'pack-push-time', 'pack-pull-one'].some(enabled)) {
      const repo = newRepo('pack');
      makeTree(path.join(repo, 'data'), NFILES);
      run('node', [TDV, 'add', '-q', 'data'], repo);
      setRemote(repo, 's3://tdv-test/pack', s3Keys(proxy.url));
      commit(repo, 'tree');
      if (enabled('pack-requests') || enabled('pack-pull-one')) {
        const pushed = await counted(repo, 'push', '-q');
        ratioRow('pack-requests', `tdv push ${NFILES} files of 4 KiB to the S3 test server: requests`, 'files', 0.02, pushed.requests, NFILES, 'req', methods(pushed));
        const one = 'data/part007/f7.bin';
        const clone = path.join(work, 'pack-clone');
        run('git', ['clone', '-q', repo, clone], work);
        const got = await counted(clone, 'pull', '-q', one);
        if (fs.readFileSync(path.join(clone, one)).compare(fs.readFileSync(path.join(repo, one))) !== 0) throw new Error(`pack-pull-one: the pulled ${one} differs`);
        const remote = await listed('pack/');
        const index = remote.filter((o) => /(^|\/)index\//.test(o.key));
        const indexBytes = index.reduce((n, o) => n + o.size, 0);
        ratioRow(
          'pack-pull-one',
          `pull of one file from a pack of ${NFILES}, fresh clone: bytes received`,
          `the file (${size(path.join(repo, one))} B) plus the pack index (${index.length} index objects)`,
          1.5,
          got.bytesDown,
          size(path.join(repo, one)) + indexBytes,
          'B',
          `the remote holds ${remote.length} objects; received: ${got.log.map((l) => `${l.method} ${l.path.replace(/^\/tdv-test\/pack\//, '').replace(/\?.*/, '')}${l.range ? ` (${l.range})` : ''} ${l.bytesDown} B`).join(', ')}`,
        );
        rm(clone);
      }
      let k = 0;
      await row('pack-push-time', `tdv push ${NFILES} files of 4 KiB to the S3 test server`, 'the same push with layout: plain', 0.25, {
        prepare: (w) => setRemote(repo, `s3://tdv-test/pack-time-${k++}`, { ...s3Keys(s3.endpoint), ...(w === 'tdv' ? {} : PLAIN) }),
        tdv: () => timeCmd('node', [TDV, 'push', '-q'], repo, { env }),
        baseline: () => timeCmd('node', [TDV, 'push', '-q'], repo, { env }),
      });
      rm(repo);
    }

    // A CSV pushed over a 4 Mbit/s link with 50 ms latency, against its raw bytes at 4 Mbit/s.
    if (enabled('slow-link')) {
      const repo = newRepo('slow');
      const csv = path.join(repo, 'orders.csv');
      writeCsv(csv, SLOW_MIB * 1e6, 7);
      run('node', [TDV, 'add', '-q', 'orders.csv'], repo);
      setRemote(repo, 's3://tdv-test/slow', s3Keys(proxy.url));
      proxy.shape(SLOW);
      try {
        const pushed = await counted(repo, 'push', '-q');
        ratioRow(
          'slow-link',
          `push of a ${mb(size(csv))} CSV over a 4 Mbit/s link with 50 ms latency: wall time`,
          'its raw bytes at 4 Mbit/s',
          0.4,
          pushed.seconds,
          size(csv) / SLOW.up,
          's',
          `${mb(pushed.bytesUp)} sent in ${pushed.requests} requests`,
        );
      } finally {
        proxy.shape();
      }
      rm(repo);
    }
  } finally {
    client.destroy();
    await proxy.close();
    s3.stop();
  }
}

// Pipelines: a no-op repro of 50 stages over 20,000 dep files, and parallel stages.
if (enabled('repro-noop')) {
  const repo = newRepo('pipeline');
  makeTree(path.join(repo, 'data'), NFILES);
  run('node', [TDV, 'add', '-q', 'data'], repo);
  // 50 stages: each reads two of the 100 parts of the tree and writes one small output.
  let yaml = 'stages:\n';
  for (let i = 0; i < 50; i++) {
    const a = `data/part${String(2 * i).padStart(3, '0')}`;
    const b = `data/part${String(2 * i + 1).padStart(3, '0')}`;
    yaml += `  s${i}:\n    cmd: ls ${a} ${b} | wc -l > out/s${i}.txt\n    deps: [${a}, ${b}]\n    outs: [out/s${i}.txt]\n`;
  }
  fs.writeFileSync(path.join(repo, 'tdv.yaml'), yaml);
  run('node', [TDV, 'repro', '-q'], repo);
  run('node', [TDV, 'status', '-q'], repo); // settle the stat cache
  await row('repro-noop', `tdv repro, nothing changed, 50 stages over ${NFILES} dep files`, 'tdv status of the same repo', 1.5, {
    tdv: () => tdvCmd(repo, 'repro', '-q'),
    baseline: () => tdvCmd(repo, 'status', '-q'),
  });
  rm(repo);
}

// Per-item stages (foreach-file): ITEMS small files, one `cp` per item. After 10 new files, repro
// runs those 10 (baseline: the same 10 cp commands run directly by sh); with nothing changed, repro
// vs tdv status of the same repository.
if (enabled('items-add') || enabled('items-noop')) {
  const ITEMS = Number(opt('items', 100000));
  const repo = newRepo('items');
  const dir = path.join(repo, 'data', 'img');
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < ITEMS; i++) fs.writeFileSync(path.join(dir, `i${i}.jpg`), `item ${i}\n`);
  run('node', [TDV, 'add', '-q', 'data/img'], repo);
  fs.writeFileSync(path.join(repo, 'tdv.yaml'), 'stages:\n  copy:\n    foreach-file: {dir: data/img, pattern: "*.jpg"}\n    cmd: cp ${item} ${out}/${item.name}\n    outs: [out]\n');
  const t0 = process.hrtime.bigint();
  run('node', [TDV, 'repro', '-q'], repo);
  process.stderr.write(`  (first repro of ${ITEMS} items: ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s)\n`);
  run('node', [TDV, 'status', '-q'], repo); // settle the stat cache
  const extra = path.join(work, 'items-direct');
  let round = 0;
  await row('items-add', `tdv repro of a per-item stage after adding 10 files to ${ITEMS}`, 'the 10 cp commands run directly', 3, {
    prepare: (who) => {
      round++;
      if (who === 'tdv') for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(dir, `new${round}-${i}.jpg`), `new ${round} ${i}\n`);
      else {
        rm(extra);
        fs.mkdirSync(path.join(extra, 'out'), { recursive: true });
        for (let i = 0; i < 10; i++) fs.writeFileSync(path.join(extra, `new${i}.jpg`), `new ${i}\n`);
      }
    },
    tdv: () => tdvCmd(repo, 'repro', '-q'),
    baseline: () => timeCmd('sh', ['-c', Array.from({ length: 10 }, (_, i) => `cp new${i}.jpg out/new${i}.jpg`).join('; ')], extra),
  });
  run('node', [TDV, 'repro', '-q'], repo);
  run('node', [TDV, 'status', '-q'], repo);
  await row('items-noop', `tdv repro of a per-item stage of ${ITEMS} items, nothing changed`, 'tdv status of the same repo', 1.5, {
    tdv: () => tdvCmd(repo, 'repro', '-q'),
    baseline: () => tdvCmd(repo, 'status', '-q'),
  });
  rm(repo);
  rm(extra);
}

if (enabled('parallel')) {
  const repo = newRepo('parallel');
  fs.writeFileSync(path.join(repo, 'tdv.yaml'), 'stages:\n  a:\n    cmd: sleep 2 && echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: sleep 2 && echo b > b.txt\n    outs: [b.txt]\n');
  await row('parallel', 'two independent stages of sleep 2, -j 2', 'the same with -j 1', 0.6, {
    tdv: () => tdvCmd(repo, 'repro', '-q', '--force', '--no-run-cache', '-j', '2'),
    baseline: () => tdvCmd(repo, 'repro', '-q', '--force', '--no-run-cache', '-j', '1'),
  });
  rm(repo);
}

// Docker: one stage running `true` in tdv-fixtures/busybox (made by
// test/helpers/docker-image.sh) vs the bare `docker run --rm` of the same.
if (enabled('docker-true') || enabled('docker-true-runner')) {
  const IMAGE = 'tdv-fixtures/busybox';
  const script = path.resolve(path.dirname(TDV), '../test/helpers/docker-image.sh');
  const made = spawnSync('sh', [script, IMAGE], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (made.status === 0) {
    const dockerTrue = () => timeCmd('docker', ['run', '--rm', IMAGE, 'true'], work);
    const repo = newRepo('docker');
    fs.writeFileSync(path.join(repo, 'tdv.yaml'), `stages:\n  t:\n    cmd: 'true'\n    image: ${IMAGE}\n`);
    await row('docker-true', 'tdv repro of one Docker stage running true (--force)', `docker run --rm ${IMAGE} true`, 1.3, {
      tdv: () => tdvCmd(repo, 'repro', '-q', '--force', '--no-run-cache'),
      baseline: dockerTrue,
    });
    // The runner alone, in-process: what tdv adds around `docker run` without
    // Node's start-up, the repo and tdv.lock (resolveImage included, as repro does it).
    const { DockerRunner } = await import('../dist/stages/runners/docker.js');
    await row('docker-true-runner', 'DockerRunner resolveImage + run of true, in-process (no tdv repro)', `docker run --rm ${IMAGE} true`, 1.3, {
      tdv: () =>
        timeFn(async () => {
          const runner = new DockerRunner();
          const image = await runner.resolveImage(IMAGE);
          const r = await runner.run({ stage: 'bench', cmd: 'true', root: repo, cwd: repo, env: {}, image, onOutput: () => {} });
          if (r.exitCode !== 0) throw new Error(`DockerRunner: exit ${r.exitCode}`);
        }),
      baseline: dockerTrue,
    });
    rm(repo);
  } else process.stderr.write(`  no Docker or no test image (${String(made.stderr).trim().split('\n')[0]}): the docker-true rows are skipped\n`);
}

// Remote Docker hosts over SSH (issue 15): two throwaway hosts made by
// test/helpers/docker-ssh.sh (network namespaces with an sshd and a dockerd of
// their own, sharing no directory with this machine), runner type docker.
if (['ssh-true', 'ssh-pool', 'ssh-inputs'].some(enabled)) await sshRows();

/** Starts one host of docker-ssh.sh in `dir` on a free host number; its TDV_TEST_SSH_* lines, or { error }. */
function startSshHost(dir) {
  const script = path.resolve(path.dirname(TDV), '../test/helpers/docker-ssh.sh');
  let error = '';
  for (let attempt = 0; attempt < 12; attempt++) {
    const taken = new Set([...String(spawnSync('ip', ['netns', 'list']).stdout ?? '').matchAll(/^tdv-dh-(\d+)\b/gm)].map((m) => Number(m[1])));
    const free = Array.from({ length: 250 }, (_, i) => i + 1).filter((n) => !taken.has(n));
    const n = free[Math.floor(Math.random() * free.length)];
    rm(dir);
    const r = spawnSync(script, ['start', dir, String(n)], { encoding: 'utf8', timeout: 180_000 });
    if (r.status === 0) {
      const env = Object.fromEntries([...r.stdout.matchAll(/^(TDV_TEST_SSH_\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
      process.stderr.write(`  ${r.stdout.split('\n')[0]}\n`);
      return { dir, url: env.TDV_TEST_SSH_HOST, stop: () => spawnSync(script, ['stop', dir], { timeout: 120_000 }) };
    }
    error = String(r.stderr || r.error?.message || `exit ${r.status}`).trim();
    if (r.status !== 3) break; // 3: that number was taken meanwhile
  }
  return { error };
}

/**
 * Seconds between the runner's -v lines for `docker ... cp - ...` (the inputs' tar
 * going in) and `docker ... start --attach ...` in `tdv repro -v --force in`, each
 * stamped as it arrives; undefined when the run shows no such pair.
 */
async function inputPhase(dir, env) {
  const { spawn } = await import('node:child_process');
  const child = spawn('node', [TDV, 'repro', '-v', '--force', '--no-run-cache', 'in'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tIn;
  let tStart;
  let tail = '';
  const watch = (stream) => {
    let buf = '';
    stream.on('data', (d) => {
      const now = process.hrtime.bigint();
      buf += d;
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const l of lines) {
        tail = l;
        if (tIn === undefined && /\bdocker\b.* cp - /.test(l)) tIn = now;
        else if (tIn !== undefined && tStart === undefined && /\bstart --attach\b/.test(l)) tStart = now;
      }
    });
  };
  watch(child.stdout);
  watch(child.stderr);
  const code = await new Promise((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`tdv repro -v in failed (${code}): ${tail}`);
  return tIn !== undefined && tStart !== undefined ? Number(tStart - tIn) / 1e9 : undefined;
}

async function sshRows() {
  const script = path.resolve(path.dirname(TDV), '../test/helpers/docker-ssh.sh');
  const IMAGE = 'tdv-fixtures/busybox';
  const hosts = [];
  try {
    for (const i of [1, 2]) {
      const h = startSshHost(path.join(work, `ssh-host-${i}`));
      if (h.error) {
        process.stderr.write(`  the SSH Docker host did not start (${h.error.split('\n')[0]}): the ssh-* rows are skipped\n`);
        return;
      }
      hosts.push(h);
    }
    const client = path.join(work, 'ssh-client');
    run(script, ['client', client, ...hosts.map((h) => h.dir)], work);
    const env = { ...gitEnv, PATH: `${client}/bin:${process.env.PATH}` };
    delete env.DOCKER_HOST;
    delete env.DOCKER_CONTEXT;
    const [h1, h2] = hosts;
    /** A repo whose tdv.yaml is `yaml` and whose runner `far` runs on `urls`; `setup(dir)` first. */
    const sshRepo = (name, yaml, urls, setup) => {
      const dir = newRepo(name);
      setup?.(dir);
      fs.writeFileSync(path.join(dir, 'tdv.yaml'), yaml);
      fs.appendFileSync(path.join(dir, '.tdv', 'config.yaml'), `\nrunner:\n  far:\n    type: docker\n    hosts: [${urls.join(', ')}]\n`);
      return dir;
    };
    const repro = (dir, ...a) => timeCmd('node', [TDV, 'repro', '-q', '--force', '--no-run-cache', ...a], dir, { env });
    const dockerOn = (h, ...a) => run('docker', ['--host', h.url, ...a], work, { env });
    const timeDockerOn = (h, ...a) => timeCmd('docker', ['--host', h.url, ...a], work, { env });
    // The runner and its config may not be there yet (or may fail): one try first, so the row says why it is skipped.
    const works = (dir, what) => {
      const r = run('node', [TDV, 'repro', '-q', '--force', '--no-run-cache'], dir, { env, check: false });
      if (r.status === 0) return true;
      process.stderr.write(`  ${what}: tdv repro on the SSH host failed (${String(r.stderr).trim().split('\n')[0]}): skipped\n`);
      return false;
    };

    if (enabled('ssh-true')) {
      const repo = sshRepo('ssh-true', `stages:\n  t:\n    runner: far\n    image: ${IMAGE}\n    cmd: 'true'\n`, [h1.url]);
      if (works(repo, 'ssh-true'))
        await row('ssh-true', 'tdv repro of one stage running true on a Docker host over SSH (--force)', `docker --host=ssh://... run --rm ${IMAGE} true`, 1.5, {
          tdv: () => repro(repo),
          baseline: () => timeDockerOn(h1, 'run', '--rm', IMAGE, 'true'),
        });
      rm(repo);
    }

    if (enabled('ssh-pool')) {
      let yaml = 'stages:\n';
      for (let i = 1; i <= 4; i++) yaml += `  s${i}:\n    runner: far\n    image: ${IMAGE}\n    cmd: sleep 2 && echo ${i} > o${i}.txt\n    outs: [o${i}.txt]\n`;
      const pool = sshRepo('ssh-pool', yaml, [h1.url, h2.url]);
      const one = sshRepo('ssh-pool-one', yaml, [h1.url]);
      if (works(pool, 'ssh-pool') && works(one, 'ssh-pool'))
        await row('ssh-pool', 'four independent sleep 2 stages on a pool of two SSH Docker hosts, -j 4', 'the same on one host, -j 2', 0.6, {
          tdv: () => repro(pool, '-j', '4'),
          baseline: () => repro(one, '-j', '2'),
        });
      rm(pool);
      rm(one);
    }

    if (enabled('ssh-inputs')) {
      // The input phase of a stage reading NFILES files of 4 KiB, against `docker cp`
      // of the same directory into a created container. Measured from the runner's
      // -v lines as they arrive (its `docker ... cp - NAME:...` starts the inputs'
      // tar, its `docker ... start --attach` follows it); when a run shows no such
      // lines, as that stage's wall time minus a stage running true with no inputs
      // (same image, same host, same run).
      const yaml = `stages:\n  in:\n    runner: far\n    image: ${IMAGE}\n    cmd: 'true'\n    deps: [data]\n  t:\n    runner: far\n    image: ${IMAGE}\n    cmd: 'true'\n`;
      const repo = sshRepo('ssh-inputs', yaml, [h1.url], (dir) => {
        makeTree(path.join(dir, 'data'), NFILES);
        run('node', [TDV, 'add', '-q', 'data'], dir);
      });
      let container = '';
      if (works(repo, 'ssh-inputs')) {
        const fromDebug = (await inputPhase(repo, env)) !== undefined;
        await row(
          'ssh-inputs',
          `moving ${NFILES} input files of 4 KiB to a Docker host over SSH (${fromDebug ? "from the runner's -v lines" : 'stage minus a true stage'})`,
          'docker --host=ssh://... cp of the directory into a created container',
          1.3,
          {
            prepare: (w) => {
              if (w === 'base') container = String(dockerOn(h1, 'create', IMAGE, 'true').stdout).trim();
            },
            tdv: async () => {
              if (!fromDebug) return repro(repo, 'in') - repro(repo, 't');
              const t = await inputPhase(repo, env);
              if (t === undefined) throw new Error('ssh-inputs: a run of stage in showed no `cp -` and `start --attach` lines');
              return t;
            },
            baseline: () => {
              try {
                return timeDockerOn(h1, 'cp', path.join(repo, 'data'), `${container}:/data`);
              } finally {
                dockerOn(h1, 'rm', '-f', container);
              }
            },
          },
        );
      }
      rm(repo);
    }
  } finally {
    for (const h of hosts) h.stop();
  }
}

// History: tdv log over 1,000 commits where data.tdv (a directory of 10
// files, one changing per commit) changes in every commit, its manifests
// cached; built with git fast-import, so packed as in a clone.
if (enabled('log')) {
  const COMMITS = 1000;
  const repo = newRepo('log');
  const objects = path.join(repo, '.tdv', 'cache', 'files', 'sha256');
  const hex = (s) => createHash('sha256').update(s).digest('hex');
  const branch = String(run('git', ['symbolic-ref', 'HEAD'], repo).stdout).trim();
  let stream = '';
  for (let i = 0; i < COMMITS; i++) {
    const entries = Array.from({ length: 10 }, (_, j) => {
      const content = `day ${j}, version ${j === i % 10 ? i : i - (i % 10) + j}\n`;
      return { relpath: `day-${j}.csv`, sha256: hex(content), size: content.length };
    });
    const manifest = `[${entries.map((e) => JSON.stringify(e)).join(',')}]`;
    const oid = hex(manifest);
    fs.mkdirSync(path.join(objects, oid.slice(0, 2)), { recursive: true });
    fs.writeFileSync(path.join(objects, oid.slice(0, 2), `${oid.slice(2)}.dir`), manifest, { mode: 0o444 });
    const pointer = `outs:\n- path: data\n  sha256: ${oid}.dir\n  size: ${entries.reduce((n, e) => n + e.size, 0)}\n  nfiles: 10\n`;
    const msg = `Data of day ${i}\n`;
    stream += `commit ${branch}\nmark :${i + 1}\ncommitter b <b@b> ${1700000000 + i * 3600} +0000\ndata ${msg.length}\n${msg}${i > 0 ? `from :${i}\n` : ''}`;
    stream += `M 100644 inline data.tdv\ndata ${pointer.length}\n${pointer}\n`;
  }
  const imported = spawnSync('git', ['fast-import', '--quiet'], { cwd: repo, env: gitEnv, input: stream });
  if (imported.status !== 0) throw new Error(`git fast-import failed: ${imported.stderr}`);
  run('git', ['reset', '-q', '--hard'], repo);
  await row('log', `tdv log data over ${COMMITS} commits, the pointer changing in each`, 'git log --format=%H -- data.tdv', 3.0, {
    tdv: () => tdvCmd(repo, 'log', 'data'),
    baseline: () => timeCmd('git', ['log', '--format=%H', '--', 'data.tdv'], repo),
  });
  rm(repo);
}

// tdv cat of a small data file at an old revision (20 commits back, object cached) against
// starting tdv at all: what reading any version costs over the launcher.
if (enabled('cat-old')) {
  const repo = newRepo('cat');
  for (let i = 0; i < 25; i++) {
    fs.writeFileSync(path.join(repo, 'params.csv'), `day,${i}\n`);
    run('node', [TDV, 'add', '-q', 'params.csv'], repo);
    run('git', ['add', '-A'], repo);
    run('git', ['commit', '-qm', `day ${i}`], repo);
  }
  await row('cat-old', 'tdv cat --rev HEAD~20 of a small data file', 'tdv --version', 1.5, {
    tdv: () => tdvCmd(repo, 'cat', '--rev', 'HEAD~20', 'params.csv'),
    baseline: () => timeCmd('node', [TDV, '--version'], work),
  });
  rm(repo);
}

// tdv lineage of the last output of a 50-stage chain (stage i copies stage i-1's output; stage 0
// reads a tracked file and a Git-tracked script), run once and committed, against starting tdv at all.
if (enabled('lineage')) {
  const repo = newRepo('lineage');
  fs.writeFileSync(path.join(repo, 'raw.csv'), 'a,b\n1,2\n');
  run('node', [TDV, 'add', '-q', 'raw.csv'], repo);
  fs.writeFileSync(path.join(repo, 'prep.sh'), 'cat raw.csv > out0.csv\n');
  let yaml = 'stages:\n  s0:\n    cmd: sh prep.sh\n    deps: [raw.csv, prep.sh]\n    outs: [out0.csv]\n';
  for (let i = 1; i < 50; i++) yaml += `  s${i}:\n    cmd: cp out${i - 1}.csv out${i}.csv\n    deps: [out${i - 1}.csv]\n    outs: [out${i}.csv]\n`;
  fs.writeFileSync(path.join(repo, 'tdv.yaml'), yaml);
  run('node', [TDV, 'repro', '-q'], repo);
  run('git', ['add', '-A'], repo);
  run('git', ['commit', '-qm', '50-stage chain'], repo);
  await row('lineage', 'tdv lineage of the output at the end of a 50-stage chain', 'tdv --version', 2.0, {
    tdv: () => tdvCmd(repo, 'lineage', 'out49.csv'),
    baseline: () => timeCmd('node', [TDV, '--version'], work),
  });
  rm(repo);
}

// tdv serve: a running server (spawned as users start it), read by curl and by an S3 client.
async function startServe(repo) {
  const { spawn } = await import('node:child_process');
  const child = spawn('node', [TDV, 'serve', '--port', '0'], { cwd: repo, env: gitEnv, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /at (http:\/\/\S+) \(bucket (\S+)\)/.exec(buf);
      if (m) resolve({ url: m[1], bucket: m[2] });
    });
    child.on('exit', (code) => reject(new Error(`tdv serve exited (${code})`)));
  });
  return { ...url, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

// GET of a cached BIG_MIB file through tdv serve with curl, against cat of the cached object
// (both into /dev/null, page cache warm): throughput ratio >= 0.8, so time ratio <= 1.25.
if (enabled('serve-get') || enabled('serve-get-ref')) {
  const repo = newRepo('serve-big');
  const fd = fs.openSync(path.join(repo, 'big.bin'), 'w');
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < BIG_MIB; i++) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
  run('node', [TDV, 'add', '-q', 'big.bin'], repo);
  run('git', ['add', '-A'], repo);
  run('git', ['commit', '-qm', 'big'], repo);
  const oid = /sha256: ([0-9a-f]{64})/.exec(fs.readFileSync(path.join(repo, 'big.bin.tdv'), 'utf8'))[1];
  const obj = path.join(repo, '.tdv', 'cache', 'files', 'sha256', oid.slice(0, 2), oid.slice(2));
  const served = await startServe(repo);
  try {
    const rev = String(run('git', ['rev-parse', '--abbrev-ref', 'HEAD'], repo).stdout).trim();
    await row('serve-get', `curl GET of a cached ${BIG_MIB} MiB file through tdv serve`, 'cat of the cached object > /dev/null', 1.25, {
      tdv: () => timeCmd('curl', ['-sf', '-o', '/dev/null', `${served.url}/${rev}/big.bin`], work),
      baseline: () => timeCmd('sh', ['-c', 'cat "$1" > /dev/null', 'sh', obj], work),
    });
    // For reference: the same GET from Python's http.server, which sends the file with sendfile(2):
    // what any HTTP server on this machine gets through loopback TCP and curl.
    if (enabled('serve-get-ref')) {
      const { spawn } = await import('node:child_process');
      const py = spawn('python3', ['-u', '-m', 'http.server', '--bind', '127.0.0.1', '0', '--directory', path.dirname(obj)], { stdio: ['ignore', 'pipe', 'ignore'] });
      const port = await new Promise((resolve, reject) => {
        let buf = '';
        py.stdout.on('data', (d) => {
          buf += d;
          const m = / port (\d+)/.exec(buf);
          if (m) resolve(m[1]);
        });
        py.on('exit', (code) => reject(new Error(`python3 -m http.server exited (${code})`)));
      });
      try {
        await row('serve-get-ref', `curl GET of the same file from python3 -m http.server (sendfile; comparison)`, 'cat of the cached object > /dev/null', null, {
          tdv: () => timeCmd('curl', ['-sf', '-o', '/dev/null', `http://127.0.0.1:${port}/${path.basename(obj)}`], work),
          baseline: () => timeCmd('sh', ['-c', 'cat "$1" > /dev/null', 'sh', obj], work),
        });
      } finally {
        py.kill();
      }
    }
  } finally {
    await served.stop();
  }
  rm(repo);
}

// ListObjectsV2 of every page of a NFILES-file tracked directory at a revision
// (@aws-sdk/client-s3's paginator, 1000 keys a page), against `tdv ls -R` of it.
if (enabled('serve-list')) {
  const hasLs = /Usage: tdv ls/.test(String(spawnSync('node', [TDV, 'ls', '--help'], { encoding: 'utf8' }).stdout));
  if (!hasLs) process.stderr.write('  serve-list: skipped: tdv ls missing\n');
  else {
    const repo = newRepo('serve-list');
    makeTree(path.join(repo, 'data'), NFILES);
    run('node', [TDV, 'add', '-q', 'data'], repo);
    run('git', ['add', '-A'], repo);
    run('git', ['commit', '-qm', 'tree'], repo);
    const rev = String(run('git', ['rev-parse', 'HEAD'], repo).stdout).trim();
    const served = await startServe(repo);
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const { S3Client, paginateListObjectsV2 } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ endpoint: served.url, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'tdv', secretAccessKey: 'tdv' } });
    try {
      await row('serve-list', `ListObjectsV2, all pages, of a ${NFILES}-file directory at a revision (tdv serve)`, 'tdv ls -R of the same directory', 2.0, {
        tdv: () =>
          timeFn(async () => {
            let n = 0;
            for await (const p of paginateListObjectsV2({ client, pageSize: 1000 }, { Bucket: served.bucket, Prefix: `${rev}/data/` })) n += p.KeyCount ?? 0;
            if (n !== NFILES) throw new Error(`serve-list: listed ${n} keys, expected ${NFILES}`);
          }),
        baseline: () => timeCmd('node', [TDV, 'ls', '-R', '--rev', rev, 'data'], repo),
      });
    } finally {
      client.destroy();
      await served.stop();
    }
    rm(repo);
  }
}

// tdv diff --rows of two CSVs of --rows-mib MiB (default 1024) differing in 1% of their rows
// (a third changed, a third removed, a third added), neither sorted (rows in a pseudo-random
// order, another one in B), A committed, B in the workspace; against what a user would type
// without it: sort both and comm them (LC_ALL=C, GNU sort with its default threads and buffer).
if (enabled('diff-rows')) {
  const ROWS_MIB = Number(opt('rows-mib', 1024));
  const repo = newRepo('rows');
  const a = path.join(work, 'rows-a.csv');
  const b = path.join(work, 'rows-b.csv');
  // About 64 bytes a row: id, name, city, amount, timestamp.
  const n = Math.round((ROWS_MIB * 1048576) / 64);
  const cities = ['Berlin', 'Lagos', 'Lima', 'Osaka', 'Quito', 'Tunis', 'Perth', 'Oslo'];
  const rowOf = (id, v) => `${id},user${(id * 7919) % 1000003},${cities[id % 8]},${((id * 31 + v) % 100000) / 100},2026-0${1 + (id % 9)}-1${id % 10}T12:00:00Z\n`;
  // A bijection i -> id over [0, n): multiplying by a number prime to n scatters the ids.
  const scatter = (i, m) => (i * m) % n;
  const coprime = (m) => {
    const gcd = (x, y) => (y === 0 ? x : gcd(y, x % y));
    while (gcd(m, n) !== 1) m++;
    return m;
  };
  const ma = coprime(2654435761 % n || 1);
  const mb = coprime(40503 % n || 1);
  const write = (file, m, variant) => {
    const fd = fs.openSync(file, 'w');
    let buf = 'id,name,city,amount,at\n';
    for (let i = 0; i < n; i++) {
      const line = variant(scatter(i, m));
      if (line) buf += line;
      if (buf.length > 1 << 20) {
        fs.writeSync(fd, buf);
        buf = '';
      }
    }
    // B's added rows: ids past A's.
    if (variant !== base) for (let i = 0; i < Math.floor(n / 300); i++) buf += rowOf(n + i, 0);
    fs.writeSync(fd, buf);
    fs.closeSync(fd);
  };
  const base = (id) => rowOf(id, 0);
  write(a, ma, base);
  // Of every 300 ids: one changed (its amount), one removed.
  write(b, mb, (id) => (id % 300 === 1 ? rowOf(id, 7) : id % 300 === 2 ? '' : rowOf(id, 0)));
  fs.copyFileSync(a, path.join(repo, 'rows.csv'));
  run('node', [TDV, 'add', '-q', 'rows.csv'], repo);
  run('git', ['add', '-A'], repo);
  run('git', ['commit', '-qm', 'A'], repo);
  fs.rmSync(path.join(repo, 'rows.csv'), { force: true });
  fs.copyFileSync(b, path.join(repo, 'rows.csv'));
  const rss = [];
  const sorted = [path.join(work, 'rows-a.s'), path.join(work, 'rows-b.s')];
  await row('diff-rows', `tdv diff --rows --key id of two ${ROWS_MIB} MiB CSVs, 1% of rows differing`, 'LC_ALL=C sort of both, then comm -3', 1.0, {
    tdv: () => {
      const t = process.hrtime.bigint();
      const r = run('/usr/bin/time', ['-f', 'maxrss=%M', 'node', TDV, 'diff', '--rows', '--key', 'id', '--limit', '0', 'rows.csv'], repo, { env: gitEnv });
      rss.push(Number(/maxrss=(\d+)/.exec(String(r.stderr))?.[1] ?? NaN));
      return Number(process.hrtime.bigint() - t) / 1e9;
    },
    baseline: () => timeCmd('sh', ['-c', `sort "$1" > "$3" && sort "$2" > "$4" && comm -3 "$3" "$4" > /dev/null`, 'sh', a, b, ...sorted], work, { env: { ...gitEnv, LC_ALL: 'C' } }),
  });
  if (rss.length) rows.push({ id: 'diff-rows-rss', label: `peak RSS of tdv diff --rows of the two ${ROWS_MIB} MiB CSVs`, note: `${(Math.max(...rss) / 1024).toFixed(0)} MiB` });
  if (process.env.TDV_BENCH_KEEP) process.stderr.write(`  kept ${repo}\n`);
  else {
    for (const f of [a, b, ...sorted]) fs.rmSync(f, { force: true });
    rm(repo);
  }
}

await row('version', 'tdv --version', 'node -e 0', 2.5, {
  tdv: () => timeCmd('node', [TDV, '--version'], work),
  baseline: () => timeCmd('node', ['-e', '0'], work),
});

if (!process.env.TDV_BENCH_KEEP) rm(work);
const lines = [
  `| row | tdv | baseline | ratio | target |`,
  `|---|---|---|---|---|`,
  ...rows
    .filter((r) => r.note === undefined)
    .map(
      (r) =>
        `| ${r.label} | ${fmtUnit(r.tdv, r.unit)} | ${fmtUnit(r.base, r.unit)} (${r.baselineLabel}) | ${r.ratio.toFixed(r.ratio < 0.1 ? 4 : 2)} | ${r.target === null ? 'comparison' : `<= ${r.target} ${r.ratio <= r.target ? 'ok' : 'MISSED'}`} |`,
    ),
];
console.log(`\ntdv bench in ${path.dirname(work)}, median of ${RUNS} runs, ${os.cpus().length} cores, node ${process.version}\n`);
console.log(lines.join('\n'));
for (const r of rows.filter((r) => r.note !== undefined)) console.log(`\n${r.label}: ${r.note}`);
