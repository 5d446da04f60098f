// One attack worker (a child process of run.mjs): builds each case it is sent
// from the template, runs the commands one by one, and checks the invariant
// after each. tdv runs in this process (`--exec inproc`, the default: the
// built bundle's `main`, as bin/tdv.js calls it, ~10x faster than a process
// per command) or as `node bin/tdv.js` (`--exec spawn`). A command that does
// not return is killed by the parent, which reads the status file this
// worker writes before every command.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Writable, PassThrough } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generate } from './gen.mjs';
import { check, configuredCaches, configuredRemote, declared, gitIndex, headLock, headPointers, isCanonicalManifest, keyBuf, legalRel, realKey, resetSurveyCache, survey, toKey } from './survey.mjs';
import { TDV_BIN } from './template.mjs';

const BUNDLE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/bundle/main.js');
const opts = JSON.parse(process.argv[2]);
const { workdir, template, meta, exec, timeoutMs, statusFile } = opts;

// As bin/tdv.js: libraries' runtime warnings are not tdv's output.
process.removeAllListeners('warning');
process.on('warning', () => {});
process.setMaxListeners(0);

let current; // the command running in this process, for crashes that escape `main`
const crash = (kind) => (err) => {
  if (current) current.crash = `${kind}: ${err?.stack ?? err}`;
  else if (process.connected) process.send({ type: 'log', line: `${kind} between commands: ${err?.stack ?? err}` });
};
// The runner gone (killed, timed out): stop, with whatever this worker started.
process.on('disconnect', () => process.exit(0));
process.on('uncaughtException', crash('uncaught exception'));
process.on('unhandledRejection', crash('unhandled rejection'));

const main = exec === 'inproc' ? (await import(pathToFileURL(BUNDLE).href)).main : undefined;

function envFor(S) {
  return { PATH: process.env.PATH, HOME: path.join(S, 'home'), NO_COLOR: '1', LANG: 'C.UTF-8', GIT_CONFIG_NOSYSTEM: '1', TMPDIR: process.env.TMPDIR ?? '/tmp' };
}

async function runInProc(cwd, args, env) {
  const out = [];
  const err = [];
  const sink = (arr) =>
    new Writable({
      write(c, _e, cb) {
        arr.push(Buffer.from(c));
        cb();
      },
    });
  const stdin = new PassThrough();
  stdin.end();
  current = {};
  const t0 = Date.now();
  // What tdv (or a library) writes to the process's own stdout/stderr is output of the command too.
  const realOut = process.stdout.write;
  const realErr = process.stderr.write;
  process.stdout.write = (c, ...rest) => (out.push(Buffer.from(c)), rest.find((x) => typeof x === 'function')?.(), true);
  process.stderr.write = (c, ...rest) => (err.push(Buffer.from(c)), rest.find((x) => typeof x === 'function')?.(), true);
  const own = (h) => h === process.channel || h === process.stdout || h === process.stderr || h === process.stdin;
  const handlesBefore = new Set(process._getActiveHandles());
  let code;
  try {
    code = await main(['node', 'tdv', ...args], { cwd, stdout: sink(out), stderr: sink(err), stdin, env });
  } catch (e) {
    code = 'threw';
    err.push(Buffer.from(`(main threw) ${e?.stack ?? e}\n`));
  }
  // A process exits only when its event loop is empty: wait for what the command
  // left running (a stage's process, a pending write), as `node bin/tdv.js` would.
  let timedOut = false;
  for (;;) {
    await new Promise((r) => setTimeout(r, 5));
    const left = process._getActiveHandles().filter((h) => !own(h) && !handlesBefore.has(h) && h.constructor?.name !== 'Timeout' && h.hasRef?.() !== false);
    const reqs = process._getActiveRequests().length;
    if (left.length === 0 && reqs === 0) break;
    if (Date.now() - t0 > timeoutMs) {
      timedOut = true;
      const names = left.map((h) => `${h.constructor?.name}${h.spawnfile ? `(${h.spawnargs?.join(' ')}, pid ${h.pid})` : ''}`);
      err.push(Buffer.from(`(still running after main returned: ${[...names, ...(reqs ? [`${reqs} request(s)`] : [])].join(', ')})\n`));
      break;
    }
  }
  process.stdout.write = realOut;
  process.stderr.write = realErr;
  const res = { code, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), crash: current.crash };
  current = undefined;
  return res;
}

// The `node bin/tdv.js` of --exec spawn stays in this worker's process group, so
// the runner's kill of the group (a hang, its own exit) takes it along.

