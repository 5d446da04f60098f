import path from 'node:path';
import { type ManifestEntry, sortEntries } from '../formats/manifest.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { TdvError } from '../errors.js';
import { quotePath, shellWord } from '../formats/paths.js';
import { type ImportRecord, parsePointer, type PointerInfo, type PointerOut, serializePointer } from '../formats/pointer.js';
import { Guard, UnsafePathError } from '../workspace/guard.js';
import type { Repo } from './repo.js';

export interface MergeDriverOptions {
  /** The files Git hands the driver: the common ancestor's version, ours (the result goes here), theirs. */
  base: string;
  ours: string;
  theirs: string;
  /** The pointer's path in the repository, for messages. */
  path?: string;
}

export interface MergeOutcome {
  path: string;
  merged: boolean;
  /** Data paths (files inside directories, or whole outputs) changed differently on both sides. */
  conflicts: string[];
  /** Outputs whose directory manifests were merged file by file. */
  mergedDirs: string[];
}

/**
 * A Git merge driver for pointer files: a three-way merge of each output.
 * When only one side changed an output, that side wins. When both changed a
 * directory, its manifests are merged file by file against the base (each
 * file: the side that changed it wins; both changed it the same way: fine;
 * differently: a conflict); the merged manifest goes into the cache and the
 * merged pointer into `ours`. Anything else changed on both sides is a
 * conflict: `ours` then holds both versions between conflict markers, and the
 * result lists the conflicting paths.
 */
export async function mergeDriver(repo: Repo, opts: MergeDriverOptions): Promise<MergeOutcome> {
  const shown = opts.path ?? path.basename(opts.ours);
  const file = path.join(repo.root, ...(opts.path ?? shown).split('/'));
  // Git hands the driver temp files at the top of its work tree (the tdv repository may be
  // below it): they are read and the result written through a guard of that tree, so a
  // symlink there (or on the way) is refused, never written through.
  const guard = new Guard(repo.git?.root ?? repo.root, { label: 'the Git work tree', allControl: true });
  const [baseRel, oursRel, theirsRel] = [inTree(guard, opts.base, 'base', shown), inTree(guard, opts.ours, 'ours', shown), inTree(guard, opts.theirs, 'theirs', shown)];
  const readText = (rel: string, side: string): string => {
    const text = guard.readText(rel, { source: `${shown} (${side})` });
    if (text === undefined) throw new TdvError('NOT_FOUND', `${shown}: the ${side} version ${quotePath(rel)} does not exist; run the merge driver as Git does, with the files of %O %A %B`);
    return text;
  };
  let info: PointerInfo = {};
  const imports: Record<string, ImportRecord | undefined> = {};
  const read = async (rel: string, side: string): Promise<PointerOut[]> => {
    const text = readText(rel, side);
    if (text.trim() === '') return []; // no base: added on both sides
    const p = await parsePointer(text, file, `${shown} (${side})`);
    // The pointer's own desc and meta: ours, as Git keeps ours for what it does not merge.
    if (side === 'ours') info = { desc: p.desc, meta: p.meta, import: p.import };
    imports[side] = p.import;
    return p.outs;
  };
  const [base, ours, theirs] = [await read(baseRel, 'base'), await read(oursRel, 'ours'), await read(theirsRel, 'theirs')];
  // Imported data is one version of its source: never merged file by file. The side that moved
  // its import (`tdv update`) wins whole; both moved it differently: a conflict.
  const same = (x?: ImportRecord, y?: ImportRecord) => JSON.stringify(x ?? null) === JSON.stringify(y ?? null);
  const importSide =
    imports.ours || imports.theirs ? (same(imports.ours, imports.theirs) ? 'ours' : same(imports.base, imports.ours) ? 'theirs' : same(imports.base, imports.theirs) ? 'ours' : 'conflict') : undefined;
  const byPath = (outs: PointerOut[]) => new Map(outs.map((o) => [o.path, o]));
  const [o, a, b] = [byPath(base), byPath(ours), byPath(theirs)];
  const order = [...a.keys(), ...[...b.keys()].filter((p) => !a.has(p))];
  const conflicts: string[] = [];
  const mergedDirs: string[] = [];
  const result: PointerOut[] = [];
  const dataPath = (p: string) => path.posix.join(path.posix.dirname(shown), p);
  return repo.withLock('merge-driver', async () => {
    if (importSide === 'ours' && !same(imports.ours, imports.theirs)) return { path: shown, merged: true, conflicts, mergedDirs };
    if (importSide === 'theirs') {
      guard.writeControlFile(oursRel, readText(theirsRel, 'theirs'));
      return { path: shown, merged: true, conflicts, mergedDirs };
    }
    if (importSide === 'conflict') {
      const oursText = readText(oursRel, 'ours');
      const theirsText = readText(theirsRel, 'theirs');
      guard.writeControlFile(oursRel, `<<<<<<< ours\n${oursText}${oursText.endsWith('\n') ? '' : '\n'}=======\n${theirsText}${theirsText.endsWith('\n') ? '' : '\n'}>>>>>>> theirs\n`);
      return { path: shown, merged: false, conflicts: [...new Set([...ours, ...theirs].map((x) => dataPath(x.path)))], mergedDirs };
    }
    for (const p of [...order, ...[...o.keys()].filter((k) => !a.has(k) && !b.has(k))]) {
      const [eo, ea, eb] = [o.get(p), a.get(p), b.get(p)];
      let take: PointerOut | undefined;
      if (sameOut(ea, eb)) take = ea;
      else if (sameOut(eo, ea)) take = eb;
      else if (sameOut(eo, eb)) take = ea;
      else if (ea && eb && isDirOid(ea.sha256) && isDirOid(eb.sha256) && (!eo || isDirOid(eo.sha256))) {
        const m = mergeManifests(repo, dataPath(p), eo, ea, eb);
        if (m.conflicts.length > 0) {
          conflicts.push(...m.conflicts);
          continue;
        }
        const entries = sortEntries(m.entries);
        const oid = repo.store.writeManifest(entries);
        take = {
          path: p,
          sha256: oid,
          size: entries.reduce((n, e) => n + e.size, 0),
          nfiles: entries.length,
          ...(ea.desc !== undefined ? { desc: ea.desc } : {}),
          ...(ea.meta !== undefined ? { meta: ea.meta } : {}),
        };
        mergedDirs.push(dataPath(p));
      } else {
        conflicts.push(dataPath(p));
        continue;
      }
      if (take) result.push(take);
    }
    if (conflicts.length > 0) {
      const oursText = readText(oursRel, 'ours');
      const theirsText = readText(theirsRel, 'theirs');
      guard.writeControlFile(oursRel, `<<<<<<< ours\n${oursText}${oursText.endsWith('\n') ? '' : '\n'}=======\n${theirsText}${theirsText.endsWith('\n') ? '' : '\n'}>>>>>>> theirs\n`);
      return { path: shown, merged: false, conflicts, mergedDirs };
    }
    // Every output deleted on one side and untouched on the other: Git expects a file; an empty pointer is invalid.
    if (result.length === 0) {
      throw new TdvError('MERGE_EMPTY', `${shown}: the merge removes every output it tracked; delete the pointer file (\`git rm ${shellWord(shown)}\`) to finish the merge`);
    }
    guard.writeControlFile(oursRel, serializePointer(result, info));
    return { path: shown, merged: true, conflicts, mergedDirs };
  });
}

