#!/usr/bin/env node
// tdv benchmark: each row times tdv and its baseline side by side in the same
// run (interleaved, median of RUNS), and prints the ratio against its target.
// Usage: npm run bench [-- --runs 5 --files 20000 --big-mib 1024 --only add-dir,status --dir /dev/shm]
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
if (enabled('add-big') || enabled('add-big-cached')) {
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
  await row('add-big-cached', `tdv add one ${BIG_MIB} MiB file (object already cached)`, 'Node crypto SHA-256, streamed', 1.3, {
    prepare: (w) => w === 'tdv' && cold(),
    tdv: () => tdvCmd(repo, 'add', '-q', 'big.bin'),
    baseline: hashBaseline,
  });
  rm(repo);
}

// The 20,000-file tree: one copy in a tdv repo, one in a plain Git repo.
const needTree = ['add-dir', 'status', 'checkout', 'lfs'].some(enabled);
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
        tdv: () => timeFn(async () => {
          run('git', ['lfs', 'track', 'data/**'], lfsRepo);
          run('git', ['add', '.'], lfsRepo);
        }),
        baseline: () => timeCmd('git', ['add', '.'], gitRepo),
      });
    } else process.stderr.write('  git-lfs is not installed (apt-get install git-lfs): its comparison row is skipped\n');
  }
}

await row('version', 'tdv --version', 'node -e 0', 2.5, {
  tdv: () => timeCmd('node', [TDV, '--version'], work),
  baseline: () => timeCmd('node', ['-e', '0'], work),
});

rm(work);
const fmt = (s) => `${s.toFixed(3)} s`;
const lines = [
  `| row | tdv | baseline | ratio | target |`,
  `|---|---|---|---|---|`,
  ...rows.map(
    (r) =>
      `| ${r.label} | ${fmt(r.tdv)} | ${fmt(r.base)} (${r.baselineLabel}) | ${r.ratio.toFixed(2)} | ${r.target === null ? 'comparison' : `<= ${r.target} ${r.ratio <= r.target ? 'ok' : 'MISSED'}`} |`,
  ),
];
console.log(`\ntdv bench in ${path.dirname(work)}, median of ${RUNS} runs, ${os.cpus().length} cores, node ${process.version}\n`);
console.log(lines.join('\n'));