function runSpawn(cwd, args, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [TDV_BIN, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? `signal ${signal}`, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

const STACK = /^\s+at (?:.+ \()?(?:file:|node:|\/).+:\d+:\d+\)?$/m;
const CONTROL_CHARS = /[\x00-\x08\x0b-\x1f\x7f]/;

/** The output half of the invariant: exit code, one error line, no stack trace, no raw control characters. */
export function outputProblems(res, name, hostileNames) {
  const v = [];
  const add = (kind, detail) => v.push({ kind, detail });
  if (res.timedOut) add('hang', `still running after ${timeoutMs / 1000} s; killed`);
  else if (![0, 1, 2].includes(res.code)) add('exit-code', `exit ${res.code}`);
  if (res.crash) add('crash', res.crash.split('\n').slice(0, 3).join(' | '));
  const all = `${res.stdout}\n${res.stderr}`;
  if (STACK.test(all))
    add(
      'stack-trace',
      all
        .split('\n')
        .find((l) => STACK.test(l))
        .trim(),
    );
  if (/this is a bug|unexpected failure/i.test(res.stderr))
    add(
      'bug-message',
      res.stderr.split('\n').find((l) => /bug|unexpected/i.test(l)),
    );
  const lines = res.stderr.split('\n').filter((l) => l !== '');
  const stray = lines.filter((l) => !/^(?:error|warning): /.test(l));
  if (stray.length) add('stderr-not-one-line', `${stray.length} line(s) neither "error:" nor "warning:", first ${JSON.stringify(stray[0].slice(0, 200))}`);
  if (res.code !== 0 && !res.timedOut) {
    const errs = lines.filter((l) => l.startsWith('error: '));
    if (errs.length === 0) add('no-error-line', `exit ${res.code} without an "error:" line`);
    else if (errs.length > 1 && name !== 'repro') add('several-error-lines', `${errs.length} "error:" lines`);
  }
  if (CONTROL_CHARS.test(all)) {
    const m = CONTROL_CHARS.exec(all);
    add('unescaped-control-char', `U+${m[0].charCodeAt(0).toString(16).padStart(4, '0')} in ${JSON.stringify(all.slice(Math.max(0, m.index - 60), m.index + 20))}`);
  }
  for (const n of hostileNames) if (n.includes('\n') && all.includes(n)) add('raw-newline-name', `${JSON.stringify(n)} printed unescaped`);
  // Class 7: a file outside the repository (symlinks point at it) is never printed.
  if (all.includes('TOP SECRET')) add('secret-printed', 'the content of outside/secret.txt appears in the output');
  return v;
}

function trunc(s, n = 1200) {
  return s.length > n ? `${s.slice(0, n)}... (${s.length} chars)` : s;
}

/**
 * The `--to` directory as a sandbox key, symlinks in the path the user typed
 * resolved (as `cp -r x DIR` would); never the repository, a directory above
 * it, its .git or .tdv (tdv must refuse those).
 */
function toRegion(S, R, dir) {
  const k = realKey(S, path.resolve(R, dir));
  if (k === undefined || k === 'repo' || 'repo'.startsWith(`${k}/`) || k === 'repo/.git' || k.startsWith('repo/.git/') || k === 'repo/.tdv' || k.startsWith('repo/.tdv/')) return undefined;
  return k;
}

function context(S, R, before, idx, cmd, headPtrs, headMetrics) {
  const [name, ...args] = cmd;
  const repoSurvey = new Map();
  for (const [k, e] of before) if (k.startsWith('repo/')) repoSurvey.set(k.slice(5), e);
  const extra = [...headPtrs];
  let addsSymlink = false;
  if (name === 'add') {
    for (const a of args) {
      const n = path.posix.normalize(a);
      if (legalRel(n)) extra.push(toKey(n));
      if (repoSurvey.get(toKey(n))?.t === 'l') addsSymlink = true;
    }
  }
  const decl = declared(R, repoSurvey, extra, headMetrics);
  const caches = [];
  const tc = repoSurvey.get('.tdv/cache');
  if (tc?.t === 'd') caches.push({ key: 'repo/.tdv/cache', shared: false });
  if (tc?.t === 'l' && !idx.tracked.has('.tdv/cache')) {
    try {
      const k = toKey(path.relative(S, fs.realpathSync(path.join(R, '.tdv/cache'))));
      if (k.startsWith('shared/')) caches.push({ key: k, shared: true });
    } catch {}
  }
  // cache.dir, wherever it points in the sandbox (its objects are checked; only files/, runs/, tmp/ may change).
  // tdv's own message calls a configured cache.dir shared, and issue 11 forbids collecting one blindly.
  // A cache.dir inside the repository's own .tdv (cache.dir: cache2) is that repository's cache, which
  // gc collects like .tdv/cache (tdv calls it shared only outside the repository; 30 of the 49 failing
  // cases of the 10,000-case run on 06f21ff were this misclassification).
  for (const k of configuredCaches(S, repoSurvey)) if (!caches.some((c) => c.key === k)) caches.push({ key: k, shared: !k.startsWith('repo/.tdv/') });
  const regions = [];
  const ti = args.indexOf('--to');
  if (name === 'checkout' && ti !== -1) {
    const k = toRegion(S, R, args[ti + 1]);
    if (k) regions.push(k);
  }
  const gitignoreLines = new Map();
  for (const [k, e] of repoSurvey) {
    if (e.t !== 'f' || !(k === '.gitignore' || k.endsWith('/.gitignore'))) continue;
    try {
      const lines = fs
        .readFileSync(Buffer.from(`${R}/${k}`, 'latin1'), 'latin1')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('/') && !l.startsWith('!/'));
      gitignoreLines.set(k, lines);
    } catch {}
  }
  const canonicalManifests = new Set();
  for (const c of caches) {
    const pre = `${c.key}/files/sha256/`;
    for (const [k, e] of before) {
      if (e.t === 'f' && k.startsWith(pre) && k.endsWith('.dir') && isCanonicalManifest(keyBuf(`${S}/${k}`), e.h)) canonicalManifests.add(k);
    }
  }
  return {
    sandbox: S,
    addsSymlink,
    canonicalManifests,
    cmd: { name, args },
    tracked: idx.tracked,
    data: decl.data,
    metrics: decl.metrics,
    lockMetrics: decl.lockMetrics,
    caches,
    remoteKey: configuredRemote(S, repoSurvey),
    regions,
    ownDir: repoSurvey.get('.tdv')?.t === 'd' && !idx.tracked.has('.tdv'),
    gitignoreLines,
  };
}

function status(line) {
  fs.writeFileSync(statusFile, line);
}

/** Runs one case; returns `{ failures, commands, ms }`. */
async function runCase(seed, caseNo, only) {
  const t0 = Date.now();
  status(JSON.stringify({ seed, caseNo, i: -1, cmd: ['(building the case)'], mutations: [] }));
  const prof = {};
  let tp = performance.now();
  const lap = (k) => {
    const now = performance.now();
    prof[k] = (prof[k] ?? 0) + (now - tp);
    tp = now;
  };
  const S = path.join(workdir, 'case');
  spawnSync('rm', ['-rf', S]);
  resetSurveyCache();
  const cp = spawnSync('cp', ['-a', template, S]);
  if (cp.status !== 0) throw new Error(`cp -a failed: ${cp.stderr}`);
  lap('copy');
  const R = path.join(S, 'repo');
  const gen = generate(S, meta, seed, caseNo);
  lap('generate');
  const lockAtHead = headLock(R);
  const headPtrs = [...headPointers(R), ...lockAtHead.outs];
  const headMetrics = lockAtHead.metrics;
  const env = envFor(S);
  let before = survey(S);
  let idx = gitIndex(R);
  lap('survey');
  const failures = [];
  const cmds = only ? gen.commands.filter((c) => only.includes(c[0])) : gen.commands;
  for (const [i, cmd] of cmds.entries()) {
    status(JSON.stringify({ seed, caseNo, i, cmd, mutations: gen.mutations }));
    const ctx = context(S, R, before, idx, cmd, headPtrs, headMetrics);
    lap('check');
    const res = exec === 'inproc' ? await runInProc(R, cmd, env) : await runSpawn(R, cmd, env);
    lap(`tdv ${cmd[0]}`);
    const after = survey(S);
    // The index file unchanged (same bytes) means the same listing: skip a git process.
    const idxAfter = after.get('repo/.git/index')?.h === before.get('repo/.git/index')?.h ? idx : gitIndex(R);
    lap('survey');
    const v = [...outputProblems(res, cmd[0], gen.hostileNames), ...check(before, after, { ...ctx, indexBefore: idx.text, indexAfter: idxAfter.text })];
    lap('check');
    if (v.length)
      failures.push({
        seed,
        caseNo,
        index: i,
        cmd,
        code: res.code,
        stdout: trunc(res.stdout),
        stderr: trunc(res.stderr),
        violations: v,
        mutations: gen.mutations,
        order: cmds.map((c) => c.join(' ')),
      });
    before = after;
    idx = idxAfter;
  }
  return { failures, commands: cmds.length, ms: Date.now() - t0, prof };
}

process.on('message', async (m) => {
  if (m.type === 'case') {
    try {
      const r = await runCase(m.seed, m.caseNo, m.only);
      process.send({ type: 'result', caseNo: m.caseNo, ...r });
    } catch (err) {
      process.send({
        type: 'result',
        caseNo: m.caseNo,
        failures: [{ seed: m.seed, caseNo: m.caseNo, harness: true, violations: [{ kind: 'harness-error', detail: String(err?.stack ?? err) }] }],
        commands: 0,
        ms: 0,
      });
    }
  } else if (m.type === 'exit') {
    process.exit(0);
  }
});
process.send({ type: 'ready' });
