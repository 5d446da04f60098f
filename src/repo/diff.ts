import fs from 'node:fs';
import type { ManifestEntry } from '../formats/manifest.js';
import { quotePath, shellWord } from '../formats/paths.js';
import { isDirOid, type Oid } from '../formats/oid.js';
import { TdvError, UsageError } from '../errors.js';
import { type GitHistory, UnknownRevisionError } from '../git/history.js';
import { type Blocker, blockerAt } from './lib/blocker.js';
import { hashWorkspace } from './lib/hashing.js';
import type { Pointer } from '../formats/pointer.js';
import { allOuts, findPointers, type Selected } from './lib/pointers.js';
import type { Repo } from './repo.js';
import { openHistory, pointersAt, resolveRevision } from './lib/revision.js';

/** One side of a diff: a revision, or the workspace (`rev` undefined). */
export interface DiffSide {
  /** The revision as given; absent for the workspace. */
  rev?: string;
  commit?: string;
}

export interface FileVersion {
  /** The object id (a file's SHA-256). */
  hash: Oid;
  size: number;
  isexec?: boolean;
  /** In the workspace: a symlink or special file stands where the data should be (no hash). */
  blocker?: Blocker;
}

/** A data file that differs: files inside tracked directories are listed one by one. */
export interface DiffEntry {
  /** Repo-relative POSIX path of the file. */
  path: string;
  status: 'added' | 'modified' | 'deleted';
  old?: FileVersion;
  new?: FileVersion;
}

export interface DiffResult {
  a: DiffSide;
  b: DiffSide;
  /** Sorted by path. */
  changes: DiffEntry[];
  summary: { added: number; modified: number; deleted: number };
}

export interface DiffOptions {
  /** Default HEAD. */
  a?: string;
  /** Default: the workspace. */
  b?: string;
  /** Absolute paths: pointer files, tracked paths, paths inside tracked directories, or directories holding them. */
  targets?: string[];
}

/** The files of one output on one side, by path; `undefined` for a side that does not track it. */
type Files = Map<string, FileVersion>;

/** A tracked output's content on one side: its id, and its files when they are needed. */
interface Content {
  /** Object id plus `+x` when executable: equal keys mean equal content. */
  key: string;
  files(): Promise<Files>;
}

interface SideOuts {
  side: DiffSide;
  outs: Map<string, Selected>;
  pointers: Pointer[];
  content(s: Selected): Promise<Content>;
}

/**
 * Compares the data of two revisions, or of a revision and the workspace, file
 * by file, without checking anything out. Directory contents come from their
 * manifests in the cache; one that is missing is an error saying which, and
 * how to fetch it.
 */
export async function diff(repo: Repo, opts: DiffOptions = {}): Promise<DiffResult> {
  let history: GitHistory | undefined;
  const hist = () => (history ??= openHistory(repo));
  try {
    // Before the first commit there is no history to compare with: an empty diff, as DVC gives
    // in a new repository (a revision named otherwise still has to exist).
    const head = (r: string | undefined) => r === undefined || r === 'HEAD' || r === '@';
    if (head(opts.a) && head(opts.b) && !hist().hasCommits()) {
      const summary = { added: 0, modified: 0, deleted: 0 };
      return { a: { rev: opts.a ?? 'HEAD' }, b: opts.b === undefined ? {} : { rev: opts.b }, changes: [], summary };
    }
    const a = await side(repo, opts.a ?? 'HEAD', hist);
    const b = opts.b === undefined ? await workspaceSide(repo) : await side(repo, opts.b, hist);
    const wanted = targetFilter(repo, opts.targets ?? [], a, b);
    const changes: DiffEntry[] = [];
    const paths = [...new Set([...a.outs.keys(), ...b.outs.keys()])].sort();
    for (const p of paths) {
      const sa = a.outs.get(p);
      const sb = b.outs.get(p);
      if (!wanted(p)) continue;
      const ca = sa ? await a.content(sa) : undefined;
      const cb = sb ? await b.content(sb) : undefined;
      if (ca && cb && ca.key === cb.key) continue;
      const fa = ca ? await ca.files() : new Map<string, FileVersion>();
      const fb = cb ? await cb.files() : new Map<string, FileVersion>();
      for (const [f, va] of fa) {
        if (!wanted(f)) continue;
        const vb = fb.get(f);
        if (!vb) changes.push({ path: f, status: 'deleted', old: va });
        else if (vb.hash !== va.hash || !vb.isexec !== !va.isexec) changes.push({ path: f, status: 'modified', old: va, new: vb });
      }
      for (const [f, vb] of fb) if (!fa.has(f) && wanted(f)) changes.push({ path: f, status: 'added', new: vb });
    }
    if (b.side.rev === undefined) repo.statCache.save();
    changes.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    const summary = { added: 0, modified: 0, deleted: 0 };
    for (const c of changes) summary[c.status]++;
    return { a: a.side, b: b.side, changes, summary };
  } finally {
    history?.close();
  }
}

