// The template sandbox every case starts from (copied with `cp -a`): a small
// committed tdv repository with tracked data, a three-stage local pipeline
// that has run, a directory remote holding everything (run records too), and
// files outside the repository for symlinks and hardlinks to point at.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TDV_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/tdv.js');

export const GIT_ENV = {
  GIT_AUTHOR_NAME: 'attack',
  GIT_AUTHOR_EMAIL: 'attack@example.com',
  GIT_COMMITTER_NAME: 'attack',
  GIT_COMMITTER_EMAIL: 'attack@example.com',
  GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
  GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
  GIT_CONFIG_NOSYSTEM: '1',
};

export const sha256 = (b) => createHash('sha256').update(b).digest('hex');

function run(cmd, args, cwd, env) {
  const r = spawnSync(cmd, args, { cwd, env: { ...process.env, ...GIT_ENV, NO_COLOR: '1', ...env }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed in ${cwd} (${r.status}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

const PIPELINE = `stages:
  copy:
    cmd: cp model.bin out/model.copy
    deps: [model.bin]
    outs: [out/model.copy]
  tree:
    cmd: mkdir -p res && cp -R data/sub res/sub
    deps: [data]
    outs: [res/sub]
  meter:
    cmd: cp src/m.json metrics.json
    deps: [src/m.json]
    metrics: [metrics.json]
`;

/** Builds the template sandbox in `dir` (which must not exist) and returns its metadata. */
export function buildTemplate(dir) {
  const S = dir;
  const R = path.join(S, 'repo');
  for (const d of ['repo', 'remote', 'outside/dir/inner', 'to', 'shared', 'home']) fs.mkdirSync(path.join(S, d), { recursive: true });
  const env = { HOME: path.join(S, 'home') };
  const w = (rel, content, mode) => {
    const p = path.join(S, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, content);
    if (mode) fs.chmodSync(p, mode);
  };
  w('outside/secret.txt', 'TOP SECRET: outside the repository\n');
  w('outside/hl.txt', 'hardlinked from outside\n');
  w('outside/hl2.txt', 'another file with a second link\n');
  w('outside/dir/f1.txt', 'outside dir file 1\n');
  w('outside/dir/inner/f2.txt', 'outside dir file 2\n');
  w('home/.keep', '');

  const git = (...args) => run('git', args, R, env);
  const tdv = (...args) => run('node', [TDV_BIN, ...args], R, env);
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'attack');
  git('config', 'user.email', 'attack@example.com');
  git('config', 'core.quotePath', 'false');
  tdv('init');
  tdv('remote', 'add', '-d', 'store', '../remote');
  // Plain: the generator plants, corrupts and removes objects under the remote's files/sha256, and the
  // invariants read them there (hostile packed remotes: test/integration/packed-hostile.test.ts).
  tdv('remote', 'modify', 'store', 'layout', 'plain');
  w('repo/README.md', '# project\nGit-tracked, never touched by tdv.\n');
  w('repo/src/run.sh', '#!/bin/sh\necho run\n', 0o755);
  w('repo/src/m.json', '{"n": 1}\n');
  w('repo/data/a.txt', 'alpha\n');
  w('repo/data/sub/b.txt', 'bravo\n');
  w('repo/data/c.bin', Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37) & 255)));
  w('repo/data/exec.sh', '#!/bin/sh\necho exec\n', 0o755);
  w('repo/model.bin', 'model weights v1\n');
  tdv('add', 'data', 'model.bin');
  w('repo/tdv.yaml', PIPELINE);
  const runsDir = path.join(R, '.tdv/cache/runs');
  const listRuns = () => {
    const out = [];
    if (!fs.existsSync(runsDir)) return out;
    for (const p of fs.readdirSync(runsDir)) for (const n of fs.readdirSync(path.join(runsDir, p))) out.push(p + n);
    return out;
  };
  const runKeys = {};
  for (const st of ['copy', 'tree', 'meter']) {
    const before = new Set(listRuns());
    tdv('repro', st);
    runKeys[st] = listRuns().filter((k) => !before.has(k));
  }
  git('add', '-A');
  git('commit', '-q', '-m', 'data, pipeline and its results');
  tdv('push', '--run-cache');
  // Untracked, undeclared user files: tdv must never touch them.
  w('repo/notes.txt', 'my untracked notes\n');
  w('repo/scratch/keep.txt', 'untracked scratch work\n');

  const ptr = (f) => fs.readFileSync(path.join(R, f), 'utf8');
  const oidOf = (text) => /sha256: ([0-9a-f]{64}(?:\.dir)?)/.exec(text)[1];
  const obj = (rel) => sha256(fs.readFileSync(path.join(R, rel)));
  const meta = {
    runKeys,
    oids: {
      data: oidOf(ptr('data.tdv')),
      model: oidOf(ptr('model.bin.tdv')),
      a: obj('data/a.txt'),
      b: obj('data/sub/b.txt'),
      c: obj('data/c.bin'),
      exec: obj('data/exec.sh'),
    },
    sizes: { model: fs.statSync(path.join(R, 'model.bin')).size, a: 6 },
    tracked: git('ls-files').split('\n').filter(Boolean),
  };
  fs.writeFileSync(path.join(dir, '..', `${path.basename(dir)}.json`), JSON.stringify(meta, null, 2));
  return meta;
}
