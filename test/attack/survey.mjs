// The attack suite's one invariant, checked after every command.
//
// A sandbox directory holds everything a case touches:
//
//   sandbox/repo      the repository under attack (a Git work tree with .tdv/)
//   sandbox/remote    its directory remote
//   sandbox/outside   files and directories symlinks and hardlinks point at
//   sandbox/to        where `checkout --to` writes
//   sandbox/shared    a cache shared on purpose (untracked .tdv/cache symlink or cache.dir)
//   sandbox/home      $HOME of the commands
//
// `survey` records every entry of the sandbox by lstat (never following a
// symlink): type, permission bits, content hash, symlink target, inode and
// link count. `check` compares the surveys before and after one command with
// what that command may change (see ALLOWED below and README.md beside this
// file) and returns the violations. Paths are keys in latin1, one character
// per byte of the real name, so names that are not UTF-8 survive.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** Bytes of a latin1 key, as a path Buffer for fs calls. */
export const keyBuf = (k) => Buffer.from(k, 'latin1');
/** The key of a JS (UTF-16) string path: its UTF-8 bytes, one character per byte. */
export const toKey = (s) => Buffer.from(s, 'utf8').toString('latin1');
/** A key shown to people: the name escaped as JSON (control characters, non-UTF-8 bytes as \xNN). */
export function showKey(k) {
  const b = keyBuf(k);
  const s = b.toString('utf8');
  if (Buffer.from(s, 'utf8').equals(b)) return JSON.stringify(s);
  return JSON.stringify([...b].map((c) => (c < 0x80 ? String.fromCharCode(c) : `\\x${c.toString(16)}`)).join(''));
}

function typeOf(st) {
  if (st.isFile()) return 'f';
  if (st.isDirectory()) return 'd';
  if (st.isSymbolicLink()) return 'l';
  if (st.isFIFO()) return 'p';
  if (st.isSocket()) return 's';
  return 'o';
}