/** A tracked output's files as a pointer records them: itself, or its directory's manifest from the cache. */
function recordedFiles(repo: Repo, s: Selected, side: DiffSide): Files {
  const out = s.out;
  if (!isDirOid(out.sha256)) return new Map([[s.rel, { hash: out.sha256, size: out.size, ...(out.isexec ? { isexec: true } : {}) }]]);
  if (!repo.store.has(out.sha256)) {
    const at = side.rev === undefined ? '' : ` --rev ${quotePath(side.rev)}`;
    throw new TdvError(
      'MISSING_OBJECTS',
      `cannot list the files of ${quotePath(s.rel)}${side.rev === undefined ? '' : ` at ${quotePath(side.rev)}`}: its directory manifest ${out.sha256} is not in the cache; run \`tdv fetch${at} ${shellWord(s.rel)}\` first`,
      { data: { paths: [s.rel] } },
    );
  }
  return manifestFiles(s.rel, repo.store.readManifest(out.sha256));
}

function manifestFiles(rel: string, entries: readonly ManifestEntry[]): Files {
  return new Map(entries.map((e) => [`${rel}/${e.relpath}`, { hash: e.sha256, size: e.size, ...(e.isexec ? { isexec: true } : {}) }]));
}

async function side(repo: Repo, rev: string, hist: () => GitHistory): Promise<SideOuts> {
  const h = hist();
  const at = resolveRevision(h, rev);
  const pointers = await pointersAt(repo, h, at);
  const s: DiffSide = { rev, commit: at.commit };
  return {
    side: s,
    pointers,
    outs: new Map(allOuts(repo, pointers).map((o) => [o.rel, o])),
    content: async (o) => ({ key: o.out.sha256 + (o.out.isexec ? '+x' : ''), files: async () => recordedFiles(repo, o, s) }),
  };
}

/** The workspace: the paths its pointers track, with the data as it is on disk (hashed, stat cache first). */
async function workspaceSide(repo: Repo): Promise<SideOuts> {
  const pointers = await findPointers(repo);
  return {
    side: {},
    pointers,
    outs: new Map(allOuts(repo, pointers).map((o) => [o.rel, o])),
    content: async (s) => {
      const ws = await hashWorkspace(repo, s);
      if (ws.kind === 'missing') return { key: '', files: async () => new Map() };
      if (ws.kind === 'other') {
        const blocker = blockerAt(repo.root, s.rel) ?? { path: s.rel, kind: 'special' as const };
        return { key: '?', files: async () => new Map([[s.rel, { hash: 'not a regular file', size: 0, blocker }]]) };
      }
      if (ws.kind === 'file') return { key: ws.oid + (ws.isexec ? '+x' : ''), files: async () => new Map([[s.rel, { hash: ws.oid, size: ws.size, ...(ws.isexec ? { isexec: true } : {}) }]]) };
      // The entries only when the directory differs: an unchanged one costs a walk.
      const entries = async (): Promise<ManifestEntry[]> => {
        if (ws.entries) return ws.entries;
        const again = await hashWorkspace(repo, s, { needEntries: true });
        return again.kind === 'dir' ? (again.entries ?? []) : [];
      };
      return { key: ws.oid, files: async () => manifestFiles(s.rel, await entries()) };
    },
  };
}

/**
 * Which paths the targets keep. A target is a pointer file (its outputs), a
 * tracked path, a path inside a tracked directory, or a directory holding
 * tracked data; one that names nothing tracked on either side is a usage error.
 */
