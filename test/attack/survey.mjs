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

/**
 * Hashes by (inode, size, mtime, ctime) in nanoseconds: any write or chmod
 * moves ctime, so an unchanged stat means unchanged bytes. Reset per case.
 */
const hashCache = new Map();
export function resetSurveyCache() {
  hashCache.clear();
  parseCache.clear();
  canonicalCache.clear();
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
        st = fs.lstatSync(abs, { bigint: true });
      } catch {
        continue;
      }
      const e = { t: typeOf(st), mode: Number(st.mode & 0o7777n), ino: Number(st.ino), nlink: Number(st.nlink) };
      if (e.t === 'f') {
        const sk = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
        e.h = hashCache.get(sk);
        if (e.h === undefined) {
          e.h = hashFile(abs);
          if (!e.h.startsWith('unreadable')) hashCache.set(sk, e.h);
        }
      } else if (e.t === 'l') e.to = fs.readlinkSync(abs, { encoding: 'buffer' }).toString('latin1');
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

const parseCache = new Map();
/** A YAML file's value, or undefined (not a regular file, unparsable); memoized by content hash when `h` is given. */
function readYamlFile(absBuf, h) {
  if (h !== undefined && parseCache.has(h)) return parseCache.get(h);
  let v;
  try {
    const st = fs.lstatSync(absBuf);
    if (st.isFile()) v = parseYaml(fs.readFileSync(absBuf, 'utf8'));
  } catch {
    v = undefined;
  }
  if (h !== undefined) parseCache.set(h, v);
  return v;
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

/** The outs and metrics paths of the tdv.lock committed at HEAD (read once per case: HEAD does not move). */
export function headLock(repo) {
  const res = { outs: [], metrics: [] };
  const r = spawnSync('git', ['show', 'HEAD:tdv.lock'], { cwd: repo, maxBuffer: 1 << 26 });
  if (r.status !== 0) return res;
  try {
    const lock = parseYaml(r.stdout.toString('utf8'));
    for (const s of Object.values(lock?.stages ?? {})) {
      for (const o of Array.isArray(s?.outs) ? s.outs : []) if (legalRel(o?.path)) res.outs.push(toKey(o.path));
      for (const o of Array.isArray(s?.metrics) ? s.metrics : []) if (legalRel(o?.path)) res.metrics.push(toKey(o.path));
    }
  } catch {}
  return res;
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
export function declared(repoAbs, repoSurvey, extra = [], headLockMetrics = []) {
  const cand = [...extra];
  const metrics = [];
  for (const [k, e] of repoSurvey) {
    if (e.t !== 'f' || !k.endsWith('.tdv') || k.startsWith('.git/') || k.startsWith('.tdv/')) continue;
    const slash = k.lastIndexOf('/');
    cand.push(...pointerOuts(readYamlFile(keyBuf(`${repoAbs}/${k}`), e.h), slash === -1 ? '' : k.slice(0, slash)));
  }
  const lock = readYamlFile(keyBuf(`${repoAbs}/tdv.lock`), repoSurvey.get('tdv.lock')?.h);
  if (lock && typeof lock.stages === 'object' && lock.stages) {
    for (const s of Object.values(lock.stages)) {
      for (const o of Array.isArray(s?.outs) ? s.outs : []) if (legalRel(o?.path)) cand.push(toKey(o.path));
    }
  }
  const yml = readYamlFile(keyBuf(`${repoAbs}/tdv.yaml`), repoSurvey.get('tdv.yaml')?.h);
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
  const lockMetrics = new Set(headLockMetrics);
  if (lock && typeof lock.stages === 'object' && lock.stages) {
    for (const s of Object.values(lock.stages)) for (const o of Array.isArray(s?.metrics) ? s.metrics : []) if (legalRel(o?.path)) lockMetrics.add(toKey(o.path));
  }
  return { data, metrics: new Set(metrics.filter((k) => viaRealDirs(k) && !CONTROL(k))), lockMetrics };
}

/** Orders by Unicode code point (UTF-8 byte order), as tdv sorts manifest entries. */
function byCodePoint(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

const canonicalCache = new Map();
/**
 * Whether a manifest's bytes are ones tdv itself could have written: a JSON
 * array of {relpath, sha256, size[, isexec: true]} with legal, distinct,
 * sorted relpaths, no file that is also a directory, serialized without
 * whitespace. fsck may quarantine any other manifest, never one of these.
 */
export function isCanonicalManifest(absBuf, h) {
  if (canonicalCache.has(h)) return canonicalCache.get(h);
  let ok = false;
  try {
    const text = fs.readFileSync(absBuf, 'utf8');
    const arr = JSON.parse(text);
    const seen = new Set();
    ok =
      Array.isArray(arr) &&
      arr.every(
        (e) =>
          e &&
          legalRel(e.relpath) &&
          /^[0-9a-f]{64}$/.test(e.sha256) &&
          Number.isSafeInteger(e.size) &&
          e.size >= 0 &&
          (e.isexec === undefined || e.isexec === true) &&
          Object.keys(e).length === (e.isexec ? 4 : 3),
      );
    if (ok) {
      for (const e of arr) seen.add(e.relpath);
      ok =
        seen.size === arr.length &&
        arr.every(
          (e) =>
            !e.relpath
              .split('/')
              .slice(0, -1)
              .some((_, i, parts) => seen.has(parts.slice(0, i + 1).join('/'))),
        );
      const sorted = [...arr].sort((a, b) => byCodePoint(a.relpath, b.relpath));
      const ser = `[${sorted.map((e) => JSON.stringify(e.isexec ? { relpath: e.relpath, sha256: e.sha256, size: e.size, isexec: true } : { relpath: e.relpath, sha256: e.sha256, size: e.size })).join(',')}]`;
      ok = ok && ser === text;
    }
  } catch {
    ok = false;
  }
  canonicalCache.set(h, ok);
  return ok;
}

// ---------------------------------------------------------------------------
// The check

/** sha256 of sandbox/outside/secret.txt (template.mjs). */
const SECRET_SHA = createHash('sha256').update('TOP SECRET: outside the repository\n').digest('hex');
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
 * Violations of the invariant by one command (see README.md). `ctx`:
 *  sandbox          absolute sandbox path
 *  cmd              { name, args }
 *  tracked          Git-tracked repo-relative keys (before)
 *  data, metrics, lockMetrics   from `declared`
 *  caches           [{ key, shared }] sandbox-relative cache roots
 *  remoteKey        sandbox-relative directory of the default remote, if it is a legal one
 *  regions          sandbox-relative keys the command may change freely (the `--to` directory)
 *  ownDir           `.tdv` is a real, untracked directory
 *  gitignoreLines   Map of .gitignore (repo-relative) -> user lines, before
 *  canonicalManifests  keys of manifests tdv could have written, before
 *  indexBefore, indexAfter   `git ls-files -s`
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
  // Directories tdv may create or remove on the way to what it may write.
  const ancestors = new Set();
  const addAncestors = (d, self) => {
    const parts = d.split('/');
    for (let i = 1; i < parts.length + (self ? 1 : 0); i++) ancestors.add(parts.slice(0, i).join('/'));
  };
  for (const d of [...ctx.data, ...ctx.metrics]) addAncestors(`repo/${d}`, false);
  // A cache: tdv writes its objects, run records and temp files there, nothing else.
  const cacheAreas = new Set();
  for (const c of ctx.caches) {
    for (const sub of ['files', 'runs', 'tmp']) cacheAreas.add(`${c.key}/${sub}`);
    addAncestors(c.key, true);
  }
  const regions = new Set(ctx.regions);
  for (const r of ctx.regions) addAncestors(r, false);
  const remote = ctx.remoteKey ? new Set([ctx.remoteKey]) : new Set();
  if (ctx.remoteKey && name === 'push') addAncestors(ctx.remoteKey, true);
  const regularOrAbsent = (e) => !e || e.t === 'f';
  const dirOrAbsent = (e) => !e || e.t === 'd';
  const keys = new Set([...before.keys(), ...after.keys()]);
  // Inodes of cache objects before: a file outside sharing one (a hardlink-mode snapshot, a planted link)
  // gains links whenever tdv links that object again, which changes nothing of the file.
  const cacheInodes = new Set();
  for (const c of ctx.caches) {
    const pre = `${c.key}/files/`;
    for (const [k, e] of before) if (e.t === 'f' && k.startsWith(pre)) cacheInodes.add(e.ino);
  }
  // A secret already inside the sandbox (copied by an earlier command) is not copied again by this one.
  let secretInside = false;
  for (const [k, e] of before) if (e.t === 'f' && e.h === SECRET_SHA && !k.startsWith('outside/')) secretInside = true;

  for (const k of keys) {
    const b = before.get(k);
    const a = after.get(k);
    const p = k.startsWith('repo/') ? k.slice(5) : undefined; // repo-relative, or undefined outside
    if (same(b, a, p === undefined && !(b && cacheInodes.has(b.ino)))) continue;
    if (b?.t === 'd' && a?.t === 'd' && b.mode === a.mode) continue;
    const what = describe(b, a);
    // Class 7: a file outside (what hostile symlinks point at) is never copied in, to the cache or the remote.
    // (Not for `tdv add LINK` of a symlink the user names himself: that may follow it.)
    if (a?.t === 'f' && b?.h !== a.h && !k.startsWith('outside/') && !k.startsWith('to/') && !ctx.addsSymlink && !secretInside) {
      let text = '';
      try {
        text = fs.readFileSync(keyBuf(`${ctx.sandbox}/${k}`), 'latin1');
      } catch {}
      if (text.includes('TOP SECRET')) add('secret-copied', k, `now holds the content of outside/secret.txt (${what})`);
    }
    const tracked = p !== undefined && ctx.tracked.has(p);

    if (p === '.git/index') continue; // compared as `git ls-files -s` below
    if (p === '.git' || p?.startsWith('.git/')) {
      const okInstall = name === 'install' && (p === '.git/config' || p === '.git/hooks' || p.startsWith('.git/hooks/'));
      const okCache = !tracked && (under(k, cacheAreas) || (ancestors.has(k) && dirOrAbsent(b) && dirOrAbsent(a)));
      if (!okInstall && !okCache) add('git-dir-changed', k, what);
      continue;
    }
    // The remote: only push writes there, only objects and run records, never removing any.
    // (A remote inside tracked data is tracked data first.)
    if (under(k, remote) && !tracked && !(p !== undefined && under(p, ctx.data))) {
      const rel = k.slice(ctx.remoteKey.length + 1);
      // (repos/<id>: the marker of the repositories that push there, read by gc --cloud.)
      // A FIFO, socket or symlink squatting on an object's name is not an object: push may put the
      // real one in its place (a regular file; the corrupt-object check holds it to its name).
      const squatted = b && b.t !== 'f' && b.t !== 'd' && a.t === 'f' && OBJ.test(rel);
      const ok = name === 'push' && a && (a.t === 'd' ? !b : (regularOrAbsent(b) || squatted) && (OBJ.test(rel) || RUN.test(rel) || /^repos\/[0-9a-z]+$/.test(rel)));
      if (!ok) add('remote-changed', k, what);
      continue;
    }
    if (!tracked && (under(k, regions) || under(k, cacheAreas))) continue;
    if (!tracked && ancestors.has(k) && dirOrAbsent(b) && dirOrAbsent(a)) continue;
    if (p === undefined) {
      add('outside-changed', k, what);
      continue;
    }
    // Inside the repository.
    const base = p.slice(p.lastIndexOf('/') + 1);
    const inData = under(p, ctx.data);
    const control = (ok) => {
      if (!ok) return false;
      if (!regularOrAbsent(b) || !regularOrAbsent(a)) add(tracked ? 'tracked-changed' : 'control-file-not-regular', k, what);
      return true;
    };
    // Control files tdv edits: regular files (or absent), never through or over a symlink.
    if (base === '.gitignore' && !inData && (!p.startsWith('.tdv/') || p === '.tdv/.gitignore')) {
      if (!regularOrAbsent(b) || !regularOrAbsent(a)) add(tracked ? 'tracked-changed' : 'control-file-not-regular', k, what);
      else if (p !== '.tdv/.gitignore') {
        // (.tdv/.gitignore is tdv's own: `init -f` rewrites it whole.)
        const now = a ? new Set(userLines(keyBuf(`${ctx.sandbox}/${k}`))) : new Set();
        const lost = (ctx.gitignoreLines.get(p) ?? []).filter((l) => !now.has(l));
        if (lost.length) add('gitignore-lines-lost', k, `lost ${JSON.stringify(lost)}`);
      }
      continue;
    }
    // repro commits a changed tracked input as add would (issue 12): it rewrites that pointer.
    if (control(base.endsWith('.tdv') && !p.startsWith('.tdv') && !inData && (name === 'add' || name === 'remove' || name === 'repro'))) continue;
    if (control(p === 'tdv.lock' && (name === 'repro' || name === 'remove'))) continue;
    // `tdv remove STAGE` takes a stage out of tdv.yaml (issue 12).
    if (control(p === 'tdv.yaml' && name === 'remove')) continue;
    if (control(p === '.gitattributes' && name === 'install')) continue;
    if (control(p === '.tdvignore' && name === 'init' && !b)) continue;
    if (control(p === '.tdv/config.yaml' && name === 'init' && !b)) continue;
    // A metrics file is kept in Git; repro may rewrite one it produced before (listed in tdv.lock).
    if (control(ctx.metrics.has(p) && name === 'repro' && (!tracked || ctx.lockMetrics.has(p)))) continue;
    if (tracked) {
      add('tracked-changed', k, what);
      continue;
    }
    if (p === '.tdv' || p.startsWith('.tdv/')) {
      const cfg = p === '.tdv/config.yaml' || p === '.tdv/config.local.yaml';
      const okOwn = ctx.ownDir && (p === '.tdv' ? dirOrAbsent(b) && a?.t === 'd' : !cfg || (!b && a?.t === 'f' && name === 'init'));
      if (!okOwn) add('tdv-dir-changed', k, what);
      continue;
    }
    if (inData) continue;
    if (ctx.metrics.has(p) && (name === 'checkout' || name === 'pull') && regularOrAbsent(b) && regularOrAbsent(a)) continue;
    add('undeclared-changed', k, what);
  }

  // Git's index: tdv never stages or unstages.
  if (ctx.indexBefore !== ctx.indexAfter) add('git-index-changed', 'repo/.git/index', 'git ls-files -s differs');

  // Objects: bytes match their names; valid objects never vanish (gc of a private cache aside).
  const roots = [...ctx.caches];
  if (ctx.remoteKey) roots.push({ key: ctx.remoteKey, shared: true, remote: true });
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
        // fsck may quarantine a manifest tdv could not have written (hostile entries), never another object.
        const fsckOk = name === 'fsck' && !c.remote && m[3] === '.dir' && !ctx.canonicalManifests.has(k);
        if (!gcOk && !fsckOk) add(c.remote ? 'remote-object-lost' : c.shared ? 'shared-cache-object-lost' : 'cache-object-lost', k, describe(b, a));
      }
    }
  }
  return v;
}

