import path from 'node:path';
import { ConflictError, TdvError } from '../../errors.js';
import { maskUrl } from '../../formats/config.js';
import type { ManifestEntry } from '../../formats/manifest.js';
import type { Oid } from '../../formats/oid.js';
import { quotePath, shellWord } from '../../formats/paths.js';
import type { CheckoutContext, CheckoutPlan, CheckoutTarget } from '../../workspace/checkout.js';
import type { ExternalRepo } from './external.js';
import { type ImportRecord, outAbsPath, type Pointer } from '../../formats/pointer.js';
import type { Selected } from './pointers.js';
import type { ImportTransfer, TransferOptions, TransferResult } from './transfer.js';
import type { Repo } from '../repo.js';

/**
 * Imported data (`tdv import`) in the commands that move objects: its objects
 * come from the source repository's remote, not from this repository's. A
 * pointer with an `import` record is otherwise a pointer like any other:
 * checkout, status of the workspace copy and gc treat it alike.
 *
 * Push leaves imported objects out (as DVC does): the source's remote is
 * where they live, and copying them into this repository's remote would
 * spread another team's data into storage it does not manage.
 */

/** Whether a selected output is imported from another repository. */
export function isImported(s: Selected): boolean {
  return s.ptr.import !== undefined;
}

/** A commit id written out in full: an import pinned to it never moves. */
export function isCommitId(rev: string | undefined): boolean {
  return rev !== undefined && /^[0-9a-f]{40}$/.test(rev);
}

/** A source URL for messages (credentials masked). */
export function shownUrl(url: string): string {
  return maskUrl(url);
}

/** Imported outputs grouped by where their objects come from (source, commit, remote). */
function bySource(selected: readonly Selected[]): Map<string, Selected[]> {
  const groups = new Map<string, Selected[]>();
  for (const s of selected) {
    const i = s.ptr.import!;
    const key = JSON.stringify([i.url, i.commit, i.remote ?? '']);
    const g = groups.get(key);
    if (g) g.push(s);
    else groups.set(key, [s]);
  }
  return groups;
}

/**
 * Fetches the objects of imported outputs the cache lacks, from each source's
 * remote (its `.tdv/config.yaml` at the recorded commit), verified like every
 * download. What no remote holds (an imported Git file, or the manifest tdv
 * wrote for an imported directory that is not one tracked output) is made
 * again from the source's history at the recorded commit, and must come out
 * as the object the pointer records. A source whose outputs are all cached is
 * not contacted at all. A source that cannot be opened fails its outputs,
 * not the others.
 */
export async function fetchImports(repo: Repo, selected: readonly Selected[], opts: TransferOptions): Promise<ImportTransfer[]> {
  const { openExternal } = await import('./external.js');
  const out: ImportTransfer[] = [];
  for (const group of bySource(selected).values()) {
    const imp = group[0]!.ptr.import!;
    if (group.every((s) => repo.store.hasAll(s.out.sha256))) continue; // cheapest check first: no clone, no network
    const res: ImportTransfer = { url: imp.url, remote: imp.remote ?? '', transferred: 0, skipped: 0, failed: [], bytes: 0 };
    try {
      const ext = await openExternal(imp.url, { rev: imp.commit, here: repo, remote: imp.remote, limitRate: opts.limitRate });
      try {
        // One output per pointer (a target inside an imported directory fetches all of it).
        const outs = new Map(group.map((s) => [s.ptr.file, s]));
        for (const s of outs.values()) {
          const imp = s.ptr.import!; // same source and commit as the group's; its own path
          const want = s.ptr.outs[0]!;
          const rel = s.rel;
          if (repo.store.hasAll(want.sha256)) {
            res.skipped++;
            continue;
          }
          try {
            const data = await fetchSourceData(repo, ext, imp.path, rel, opts);
            for (const k of ['transferred', 'skipped', 'bytes'] as const) res[k] += data.fetched[k];
            if (data.fetched.remote) res.remote = data.fetched.remote;
            if (data.sha256 !== want.sha256) {
              res.failed.push({
                oid: want.sha256,
                path: rel,
                error: `${shownUrl(imp.url)} at ${imp.commit.slice(0, 12)} has other data at ${quotePath(imp.path)} than ${quotePath(repo.rel(s.ptr.file))} records; \`tdv update ${shellWord(repo.rel(s.ptr.file))}\` takes what it has`,
              });
            }
          } catch (err) {
            if (err instanceof SourceFetchError) {
              res.remote = err.fetched.remote;
              res.failed.push(...err.fetched.failed);
            } else throw err;
          }
        }
      } finally {
        await ext.close();
      }
    } catch (err) {
      if (!(err instanceof TdvError)) throw err;
      // The whole source failed (unreachable, no remote): each of its outputs says so.
      // (Errors of the source's remote already begin with its URL.)
      const error = err.message.startsWith(shownUrl(imp.url)) ? err.message : `imported from ${shownUrl(imp.url)}: ${err.message}`;
      for (const s of group) res.failed.push({ oid: s.out.sha256, path: s.rel, error });
    }
    out.push(res);
  }
  return out;
}

