#!/usr/bin/env node
// A narrated walk through tdv's main job, in a fresh temporary Git repository,
// on embedded defaults (local cache, no remote set-up). Run: npm run demo
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, tripsCsv } from '../fixtures/bikeshare/generate.mjs';

const TDV = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/tdv.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-demo-'));
const env = { ...process.env, GIT_AUTHOR_NAME: 'Demo', GIT_AUTHOR_EMAIL: 'demo@example.com', GIT_COMMITTER_NAME: 'Demo', GIT_COMMITTER_EMAIL: 'demo@example.com' };
const bold = (s) => (process.stdout.isTTY && !process.env.NO_COLOR ? `\x1b[1m${s}\x1b[0m` : s);

function say(text) {
  console.log(`\n${bold(`# ${text}`)}`);
}
/** Runs a command as the user would type it; stops the demo if it fails unexpectedly. */
function sh(cmd, args, { expect = 0 } = {}) {
  const shown = cmd === 'node' && args[0] === TDV ? ['tdv', ...args.slice(1)] : [cmd, ...args];
  console.log(`$ ${shown.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: dir, env, stdio: 'inherit' });
  if (r.status !== expect) {
    console.error(`demo: "${shown.join(' ')}" exited ${r.status}, expected ${expect}`);
    process.exit(1);
  }
}
const tdv = (...args) => sh('node', [TDV, ...args]);
const tdvFails = (...args) => sh('node', [TDV, ...args], { expect: 1 });

console.log(`tdv demo in ${dir}`);
say('A bike-share company keeps a month of trip data next to its analysis code.');
sh('git', ['init', '-q', '-b', 'main']);
generate(path.join(dir, 'data'), { days: 31, trips: 200 });
sh('ls', ['data', 'data/trips']);

say('Initialise tdv in the Git repository, and commit its configuration.');
tdv('init');
sh('git', ['add', '.tdv', '.tdvignore']);
sh('git', ['commit', '-q', '-m', 'Initialize tdv']);

say('Track the data: it goes into the content-addressed cache, Git gets a small pointer.');
tdv('add', 'data');
sh('cat', ['data.tdv']);
sh('git', ['add', 'data.tdv', '.gitignore']);
sh('git', ['commit', '-q', '-m', 'July trips and weather']);
tdv('status');

say('Someone re-exports July 31 with a bug, and deletes a file by mistake.');
fs.writeFileSync(path.join(dir, 'data/trips/2024-07-31.csv'), tripsCsv(31, 20));
fs.rmSync(path.join(dir, 'data/trips/2024-07-15.csv'));
tdv('status');

say('Checkout refuses to throw away a change that exists nowhere else...');
tdvFails('checkout');
say('...so keep a copy aside, then restore the recorded data with --force.');
sh('cp', ['data/trips/2024-07-31.csv', 'buggy-2024-07-31.csv']);
tdv('checkout', '--force');
tdv('status');

say('A real correction: record the new version of the data in Git.');
fs.appendFileSync(path.join(dir, 'data/trips/2024-07-31.csv'), '3199999,2024-07-31T23:59,Pier 40,12\n');
tdv('add', 'data');
sh('git', ['commit', '-q', '-am', 'Add a late trip on July 31']);
sh('git', ['log', '--oneline']);

say('The cache still holds the first version; gc shows what no pointer uses any more.');
tdv('gc', '--workspace', '--dry');

say('Share it: push the cache to a remote. A directory is the embedded default; s3:// works the same.');
const storage = fs.mkdtempSync(path.join(os.tmpdir(), 'tdv-demo-storage-'));
tdv('remote', 'add', '-d', 'storage', storage);
sh('git', ['commit', '-q', '-am', 'Add the team remote']);
tdv('push');
tdv('push');

say('A teammate (or a CI job) clones the Git repository: pointers, no data. One pull brings it.');
const clone = path.join(dir, '..', `${path.basename(dir)}-clone`);
sh('git', ['clone', '-q', dir, clone]);
const inClone = (...args) => {
  console.log(`$ (in the clone) tdv ${args.join(' ')}`);
  const r = spawnSync('node', [TDV, ...args], { cwd: clone, env, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`demo: tdv ${args.join(' ')} failed in the clone`);
    process.exit(1);
  }
};
inClone('status', '--remote');
inClone('pull', 'data/trips/2024-07-31.csv');
inClone('pull');
inClone('status');

say('Now the analysis: a pipeline of three stages in tdv.yaml (sales -> join -> report), scripts in sh and awk.');
fs.cpSync(path.join(path.dirname(TDV), '..', 'fixtures', 'bikeshare', 'pipeline'), dir, { recursive: true });
sh('cat', ['tdv.yaml']);
tdv('dag');
tdv('status');

say('Run it. Each stage runs once its inputs are ready; outputs go to the cache, tdv.lock records what made them.');
tdv('repro');
sh('cat', ['metrics/report.json']);
sh('git', ['add', 'tdv.yaml', 'tdv.lock', 'params.yaml', 'scripts', 'metrics', 'out/.gitignore']);
sh('git', ['commit', '-q', '-m', 'Sales pipeline']);

say('Nothing changed, nothing runs.');
tdv('repro');

say('Corrected trips for July 30 arrive: only what depends on them reruns.');
fs.writeFileSync(path.join(dir, 'data/trips/2024-07-30.csv'), tripsCsv(30, 400));
tdv('add', 'data');
tdv('status');
tdv('repro', '--dry');
tdv('repro');
sh('cat', ['metrics/report.json']);
sh('git', ['commit', '-q', '-am', 'Corrected July 30 trips']);

say('A price experiment, then back: the second run is restored from the run-cache, not recomputed.');
fs.writeFileSync(path.join(dir, 'params.yaml'), 'sales:\n  price: 5.00   # dollars per trip\n');
tdv('repro');
sh('git', ['checkout', '-q', 'params.yaml']);
tdv('repro');
tdv('push');

say("Back in time: what changed since the pipeline commit, and the data as it was then, beside today's.");
sh('git', ['tag', 'v1', 'HEAD~1']);
tdv('metrics', 'diff', 'v1', 'HEAD');
tdv('log', 'data', '-n', '3');
tdv('diff', 'v1', 'HEAD', 'data');
// Outside the repository: tdv refuses a snapshot inside it, where Git would see it as new files.
const snapshot = `../${path.basename(dir)}-snapshot-v1`;
tdv('checkout', '--rev', 'v1', '--to', snapshot, 'data/trips/2024-07-30.csv', 'out/sales.csv');
sh('head', ['-3', `${snapshot}/out/sales.csv`]);

say('Done.');
console.log(`The demo repository is in ${dir}, its clone in ${clone}, the snapshot in ${path.resolve(dir, snapshot)}, the remote in ${storage}`);