function targetFilter(repo: Repo, targets: readonly string[], a: SideOuts, b: SideOuts): (p: string) => boolean {
  if (targets.length === 0) return () => true;
  const prefixes: string[] = [];
  const names = [a.side.rev ?? 'the workspace', b.side.rev ?? 'the workspace'].join(' nor in ');
  for (const t of targets) {
    const rel = repo.rel(t);
    const viaPointer = [...a.outs.values(), ...b.outs.values()].filter((s) => s.ptr.file === t).map((s) => s.rel);
    const keys = [...a.outs.keys(), ...b.outs.keys()];
    const whole = viaPointer.length > 0 || keys.some((p) => rel === '.' || p === rel || p.startsWith(`${rel}/`));
    if (!whole) {
      if (!keys.some((p) => rel.startsWith(`${p}/`))) throw new TdvError('NOT_TRACKED', `${quotePath(rel)} is not tracked by tdv in ${names}`);
      // Inside a tracked directory: a typo there would list nothing and look like "no change".
      const found = [a, b].map((side) => insideMatches(repo, side, rel, t));
      if (found.every((f) => f === false)) {
        const dir = [...a.outs.values(), ...b.outs.values()].find((s) => rel.startsWith(`${s.rel}/`))!;
        throw new TdvError(
          'NOT_TRACKED',
          `${quotePath(rel)} is inside ${quotePath(dir.rel)} (tracked by ${quotePath(repo.rel(dir.ptr.file))}), but it is in neither ${names.replace(' nor in ', ' nor ')}; check the path`,
        );
      }
    }
    prefixes.push(...(viaPointer.length > 0 ? viaPointer : [rel]));
  }
  // A path is kept when a target is it, lies above it, or (for a whole output) lies inside it.
  return (p) => prefixes.some((t) => t === '.' || p === t || p.startsWith(`${t}/`) || t.startsWith(`${p}/`));
}

/**
 * Whether one side has `rel` (at `abs` in the workspace), a path inside one of
 * its tracked directories: in the workspace, anything there; at a revision, a
 * file or directory of the recorded manifest. Undefined when the manifest is
 * not cached (the diff then says so if it needs it).
 */
function insideMatches(repo: Repo, side: SideOuts, rel: string, abs: string): boolean | undefined {
  const dir = [...side.outs.values()].find((s) => rel.startsWith(`${s.rel}/`));
  if (!dir) return false;
  if (side.side.rev === undefined) return fs.lstatSync(abs, { throwIfNoEntry: false }) !== undefined;
  if (!isDirOid(dir.out.sha256)) return false;
  if (!repo.store.has(dir.out.sha256)) return undefined;
  const sub = rel.slice(dir.rel.length + 1);
  return repo.store.readManifest(dir.out.sha256).some((e) => e.relpath === sub || e.relpath.startsWith(`${sub}/`));
}

/**
 * Splits `tdv diff` arguments into up to two revisions and then targets, as
 * Git does: before a `--` (at `separator`) everything is a revision; without
 * one, leading arguments that resolve as revisions are revisions, and a name
 * that is both a revision and an existing path is refused as ambiguous.
 */
export function splitDiffArgs(repo: Repo, args: readonly string[], separator: number | undefined, exists: (arg: string) => boolean): { a?: string; b?: string; targets: string[] } {
  let revs: string[];
  let targets: string[];
  if (separator !== undefined) {
    revs = args.slice(0, separator);
    targets = args.slice(separator);
    if (revs.length > 2) throw new UsageError(`at most two revisions before --, got ${revs.length}: ${revs.map(quotePath).join(' ')}`);
  } else {
    const history = openHistory(repo);
    try {
      revs = [];
      for (const arg of args.slice(0, 2)) {
        let isRev = true;
        try {
          history.resolve(arg);
        } catch (err) {
          if (!(err instanceof UnknownRevisionError)) throw err;
          isRev = false;
        }
        if (!isRev) {
          if (!exists(arg))
            throw new UsageError(
              `${JSON.stringify(arg)} is neither a revision nor a path in the workspace; for data that exists only in history, put it after --: \`tdv diff REV -- ${shellWord(arg)}\``,
            );
          break;
        }
        if (exists(arg))
          throw new UsageError(`${JSON.stringify(arg)} is both a revision and a path; write \`tdv diff ${shellWord(arg)} --\` for the revision or \`tdv diff -- ${shellWord(arg)}\` for the path`);
        revs.push(arg);
      }
    } finally {
      history.close();
    }
    targets = args.slice(revs.length);
  }
  return { a: revs[0], b: revs[1], targets };
}