/**
 * The fetch of `pull`, `fetch` and `checkout --pull`: this repository's
 * outputs from its remote (by `own`), imported ones from their sources. With
 * no imports selected this is `own` on this repository's remote, as before.
 * With only imports, this repository's remote is not opened (a repository
 * that only imports needs none), unless `-r` names one.
 */
export async function fetchWithImports(
  repo: Repo,
  selected: readonly Selected[],
  opts: TransferOptions,
  own: (remote: import('../../remote/remote.js').Remote, selected: readonly Selected[]) => Promise<TransferResult>,
): Promise<TransferResult> {
  const { withRemote } = await import('./transfer.js');
  const theirs = selected.filter(isImported);
  if (theirs.length === 0) return withRemote(repo, opts, (remote) => own(remote, selected));
  const mine = selected.filter((s) => !isImported(s));
  const res: TransferResult =
    mine.length > 0 || opts.runCache || opts.remote !== undefined
      ? await withRemote(repo, opts, (remote) => own(remote, mine))
      : { remote: repo.config.core.remote ?? '', transferred: 0, skipped: 0, failed: [], bytes: 0 };
  // One progress plan per transfer: the imports' own bars would restart the total.
  const imports = await fetchImports(repo, theirs, { ...opts, progress: mine.length === 0 ? opts.progress : undefined });
  return imports.length > 0 ? { ...res, imports } : res;
}

/** An import whose source `status` asked about. */
export interface ImportStatus {
  /** The imported output (repo-relative). */
  path: string;
  pointer: string;
  url: string;
  /** The path in the source. */
  source: string;
  rev?: string;
  /** The commit recorded in the pointer. */
  commit: string;
  /**
   * `moved`: the revision now names `latest` (`tdv update` brings it);
   * `current`: it still names `commit`; `pinned`: a commit id, which never
   * moves (not asked); `unreachable`: the source could not be asked (`error`).
   */
  state: 'moved' | 'current' | 'pinned' | 'unreachable';
  latest?: string;
  error?: string;
}

/** How long status waits for a source's answer. */
export const IMPORT_CHECK_TIMEOUT_MS = 15_000;

/**
 * Whether the sources of imported outputs have moved: one `git ls-remote`
 * per distinct source and revision, all at once, each bounded by a timeout.
 * A source that cannot be asked is reported (`unreachable`), never an error.
 */
