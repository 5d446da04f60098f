import fs from 'node:fs';
import path from 'node:path';
import pLimit from 'p-limit';
import { CHUNK, hashFile, sha256 } from '../cache/hash.js';
import { type ManifestEntry, parseManifest } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { inTwoThreads } from '../cache/pool.js';
import type { ObjectStore } from '../cache/store.js';
import { errnoCode, FormatError, RemoteError, TdvError } from '../errors.js';
import type { Remote } from '../remote/remote.js';
import { readVerified } from '../remote/transfer/executor.js';
import { decodeUtf8, fileKind } from '../util/fs.js';
import { withRemote } from './lib/transfer.js';
import { allOuts, findPointers } from './lib/pointers.js';
import { remoteJobs } from './lib/remotes.js';
import type { Repo } from './repo.js';
import type { Progress } from '../util/progress.js';

export interface FsckOptions {
  /** Also check that a remote holds every referenced object, with the right size. */
  remote?: boolean;
  /** The remote to check; the default remote otherwise. */
  remoteName?: string;
  jobs?: number;
  /** Hears of the cache objects to re-hash, and of the objects and bytes done. */
  progress?: Progress;
}

/** A cache object whose bytes do not match its name, moved out of the cache. */
export interface CorruptObject {
  oid: Oid;
  reason: string;
  /** Repo-relative path it was moved to. */
  quarantined: string;
}

/** A referenced object that is not where it should be. */
export interface MissingObject {
  oid: Oid;
  /** The repo-relative data path that uses it. */
  path: string;
  /** The pointer file (or tdv.lock) that references it. */
  pointer: string;
}

export interface RemoteCheck {
  remote: string;
  url: string;
  /** Objects whose presence and size were checked. */
  checked: number;
  missing: MissingObject[];
  wrongSize: (MissingObject & { expected: number; actual: number })[];
}

/** The outcome of `tdv fsck`: the `--json` document. */
export interface FsckResult {
  clean: boolean;
  /** Cache objects re-hashed, and their bytes. */
  objects: number;
  bytes: number;
  corrupt: CorruptObject[];
  /** Objects referenced by pointers and tdv.lock outs. */
  referenced: number;
  /** Referenced objects the cache lacks (after quarantining the corrupt ones). */
  missing: MissingObject[];
  /** Files that could not be read or checked at all (a malformed pointer, an unreadable object, ...). */
  errors: string[];
  remote?: RemoteCheck;
}

export const QUARANTINE = 'quarantine';

/**
 * Checks the cache against itself and the pointers:
 *
 *   1. re-hash every object (small ones on two threads, large ones streamed);
 *      a manifest must also parse. Bad ones move to .tdv/tmp/quarantine/.
 *   2. every object a pointer or tdv.lock out references (a directory's
 *      manifest and files) must be in the cache.
 *   3. with `remote`: every referenced object must be on the remote, with
 *      the size recorded for it (a manifest the cache lacks is read from the
 *      remote, hash-checked, to learn the directory's files).
 *
 * Takes the repository lock: quarantining changes the cache.
 */
export async function fsck(repo: Repo, opts: FsckOptions = {}): Promise<FsckResult> {
  return repo.withLock('fsck', async () => {
    const store = repo.store;
    const res: FsckResult = { clean: true, objects: 0, bytes: 0, corrupt: [], referenced: 0, missing: [], errors: [] };
    // Manifests that are what their name says but that tdv refuses: reported once, left in place.
    const refused = new Set<Oid>();
    await checkObjects(repo, store, res, refused, opts.progress);

    let refs: Ref[] | undefined;
    try {
      refs = await references(repo, (err) => res.errors.push(err.message));
    } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      res.errors.push(err.message);
    }
    if (refs) {
      const seen = new Set<Oid>();
      for (const r of refs) {
        if (r.kind === 'dir') {
          countRef(seen, res, r.oid);
          if (!store.has(r.oid)) {
            res.missing.push({ oid: r.oid, path: `${r.path}/`, pointer: r.pointer });
            continue;
          }
          if (refused.has(r.oid)) continue;
          for (const e of store.readManifest(r.oid)) {
            countRef(seen, res, e.sha256);
            if (!store.has(e.sha256)) res.missing.push({ oid: e.sha256, path: `${r.path}/${e.relpath}`, pointer: r.pointer });
          }
        } else {
          countRef(seen, res, r.oid);
          if (!store.has(r.oid)) res.missing.push({ oid: r.oid, path: r.path, pointer: r.pointer });
        }
      }
      if (opts.remote) res.remote = await withRemote(repo, { remote: opts.remoteName, jobs: opts.jobs }, (remote) => checkRemote(repo, remote, refs!, opts.jobs, res, refused));
    }
    res.clean = res.corrupt.length === 0 && res.missing.length === 0 && res.errors.length === 0 && (res.remote === undefined || (res.remote.missing.length === 0 && res.remote.wrongSize.length === 0));
    return res;
  });
}

