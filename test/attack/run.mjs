#!/usr/bin/env node
// The generated attack suite of issue 11 (see README.md beside this file).
//
//   npm run attack -- --cases 1000             cases 0..999 of a random seed (printed)
//   npm run attack -- --seed 7 --cases 300     cases 0..299 of seed 7
//   npm run attack -- --seed 7 --case 42       one case, verbose, sandbox kept for inspection
//
// Options: --from N (first case), --jobs J (parallel workers, default: cores),
// --exec inproc|spawn (tdv in the worker process, default, or `node bin/tdv.js`
// per command), --timeout S (per command, default 20), --dir DIR (work
// directory, default the OS temp dir), --only add,checkout (run only these
// commands), --json FILE (write every failure), --keep (keep the work directory).
// Exit code 0 when no case violated the invariant, 1 otherwise.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTemplate } from './template.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? dflt : argv[i + 1];
};
const flag = (name) => argv.includes(`--${name}`);

const seed = opt('seed', String(Math.floor(Math.random() * 2 ** 31)));
const single = opt('case', undefined);
const from = Number(opt('from', single ?? 0));
const count = single !== undefined ? 1 : Number(opt('cases', 100));
const jobs = Math.max(1, Math.min(Number(opt('jobs', os.availableParallelism?.() ?? os.cpus().length)), count));
const exec = opt('exec', 'inproc');
const timeoutMs = Number(opt('timeout', 20)) * 1000;
const only = opt('only', undefined)?.split(',');
const jsonOut = opt('json', undefined);
const keep = flag('keep') || single !== undefined;
const quiet = flag('quiet');

if (!['inproc', 'spawn'].includes(exec)) throw new Error('--exec is inproc or spawn');
if (!fs.existsSync(path.join(HERE, '../../dist/bundle/main.js'))) throw new Error('dist/bundle is missing: run `npm run build` first');

// tmpfs when there is one: every case copies, surveys and deletes a small tree many times.
const defaultDir = process.env.TDV_ATTACK_DIR ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());
const workdir = fs.mkdtempSync(path.join(opt('dir', defaultDir), 'tdv-attack-'));
const log = (s) => process.stdout.write(`${s}\n`);
log(`attack: seed ${seed}, cases ${from}..${from + count - 1}, ${jobs} worker(s), exec ${exec}, timeout ${timeoutMs / 1000} s, in ${workdir}`);

const t0 = Date.now();
// --template DIR reuses a template an earlier run built (--confirm passes its own).
const template = opt('template', path.join(workdir, 'template'));
const meta = opt('template') ? JSON.parse(fs.readFileSync(`${template}.json`, 'utf8')) : buildTemplate(template);
const tBuilt = Date.now();

const queue = Array.from({ length: count }, (_, i) => from + i);
const failures = [];
let done = 0;
let commandsRun = 0;
let caseMs = 0;
const prof = {};

function show(f) {
  const lines = [];
  if (f.harness) {
    lines.push(`HARNESS ERROR seed=${f.seed} case=${f.caseNo}: ${f.violations[0].detail}`);
    return lines.join('\n');
  }
  lines.push(`FAIL seed=${f.seed} case=${f.caseNo} command #${f.index} \`tdv ${f.cmd.map((a) => (/^[\w./=-]+$/.test(a) ? a : JSON.stringify(a))).join(' ')}\` exit ${f.code}`);
  for (const m of f.mutations ?? []) lines.push(`  case: ${m.name} [class ${m.cls.join(',')}] ${m.detail}`);
  for (const v of f.violations) lines.push(`  - ${v.kind}${v.path !== undefined ? ` ${v.path}` : ''}: ${v.detail}`);
  if (f.stderr) lines.push(`  stderr: ${JSON.stringify(f.stderr.trim().slice(0, 400))}`);
  lines.push(`  rerun: npm run attack -- --seed ${f.seed} --case ${f.caseNo}`);
  return lines.join('\n');
}