export async function checkImports(repo: Repo, selected: readonly Selected[], timeoutMs = IMPORT_CHECK_TIMEOUT_MS): Promise<ImportStatus[]> {
  const pointers = new Map<string, Pointer & { import: ImportRecord }>();
  for (const s of selected) if (s.ptr.import) pointers.set(s.ptr.file, s.ptr as Pointer & { import: ImportRecord });
  const { remoteRevision } = await import('./external.js');
  const asked = new Map<string, Promise<{ latest?: string; error?: string }>>();
  const ask = (url: string, rev: string | undefined) => {
    const key = JSON.stringify([url, rev ?? null]);
    let p = asked.get(key);
    if (!p) {
      // The timeout also ends git (an ssh source that never answers would keep tdv from exiting).
      p = withTimeout(remoteRevision(url, rev, process.env, timeoutMs), timeoutMs).then(
        (latest) => (latest === undefined ? { error: rev === undefined ? 'it has no HEAD' : `it has no branch or tag "${rev}"` } : { latest }),
        (err: unknown) => ({ error: err instanceof Error ? err.message : String(err) }),
      );
      asked.set(key, p);
    }
    return p;
  };
  return Promise.all(
    [...pointers.values()].map(async (ptr): Promise<ImportStatus> => {
      const imp = ptr.import;
      const base = { path: repo.rel(outAbsPath(ptr, ptr.outs[0]!)), pointer: repo.rel(ptr.file), url: imp.url, source: imp.path, commit: imp.commit };
      const withRev = imp.rev === undefined ? base : { ...base, rev: imp.rev };
      // A commit id, or a date (the last commit before it stays the last): nothing can move it.
      // (An abbreviated commit id too: what it resolved to starts with it.)
      const abbreviated = imp.rev !== undefined && /^[0-9a-f]{4,39}$/.test(imp.rev) && imp.commit.startsWith(imp.rev);
      if (isCommitId(imp.rev) || abbreviated || imp.rev?.startsWith('@')) return { ...withRev, state: 'pinned' };
      const r = await ask(imp.url, imp.rev);
      if (r.error !== undefined) return { ...withRev, state: 'unreachable', error: r.error };
      return r.latest === imp.commit ? { ...withRev, state: 'current' } : { ...withRev, state: 'moved', latest: r.latest };
    }),
  );
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within ${Math.round(ms / 1000)} s`)), ms);
    timer.unref();
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}

/** The data of a path of a source revision, in this repository's cache: the output a pointer records. */
export interface SourceData {
  sha256: Oid;
  size: number;
  nfiles?: number;
  isexec?: boolean;
  /** The download from the source's remote (objects already cached are not asked for). */
  fetched: TransferResult;
}

/**
 * Puts the data of `srcPath` at the source's revision into this repository's
 * cache and returns its object id, as a pointer records it. A tracked file or
 * directory keeps its own id (its objects come from the source's remote,
 * verified); Git files, and directories that are not one tracked output
 * (Git files, a part of a tracked directory, or both), are stored here and
 * described by a manifest written here. `rel`: where it will be checked out
 * (for messages). Fails, with nothing written outside the cache, when any
 * object could not be downloaded.
 */
export async function fetchSourceData(repo: Repo, ext: ExternalRepo, srcPath: string, rel: string, opts: { jobs?: number; progress?: TransferOptions['progress'] }): Promise<SourceData> {
  const store = repo.store;
  const snap = await ext.snapshot();
  const at = `${ext.rev ?? 'HEAD'} (${ext.commit.slice(0, 12)})`;
  // A path inside a tracked directory: its manifest first (stat reads it), by the same way as the data.
  const parts = srcPath.split('/');
  for (let i = 1; i < parts.length; i++) {
    const up = await snap.stat(parts.slice(0, i).join('/'));
    if (up?.kind !== 'dir') break;
    if (up.oid === undefined) continue;
    if (!store.has(up.oid)) {
      const sel: Selected = {
        ptr: { file: path.join(repo.root, `${rel}.tdv`), outs: [] },
        out: { path: parts[i - 1]!, sha256: up.oid, size: up.size ?? 0, nfiles: 0 },
        abs: path.join(repo.root, rel),
        rel: parts.slice(0, i).join('/'),
        sub: parts.slice(i).join('/'),
      };
      // A path the manifest lacks is NOT_FOUND below, once the manifest is here.
      await fetchFromSource(repo, ext, sel.rel, [sel], opts).catch((err: unknown) => {
        if (!(err instanceof TdvError && err.code === 'NOT_TRACKED')) throw err;
      });
      if (!store.has(up.oid))
        throw new SourceFetchError(ext, srcPath, {
          remote: ext.remoteName ?? '',
          transferred: 0,
          skipped: 0,
          failed: [{ oid: up.oid, path: sel.rel, error: 'its list of files could not be downloaded' }],
          bytes: 0,
        });
    }
    break;
  }
  const entry = await snap.stat(srcPath);
  if (!entry) {
    throw new TdvError(
      'NOT_FOUND',
      `${quotePath(srcPath)} does not exist in ${shownUrl(ext.url)} at ${at}; \`tdv ls ${shellWord(ext.url)}${ext.rev === undefined ? '' : ` --rev ${shellWord(ext.rev)}`}\` lists what it has`,
    );
  }
  const fetched: TransferResult = { remote: ext.remoteName ?? '', transferred: 0, skipped: 0, failed: [], bytes: 0 };
  const fetch = async (outs: { rel: string; sha256: Oid; size: number; nfiles?: number }[]): Promise<void> => {
    const needed = outs.filter((o) => !store.hasAll(o.sha256));
    fetched.skipped += outs.length - needed.length;
    if (needed.length === 0) return; // no remote needed: a source without one can still be imported from a shared cache
    const sel: Selected[] = needed.map((o) => ({
      ptr: { file: path.join(repo.root, `${rel}.tdv`), outs: [] },
      out: { path: path.posix.basename(o.rel), sha256: o.sha256, size: o.size, ...(o.nfiles !== undefined ? { nfiles: o.nfiles } : {}) },
      abs: path.join(repo.root, o.rel),
      rel: o.rel,
    }));
    const r = await fetchFromSource(repo, ext, srcPath, sel, opts);
    fetched.remote = r.remote;
    fetched.transferred += r.transferred;
    fetched.skipped += r.skipped;
    fetched.bytes += r.bytes;
    fetched.failed.push(...r.failed);
  };
  const failedError = () => new SourceFetchError(ext, srcPath, fetched);
  let out: Omit<SourceData, 'fetched'>;
  if (entry.kind === 'file' && entry.source === 'data') {
    out = { sha256: entry.oid!, size: entry.size!, ...(entry.isexec ? { isexec: true } : {}) };
    await fetch([{ rel, sha256: out.sha256, size: out.size }]);
  } else if (entry.kind === 'file') {
    // A Git file: its bytes are in the clone; stored here like any data.
    const bytes = await snap.read(entry);
    out = { sha256: store.addBufferSync(bytes), size: bytes.length };
  } else if (entry.oid !== undefined) {
    // A tracked directory: its manifest and files from the source's remote.
    await fetch([{ rel, sha256: entry.oid, size: entry.size ?? 0, nfiles: 0 }]);
    if (fetched.failed.length > 0) throw failedError();
    out = { sha256: entry.oid, size: entry.size ?? 0, nfiles: store.readManifest(entry.oid).length };
  } else {
    // Git files, or a part of a tracked directory, or both: one manifest made here.
    const files = (await snap.list(srcPath, { recursive: true })) ?? [];
    if (files.length === 0) throw new TdvError('NOT_FOUND', `${quotePath(srcPath)} in ${shownUrl(ext.url)} at ${at} holds no files; import a directory with files in it`);
    await fetch(files.filter((f) => f.source === 'data').map((f) => ({ rel: `${rel}/${f.path.slice(srcPath.length + 1)}`, sha256: f.oid!, size: f.size! })));
    if (fetched.failed.length > 0) throw failedError();
    const entries: ManifestEntry[] = [];
    for (const f of files) {
      const relpath = f.path.slice(srcPath.length + 1);
      if (f.source === 'data') entries.push({ relpath, sha256: f.oid!, size: f.size!, ...(f.isexec ? { isexec: true } : {}) });
      else {
        const bytes = await snap.read(f);
        entries.push({ relpath, sha256: store.addBufferSync(bytes), size: bytes.length });
      }
    }
    out = { sha256: store.writeManifest(entries), size: entries.reduce((n, e) => n + e.size, 0), nfiles: entries.length };
  }
  if (fetched.failed.length > 0) throw failedError();
  return { ...out, fetched };
}