/** The path of a file Git passed, relative to the guard's root; outside it is refused. */
function inTree(guard: Guard, abs: string, side: string, shown: string): string {
  const rel = guard.relOf(abs);
  if (rel === undefined || rel === '') {
    throw new UnsafePathError(`${shown}: the ${side} file ${quotePath(abs)} is outside ${guard.label} (${guard.root}); Git passes the merge driver files inside it`, { path: abs });
  }
  return rel;
}

function sameOut(x: PointerOut | undefined, y: PointerOut | undefined): boolean {
  if (!x || !y) return x === y;
  return x.sha256 === y.sha256 && !x.isexec === !y.isexec;
}

function sameEntry(x: ManifestEntry | undefined, y: ManifestEntry | undefined): boolean {
  if (!x || !y) return x === y;
  return x.sha256 === y.sha256 && !x.isexec === !y.isexec;
}

/** Three-way merge of directory manifests, relpath by relpath. */
function mergeManifests(repo: Repo, dir: string, o: PointerOut | undefined, a: PointerOut, b: PointerOut): { entries: ManifestEntry[]; conflicts: string[] } {
  const load = (out: PointerOut | undefined, side: string): Map<string, ManifestEntry> => {
    if (!out) return new Map();
    if (!repo.store.has(out.sha256)) {
      throw new TdvError(
        'MISSING_OBJECTS',
        `cannot merge ${dir}: the manifest of ${side} version (${out.sha256}) is not in the cache; fetch it (\`tdv fetch --rev <that branch> ${dir}\`, or \`tdv fetch --all-branches\`) and merge again`,
        { data: { paths: [dir] } },
      );
    }
    return new Map(repo.store.readManifest(out.sha256 as Oid).map((e) => [e.relpath, e]));
  };
  const [mo, ma, mb] = [load(o, 'the base'), load(a, 'our'), load(b, 'their')];
  const entries: ManifestEntry[] = [];
  const conflicts: string[] = [];
  for (const p of new Set([...ma.keys(), ...mb.keys(), ...mo.keys()])) {
    const [eo, ea, eb] = [mo.get(p), ma.get(p), mb.get(p)];
    let take: ManifestEntry | undefined;
    if (sameEntry(ea, eb)) take = ea;
    else if (sameEntry(eo, ea)) take = eb;
    else if (sameEntry(eo, eb)) take = ea;
    else {
      conflicts.push(`${dir}/${p}`);
      continue;
    }
    if (take) entries.push(take);
  }
  // A file on one side where the other made it a directory ("x" and "x/y") cannot be checked out.
  const names = new Set(entries.map((e) => e.relpath));
  for (const e of entries) {
    for (let i = e.relpath.indexOf('/'); i !== -1; i = e.relpath.indexOf('/', i + 1)) {
      if (names.has(e.relpath.slice(0, i))) conflicts.push(`${dir}/${e.relpath.slice(0, i)}`);
    }
  }
  return { entries, conflicts: [...new Set(conflicts)].sort() };
}
