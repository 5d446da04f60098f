import { UsageError } from '../errors.js';
import type { Oid } from '../formats/oid.js';
import { quotePath as q, shellWord } from '../formats/paths.js';
import { type ImportRecord, outAbsPath, type Pointer, type PointerOut, serializePointer } from '../formats/pointer.js';
import { fetchSourceData, isCommitId, planImportCheckout } from './lib/imports.js';
import { findPointers, selectTargets } from './lib/pointers.js';
import type { TransferOptions, TransferResult } from './lib/transfer.js';
import type { CheckoutContext, CheckoutPlan } from '../workspace/checkout.js';
import type { Repo } from './repo.js';

export interface UpdateOptions {
  /** Absolute paths of imported outputs or their pointers; none means every import. */
  targets?: string[];
  /** Move to this revision of the source (recorded from now on) instead of the recorded one. */
  rev?: string;
  /** Discard workspace changes to imported data that the cache lacks. */
  force?: boolean;
  jobs?: number;
  /** `--limit-rate`: bytes per second from the sources' remotes. */
  limitRate?: number;
  progress?: TransferOptions['progress'];
}

export interface UpdatedImport {
  path: string;
  pointer: string;
  url: string;
  /** The revision now recorded (absent: the source's default branch). */
  rev?: string;
  /** The commit recorded before. */
  from: string;
  /** The commit recorded now. */
  to: string;
  /** `updated`: the pointer moved to `to` (and the data with it, when it changed); `current`: nothing to do. */
  state: 'updated' | 'current';
  /** The data's object id before and after (equal when the source's commit moved but the data did not). */
  oldOid: Oid;
  oid: Oid;
  /** The download from the source's remote. */
  fetch?: TransferResult;
}

export interface UpdateResult {
  imports: UpdatedImport[];
  /** Repo-relative files the user should `git add` (the rewritten pointers). */
  gitFiles: string[];
}

type Imported = Pointer & { import: ImportRecord };

interface Planned {
  ptr: Imported;
  out: PointerOut;
  rel: string;
  record: ImportRecord;
  result: UpdatedImport;
  apply?: { ctx: CheckoutContext; plan: CheckoutPlan };
}

/**
 * Moves imported data to the version its source's revision names now (or to
 * `rev`, which is then recorded): resolves each source, downloads what
 * changed, plans every checkout (workspace changes the cache lacks refuse the
 * whole update unless `force`, before anything is written), then writes the
 * data and rewrites the pointers. An import whose revision still names the
 * recorded commit, or that is pinned to a commit id, is left as it is.
 */
export async function update(repo: Repo, opts: UpdateOptions = {}): Promise<UpdateResult> {
  return repo.withLock('update', async () => {
    const targets = opts.targets ?? [];
    const selected = selectTargets(repo, await findPointers(repo), targets);
    const pointers = new Map<string, Imported>();
    for (const s of selected) {
      if (s.ptr.import) pointers.set(s.ptr.file, s.ptr as Imported);
      else if (targets.length > 0) {
        throw new UsageError(`${q(s.rel)} is not imported (${q(repo.rel(s.ptr.file))} has no import record); \`tdv import URL PATH\` imports data from another repository`);
      }
    }
    // A revision names one source's history: moving every import to it at once is almost surely a slip.
    if (opts.rev !== undefined && targets.length === 0 && pointers.size > 1) {
      throw new UsageError(`--rev ${shellWord(opts.rev)} would move all ${pointers.size} imports; name the ones to move (\`tdv update --rev ${shellWord(opts.rev)} TARGET...\`)`);
    }
    const { openExternal } = await import('./lib/external.js');
    const planned: Planned[] = [];
    for (const ptr of pointers.values()) {
      const imp = ptr.import;
      const out = ptr.outs[0]!;
      const rel = repo.rel(outAbsPath(ptr, out));
      const ptrRel = repo.rel(ptr.file);
      const rev = opts.rev ?? imp.rev;
      const record: ImportRecord = { ...imp, ...(rev !== undefined ? { rev } : {}) };
      const result: UpdatedImport = {
        path: rel,
        pointer: ptrRel,
        url: imp.url,
        ...(rev !== undefined ? { rev } : {}),
        from: imp.commit,
        to: imp.commit,
        state: 'current',
        oldOid: out.sha256,
        oid: out.sha256,
      };
      // Pinned to the recorded commit: nothing to ask the source.
      if (isCommitId(rev) && rev === imp.commit) {
        planned.push({ ptr, out, rel, record, result });
        continue;
      }
      const ext = await openExternal(imp.url, { rev, here: repo, remote: imp.remote, limitRate: opts.limitRate });
      try {
        record.commit = result.to = ext.commit;
        if (ext.commit === imp.commit) {
          planned.push({ ptr, out, rel, record, result });
          continue;
        }
        result.state = 'updated';
        const data = await fetchSourceData(repo, ext, imp.path, rel, opts);
        result.oid = data.sha256;
        result.fetch = data.fetched;
        const next: PointerOut = { ...out, sha256: data.sha256, size: data.size };
        delete next.nfiles;
        delete next.isexec;
        if (data.nfiles !== undefined) next.nfiles = data.nfiles;
        if (data.isexec) next.isexec = true;
        const apply = await planImportCheckout(
          repo,
          { rel, oid: data.sha256, size: data.size, nfiles: data.nfiles, isexec: data.isexec, source: ptrRel },
          { force: opts.force, fix: `\`tdv update --force ${shellWord(ptrRel)}\` discards them (copy them elsewhere first to keep them)` },
        );
        planned.push({ ptr, out: next, rel, record, result, apply });
      } finally {
        await ext.close();
      }
    }
    // Everything planned: now the writes, data first, then the pointer that records it.
    const { applyCheckout } = await import('../workspace/checkout.js');
    const { updatePlaced } = await import('./lib/placed.js');
    const gitFiles: string[] = [];
    for (const p of planned) {
      const moved = p.result.state === 'updated' || p.record.rev !== p.ptr.import.rev;
      if (!moved) continue;
      p.result.state = 'updated';
      if (p.apply) await applyCheckout(p.apply.ctx, p.apply.plan);
      repo.guard.writeControlFile(p.result.pointer, serializePointer([p.out], { desc: p.ptr.desc, meta: p.ptr.meta, import: p.record }));
      updatePlaced(repo, [{ rel: p.rel, oid: p.out.sha256, by: p.result.pointer }]);
      gitFiles.push(p.result.pointer);
    }
    return { imports: planned.map((p) => p.result), gitFiles };
  });
}