function hashFile(abs) {
  let fd;
  try {
    fd = fs.openSync(abs, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } catch (err) {
    return `unreadable:${err.code}`;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Every entry below `root` (a directory path), keyed by its latin1 path relative to `root`. */
export function survey(root) {
  const out = new Map();
  const visit = (absBuf, rel) => {
    let names;
    try {
      names = fs.readdirSync(absBuf, { encoding: 'buffer' });
    } catch (err) {
      out.set(rel, { ...out.get(rel), unreadable: err.code });
      return;
    }
    for (const nb of names) {
      const k = rel === '' ? nb.toString('latin1') : `${rel}/${nb.toString('latin1')}`;
      const abs = Buffer.concat([absBuf, Buffer.from('/'), nb]);
      let st;
      try {
        st = fs.lstatSync(abs);
      } catch {
        continue;
      }
      const e = { t: typeOf(st), mode: st.mode & 0o7777, ino: st.ino, nlink: st.nlink };
      if (e.t === 'f') e.h = hashFile(abs);
      else if (e.t === 'l') e.to = fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
      out.set(k, e);
      if (e.t === 'd') visit(abs, k);
    }
  };
  visit(Buffer.from(root), '');
  return out;
}

/** `git ls-files -s -z` of the work tree: the index, as one comparable string and the set of tracked paths (latin1). */
export function gitIndex(repo) {
  const r = spawnSync('git', ['ls-files', '-s', '-z'], { cwd: repo, maxBuffer: 1 << 26 });
  if (r.status !== 0) return { text: `git ls-files failed: ${r.stderr}`, tracked: new Set() };
  const text = r.stdout.toString('latin1');
  const tracked = new Set();
  for (const rec of text.split('\0')) {
    const tab = rec.indexOf('\t');
    if (tab !== -1) tracked.add(rec.slice(tab + 1));
  }
  return { text, tracked };
}

/** Git's own quoting of `core.quotePath` aside, `ls-files -z` gives raw bytes: the keys match the survey's. */

// ---------------------------------------------------------------------------
// What a command may change ("declared" paths)

/** A repo-relative path tdv may legally write: our own strict reading of the rules of issue 11. */
export function legalRel(p) {
  if (typeof p !== 'string' || p === '' || p.length > 4096 || p.includes('\0') || p.startsWith('/')) return false;
  return p.split('/').every((s) => s !== '' && s !== '.' && s !== '..' && s.toLowerCase() !== '.git' && s !== '.tdv');
}

const CONTROL = (k) => {
  const base = k.slice(k.lastIndexOf('/') + 1);
  return k === 'tdv.yaml' || k === 'tdv.lock' || k === '.gitattributes' || k === '.tdvignore' || k === 'params.yaml' || base === '.gitignore' || base.endsWith('.tdv');
};

function readYamlFile(absBuf) {
  try {
    const st = fs.lstatSync(absBuf);
    if (!st.isFile()) return undefined;
    return parseYaml(fs.readFileSync(absBuf, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The outs of a parsed pointer document, repo-relative, for a pointer at `dirKey` (latin1, '' for the root). */
function pointerOuts(doc, dirKey) {
  const out = [];
  const outs = doc && typeof doc === 'object' && Array.isArray(doc.outs) ? doc.outs : [];
  for (const o of outs) {
    if (!o || typeof o.path !== 'string' || !legalRel(o.path)) continue;
    const k = toKey(o.path);
    out.push(dirKey ? `${dirKey}/${k}` : k);
  }
  return out;
}

/** Pointer files (`*.tdv`) committed at HEAD: [dirKey, text] (read once per case: HEAD does not move). */
export function headPointers(repo) {
  const ls = spawnSync('git', ['ls-tree', '-r', '-z', 'HEAD'], { cwd: repo, maxBuffer: 1 << 26 });
  if (ls.status !== 0) return [];
  const want = [];
  for (const rec of ls.stdout.toString('latin1').split('\0')) {
    const m = /^(\d+) blob ([0-9a-f]+)\t(.*)$/s.exec(rec);
    if (m && m[3].endsWith('.tdv') && m[1] !== '120000') want.push({ oid: m[2], key: m[3] });
  }
  if (!want.length) return [];
  const cat = spawnSync('git', ['cat-file', '--batch'], { cwd: repo, input: want.map((w) => w.oid).join('\n') + '\n', maxBuffer: 1 << 26 });
  const buf = cat.stdout;
  const res = [];
  let pos = 0;
  for (const w of want) {
    const nl = buf.indexOf(10, pos);
    const header = buf.subarray(pos, nl).toString();
    const size = Number(header.split(' ')[2]);
    const body = buf.subarray(nl + 1, nl + 1 + size);
    pos = nl + 1 + size + 1;
    const slash = w.key.lastIndexOf('/');
    let doc;
    try {
      doc = parseYaml(body.toString('utf8'));
    } catch {
      doc = undefined;
    }
    res.push(...pointerOuts(doc, slash === -1 ? '' : w.key.slice(0, slash)));
  }
  return res;
}

/**
 * The paths of tracked data declared, before a command, by the workspace:
 * pointer files (found by an lstat walk, so never through a symlink), tdv.lock
 * outs and metrics, tdv.yaml outs and metrics; plus `extra` (HEAD's pointers,
 * `add` targets). Each is kept only if it is a legal path with no symlink
 * (or other non-directory) in its parent components. Returns
 * `{ data: Set, metrics: Set }` of repo-relative keys.
 */
export function declared(repoAbs, repoSurvey, extra = []) {
  const cand = [...extra];
  const metrics = [];
  for (const [k, e] of repoSurvey) {
    if (e.t !== 'f' || !k.endsWith('.tdv') || k.startsWith('.git/') || k.startsWith('.tdv/')) continue;
    const slash = k.lastIndexOf('/');
    cand.push(...pointerOuts(readYamlFile(keyBuf(`${repoAbs}/${k}`)), slash === -1 ? '' : k.slice(0, slash)));
  }
  const lock = readYamlFile(keyBuf(`${repoAbs}/tdv.lock`));
  if (lock && typeof lock.stages === 'object' && lock.stages) {
    for (const s of Object.values(lock.stages)) {
      for (const o of Array.isArray(s?.outs) ? s.outs : []) if (legalRel(o?.path)) cand.push(toKey(o.path));
    }
  }
  const yml = readYamlFile(keyBuf(`${repoAbs}/tdv.yaml`));
  if (yml && typeof yml.stages === 'object' && yml.stages) {
    for (const s of Object.values(yml.stages)) {
      const wdir = typeof s?.wdir === 'string' ? s.wdir : '.';
      const join = (p) => (typeof p === 'string' ? path.posix.normalize(wdir === '.' ? p : `${wdir}/${p}`) : undefined);
      for (const p of Array.isArray(s?.outs) ? s.outs : []) if (legalRel(join(p))) cand.push(toKey(join(p)));
      for (const p of Array.isArray(s?.metrics) ? s.metrics : []) if (legalRel(join(p))) metrics.push(toKey(join(p)));
    }
  }
  const viaRealDirs = (k) => {
    const parts = k.split('/');
    for (let i = 1; i < parts.length; i++) {
      const e = repoSurvey.get(parts.slice(0, i).join('/'));
      if (e && e.t !== 'd') return false;
    }
    return true;
  };
  const data = new Set(cand.filter((k) => viaRealDirs(k) && !CONTROL(k)));
  const lockMetrics = new Set();
  if (lock && typeof lock.stages === 'object' && lock.stages) {
    for (const s of Object.values(lock.stages)) for (const o of Array.isArray(s?.metrics) ? s.metrics : []) if (legalRel(o?.path)) lockMetrics.add(toKey(o.path));
  }
  return { data, metrics: new Set(metrics.filter((k) => viaRealDirs(k) && !CONTROL(k))), lockMetrics };
}

// ---------------------------------------------------------------------------
// The check

const OBJ = /^files\/sha256\/([0-9a-f]{2})\/([0-9a-f]{62})(\.dir)?$/;
const RUN = /^runs\/[0-9a-f]{2}\/[0-9a-f]{62}$/;

function same(b, a, strict) {
  if (!b || !a) return b === a;
  if (b.t !== a.t || b.mode !== a.mode || b.h !== a.h || b.to !== a.to) return false;
  if (strict && (b.ino !== a.ino || a.nlink > b.nlink)) return false;
  return true;
}

function describe(b, a) {
  const one = (e) => {
    if (!e) return 'absent';
    const t = { f: 'file', d: 'dir', l: 'symlink', p: 'fifo', s: 'socket', o: 'special' }[e.t];
    let s = `${t} ${e.mode.toString(8)}`;
    if (e.h) s += ` sha256:${e.h.slice(0, 12)}`;
    if (e.to !== undefined) s += ` -> ${showKey(e.to)}`;
    if (e.t === 'f') s += ` ino ${e.ino} nlink ${e.nlink}`;
    return s;
  };
  return `${one(b)} => ${one(a)}`;
}

/** Non-empty, non-comment lines of a .gitignore a user wrote (tdv's own entries start with "/"). */
function userLines(absBuf) {
  try {
    return fs
      .readFileSync(absBuf, 'latin1')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#') && !l.startsWith('/') && !l.startsWith('!/'));
  } catch {
    return [];
  }
}

/**
 * Violations of the invariant by one command. `ctx`:
 *  sandbox      absolute sandbox path
 *  cmd          { name, args, to?: boolean }
 *  tracked      Set of Git-tracked repo-relative keys (before)
 *  data, metrics  from `declared`
 *  caches       [{ key, shared }] sandbox-relative cache roots
 *  regions      extra sandbox-relative keys the command may change (shared caches)
 *  beforeText   { [key]: content } of .gitignore files before (for the user-line rule)
 */
export function check(before, after, ctx) {
  const v = [];
  const add = (kind, key, detail) => v.push({ kind, path: key, detail });
  const { name } = ctx.cmd;
  const under = (k, set) => {
    if (set.has(k)) return true;
    for (let i = k.indexOf('/'); i !== -1; i = k.indexOf('/', i + 1)) if (set.has(k.slice(0, i))) return true;
    return false;
  };
  const ancestors = new Set();
  for (const d of [...ctx.data, ...ctx.metrics]) {
    const parts = d.split('/');
    for (let i = 1; i < parts.length; i++) ancestors.add(parts.slice(0, i).join('/'));
  }
  const cacheRoots = ctx.caches.map((c) => c.key);
  const regionSet = new Set([...ctx.regions, ...cacheRoots]);
  const regularOrAbsent = (e) => !e || e.t === 'f';
  const keys = new Set([...before.keys(), ...after.keys()]);

  for (const k of keys) {
    const b = before.get(k);
    const a = after.get(k);
    const repoPart = k.startsWith('repo/') ? k.slice(5) : undefined;
    const outsideish = repoPart === undefined;
    if (same(b, a, outsideish)) continue;
    if (b?.t === 'd' && a?.t === 'd' && b.mode === a.mode) continue;
    const what = describe(b, a);

    if (k === 'remote' || k.startsWith('remote/')) {
      if (under(k, regionSet)) continue; // cache.dir configured into the remote: a shared cache
      const rel = k.slice('remote/'.length);
      const okPush = name === 'push' && (!b || b.t === 'f') && a && (a.t === 'd' ? !b : OBJ.test(rel) || RUN.test(rel));
      if (!okPush) add('remote-changed', k, what);
      continue;
    }
    if (outsideish) {
      if (!under(k, regionSet)) add('outside-changed', k, what);
      continue;
    }
    // Inside the repository.
    const p = repoPart;
    if (p === '.git/index') continue; // compared as `git ls-files -s` below
    if (p === '.git' || p.startsWith('.git/')) {
      const okInstall = name === 'install' && (p === '.git/config' || p === '.git/hooks' || p.startsWith('.git/hooks/'));
      if (!okInstall) add('git-dir-changed', k, what);
      continue;
    }
    const base = p.slice(p.lastIndexOf('/') + 1);
    const tracked = ctx.tracked.has(p);
    const control = (ok) => {
      if (!ok) return false;
      if (!regularOrAbsent(b) || !regularOrAbsent(a)) add(tracked ? 'tracked-changed' : 'control-file-not-regular', k, what);
      return true;
    };
    // Control files tdv edits: regular files (or absent), never through or over a symlink.
    if (base === '.gitignore' && (!p.startsWith('.tdv/') || p === '.tdv/.gitignore')) {
      if (!regularOrAbsent(b) || !regularOrAbsent(a)) add(tracked ? 'tracked-changed' : 'control-file-not-regular', k, what);
      else {
        const now = a ? new Set(userLines(keyBuf(`${ctx.sandbox}/${k}`))) : new Set();
        const lost = (ctx.gitignoreLines.get(p) ?? []).filter((l) => !now.has(l));
        if (lost.length) add('gitignore-lines-lost', k, `lost ${JSON.stringify(lost)}`);
      }
      continue;
    }
    if (control(base.endsWith('.tdv') && !p.startsWith('.tdv') && (name === 'add' || name === 'remove'))) continue;
    if (control(p === 'tdv.lock' && (name === 'repro' || name === 'remove'))) continue;
    if (control(p === '.gitattributes' && name === 'install')) continue;
    if (control(p === '.tdvignore' && name === 'init' && !b)) continue;
    if (control(p === '.tdv/config.yaml' && name === 'init' && !b)) continue;
    // A metrics file is kept in Git; repro may rewrite one it produced before (listed in tdv.lock).
    if (control(ctx.metrics.has(p) && name === 'repro' && (!tracked || ctx.lockMetrics.has(p)))) continue;
    if (tracked) {
      add('tracked-changed', k, what);
      continue;
    }
    if (under(k, regionSet)) continue; // a cache (ours, or shared on purpose); objects are checked below
    if (p === '.tdv' || p.startsWith('.tdv/')) {
      const cfg = p === '.tdv/config.yaml' || p === '.tdv/config.local.yaml';
      const okOwn = ctx.ownDir && (p === '.tdv' ? (!b || b.t === 'd') && a?.t === 'd' : !cfg || (!b && a?.t === 'f' && name === 'init'));
      if (!okOwn) add('tdv-dir-changed', k, what);
      continue;
    }
    if (under(p, ctx.data)) continue;
    if (ctx.metrics.has(p) && (name === 'checkout' || name === 'pull') && regularOrAbsent(b) && regularOrAbsent(a)) continue;
    if (ancestors.has(p) && (!b || b.t === 'd') && (!a || a.t === 'd')) continue;
    add('undeclared-changed', k, what);
  }

  // Git's index: tdv never stages or unstages.
  if (ctx.indexBefore !== ctx.indexAfter) add('git-index-changed', 'repo/.git/index', 'git ls-files -s differs');

  // Cache objects: bytes match their names; valid objects never vanish (gc of a private cache aside).
  const roots = [...ctx.caches, { key: 'remote', shared: true, remote: true }];
  for (const c of roots) {
    const pre = `${c.key}/`;
    for (const k of keys) {
      if (!k.startsWith(pre)) continue;
      const m = OBJ.exec(k.slice(pre.length));
      if (!m) continue;
      const want = m[1] + m[2];
      const b = before.get(k);
      const a = after.get(k);
      if (a?.t === 'f' && (!b || b.h !== a.h || b.t !== 'f') && a.h !== want) add('corrupt-object', k, `bytes hash to ${a.h.slice(0, 16)}..., not ${want.slice(0, 16)}...`);
      const wasValid = b?.t === 'f' && b.h === want;
      if (wasValid && !(a?.t === 'f' && a.h === want)) {
        const gcOk = name === 'gc' && !c.shared;
        if (!gcOk) add(c.remote ? 'remote-object-lost' : c.shared ? 'shared-cache-object-lost' : 'cache-object-lost', k, describe(b, a));
      }
    }
  }
  return v;
}

/** Where `cache.dir` points (config.yaml, then config.local.yaml), as a sandbox-relative key, if inside the sandbox. */
export function configuredCaches(sandbox, repoSurvey) {
  const res = [];
  let dir;
  for (const f of ['config.yaml', 'config.local.yaml']) {
    const e = repoSurvey.get(`.tdv/${f}`);
    if (e?.t !== 'f') continue;
    const doc = readYamlFile(keyBuf(`${sandbox}/repo/.tdv/${f}`));
    if (doc?.cache && typeof doc.cache.dir === 'string') dir = doc.cache.dir;
  }
  if (dir !== undefined) {
    const abs = path.resolve(sandbox, 'repo', '.tdv', dir);
    const rel = path.relative(sandbox, abs);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) res.push(toKey(rel));
  }
  return res;
}