function startWorker(id) {
  const wdir = path.join(workdir, `w${id}`);
  fs.mkdirSync(wdir, { recursive: true });
  const statusFile = path.join(wdir, 'status.json');
  fs.writeFileSync(statusFile, '{}');
  const child = fork(path.join(HERE, 'worker.mjs'), [JSON.stringify({ workdir: wdir, template, meta, exec, timeoutMs, statusFile })], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const w = { id, child, statusFile, served: 0, ready: new Promise((r) => child.once('message', r)) };
  live.add(w);
  child.on('exit', () => live.delete(w));
  return w;
}

const live = new Set();
// Workers run in their own process groups (so a hung stage dies with them): take them along on exit.
process.on('exit', () => {
  for (const w of live) kill(w);
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => process.exit(130));

function kill(w) {
  try {
    process.kill(-w.child.pid, 'SIGKILL');
  } catch {}
}

async function runWorker(id) {
  let w = startWorker(id);
  await w.ready;
  for (;;) {
    const caseNo = queue.shift();
    if (caseNo === undefined) break;
    if (w.served >= 25) {
      // A fresh process now and then: whatever one command leaks cannot pile up.
      w.child.send({ type: 'exit' });
      w = startWorker(id);
      await w.ready;
    }
    w.served++;
    const result = await new Promise((resolve) => {
      const onMsg = (m) => {
        if (m.type === 'result') finish(m);
        else if (m.type === 'log' && !quiet) log(`worker ${id}: ${m.line}`);
      };
      const onExit = (code, signal) => finish({ died: `${code ?? signal}` });
      let timer;
      const finish = (r) => {
        clearInterval(timer);
        w.child.off('message', onMsg);
        w.child.off('exit', onExit);
        resolve(r);
      };
      w.child.on('message', onMsg);
      w.child.on('exit', onExit);
      timer = setInterval(() => {
        let st;
        try {
          st = fs.statSync(w.statusFile);
        } catch {
          return;
        }
        if (Date.now() - st.mtimeMs > timeoutMs + 1500) {
          kill(w);
          finish({ hung: true });
        }
      }, 500);
      w.child.send({ type: 'case', seed, caseNo, only });
    });
    if (result.hung || result.died) {
      let s = {};
      try {
        s = JSON.parse(fs.readFileSync(w.statusFile, 'utf8'));
      } catch {}
      const kind = result.hung ? 'hang' : 'worker-died';
      failures.push({
        seed,
        caseNo,
        index: s.i,
        cmd: s.cmd ?? ['?'],
        code: kind,
        stdout: '',
        stderr: '',
        mutations: s.mutations ?? [],
        violations: [{ kind, detail: result.hung ? `no exit after ${timeoutMs / 1000} s; killed (later commands of the case not run)` : `worker exited (${result.died}) during this command` }],
      });
      if (!quiet || single !== undefined) log(show(failures.at(-1)));
      kill(w);
      w = startWorker(id);
      await w.ready;
    } else {
      commandsRun += result.commands;
      caseMs += result.ms;
      for (const [k, ms] of Object.entries(result.prof ?? {})) prof[k] = (prof[k] ?? 0) + ms;
      for (const f of result.failures) {
        failures.push(f);
        if (!quiet || single !== undefined) log(show(f));
      }
    }
    done++;
    if (!quiet && done % 50 === 0) log(`... ${done}/${count} cases, ${failures.length} failure(s), ${((Date.now() - tBuilt) / done / 1000).toFixed(2)} s/case`);
  }
  w.child.send({ type: 'exit' });
}

await Promise.all(Array.from({ length: jobs }, (_, i) => runWorker(i)));
const secs = (Date.now() - tBuilt) / 1000;

// One line per distinct failure: the command and the kind of violation, with the first cases that show it.
const groups = new Map();
for (const f of failures) {
  for (const kind of new Set(f.violations.map((v) => v.kind))) {
    const key = `${f.cmd?.[0]} | ${kind}`;
    const g = groups.get(key) ?? { n: 0, cases: [] };
    g.n++;
    if (g.cases.length < 6 && !g.cases.includes(f.caseNo)) g.cases.push(f.caseNo);
    groups.set(key, g);
  }
}
const byKind = {};
for (const f of failures) for (const v of f.violations) byKind[v.kind] = (byKind[v.kind] ?? 0) + 1;
const failedCases = new Set(failures.map((f) => f.caseNo)).size;
log('');
log(
  `attack: ${done} cases, ${commandsRun} commands in ${secs.toFixed(1)} s (template ${((tBuilt - t0) / 1000).toFixed(1)} s): ${((done / secs) * 60).toFixed(1)} cases/min, ${(caseMs / Math.max(done, 1)).toFixed(0)} ms of work per case`,
);
if (flag('profile'))
  log(
    `attack: ms per case: ${Object.entries(prof)
      .sort((a, b) => b[1] - a[1])
      .map(([k, ms]) => `${k} ${(ms / Math.max(done, 1)).toFixed(0)}`)
      .join(', ')}`,
  );
log(`attack: ${failedCases} case(s) failed, ${failures.length} command(s) violated the invariant`);
if (failures.length) {
  log(
    `attack: violations by kind: ${Object.entries(byKind)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}`,
  );
  log(`attack: distinct (command | violation): commands, first cases (--seed ${seed} --case N)`);
  for (const [k, g] of [...groups].sort((a, b) => b[1].n - a[1].n)) log(`  ${String(g.n).padStart(5)}  ${k.padEnd(40)} ${g.cases.join(' ')}`);
}
// --confirm: rerun each failing case with a `node bin/tdv.js` process per command, and say which failures recur.
if (flag('confirm') && failures.length) {
  const { execFileSync } = await import('node:child_process');
  // The first two cases of each (command | violation) group: enough to tell an in-process artefact.
  const cases = [...new Set([...groups.values()].flatMap((g) => g.cases.slice(0, 2)))].sort((a, b) => a - b);
  log(`attack: confirming ${cases.length} failing case(s) with --exec spawn...`);

  for (const n of cases) {
    const out = path.join(workdir, `confirm-${n}.json`);
    try {
      execFileSync(
        process.execPath,
        [path.join(HERE, 'run.mjs'), '--seed', seed, '--case', String(n), '--exec', 'spawn', '--quiet', '--json', out, '--timeout', String(timeoutMs / 1000), '--dir', workdir, '--template', template],
        { stdio: 'ignore' },
      );
    } catch {}
    let again = [];
    try {
      again = JSON.parse(fs.readFileSync(out, 'utf8')).failures;
    } catch {}
    const sig = (f) => f.violations.map((v) => `${f.cmd?.join(' ')}|${v.kind}|${v.path ?? ''}`);
    const seen = new Set(again.flatMap(sig));
    for (const f of failures.filter((x) => x.caseNo === n)) {
      f.confirmed = sig(f).every((s) => seen.has(s));
      if (!f.confirmed || !quiet) log(`  case ${n} \`tdv ${f.cmd?.join(' ')}\`: ${f.confirmed ? 'confirmed' : 'NOT reproduced'} with --exec spawn`);
    }
  }
}
if (flag('confirm') && failures.length)
  log(`attack: --exec spawn reproduced ${failures.filter((f) => f.confirmed).length} of ${failures.filter((f) => f.confirmed !== undefined).length} failures rechecked`);
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ seed, from, cases: done, commands: commandsRun, seconds: secs, failures }, null, 1));
if (keep) log(`attack: work directory kept: ${workdir}`);
else fs.rmSync(workdir, { recursive: true, force: true });
process.exitCode = failures.length ? 1 : 0;