/**
 * Plans the checkout of an imported output through the checkout engine (the
 * guard checks every path), refusing workspace content the cache lacks unless
 * `force`. `fix` ends the refusal's line.
 */
export async function planImportCheckout(repo: Repo, target: CheckoutTarget, opts: { force?: boolean; fix: string }): Promise<{ ctx: CheckoutContext; plan: CheckoutPlan }> {
  const { workspaceContext } = await import('./hashing.js');
  const { planCheckout } = await import('../../workspace/checkout.js');
  const ctx = await workspaceContext(repo);
  const plan = await planCheckout(ctx, [target], { force: opts.force });
  if (plan.conflicts.length > 0) {
    const shown = plan.conflicts.slice(0, 3).map(quotePath).join(', ') + (plan.conflicts.length > 3 ? ` and ${plan.conflicts.length - 3} more` : '');
    throw new ConflictError(`${plan.conflicts.length} workspace file(s) have changes that are not in the cache and would be lost: ${shown}; ${opts.fix}`, plan.conflicts);
  }
  return { ctx, plan };
}

/** How many imports of imports are followed to find data (a cycle of imports ends here too). */
const MAX_IMPORT_DEPTH = 4;

/**
 * Fetches `sel` (the data of `srcPath` in the source `ext`) from the source's
 * remote. Data the source itself imported is not on its remote (push leaves
 * imports out): what is still missing is fetched from where the source
 * imported it, following its pointer's import record (as DVC follows chained
 * imports), up to MAX_IMPORT_DEPTH sources deep.
 */