function countRef(seen: Set<Oid>, res: FsckResult, oid: Oid): void {
  if (seen.has(oid)) return;
  seen.add(oid);
  res.referenced++;
}

/**
 * Re-hashes every cache object; moves those that do not match their name (or
 * are not regular files) to quarantine. A manifest that matches its name but
 * does not parse is reported and added to `refused`, never moved: its bytes
 * are what was written (by this tdv, an older one, by hand or by an attacker),
 * and moving it would only make a remote's identical copy come back.
 */
async function checkObjects(repo: Repo, store: ObjectStore, res: FsckResult, refused: Set<Oid>, progress?: Progress): Promise<void> {
  const small: { oid: Oid; file: string }[] = [];
  const large: { oid: Oid; file: string }[] = [];
  let smallBytes = 0;
  let largeBytes = 0;
  for (const oid of store.list()) {
    const file = store.pathOf(oid);
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!st) continue; // removed meanwhile (another clone sharing the cache)
    res.objects++;
    if (!st.isFile()) {
      quarantine(repo, store, res, oid, `not a regular file (${fileKind(st)})`);
      continue;
    }
    res.bytes += st.size;
    if (isDirOid(oid)) {
      checkManifest(repo, store, res, oid, refused);
      continue;
    }
    (st.size <= CHUNK ? small : large).push({ oid, file });
    if (st.size <= CHUNK) smallBytes += st.size;
    else largeBytes += st.size;
  }
  progress?.plan(small.length + large.length, smallBytes + largeBytes);
  // Done items are counted on both threads without their indices: bytes go by the average size.
  const onDone = progress && ((n: number) => (progress.files(n), progress.bytes((n * smallBytes) / small.length)));
  const hashes = await inTwoThreads(
    'verify',
    {},
    small.map((o) => [o.file] as [string]),
    { onDone },
  );
  small.forEach((o, i) => judge(repo, store, res, o.oid, hashes[i]!));
  for (const o of large) {
    let got: string;
    try {
      got = (await hashFile(o.file, progress && ((n) => progress.bytes(n)))).sha256;
      progress?.files();
    } catch (err) {
      got = `!${errnoCode(err) ?? 'EIO'} ${(err as Error).message}`;
    }
    judge(repo, store, res, o.oid, got);
  }
}

/** `got` is the object's SHA-256, or "!CODE message" when it could not be read. */
function judge(repo: Repo, store: ObjectStore, res: FsckResult, oid: Oid, got: string): void {
  if (got === oid) return;
  if (got.startsWith('!ENOENT')) return; // removed meanwhile
  if (got.startsWith('!')) {
    res.errors.push(`cannot read cache object ${oid}: ${got.slice(got.indexOf(' ') + 1)}`);
    return;
  }
  quarantine(repo, store, res, oid, `its content hashes to ${got}`);
}

function checkManifest(repo: Repo, store: ObjectStore, res: FsckResult, oid: Oid, refused: Set<Oid>): void {
  const file = repo.rel(store.pathOf(oid));
  let bytes: Buffer;
  try {
    bytes = store.readManifestBytes(oid);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return; // removed meanwhile
    // Too large to read, or swapped for a FIFO since the lstat: reported, left alone.
    refused.add(oid);
    res.errors.push(err instanceof TdvError ? err.message : `cannot read cache object ${oid}: ${(err as Error).message}`);
    return;
  }
  const got = sha256(bytes);
  if (`${got}.dir` !== oid) {
    quarantine(repo, store, res, oid, `its content hashes to ${got}`);
    return;
  }
  try {
    parseManifest(decodeUtf8(bytes, file), file);
  } catch (err) {
    if (!(err instanceof TdvError)) throw err;
    refused.add(oid);
    res.errors.push(`${err.message} (left in the cache: its bytes match its name, so it was written that way)`);
  }
}

