// The case generator: from (seed, case number) alone, a random mix of the
// failure classes of issue 11 applied to a copy of the template sandbox, and
// the list of commands to run on it. Every random choice comes from one Rng,
// in a fixed order, so `--seed S --case N` regenerates the same case.
//
// Each mutation names the classes of issue 11 it exercises (`cls`): 1 run
// records, 2 stage outputs naming other things, 3 names, 4 cached = hashed,
// 5 link modes, 6 gc/caches/config, 7 secrets, 8 hangs, 9 printed names,
// 10 typos; plus S (symlinks and hardlinks at every level, section 1 of the
// issue: the guard) and C (committed symlinks at control files).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from './prng.mjs';
import { GIT_ENV, sha256 } from './template.mjs';

/** Hostile file names: [label, bytes]. Some are not UTF-8 and cannot be command-line arguments. */
const NAMES = [
  ['backslash', 'back\\slash.txt'],
  ['backslash-dotdot', '..\\..\\escape.txt'],
  ['newline', 'new\nline.txt'],
  ['control', 'ctl\x01\x1b[31mred.txt'],
  ['tab', 'tab\tname.txt'],
  ['cr', 'cr\rname.txt'],
  ['del', 'del\x7fchar.txt'],
  ['long255', 'L'.repeat(251) + '.txt'],
  ['unicode-nfd', 'e\u0301-nfd.txt'],
  ['emoji', '\u{1F600}.txt'],
  ['dotdot-prefix', '..foo'],
  ['dots', '...'],
  ['dash', '-rf'],
  ['option-like', '--force'],
  ['space', ' spaced name '],
  ['glob', '*?[a].txt'],
  ['colon', 'c:olon.txt'],
  ['pointer-like', 'fake.tdv'],
  ['gitignore-name', '.gitignore'],
  ['bidi', 'rlo\u202Etxt.exe'],
  ['latin1', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74])],
  ['invalid-utf8', Buffer.from([0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e])],
  ['overlong-utf8', Buffer.from([0xc0, 0xaf, 0x78])],
  ['lone-surrogate-utf8', Buffer.from([0xed, 0xa0, 0x80, 0x2e, 0x74])],
];

/** Paths that hostile pointers, manifests, records, tdv.yaml and tdv.lock name. `$S` is the sandbox's absolute path. */
const HOSTILE_PATHS = [
  '../outside/secret.txt',
  '../../outside/pwn',
  '$S/outside/abs.txt',
  '.git/hooks/pre-commit',
  '.git/config',
  '.GIT/config',
  '.git',
  '.tdv/config.yaml',
  '.tdv/cache',
  'README.md',
  'src',
  'src/run.sh',
  'tdv.yaml',
  'tdv.lock',
  '.gitignore',
  '.tdvignore',
  'data.tdv',
  'metrics.json',
  'scratch',
  'notes.txt',
  'linked/f1.txt',
  'linked',
  'data/../README.md',
  './model.bin',
  'a\\..\\..\\b',
  'x\ny',
  'ctl\x1b[2J',
  '',
  '.',
  'out',
  'data/a.txt',
  'model.bin',
  'deep/er/new.bin',
  'L'.repeat(300),
];

const asBuf = (n) => (Buffer.isBuffer(n) ? n : Buffer.from(n, 'utf8'));
const isUtf8 = (b) => Buffer.from(b.toString('utf8'), 'utf8').equals(b);

/** The commands run on each case, before shuffling: [name, ...args]; `to` marks checkout --to. */
function commands(rng, c) {
  const addPool = [
    'data',
    'model.bin',
    'src/run.sh',
    'tdv.yaml',
    'tdv.lock',
    'out/model.copy',
    'data/a.txt',
    'scratch',
    'notes.txt',
    'README.md',
    'lnk/a.txt',
    'linked/f1.txt',
    'metrics.json',
    ...c.addTargets,
  ];
  const targetPool = ['data', 'data.tdv', 'model.bin', 'model.bin.tdv', 'evil.tdv', 'evil', 'out/model.copy', 'data/a.txt', 'README.md', 'linked', 'nope', ...c.addTargets];
  const toDir = rng.pick(['../to/snap', '../to/snap', '../to/lnk', '../to/pre', '../outside/dir', '.', 'sub-of-repo']);
  const list = [
    ['add', ...rng.some(addPool, rng.int(1, 2))],
    ['checkout', ...(rng.chance(0.2) ? [rng.pick(targetPool)] : [])],
    ['checkout', '--force', ...(rng.chance(0.2) ? [rng.pick(targetPool)] : [])],
    ['checkout', '--rev', 'HEAD', ...(rng.chance(0.5) ? ['--force'] : [])],
    ['checkout', ...(rng.chance(0.7) ? ['--rev', 'HEAD'] : []), '--to', toDir, ...(rng.chance(0.3) ? ['--force'] : [])],
    ['pull', ...(rng.chance(0.5) ? ['--force'] : []), ...(rng.chance(0.5) ? ['--run-cache'] : [])],
    ['fetch', ...(rng.chance(0.5) ? ['--run-cache'] : [])],
    ['push', ...(rng.chance(0.5) ? ['--run-cache'] : [])],
    ['repro', ...(rng.chance(0.25) ? ['--force'] : [])],
    ['remove', rng.pick(targetPool)],
    ['unprotect', rng.pick(targetPool)],
    ['gc', '--workspace', '-f'],
    ['fsck'],
    ['status'],
    ['install'],
    ['init', '-f'],
  ];
  // Read-only commands last, drawing nothing from rng (so the cases before them are unchanged): they must
  // not change anything either, nor follow a link, hang or print more than one error line.
  return [...rng.shuffle(list), ['lineage', 'out/model.copy'], ['lineage', '--reverse', 'data'], ['lineage', '--rev', 'HEAD', '--json', 'out/model.copy']];
}