/** Reads the two config files as tdv merges them (local wins). */
function config(sandbox, repoSurvey) {
  const cfg = { cache: {}, core: {}, remote: {} };
  for (const f of ['config.yaml', 'config.local.yaml']) {
    const e = repoSurvey.get(`.tdv/${f}`);
    if (e?.t !== 'f') continue;
    const doc = readYamlFile(keyBuf(`${sandbox}/repo/.tdv/${f}`), e.h);
    if (!doc || typeof doc !== 'object') continue;
    if (doc.cache && typeof doc.cache.dir === 'string') cfg.cache.dir = doc.cache.dir;
    if (doc.core && typeof doc.core.remote === 'string') cfg.core.remote = doc.core.remote;
    if (doc.remote && typeof doc.remote === 'object') for (const [n, r] of Object.entries(doc.remote)) if (r && typeof r.url === 'string') cfg.remote[n] = r.url;
  }
  return cfg;
}

/** `abs` as a sandbox key after resolving symlinks (as far as it exists), or undefined outside the sandbox. */
export function realKey(sandbox, abs) {
  let cur = abs;
  const rest = [];
  for (;;) {
    try {
      cur = path.join(fs.realpathSync(cur), ...rest.reverse());
      break;
    } catch {
      rest.push(path.basename(cur));
      const up = path.dirname(cur);
      if (up === cur) return undefined;
      cur = up;
    }
  }
  const rel = path.relative(sandbox, cur);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
  return toKey(rel);
}

/**
 * The default remote's directory as a sandbox key, unless it is a location
 * issue 11 calls a configuration error (the repository or above it, its .git
 * or .tdv): then undefined, and whatever push writes there is a violation.
 */
export function configuredRemote(sandbox, repoSurvey) {
  const cfg = config(sandbox, repoSurvey);
  const url = cfg.remote[cfg.core.remote ?? ''];
  if (url === undefined || url.startsWith('s3://')) return undefined;
  const abs = url.startsWith('file://') ? url.slice(7) : path.resolve(sandbox, 'repo', url);
  const k = realKey(sandbox, abs);
  if (k === undefined || k === 'repo' || 'repo'.startsWith(`${k}/`) || k === 'repo/.git' || k.startsWith('repo/.git/') || k === 'repo/.tdv' || k.startsWith('repo/.tdv/')) return undefined;
  return k;
}

/** Where `cache.dir` points, as a sandbox key (symlinks resolved), if inside the sandbox. */
export function configuredCaches(sandbox, repoSurvey) {
  const dir = config(sandbox, repoSurvey).cache.dir;
  if (dir === undefined) return [];
  const k = realKey(sandbox, path.resolve(sandbox, 'repo', '.tdv', dir));
  return k === undefined ? [] : [k];
}
