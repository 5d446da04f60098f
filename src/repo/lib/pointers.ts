import fs from 'node:fs';
import path from 'node:path';
import { errnoCode, FormatError, TdvError, UsageError, vanished } from '../../errors.js';
import { decodeUtf8, isInside, MAX_POINTER_BYTES, readFileOrUndefined } from '../../util/fs.js';
import { isDirOid } from '../../formats/oid.js';
import { quotePath, shellWord } from '../../formats/paths.js';
import { outAbsPath, parsePointer, type Pointer, type PointerOut, POINTER_EXT } from '../../formats/pointer.js';
import type { Repo } from '../repo.js';
import { TDV_DIR } from '../../formats/layout.js';
import type { LockFile } from '../../stages/lock.js';

const LOCK_FILE = 'tdv.lock';

/**
 * Finds every pointer file in the workspace. Directories that are themselves
 * tracked (a sibling `<name>.tdv` exists) are not entered: pointers cannot live
 * inside tracked data, and skipping them keeps this walk small.
 */
export async function findPointers(repo: Repo, opts: { everything?: boolean; withLock?: boolean; onBad?: (err: FormatError) => void } = {}): Promise<Pointer[]> {
  // Stage outputs recorded in tdv.lock are tracked data too: push, pull, checkout and gc include them.
  const lockPtr = opts.withLock === false ? undefined : await lockPointer(repo);
  const stageDirs = new Set(lockPtr?.outs.filter((o) => o.nfiles !== undefined).map((o) => o.path));
  // gc must see every pointer, even one .tdvignore hides or in an unreadable
  // directory, or it would delete data still referenced.
  const ignored = opts.everything ? undefined : await repo.ignore();
  const files: string[] = [];
  const visit = (dir: string, rel: string): void => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      // A directory nobody may read, or one too deep for the system's path limit, holds no
      // pointer tdv could use; only gc, which must see every pointer, has to refuse.
      const code = errnoCode(err);
      if ((code === 'EACCES' || code === 'ENAMETOOLONG') && !opts.everything) return;
      if (code === 'EACCES') throw new TdvError('UNREADABLE', `cannot read ${quotePath(repo.rel(dir))}: pointers in it would be missed; fix its permissions first`);
      if (code === 'ENAMETOOLONG')
        throw new TdvError(
          'UNREADABLE',
          `cannot read ${quotePath(repo.rel(dir).slice(0, 200))}...: its path is longer than the system allows, so pointers in it would be missed; move or shorten it first`,
        );
      throw err;
    }
    const names = new Set(ents.map((e) => e.name));
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (e.name === '.git' || (rel === '' && e.name === TDV_DIR)) continue;
        if (names.has(e.name + POINTER_EXT) || stageDirs.has(r) || ignored?.(r, true)) continue;
        visit(path.join(dir, e.name), r);
      } else if (e.name.endsWith(POINTER_EXT) && e.isFile() && !ignored?.(r, false)) {
        files.push(path.join(dir, e.name));
      }
    }
  };
  visit(repo.root, '');
  files.sort();
  // With onBad (fsck), a pointer tdv cannot read is reported and the others still count.
  const read = opts.onBad
    ? (f: string) =>
        readPointer(repo, f).catch((err: unknown) => {
          if (!(err instanceof FormatError)) throw err;
          opts.onBad!(err);
          return undefined;
        })
    : (f: string) => readPointer(repo, f);
  const pointers = (await Promise.all(files.map(read))).filter((p): p is Pointer => p !== undefined);
  if (lockPtr) pointers.push(lockPtr);
  checkOverlaps(repo, pointers);
  return pointers;
}

/**
 * Two pointers tracking the same path, or one inside the other, would fight
 * over the same files: an error at load time, naming both. With keys ending in
 * "/", a path that contains another sorts right before it or before a path it
 * also contains, so comparing neighbours finds every overlap.
 */
export function checkOverlaps(repo: Pick<Repo, 'rel'>, pointers: readonly Pointer[], revision?: string): void {
  const name = (p: Pointer) => quotePath(revision === undefined ? repo.rel(p.file) : `${revision}:${repo.rel(p.file)}`);
  const outs = allOuts(repo, pointers).map((o) => ({ key: `${o.rel}/`, o }));
  outs.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (let i = 1; i < outs.length; i++) {
    const a = outs[i - 1]!.o;
    const b = outs[i]!.o;
    if (!outs[i]!.key.startsWith(outs[i - 1]!.key)) continue;
    const what = a.rel === b.rel ? `also tracks ${quotePath(b.rel)}` : `tracks ${quotePath(b.rel)}, which is inside ${quotePath(a.rel)}`;
    throw new FormatError(name(b.ptr), `${what} (tracked by ${name(a.ptr)})`, 'Delete one of the two pointer files');
  }
}