/**
 * Builds one case in `S` (a fresh copy of the template). Returns
 * `{ mutations: [{name, cls, detail}], commands, hostileNames, headPtrs }`.
 */
export function generate(S, meta, seed, caseNo) {
  const rng = new Rng(seed, caseNo);
  const R = path.join(S, 'repo');
  const c = new CaseBuilder(S, R, meta, rng);
  const n = rng.weighted([
    [3, 1],
    [4, 2],
    [3, 3],
    [2, 4],
    [1, 6],
  ]);
  const chosen = [];
  for (let i = 0; i < n; i++) chosen.push(rng.weighted(MUTATIONS.map((m) => [m.w ?? 1, m])));
  // FIFOs last: the other mutations read and append to files a FIFO may replace, and would block on it.
  chosen.sort((a, b) => Number(a.name === 'fifo') - Number(b.name === 'fifo'));
  for (const m of chosen) {
    const before = c.log.length;
    try {
      m.apply(c, rng);
    } catch (err) {
      c.log.push(`(setup of ${m.name} failed: ${err.message.split('\n')[0]})`);
    }
    c.mutations.push({ name: m.name, cls: m.cls, detail: c.log.slice(before).join('; ') });
  }
  c.commit();
  return { mutations: c.mutations, commands: commands(rng, c), hostileNames: c.hostileNames };
}

class CaseBuilder {
  constructor(S, R, meta, rng) {
    this.S = S;
    this.R = R;
    this.meta = meta;
    this.rng = rng;
    this.mutations = [];
    this.log = [];
    this.toTrack = [];
    this.addTargets = [];
    this.hostileNames = [];
  }

  /** Absolute path (Buffer) of a repo-relative name (string or Buffer); `..` leaves the repo on purpose. */
  abs(rel) {
    return Buffer.concat([Buffer.from(this.R + '/'), asBuf(rel)]);
  }

  mkdirp(rel) {
    fs.mkdirSync(this.abs(rel), { recursive: true });
  }

  rm(rel) {
    fs.rmSync(this.abs(rel), { recursive: true, force: true });
  }

  /** The parent directory of an absolute Buffer path. */
  static parent(p) {
    return p.subarray(0, p.lastIndexOf(0x2f));
  }

  w(rel, content, mode) {
    const p = this.abs(rel);
    fs.mkdirSync(CaseBuilder.parent(p), { recursive: true });
    this.rmIfLink(p);
    fs.writeFileSync(p, content);
    if (mode) fs.chmodSync(p, mode);
  }

