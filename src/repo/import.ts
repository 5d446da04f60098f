import path from 'node:path';
import { TdvError, UsageError } from '../errors.js';
import { TDV_DIR } from '../formats/layout.js';
import type { Oid } from '../formats/oid.js';
import { quotePath as q, relPathProblem, shellWord } from '../formats/paths.js';
import { type ImportRecord, POINTER_EXT, type PointerOut, serializePointer } from '../formats/pointer.js';
import { isInside, lstatOrUndefined } from '../util/fs.js';
import { addGitignoreEntry } from '../workspace/gitignore.js';
import { fetchSourceData, planImportCheckout, shownUrl } from './lib/imports.js';
import { allOuts, findPointers } from './lib/pointers.js';
import type { TransferOptions, TransferResult } from './lib/transfer.js';
import type { Repo } from './repo.js';

export interface ImportOptions {
  /** The source repository: anything `git clone` takes (a path, file://, ssh://, https://). */
  url: string;
  /** What a relative path `url` is relative to (default: the process's working directory). */
  cwd?: string;
  /** The file or directory in the source (relative to its root). */
  path: string;
  /** A branch, tag, commit id or date of the source (default: its default branch). */
  rev?: string;
  /**
   * Where to put it here (absolute); default: the path's last component in
   * the repository's root. An existing directory that is not tracked data:
   * inside it, under that name (as DVC's `-o`).
   */
  out?: string;
  /** The source's remote to read from, when not its default. */
  remote?: string;
  /** Replace what is at `out` (its content is lost when the cache lacks it). */
  force?: boolean;
  jobs?: number;
  /** `--limit-rate`: bytes per second from the source's remote. */
  limitRate?: number;
  progress?: TransferOptions['progress'];
}

export interface ImportResult {
  /** Repo-relative path of the imported data. */
  path: string;
  pointer: string;
  /** Where it comes from: the pointer's import record. */
  import: ImportRecord;
  oid: Oid;
  size: number;
  nfiles?: number;
  /** The download from the source's remote. */
  fetch: TransferResult;
  /** Files written into the workspace. */
  restored: number;
  /** Repo-relative files the user should `git add`. */
  gitFiles: string[];
}

/**
 * Downloads data another tdv repository tracks (or a Git file or directory of
 * it) into this workspace and tracks it here: the pointer records the outputs
 * as usual plus where they came from (source URL, path, revision and the
 * commit it resolved to), which `tdv update` moves and `status` checks. The
 * objects go into this repository's cache; the files are written by the
 * checkout engine, through the guard.
 */
export async function importData(repo: Repo, opts: ImportOptions): Promise<ImportResult> {
  const srcPath = opts.path.replace(/\/+$/, '');
  const problem = srcPath === '' ? 'is the root of the repository' : relPathProblem(srcPath);
  if (problem !== undefined) throw new UsageError(`the path to import ${q(opts.path)} ${problem}; give a file or directory inside the source repository`);
  let abs = opts.out ?? path.join(repo.root, path.posix.basename(srcPath));
  if (opts.out !== undefined && lstatOrUndefined(abs)?.isDirectory() && lstatOrUndefined(`${abs.replace(/\/+$/, '')}${POINTER_EXT}`) === undefined) {
    abs = path.join(abs, path.posix.basename(srcPath));
  }
  return repo.withLock('import', async () => {
    const rel = await checkDestination(repo, abs, opts.force === true);
    const ptrRel = `${rel}${POINTER_EXT}`;
    const { normalizeSourceUrl, openExternal } = await import('./lib/external.js');
    const ext = await openExternal(normalizeSourceUrl(opts.url, opts.cwd).url, { rev: opts.rev, here: repo, remote: opts.remote, limitRate: opts.limitRate });
    try {
      const data = await fetchSourceData(repo, ext, srcPath, rel, opts);
      const { ctx, plan } = await planImportCheckout(
        repo,
        { rel, oid: data.sha256, size: data.size, nfiles: data.nfiles, isexec: data.isexec, source: ptrRel },
        { force: opts.force, fix: `move them away, or add --force to discard them` },
      );
      const { applyCheckout } = await import('../workspace/checkout.js');
      await applyCheckout({ ...ctx, progress: undefined }, plan);
      const record: ImportRecord = {
        url: ext.url,
        path: srcPath,
        ...(opts.rev !== undefined ? { rev: opts.rev } : {}),
        commit: ext.commit,
        ...(opts.remote !== undefined ? { remote: opts.remote } : {}),
      };
      const out: PointerOut = {
        path: path.posix.basename(rel),
        sha256: data.sha256,
        size: data.size,
        ...(data.nfiles !== undefined ? { nfiles: data.nfiles } : {}),
        ...(data.isexec ? { isexec: true } : {}),
      };
      // The pointer last: it is what says the data is there.
      repo.guard.writeControlFile(ptrRel, serializePointer([out], { import: record }));
      addGitignoreEntry(repo.guard, rel);
      const { updatePlaced } = await import('./lib/placed.js');
      updatePlaced(repo, [{ rel, oid: data.sha256, by: ptrRel }]);
      const gitignore = path.posix.join(path.posix.dirname(rel), '.gitignore');
      return {
        path: rel,
        pointer: ptrRel,
        import: record,
        oid: data.sha256,
        size: data.size,
        ...(data.nfiles !== undefined ? { nfiles: data.nfiles } : {}),
        fetch: data.fetched,
        restored: plan.writes.length + plan.chmods.length,
        gitFiles: [ptrRel, gitignore],
      };
    } finally {
      await ext.close();
    }
  });
}