/** Reads and validates a pointer file of the workspace; pointersAt reads those of a revision alike. */
export async function readPointer(repo: Repo, file: string): Promise<Pointer> {
  const rel = repo.rel(file);
  const shown = quotePath(rel); // in messages: a name cannot forge a line
  const bytes = readFileOrUndefined(file, MAX_POINTER_BYTES, shown, 'a pointer file');
  if (bytes === undefined) {
    // Node shows a name that is not UTF-8 with U+FFFD, a name no file has (see walk.ts).
    if (rel.includes('\uFFFD')) throw new FormatError(shown, 'its name is not valid UTF-8, so tdv cannot read it', 'Rename the pointer file');
    throw vanished(shown);
  }
  return parsePointer(decodeUtf8(bytes, shown, POINTER_FIX), file, rel);
}

/** What to do about a pointer file tdv cannot read. */
export const POINTER_FIX = 'Fix or delete the pointer file (git checkout -- <file> restores the committed one)';

/** One tracked output, optionally narrowed to a path inside a tracked directory. */
export interface Selected {
  ptr: Pointer;
  out: PointerOut;
  abs: string;
  /** Repo-relative POSIX path of the output. */
  rel: string;
  /** A relpath inside the tracked directory, when the target named a part of it. */
  sub?: string;
}

export function allOuts(repo: Pick<Repo, 'rel'>, pointers: readonly Pointer[]): Selected[] {
  return pointers.flatMap((ptr) => ptr.outs.map((out) => ({ ptr, out, abs: outAbsPath(ptr, out), rel: repo.rel(outAbsPath(ptr, out)) })));
}

/**
 * Resolves command-line targets (absolute) to tracked outputs: a pointer file,
 * a tracked path, a path inside a tracked directory, or a directory holding
 * pointers. No targets selects everything.
 */
export function selectTargets(repo: Repo, pointers: readonly Pointer[], targets: readonly string[]): Selected[] {
  const outs = allOuts(repo, pointers);
  if (targets.length === 0) return outs;
  const picked: Selected[] = [];
  for (const t of targets) {
    if (!isInside(repo.root, t)) throw new UsageError(`${quotePath(t)} is outside the repository ${quotePath(repo.root)}`);
    const found: Selected[] = [];
    for (const s of outs) {
      if (s.ptr.file === t || s.abs === t || (t !== repo.root && isInside(t, s.abs))) found.push(s);
      else if (isInside(s.abs, t)) found.push({ ...s, sub: repo.rel(t).slice(s.rel.length + 1) });
    }
    if (t === repo.root) found.push(...outs);
    if (found.length === 0) {
      throw new TdvError('NOT_TRACKED', `${quotePath(repo.rel(t))} is not tracked by tdv; run \`tdv add ${shellWord(repo.rel(t))}\` to track it`);
    }
    // A path inside a tracked directory is a target only if it names something there: a
    // typo would otherwise select nothing and succeed, as if all were well.
    for (const f of found) {
      if (f.sub !== undefined && subMatches(repo, f.out, f.sub, t) === false) {
        throw new TdvError(
          'NOT_TRACKED',
          `${quotePath(repo.rel(t))} is inside ${quotePath(f.rel)} (tracked by ${quotePath(repo.rel(f.ptr.file))}), but neither its recorded version nor the workspace has it; check the path`,
        );
      }
    }
    for (const f of found) if (!picked.some((p) => p.abs === f.abs && p.sub === f.sub)) picked.push(f);
  }
  return picked;
}

/**
 * Whether `sub`, a target inside the tracked directory `out`, names anything there: a file or
 * directory of its recorded version (from the cached manifest), or something
 * in the workspace at `abs`. Undefined when that cannot be told (the manifest
 * is not cached, and nothing is there): the command then says what it lacks.
 */
export function subMatches(repo: Repo, out: PointerOut, sub: string, abs: string): boolean | undefined {
  if (fs.lstatSync(abs, { throwIfNoEntry: false }) !== undefined) return true;
  if (!isDirOid(out.sha256) || !repo.store.has(out.sha256)) return undefined;
  return repo.store.readManifest(out.sha256).some((e) => e.relpath === sub || e.relpath.startsWith(`${sub}/`));
}

/** The outputs tdv.lock records, as one pointer whose paths are repo-relative. */
async function lockPointer(repo: Repo): Promise<Pointer | undefined> {
  const file = path.join(repo.root, LOCK_FILE);
  if (!fs.existsSync(file)) return undefined;
  const { readLock } = await import('../../stages/lock.js');
  return lockAsPointer(file, await readLock(repo.root));
}

/** The outputs a parsed tdv.lock records, as one pointer (`file` is where the lock file is, or would be). */
export function lockAsPointer(file: string, lock: LockFile): Pointer | undefined {
  const outs: PointerOut[] = [];
  for (const s of lock.values()) {
    // An output declared `cache: false` is kept in Git: nothing to check out, fetch or push.
    for (const o of s.outs) if (o.cache !== false) outs.push({ path: o.path, sha256: o.sha256, size: o.size, ...(o.nfiles !== undefined ? { nfiles: o.nfiles } : {}) });
  }
  return outs.length ? { file, outs } : undefined;
}