async function fetchFromSource(repo: Repo, ext: ExternalRepo, srcPath: string, sel: readonly Selected[], opts: TransferOptions, depth = 0): Promise<TransferResult> {
  const { fetchSelected } = await import('./transfer.js');
  let res: TransferResult;
  let whole: TdvError | undefined;
  try {
    const remote = await ext.source.openRemote();
    res = await fetchSelected(repo, remote, sel, opts);
  } catch (err) {
    if (!(err instanceof TdvError)) throw err;
    whole = err; // no remote, or one that cannot be read: perhaps the data is imported there too
    res = { remote: ext.remoteName ?? '', transferred: 0, skipped: 0, failed: sel.map((s) => ({ oid: s.out.sha256, path: s.rel, error: err.message })), bytes: 0 };
  }
  if (res.failed.length === 0 || depth >= MAX_IMPORT_DEPTH) {
    if (whole && res.failed.length > 0) throw whole;
    return res;
  }
  const up = await upstreamImport(ext, srcPath);
  if (!up) {
    if (whole) throw whole;
    return res;
  }
  const { openExternal } = await import('./external.js');
  const next = await openExternal(up.url, { rev: up.commit, here: repo, remote: up.remote, limitRate: opts.limitRate });
  try {
    // Only what is still missing (fetchSelected skips what is cached now).
    const more = await fetchFromSource(repo, next, up.path, sel, { ...opts, progress: undefined }, depth + 1);
    return { ...res, transferred: res.transferred + more.transferred, bytes: res.bytes + more.bytes, received: (res.received ?? 0) + (more.received ?? 0), failed: more.failed };
  } finally {
    await next.close();
  }
}

/**
 * The import record of the source's pointer that tracks `srcPath` (or a
 * directory holding it), with the path of `srcPath` in that record's source;
 * undefined when the data is the source's own. Pointers are looked for where
 * tdv writes them: `<output>.tdv` beside each candidate output.
 */
async function upstreamImport(ext: ExternalRepo, srcPath: string): Promise<ImportRecord | undefined> {
  const { parsePointer } = await import('../../formats/pointer.js');
  const parts = srcPath.split('/');
  for (let i = parts.length; i > 0; i--) {
    const outPath = parts.slice(0, i).join('/');
    const file = `${outPath}.tdv`;
    const bytes = ext.source.history.readFileAt(ext.commit, file);
    if (bytes === undefined) continue;
    const p = await parsePointer(bytes.toString('utf8'), path.join(ext.source.root, file), `${shownUrl(ext.url)}@${ext.commit.slice(0, 12)}:${file}`);
    if (!p.import || p.outs[0]!.path !== parts[i - 1]) return undefined;
    const rest = parts.slice(i).join('/');
    return { ...p.import, path: rest === '' ? p.import.path : `${p.import.path}/${rest}` };
  }
  return undefined;
}

/** Objects of a source's data that could not be downloaded: nothing was written to the workspace. */
export class SourceFetchError extends TdvError {
  constructor(
    ext: ExternalRepo,
    srcPath: string,
    readonly fetched: TransferResult,
  ) {
    const f = fetched.failed[0]!;
    super(
      'TRANSFER_FAILED',
      `${fetched.failed.length} object(s) of ${quotePath(srcPath)} could not be downloaded from remote "${fetched.remote}" of ${shownUrl(ext.url)} (first: ${quotePath(f.path)}: ${f.error}); nothing was written to the workspace; run the command again to retry`,
    );
  }
}