/**
 * Where imported data may go: inside the repository, not tdv's or Git's own
 * files, not a pointer's name, not over or inside data tracked already or a
 * Git-tracked file, and (without `force`) nothing there yet. Returns the
 * repo-relative path. (The guard checks symlinks on the way when it plans.)
 */
async function checkDestination(repo: Repo, abs: string, force: boolean): Promise<string> {
  abs = abs.replace(/\/+$/, '') || '/';
  if (!isInside(repo.root, abs) || abs === repo.root) throw new UsageError(`${q(abs)} is not inside the repository ${q(repo.root)}; pass -o with a path inside it`);
  const rel = repo.rel(abs);
  const shown = q(rel);
  if (isInside(path.join(repo.root, TDV_DIR), abs)) throw new UsageError(`${shown} is inside ${TDV_DIR}/, tdv's own directory; pass -o with another path`);
  const problem = relPathProblem(rel);
  if (problem !== undefined) throw new UsageError(`${shown} ${problem}; pass -o with another path`);
  if (abs.endsWith(POINTER_EXT)) throw new UsageError(`${shown} ends in ${POINTER_EXT}, the ending of tdv's pointer files; pass -o with another name`);
  if (/[\n\r]/.test(rel)) throw new UsageError(`${shown} has a line break in its name, which a .gitignore line cannot hold; pass -o with another name`);
  if (['.gitignore', '.gitattributes', '.tdvignore', 'tdv.yaml', 'tdv.lock'].includes(path.basename(abs))) throw new UsageError(`${shown} is a file of Git's or tdv's own; pass -o with another name`);
  if (repo.git) {
    const g = repo.gitPath(rel);
    const hit = repo.gitTracked().firstUnder(g);
    if (hit !== undefined || repo.gitTracked().has(g)) {
      throw new UsageError(`${shown} ${hit === g || hit === undefined ? 'is' : 'holds files that are'} tracked by Git; pass -o with another path, or \`git rm -r --cached ${shellWord(rel)}\` first`);
    }
  }
  if (repo.git) {
    // The pointer is what Git must commit: a rule ignoring it would leave the import unrestorable from a clone (as add checks).
    const { gitIgnoredBy } = await import('../git/check-ignore.js');
    const rule = gitIgnoredBy(repo.git.root, [repo.gitPath(`${rel}${POINTER_EXT}`)])[0];
    if (rule) {
      throw new UsageError(
        `Git ignores ${q(`${rel}${POINTER_EXT}`)} (rule ${JSON.stringify(rule.pattern)} in ${q(rule.source)}:${rule.line}), so the import could not be committed; change that rule, or pass -o with another path`,
      );
    }
  }
  // Resolves through the guard: a symlink on the way is refused here, before anything is fetched.
  repo.guard.resolve(rel, 'write');
  const outs = allOuts(repo, await findPointers(repo));
  for (const o of outs) {
    const by = q(repo.rel(o.ptr.file));
    if (o.abs === abs) {
      const fix = o.ptr.import ? `\`tdv update ${shellWord(repo.rel(o.ptr.file))}\` moves it to another version` : `\`tdv remove ${shellWord(repo.rel(o.ptr.file))}\` stops tracking it first`;
      throw new TdvError('EXISTS', `${shown} is already tracked by ${by}; ${fix}, or pass -o with another path`);
    }
    if (isInside(o.abs, abs)) throw new UsageError(`${shown} is inside ${q(o.rel)}, which ${by} tracks; pass -o with a path outside it`);
    if (isInside(abs, o.abs)) throw new UsageError(`${shown} contains ${q(o.rel)}, which ${by} tracks; pass -o with another path`);
  }
  if (lstatOrUndefined(`${abs}${POINTER_EXT}`) !== undefined) throw new TdvError('EXISTS', `${q(`${rel}${POINTER_EXT}`)} already exists; pass -o with another path`);
  if (!force && lstatOrUndefined(abs) !== undefined) {
    throw new TdvError('EXISTS', `${shown} already exists; pass -o with another path, or --force to replace it (what the cache lacks of it is lost)`);
  }
  return rel;
}