/** Moves a bad object to `.tdv/tmp/quarantine/<oid>` (never deleting it: it may be someone's only copy of something). */
function quarantine(repo: Repo, store: ObjectStore, res: FsckResult, oid: Oid, reason: string): void {
  const dest = store.quarantine(oid, path.join(repo.tmpDir, QUARANTINE));
  if (dest !== undefined) res.corrupt.push({ oid, reason, quarantined: repo.rel(dest) });
}

type Ref = { kind: 'file' | 'dir'; oid: Oid; size: number; path: string; pointer: string; imported?: boolean };

/** Every output pointers and tdv.lock record, even those .tdvignore hides. */
async function references(repo: Repo, onBad: (err: FormatError) => void): Promise<Ref[]> {
  return allOuts(repo, await findPointers(repo, { everything: true, onBad })).map((s) => ({
    kind: isDirOid(s.out.sha256) ? 'dir' : 'file',
    oid: s.out.sha256,
    size: s.out.size,
    path: s.rel,
    pointer: repo.rel(s.ptr.file),
    ...(s.ptr.import ? { imported: true } : {}),
  }));
}

/** Checks presence and size on the remote of every referenced object. */
async function checkRemote(repo: Repo, remote: Remote, refs: readonly Ref[], jobs: number | undefined, res: FsckResult, refused: ReadonlySet<Oid>): Promise<RemoteCheck> {
  const store = repo.store;
  const check: RemoteCheck = { remote: remote.name, url: remote.url, checked: 0, missing: [], wrongSize: [] };
  // oid -> what to expect; the first path that uses it names it in messages.
  const want = new Map<Oid, MissingObject & { size: number }>();
  const expect = (oid: Oid, size: number, p: string, pointer: string) => {
    if (!want.has(oid)) want.set(oid, { oid, size, path: p, pointer });
  };
  for (const r of refs) {
    if (r.imported) continue; // on its source's remote: push never sends it here (lib/imports.ts)
    if (r.kind === 'file') {
      expect(r.oid, r.size, r.path, r.pointer);
      continue;
    }
    let entries: ManifestEntry[];
    let size: number;
    if (refused.has(r.oid)) {
      expect(r.oid, store.sizeOf(r.oid), `${r.path}/`, r.pointer); // its files are unknown: reported already
      continue;
    } else if (store.has(r.oid)) {
      entries = store.readManifest(r.oid);
      size = store.sizeOf(r.oid);
    } else {
      // Not cached (or quarantined): the remote's copy, hash-checked, says which files the directory has.
      let bytes: Buffer;
      try {
        bytes = await readVerified(remote, store, r.oid);
      } catch (err) {
        if (!(err instanceof RemoteError) || err.wide) throw err;
        if (err.code === 'OBJECT_NOT_ON_REMOTE') check.missing.push({ oid: r.oid, path: `${r.path}/`, pointer: r.pointer });
        else res.errors.push(`${r.path}/: ${err.message}`);
        continue;
      }
      try {
        entries = parseManifest(bytes.toString('utf8'), `${r.oid} on remote "${remote.name}"`);
      } catch (err) {
        if (!(err instanceof FormatError)) throw err;
        res.errors.push(err.message);
        continue;
      }
      size = bytes.length;
    }
    expect(r.oid, size, `${r.path}/`, r.pointer);
    for (const e of entries) expect(e.sha256, e.size, `${r.path}/${e.relpath}`, r.pointer);
  }
  const limit = pLimit(remoteJobs(repo, remote, jobs));
  await limit.map([...want.values()], async (w) => {
    let st: { size: number } | undefined;
    try {
      st = await remote.stat(w.oid);
    } catch (err) {
      if (!(err instanceof RemoteError) || err.wide) throw err;
      res.errors.push(`${w.path}: ${err.message}`);
      return;
    }
    check.checked++;
    const { size, ...where } = w;
    if (!st) check.missing.push(where);
    else if (st.size !== size) check.wrongSize.push({ ...where, expected: size, actual: st.size });
  });
  const byPath = (a: MissingObject, b: MissingObject) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  check.missing.sort(byPath);
  check.wrongSize.sort(byPath);
  return check;
}