  rmIfLink(p) {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st && !st.isFile() && !st.isDirectory()) fs.rmSync(p, { force: true });
  }

  sym(rel, target) {
    this.rm(rel);
    const p = this.abs(rel);
    fs.mkdirSync(CaseBuilder.parent(p), { recursive: true });
    fs.symlinkSync(target, p);
  }

  fifo(rel) {
    this.rm(rel);
    const p = this.abs(rel).toString('latin1');
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const r = spawnSync('mkfifo', [p]);
    if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`);
  }

  /** Replaces `rel` by a hardlink of `sandbox/outside/<src>`. */
  hardlink(rel, src) {
    this.rm(rel);
    fs.linkSync(path.join(this.S, 'outside', src), this.abs(rel));
  }

  track(rel) {
    this.toTrack.push(asBuf(rel));
  }

  note(s) {
    this.log.push(s);
  }

  /** Writes `bytes` as an object named by its hash into the local cache and/or the remote; returns its oid. */
  object(bytes, where, suffix = '') {
    const oid = sha256(bytes) + suffix;
    for (const w of where) {
      const base = w === 'cache' ? path.join(this.R, '.tdv/cache') : path.join(this.S, 'remote');
      const p = path.join(base, 'files/sha256', oid.slice(0, 2), oid.slice(2));
      fs.mkdirSync(path.dirname(p), { recursive: true });
      fs.rmSync(p, { force: true });
      fs.writeFileSync(p, bytes);
    }
    return oid;
  }

  objPath(where, oid) {
    const base = where === 'cache' ? path.join(this.R, '.tdv/cache') : path.join(this.S, 'remote');
    return path.join(base, 'files/sha256', oid.slice(0, 2), oid.slice(2));
  }

  /** A hostile path from the list, with $S made absolute. */
  hostilePath() {
    return this.rng.pick(HOSTILE_PATHS).replace('$S', this.S);
  }

  /** A pointer file's text, written by hand as YAML (JSON-quoted path). */
  pointer(outs) {
    let s = 'outs:\n';
    for (const o of outs) {
      s += `- path: ${JSON.stringify(o.path)}\n  sha256: ${o.sha256}\n  size: ${o.size}\n`;
      if (o.nfiles !== undefined) s += `  nfiles: ${o.nfiles}\n`;
    }
    return s;
  }

  /** Commits what the mutations marked as tracked (a hostile clone's history), all at once. */
  commit() {
    if (!this.toTrack.length) return;
    const env = { ...process.env, ...GIT_ENV };
    const input = Buffer.concat(this.toTrack.flatMap((b) => [b, Buffer.from([0])]));
    let r = spawnSync('git', ['--literal-pathspecs', 'add', '-A', '-f', '--pathspec-from-file=-', '--pathspec-file-nul'], { cwd: this.R, env, input });
    if (r.status !== 0) {
      for (const b of this.toTrack) {
        r = spawnSync('git', ['--literal-pathspecs', 'add', '-A', '-f', '--pathspec-from-file=-', '--pathspec-file-nul'], { cwd: this.R, env, input: Buffer.concat([b, Buffer.from([0])]) });
        if (r.status !== 0) this.note(`git refused to track ${JSON.stringify(b.toString('utf8'))}`);
      }
    }
    spawnSync('git', ['commit', '-q', '--no-verify', '-m', 'hostile clone'], { cwd: this.R, env });
  }

  hostileName() {
    const [label, n] = this.rng.pick(NAMES);
    const b = asBuf(n);
    if (isUtf8(b)) this.hostileNames.push(b.toString('utf8'));
    return { label, b, arg: isUtf8(b) ? b.toString('utf8') : undefined };
  }
}

const M = (name, cls, apply, w = 1) => ({ name, cls, apply, w });

/** The mutations: each one failure class (or a mix) of the issue, applied to the case. */
const MUTATIONS = [
  // --- symlinks and hardlinks at every level (S, 5)
  M('symlink-data-dir-outside', ['S'], (c) => {
    c.sym('data', '../outside/dir');
    c.note('data -> ../outside/dir (untracked)');
  }),
  M('symlink-data-subdir-outside', ['S'], (c) => {
    c.sym('data/sub', '../../outside/dir');
    c.note('data/sub -> ../../outside/dir');
  }),
  M('symlink-tracked-file-outside', ['S'], (c) => {
    const [f, t] = c.rng.pick([
      ['model.bin', '../outside/secret.txt'],
      ['data/a.txt', '../../outside/secret.txt'],
      ['out/model.copy', '../../outside/secret.txt'],
      ['res/sub/b.txt', '../../../outside/secret.txt'],
    ]);
    c.sym(f, t);
    c.note(`${f} -> ${t}`);
  }),
  M('hardlink-outside-file', ['S', '5'], (c) => {
    const [f, src] = c.rng.pick([
      ['data/a.txt', 'hl.txt'],
      ['model.bin', 'hl2.txt'],
      ['data/new-hardlink.txt', 'hl.txt'],
      ['out/model.copy', 'hl2.txt'],
    ]);
    c.hardlink(f, src);
    c.note(`${f} hardlinked to outside/${src}`);
  }),
  M('hardlink-inside-repo', ['5'], (c) => {
    // Tracked data sharing an inode with a Git-tracked file: linking or chmodding it changes that file too.
    const [f, src] = c.rng.pick([
      ['data/a.txt', 'README.md'],
      ['model.bin', 'src/run.sh'],
      ['data/sub/b.txt', 'src/m.json'],
    ]);
    c.rm(f);
    fs.linkSync(c.abs(src), c.abs(f));
    c.note(`${f} hardlinked to the Git-tracked ${src}`);
  }),
  M(
    'link-mode',
    ['5'],
    (c) => {
      const t = c.rng.pick(['hardlink', 'symlink', 'hardlink,copy', 'symlink,copy', 'copy']);
      const local = c.rng.chance(0.5);
      const f = local ? '.tdv/config.local.yaml' : '.tdv/config.yaml';
      const old = local ? '' : fs.readFileSync(c.abs(f), 'utf8');
      c.w(f, `${old}cache:\n  type: ${t}\n`);
      if (!local) c.track(f);
      c.note(`cache.type ${t} in ${f}`);
    },
    2,
  ),
  M('hardlinked-cache-object', ['5'], (c) => {
    const oid = c.meta.oids[c.rng.pick(['model', 'a'])];
    const p = c.objPath('cache', oid);
    const out = path.join(c.S, 'outside', 'obj-copy');
    fs.copyFileSync(p, out);
    fs.rmSync(p);
    fs.linkSync(out, p);
    c.note(`cache object ${oid.slice(0, 8)} is a hardlink of outside/obj-copy`);
  }),
  M('symlinked-pointer-dir', ['S'], (c) => {
    // A committed symlink to a directory outside that holds a pointer: checkout must not write through it.
    fs.writeFileSync(path.join(c.S, 'outside/dir/f1.txt.tdv'), c.pointer([{ path: 'f1.txt', sha256: c.meta.oids.model, size: c.meta.sizes.model }]));
    c.sym('linked', '../outside/dir');
    c.track('linked');
    c.note('committed linked -> ../outside/dir holding f1.txt.tdv');
  }),
  M('symlink-alias-of-data', ['S'], (c) => {
    c.sym('lnk', 'data');
    c.note('lnk -> data (untracked)');
  }),
  M('committed-symlink-out-dir', ['S', '2'], (c) => {
    const d = c.rng.pick(['out', 'res']);
    c.sym(d, '../outside/dir');
    c.track(d);
    c.note(`committed ${d} -> ../outside/dir (a stage's output directory)`);
  }),
  M(
    'committed-symlink-control-file',
    ['C'],
    (c) => {
      const [f, t] = c.rng.pick([
        ['.gitignore', '../outside/secret.txt'],
        ['.gitignore', 'README.md'],
        ['out/.gitignore', '../../outside/secret.txt'],
        ['.gitattributes', '../outside/secret.txt'],
        ['.gitattributes', 'src/run.sh'],
        ['.tdvignore', '../outside/secret.txt'],
        ['tdv.lock', '../outside/lock-copy'],
        ['metrics.json', '../outside/secret.txt'],
        ['data.tdv', '../outside/ptr-copy.tdv'],
        ['.tdv/.gitignore', '../../outside/secret.txt'],
      ]);
      if (f === 'tdv.lock') fs.copyFileSync(path.join(c.R, 'tdv.lock'), path.join(c.S, 'outside/lock-copy'));
      if (f === 'data.tdv') fs.copyFileSync(path.join(c.R, 'data.tdv'), path.join(c.S, 'outside/ptr-copy.tdv'));
      c.sym(f, t);
      c.track(f);
      c.note(`committed ${f} -> ${t}`);
    },
    2,
  ),
  M('committed-symlink-tdv-dir', ['C'], (c) => {
    const which = c.rng.pick(['.tdv', '.tdv/cache', '.tdv/tmp', '.tdv/cache/files']);
    const target = path.join(c.S, 'outside', 'moved');
    fs.cpSync(c.abs(which).toString(), target, { recursive: true, verbatimSymlinks: true });
    const rel = path.relative(path.dirname(path.join(c.R, which)), target);
    c.sym(which, rel);
    c.track(which);
    c.note(`committed ${which} -> ${rel} (a copy of it)`);
  }),
  M('shared-cache-by-choice', ['6'], (c) => {
    // The user's own choice (untracked): a cache shared between clones. gc must not collect it blindly.
    const target = path.join(c.S, 'shared', 'cache');
    fs.cpSync(path.join(c.R, '.tdv/cache'), target, { recursive: true });
    if (c.rng.chance(0.5)) {
      c.sym('.tdv/cache', '../../shared/cache');
      c.note(".tdv/cache -> ../../shared/cache (untracked, the user's choice)");
    } else {
      fs.writeFileSync(path.join(c.R, '.tdv/config.local.yaml'), 'cache:\n  dir: ../../shared/cache\n');
      c.note('config.local.yaml cache.dir ../../shared/cache');
    }
  }),
  M('to-dir-hostile', ['S'], (c) => {
    const kind = c.rng.pick(['lnk', 'pre', 'inner-link']);
    if (kind === 'lnk') fs.symlinkSync('../outside/dir', path.join(c.S, 'to/lnk'));
    if (kind === 'pre') {
      fs.mkdirSync(path.join(c.S, 'to/pre/data'), { recursive: true });
      fs.writeFileSync(path.join(c.S, 'to/pre/model.bin'), "somebody else's file\n");
      fs.symlinkSync('../../../outside/dir', path.join(c.S, 'to/pre/data/sub'));
    }
    if (kind === 'inner-link') {
      fs.mkdirSync(path.join(c.S, 'to/snap'), { recursive: true });
      fs.symlinkSync('../../outside/dir', path.join(c.S, 'to/snap/data'));
    }
    c.note(`--to directory hostile: ${kind}`);
  }),

  // --- names (3, 9)
  M(
    'hostile-names-in-data',
    ['3', '9'],
    (c) => {
      for (let i = c.rng.int(1, 3); i > 0; i--) {
        const { label, b } = c.hostileName();
        c.w(Buffer.concat([Buffer.from('data/'), b]), `file named ${label}\n`);
        c.note(`data/<${label}>`);
      }
    },
    2,
  ),
  M('hostile-dir-names-in-data', ['3'], (c) => {
    const kind = c.rng.pick(['gitfile', 'gitdir', 'tdvdir', 'GIT-upper', 'nested-git']);
    if (kind === 'gitfile') c.w('data/sub/.git', 'gitdir: ../../../outside/dir\n');
    if (kind === 'gitdir') c.w('data/.git/config', '[core]\n\tworktree = ../../outside\n');
    if (kind === 'tdvdir') c.w('data/.tdv/config.yaml', 'cache:\n  dir: ../../../outside\n');
    if (kind === 'GIT-upper') c.w('data/.GIT', 'gitdir: /nonexistent\n');
    if (kind === 'nested-git') c.w('data/sub/deeper/.git/HEAD', 'ref: refs/heads/main\n');
    c.note(`data holds ${kind}`);
  }),
  M(
    'hostile-names-new-target',
    ['3', '9'],
    (c) => {
      const { label, b, arg } = c.hostileName();
      const inDir = c.rng.chance(0.5);
      const rel = inDir ? Buffer.concat([Buffer.from('newdir/'), b]) : b;
      c.w(rel, `new data named ${label}\n`);
      if (inDir) c.addTargets.push('newdir');
      else if (arg !== undefined) c.addTargets.push(arg.startsWith('-') ? `./${arg}` : arg);
      c.note(`new ${inDir ? 'newdir/' : ''}<${label}> to add`);
    },
    2,
  ),
  M('long-path', ['3'], (c) => {
    const seg = 'd'.repeat(200);
    const depth = c.rng.int(5, 18);
    const rel = Array(depth).fill(seg).join('/') + '/f.txt';
    c.w(`data/${rel}`, 'deep\n');
    c.note(`data/ holds a ${rel.length}-byte path`);
  }),

  // --- hostile pointers (3, 2, S)
  M(
    'hostile-pointer',
    ['3', '2'],
    (c) => {
      const p = c.hostilePath();
      const dir = c.rng.chance(0.3);
      const out = dir ? { path: p, sha256: c.meta.oids.data, size: 96, nfiles: 4 } : { path: p, sha256: c.meta.oids.model, size: c.meta.sizes.model };
      const where = c.rng.pick(['evil.tdv', 'evil.tdv', 'src/evil.tdv', 'data/evil.tdv', 'scratch/evil.tdv']);
      c.w(where, c.pointer([out]));
      c.track(where);
      if (where.startsWith('data/')) c.note('(pointer inside tracked data)');
      c.note(`${where} names ${JSON.stringify(p)} (${dir ? 'directory' : 'file'})`);
    },
    4,
  ),
  M('pointer-overlap', ['3'], (c) => {
    const p = c.rng.pick(['data', 'data/a.txt', 'data/sub', 'model.bin', 'out/model.copy', 'res/sub/b.txt']);
    c.w('evil.tdv', c.pointer([{ path: p, sha256: c.meta.oids.a, size: 6 }]));
    c.track('evil.tdv');
    c.note(`evil.tdv also tracks ${p}`);
  }),
  M('malformed-pointer', ['3', '8', '10'], (c) => {
    const texts = [
      'outs: [',
      '- just a list\n',
      'outs:\n- path: x\n  sha256: ZZZ\n  size: 1\n',
      `outs:\n- path: x\n  sha256: ${c.meta.oids.model}\n  size: 1e400\n`,
      `outs:\n- path: x\n  sha256: ${c.meta.oids.data}\n  size: 1\n`,
      `outs:\n- path: x\n  sha256: ${c.meta.oids.model}\n  size: -1\n  isexec: yes\n`,
      `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nouts: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n`,
      '\x00\x01\x02binary',
      `outs:\n- path: x\n  sha256: ${c.meta.oids.model}\n  size: 17\n  path: y\n`,
      `outs:\n${'- path: many\n  sha256: 0000000000000000000000000000000000000000000000000000000000000000\n  size: 1\n'.repeat(3000)}`,
    ];
    const i = c.rng.int(0, texts.length - 1);
    const where = c.rng.pick(['evil.tdv', 'data.tdv', 'model.bin.tdv']);
    c.w(where, texts[i]);
    c.track(where);
    c.note(`${where} is malformed #${i}`);
  }),
  M(
    'hostile-manifest',
    ['3', 'S'],
    (c) => {
      const entries = [];
      for (let i = c.rng.int(1, 3); i > 0; i--) {
        const kind = c.rng.pick(['path', 'path', 'dup', 'file-and-dir', 'size', 'name']);
        if (kind === 'path') entries.push({ relpath: c.hostilePath(), sha256: c.meta.oids.a, size: 6 });
        if (kind === 'name') entries.push({ relpath: c.hostileName().b.toString('utf8'), sha256: c.meta.oids.a, size: 6 });
        if (kind === 'dup') entries.push({ relpath: 'dup.txt', sha256: c.meta.oids.a, size: 6 }, { relpath: 'dup.txt', sha256: c.meta.oids.b, size: 6 });
        if (kind === 'file-and-dir') entries.push({ relpath: 'fd', sha256: c.meta.oids.a, size: 6 }, { relpath: 'fd/x', sha256: c.meta.oids.b, size: 6 });
        if (kind === 'size') entries.push({ relpath: 'big.bin', sha256: c.meta.oids.a, size: 2 ** 60 });
      }
      entries.push({ relpath: 'ok.txt', sha256: c.meta.oids.b, size: 6 });
      const bytes = Buffer.from(JSON.stringify(entries));
      const where = c.rng.pick([['cache'], ['remote'], ['cache', 'remote']]);
      const oid = c.object(bytes, where, '.dir');
      const out = c.rng.pick(['evil', 'evil', 'data']);
      if (out === 'data') {
        c.w('data.tdv', c.pointer([{ path: 'data', sha256: oid, size: 12, nfiles: entries.length }]));
        c.track('data.tdv');
      } else {
        c.w('evil.tdv', c.pointer([{ path: 'evil', sha256: oid, size: 12, nfiles: entries.length }]));
        c.track('evil.tdv');
      }
      c.note(`manifest ${oid.slice(0, 8)} in ${where.join('+')} for ${out}: ${JSON.stringify(entries.map((e) => e.relpath))}`);
    },
    3,
  ),
  M(
    'corrupt-remote-object',
    ['4'],
    (c) => {
      const key = c.rng.pick(['model', 'a', 'data']);
      const oid = c.meta.oids[key];
      const p = c.objPath('remote', oid);
      fs.writeFileSync(p, key === 'data' ? '[{"relpath":"../../outside/pwn","sha256":"' + c.meta.oids.a + '","size":6}]' : 'tampered bytes!!\n');
      fs.rmSync(c.objPath('cache', oid), { force: true });
      c.note(`remote object ${oid.slice(0, 8)} (${key}) has other bytes; the cache lacks it`);
    },
    2,
  ),
  M('corrupt-cache-object', ['4', '5'], (c) => {
    const key = c.rng.pick(['model', 'a', 'data']);
    const oid = c.meta.oids[key];
    const p = c.objPath('cache', oid);
    fs.chmodSync(p, 0o644);
    fs.writeFileSync(p, key === 'data' ? '[{"relpath":"../README.md","sha256":"' + c.meta.oids.a + '","size":6}]' : 'modified in place\n');
    c.note(`cache object ${oid.slice(0, 8)} (${key}) modified in place`);
  }),
  M('missing-objects', ['10'], (c) => {
    const key = c.rng.pick(['model', 'a', 'data']);
    const where = c.rng.pick([['cache'], ['remote'], ['cache', 'remote']]);
    for (const w of where) fs.rmSync(c.objPath(w, c.meta.oids[key]), { force: true });
    if (c.rng.chance(0.5)) c.rm(key === 'model' ? 'model.bin' : 'data');
    c.note(`object ${key} missing from ${where.join('+')}`);
  }),
  M('symlink-object', ['S', '8'], (c) => {
    const where = c.rng.pick(['cache', 'remote']);
    const oid = c.meta.oids[c.rng.pick(['model', 'a', 'data'])];
    const p = c.objPath(where, oid);
    fs.rmSync(p, { force: true });
    fs.symlinkSync(path.join(c.S, 'outside/secret.txt'), p);
    if (where === 'remote') fs.rmSync(c.objPath('cache', oid), { force: true });
    c.note(`${where} object ${oid.slice(0, 8)} is a symlink to outside/secret.txt`);
  }),

  // --- FIFOs and other special files where files are expected (8)
  M(
    'fifo',
    ['8'],
    (c) => {
      const where = c.rng.pick([
        'remote-object',
        'cache-object',
        'cache-manifest',
        'model.bin',
        'data/fifo',
        'data/a.txt',
        'tdv.yaml',
        'tdv.lock',
        'params.yaml',
        '.tdv/config.local.yaml',
        '.tdvignore',
        'data.tdv',
        '.gitignore',
        'remote-run',
        'cache-run',
        'src/m.json',
      ]);
      if (where === 'remote-object' || where === 'cache-object' || where === 'cache-manifest') {
        const oid = where === 'cache-manifest' ? c.meta.oids.data : c.meta.oids[c.rng.pick(['model', 'a'])];
        const loc = where === 'remote-object' ? 'remote' : 'cache';
        const p = c.objPath(loc, oid);
        fs.rmSync(p, { force: true });
        spawnSync('mkfifo', [p]);
        if (loc === 'remote') fs.rmSync(c.objPath('cache', oid), { force: true });
        c.note(`${loc} object ${oid.slice(0, 8)} is a FIFO`);
      } else if (where === 'remote-run' || where === 'cache-run') {
        const key = c.meta.runKeys.copy[0];
        const p = where === 'remote-run' ? path.join(c.S, 'remote/runs', key.slice(0, 2), key.slice(2)) : path.join(c.R, '.tdv/cache/runs', key.slice(0, 2), key.slice(2));
        fs.rmSync(p, { force: true });
        spawnSync('mkfifo', [p]);
        c.rm('out/model.copy');
        c.note(`${where} record of stage copy is a FIFO`);
      } else {
        c.fifo(where);
        c.note(`${where} is a FIFO`);
      }
    },
    2,
  ),

  // --- run records (1)
  M(
    'hostile-run-record',
    ['1'],
    (c) => {
      const stage = c.rng.pick(['copy', 'tree', 'meter']);
      const key = c.meta.runKeys[stage][0];
      const p = c.hostilePath();
      const dir = c.rng.chance(0.3);
      const ent = dir ? { path: p, sha256: c.meta.oids.data, size: 96, nfiles: 4 } : { path: p, sha256: c.meta.oids.model, size: c.meta.sizes.model };
      const rec = c.rng.pick([
        { outs: [ent], metrics: [] },
        { outs: [], metrics: [{ path: p, sha256: c.meta.oids.model, size: c.meta.sizes.model }] },
        { outs: [ent, { path: stage === 'tree' ? 'res/sub' : 'out/model.copy', sha256: c.meta.oids.model, size: 17 }], metrics: [] },
      ]);
      const remote = c.rng.chance(0.4);
      const file = remote ? path.join(c.S, 'remote/runs', key.slice(0, 2), key.slice(2)) : path.join(c.R, '.tdv/cache/runs', key.slice(0, 2), key.slice(2));
      fs.writeFileSync(file, JSON.stringify(rec));
      if (remote) fs.rmSync(path.join(c.R, '.tdv/cache/runs', key.slice(0, 2), key.slice(2)), { force: true });
      // Make the stage want to run, so the record is looked up.
      c.rm(stage === 'copy' ? 'out/model.copy' : stage === 'tree' ? 'res/sub' : 'metrics.json');
      c.note(`${remote ? 'remote' : 'local'} run record of ${stage} restores ${JSON.stringify(rec)}`);
    },
    3,
  ),
  M('malformed-run-record', ['1', '8'], (c) => {
    const key = c.meta.runKeys.copy[0];
    const text = c.rng.pick(['{', '[]', 'null', '{"outs":"x","metrics":[]}', JSON.stringify({ outs: Array(5000).fill({ path: 'out/model.copy', sha256: c.meta.oids.model, size: 17 }), metrics: [] })]);
    fs.writeFileSync(path.join(c.R, '.tdv/cache/runs', key.slice(0, 2), key.slice(2)), text);
    c.rm('out/model.copy');
    c.note(`run record of copy is ${JSON.stringify(text.slice(0, 40))}`);
  }),

  // --- tdv.yaml and tdv.lock (2)
  M(
    'hostile-stage-outs',
    ['2'],
    (c) => {
      const p = c.hostilePath();
      const key = c.rng.pick(['outs', 'outs', 'metrics']);
      // The command writes exactly the declared path (single quotes keep every byte but a quote), or nothing.
      const cmd = c.rng.pick(['true', `cp model.bin '${p.replaceAll("'", '')}'`, 'echo hi']);
      const extra = `  evil:\n    cmd: ${JSON.stringify(cmd)}\n    deps: [model.bin]\n    ${key}: [${JSON.stringify(p)}]\n`;
      fs.appendFileSync(path.join(c.R, 'tdv.yaml'), extra);
      c.track('tdv.yaml');
      if (p.startsWith('linked') && !fs.existsSync(path.join(c.R, 'linked'))) {
        c.sym('linked', '../outside/dir');
        c.track('linked');
      }
      c.note(`stage evil (cmd ${JSON.stringify(cmd)}) ${key}: ${JSON.stringify(p)}`);
    },
    3,
  ),
  M('hostile-stage-wdir', ['2', 'S'], (c) => {
    const wdir = c.rng.pick(['../outside', 'linked', '.git', '.tdv', 'src']);
    if (wdir === 'linked') {
      c.sym('linked', '../outside/dir');
      c.track('linked');
    }
    fs.appendFileSync(path.join(c.R, 'tdv.yaml'), `  evil:\n    cmd: "true"\n    wdir: ${JSON.stringify(wdir)}\n    outs: [f1.txt]\n`);
    c.track('tdv.yaml');
    c.note(`stage evil with wdir ${wdir}, outs f1.txt`);
  }),
  M('malformed-tdv-yaml', ['10', '8'], (c) => {
    const t = c.rng.pick([
      'stages: [',
      'stages:\n  x:\n    cmd: 1\n',
      'stages:\n  "../x":\n    cmd: "true"\n',
      `stages:\n${'  s:\n    cmd: "true"\n'.repeat(2)}`,
      '\uFEFFstages: {}\n',
      'a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n',
    ]);
    c.w('tdv.yaml', t);
    c.track('tdv.yaml');
    c.note(`tdv.yaml is ${JSON.stringify(t.slice(0, 30))}`);
  }),
  M(
    'hostile-lock-outs',
    ['2', '3'],
    (c) => {
      const p = c.hostilePath();
      const dir = c.rng.chance(0.3);
      const lock = fs.readFileSync(path.join(c.R, 'tdv.lock'), 'utf8');
      const ent = dir
        ? `      - path: ${JSON.stringify(p)}\n        sha256: ${c.meta.oids.data}\n        size: 96\n        nfiles: 4\n`
        : `      - path: ${JSON.stringify(p)}\n        sha256: ${c.meta.oids.model}\n        size: ${c.meta.sizes.model}\n`;
      const next = lock.replace(/(  copy:\n[\s\S]*?    outs:\n)/, `$1${ent}`);
      c.w('tdv.lock', next);
      c.track('tdv.lock');
      c.note(`tdv.lock stage copy also outputs ${JSON.stringify(p)}`);
    },
    2,
  ),

  // --- config (6)
  M('hostile-cache-dir', ['6'], (c) => {
    const d = c.rng.pick(['../data/cache', '../src', '../.git/tdvcache', '..', '../scratch', '../data', '../out', 'cache2']);
    const local = c.rng.chance(0.3);
    const f = local ? '.tdv/config.local.yaml' : '.tdv/config.yaml';
    const old = local ? '' : fs.readFileSync(c.abs(f), 'utf8');
    c.w(f, `${old}cache:\n  dir: ${JSON.stringify(d)}\n`);
    if (!local) c.track(f);
    if (c.rng.chance(0.5)) {
      const dest = path.resolve(c.R, '.tdv', d);
      fs.cpSync(path.join(c.R, '.tdv/cache/files'), path.join(dest, 'files'), { recursive: true });
    }
    c.note(`cache.dir ${d} in ${f}`);
  }),
  M('hostile-remote-url', ['6'], (c) => {
    const u = c.rng.pick(['.', '.git', '.tdv', '.tdv/cache', 'data', 'src', 'linked']);
    if (u === 'linked') {
      c.sym('linked', '.');
      c.track('linked');
    }
    const f = '.tdv/config.yaml';
    c.w(f, fs.readFileSync(c.abs(f), 'utf8').replace('url: ../remote', `url: ${JSON.stringify(u)}`));
    c.track(f);
    c.note(`remote url ${u}${u === 'linked' ? ' (linked -> .)' : ''}`);
  }),
  M('malformed-config', ['10'], (c) => {
    const local = c.rng.chance(0.5);
    const t = c.rng.pick(['cache: [', 'core:\n  lock_timeout: -5\n', 'cache:\n  type: teleport\n', 'remote:\n  store:\n    url: 5\n', 'bogus: 1\n', 'core:\n  remote: nowhere\n']);
    const f = local ? '.tdv/config.local.yaml' : '.tdv/config.yaml';
    c.w(f, t);
    if (!local) c.track(f);
    c.note(`${f} is ${JSON.stringify(t)}`);
  }),

  // --- the remote itself
  M('remote-odd', ['8', '10'], (c) => {
    const kind = c.rng.pick(['missing', 'file', 'symlink-outside', 'junk', 'empty']);
    const r = path.join(c.S, 'remote');
    if (kind === 'missing') fs.rmSync(r, { recursive: true });
    if (kind === 'file') {
      fs.rmSync(r, { recursive: true });
      fs.writeFileSync(r, 'not a directory\n');
    }
    if (kind === 'symlink-outside') {
      fs.rmSync(r, { recursive: true });
      fs.symlinkSync('outside/dir', r);
    }
    if (kind === 'junk') {
      fs.mkdirSync(path.join(r, 'files/sha256/zz'), { recursive: true });
      fs.writeFileSync(path.join(r, 'files/sha256/zz/notanobject'), 'junk');
      fs.writeFileSync(path.join(r, 'files/sha256/1b/.tmp.123'), 'partial');
    }
    if (kind === 'empty') {
      fs.rmSync(r, { recursive: true });
      fs.mkdirSync(r);
      fs.rmSync(path.join(c.R, '.tdv/cache/files'), { recursive: true });
    }
    c.note(`remote ${kind}`);
  }),

  // --- an unlucky user's workspace
  M(
    'workspace-edits',
    ['10'],
    (c) => {
      const kind = c.rng.pick(['modify', 'delete-file', 'delete-dir', 'new-file', 'replace-dir-with-file', 'replace-file-with-dir', 'modify-linked']);
      if (kind === 'modify') c.w('data/a.txt', 'user edit, in no cache\n');
      if (kind === 'delete-file') c.rm(c.rng.pick(['model.bin', 'data/a.txt', 'out/model.copy']));
      if (kind === 'delete-dir') c.rm(c.rng.pick(['data', 'data/sub', 'res/sub']));
      if (kind === 'new-file') c.w('data/sub/new.txt', 'new user file\n');
      if (kind === 'replace-dir-with-file') {
        c.rm('data/sub');
        c.w('data/sub', 'a file where a directory was\n');
      }
      if (kind === 'replace-file-with-dir') {
        c.rm('model.bin');
        c.w('model.bin/inner.txt', 'a directory where a file was\n');
      }
      if (kind === 'modify-linked') {
        // Through a hardlink or symlink into the cache, the user's edit alters the object (class 5's scenario).
        const p = c.abs('data/a.txt');
        fs.rmSync(p);
        fs.linkSync(c.objPath('cache', c.meta.oids.a), p);
        fs.chmodSync(p, 0o644);
        fs.writeFileSync(p, 'edited through a hardlink\n');
      }
      c.note(`workspace: ${kind}`);
    },
    2,
  ),
  M('gitignored-data', ['2'], (c) => {
    c.w('.gitignore', fs.readFileSync(c.abs('.gitignore'), 'utf8') + 'newdir\n*.tdv\n.tdv\n');
    c.track('.gitignore');
    c.w('newdir/x.txt', 'ignored by git\n');
    c.addTargets.push('newdir');
    c.note('.gitignore ignores newdir, *.tdv and .tdv');
  }),
];

export const MUTATION_NAMES = MUTATIONS.map((m) => m.name);
