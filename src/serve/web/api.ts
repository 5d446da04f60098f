import path from 'node:path';
import { TdvError } from '../../errors.js';
import { isoDate, subject } from '../../git/format.js';
import { relPathProblem } from '../../formats/paths.js';
import { resolveRev } from '../../repo/lib/snapshot.js';
import { treePrefix } from '../../repo/lib/revision.js';
import type { ServeContext } from '../context.js';
import { pipelineAt } from './pipeline.js';

/**
 * The web view's JSON API under `/-/api/`: read-only views of the history
 * built on the porcelain (log, diff, metrics, params) and on snapshots. Every
 * string from the repository goes out as JSON data; the page renders it as
 * text. Errors are `{error: {code, message}}` with a 4xx (bad request,
 * unknown revision or path) or 5xx status.
 */

/** An answer: a status and a JSON body. */
export interface ApiAnswer {
  status: number;
  body: unknown;
}

/** A request the API cannot answer: a missing or malformed parameter (400), a path that is not there (404). */
class ApiProblem extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const MAX_REV = 1024;
const MAX_LIMIT = 500;
/** Git files in a listing whose size is given (each costs reading the blob). */
const MAX_SIZED = 1000;

/** Answers one API request; `name` is the path after `/-/api/`. */
export async function api(ctx: ServeContext, name: string, q: URLSearchParams): Promise<ApiAnswer> {
  try {
    const handler = Object.hasOwn(HANDLERS, name) ? HANDLERS[name] : undefined;
    if (!handler) return { status: 404, body: { error: { code: 'NOT_FOUND', message: `no API endpoint "${name}"` } } };
    return { status: 200, body: await handler(ctx, q) };
  } catch (err) {
    return errorAnswer(err);
  }
}

/** An error as JSON: typed errors keep their code and message (4xx, or 500 for a failure of the repository); anything else is a bug (500). */
export function errorAnswer(err: unknown): ApiAnswer {
  if (err instanceof ApiProblem) return { status: err.status, body: { error: { code: err.code, message: err.message } } };
  if (err instanceof TdvError) {
    const status = err.code === 'UNKNOWN_REVISION' || err.code === 'SHALLOW_CLONE' || err.family === 'not-found' ? 404 : err.family === 'usage' || err.family === 'unsafe-path' ? 400 : 500;
    return { status, body: { error: { code: err.code, message: err.message } } };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: `unexpected error (a bug in tdv serve): ${(err as Error)?.message ?? String(err)}` } } };
}

type Handler = (ctx: ServeContext, q: URLSearchParams) => Promise<unknown>;

const HANDLERS: Record<string, Handler> = { refs, log, files, diff, dag, metrics, params, lineage };

/** A required revision parameter, resolved to a commit (dates too: `@2016-07-31`). */
function revParam(ctx: ServeContext, q: URLSearchParams, key: string, fallback?: string): { rev: string; commit: string } {
  const rev = q.get(key) ?? fallback;
  if (rev === undefined || rev === '') throw new ApiProblem('BAD_REQUEST', `parameter "${key}" (a revision) is required`);
  if (rev.length > MAX_REV || rev.includes('\0')) throw new ApiProblem('BAD_REQUEST', `parameter "${key}" is not a revision`);
  if (!ctx.source.history.hasCommits()) throw new TdvError('NO_COMMITS', 'this repository has no commits yet');
  return { rev, commit: resolveRev(ctx.source.history, rev) };
}

function limitParam(q: URLSearchParams, fallback: number): number {
  const s = q.get('limit');
  if (s === null) return fallback;
  if (!/^\d{1,6}$/.test(s) || Number(s) < 1) throw new ApiProblem('BAD_REQUEST', 'parameter "limit" must be a positive number');
  return Math.min(Number(s), MAX_LIMIT);
}

/** A commit as the page shows it. */
function commitInfo(ctx: ServeContext, oid: string) {
  const c = ctx.source.history.commit(oid);
  return { commit: oid, subject: subject(c), date: isoDate(c.author), author: c.author.name };
}

/** Branches, tags and HEAD, each with its commit's subject and date. */
async function refs(ctx: ServeContext): Promise<unknown> {
  const h = ctx.source.history;
  const head = h.refs.resolve('HEAD');
  const list = (prefix: 'refs/heads/' | 'refs/tags/') =>
    h.tips(prefix).flatMap((t) => {
      try {
        return [{ name: t.name.slice(prefix.length), ...commitInfo(ctx, t.oid) }];
      } catch (err) {
        if (err instanceof TdvError) return []; // a ref to a missing or non-commit object: not a revision to show
        throw err;
      }
    });
  const branches = list('refs/heads/').sort((a, b) => (a.date < b.date ? 1 : a.date > b.date ? -1 : 0));
  return {
    name: path.basename(ctx.repo.root),
    bucket: ctx.bucket,
    head: head ? { branch: h.headBranch() ?? null, commit: head } : null,
    branches,
    tags: list('refs/tags/'),
  };
}

/** The data versions along a branch (what `tdv log` shows), newest first, `limit` at a time; `next` continues. */
async function log(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const { rev, commit } = revParam(ctx, q, 'rev', 'HEAD');
  const limit = limitParam(q, 30);
  const from = q.get('from') === null ? commit : revParam(ctx, q, 'from').commit;
  const { log: logOf } = await import('../../repo/log.js');
  const res = await logOf(ctx.repo, { from, max: limit });
  const last = res.commits.at(-1);
  const next = res.commits.length === limit && last ? ctx.source.history.parents(ctx.source.history.commit(last.commit))[0] : undefined;
  return { rev, commit, shallow: res.shallow, commits: res.commits, next: next ?? null };
}

/** The children of a directory at a revision, and the commit. */
async function files(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const { rev, commit } = revParam(ctx, q, 'rev', 'HEAD');
  const dir = (q.get('path') ?? '').replace(/^\/+|\/+$/g, '');
  if (dir !== '' && relPathProblem(dir) !== undefined) throw new ApiProblem('NOT_FOUND', `no directory ${JSON.stringify(dir)} at ${rev}`, 404);
  const snap = await ctx.snapshot(commit);
  const entries = await snap.list(dir);
  if (!entries) throw new ApiProblem('NOT_FOUND', `no directory ${JSON.stringify(dir)} at ${rev}`, 404);
  return {
    rev,
    ...commitInfo(ctx, commit),
    path: dir,
    entries: entries.map((e, i) => {
      // A Git file's size is its blob's length: read for the first entries only (a listing of a huge directory stays cheap).
      const size = e.size ?? (e.kind === 'file' && e.blob && i < MAX_SIZED ? ctx.source.history.blob(e.blob).length : null);
      return { name: e.path.slice(dir === '' ? 0 : dir.length + 1), path: e.path, kind: e.kind, source: e.source, size, oid: e.oid ?? null };
    }),
  };
}

/**
 * Two revisions compared file by file: the data (tdv diff: files inside
 * tracked directories one by one) and the Git files, each added, modified or
 * deleted with sizes.
 */
async function diff(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const a = revParam(ctx, q, 'a');
  const b = revParam(ctx, q, 'b');
  const d = await dataDiff(ctx, a.commit, b.commit);
  const data = d.changes.map((c) => ({
    path: c.path,
    source: 'data',
    status: c.status,
    old: c.old ? { size: c.old.size, hash: c.old.hash } : null,
    new: c.new ? { size: c.new.size, hash: c.new.hash } : null,
  }));
  const git = gitChanges(ctx, a.commit, b.commit);
  const changes = [...data, ...git].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const summary = { added: 0, modified: 0, deleted: 0 };
  for (const c of changes) summary[c.status as keyof typeof summary]++;
  return { a: { rev: a.rev, ...commitInfo(ctx, a.commit) }, b: { rev: b.rev, ...commitInfo(ctx, b.commit) }, changes, summary };
}

/**
 * tdv diff of two commits. It reads tracked directories' manifests from the
 * cache; one that is missing there is fetched from the remote (verified and
 * kept, as every read through `serve`), and the diff tried again.
 */
async function dataDiff(ctx: ServeContext, a: string, b: string) {
  const { diff: diffOf } = await import('../../repo/diff.js');
  const fetched = new Set<string>();
  for (;;) {
    try {
      return await diffOf(ctx.repo, { a, b });
    } catch (err) {
      const paths = err instanceof TdvError && err.code === 'MISSING_OBJECTS' ? (err.data?.paths as string[] | undefined) : undefined;
      if (!paths?.length || paths.some((p) => fetched.has(p))) throw err;
      for (const p of paths) {
        fetched.add(p);
        for (const commit of [a, b]) {
          const e = await (await ctx.snapshot(commit)).stat(p);
          if (e?.oid) await (await ctx.snapshot(commit)).ensureObject(e.oid, e.kind === 'file' ? e.size : undefined, e.path);
        }
      }
    }
  }
}

/** Git files that differ between two commits (blob ids compared), with their sizes. */
function gitChanges(ctx: ServeContext, a: string, b: string) {
  const h = ctx.source.history;
  const prefix = treePrefix(ctx.repo);
  const filesOf = (commit: string) => {
    let tree: string | undefined = h.commit(commit).tree;
    if (prefix) {
      const e = h.entryAt(tree, prefix.slice(0, -1));
      tree = e?.kind === 'tree' ? e.oid : undefined;
    }
    const m = new Map<string, string>();
    if (tree) for (const f of h.filesAt(tree, '')) if (!f.badName) m.set(f.path, f.oid);
    return m;
  };
  const fa = filesOf(a);
  const fb = filesOf(b);
  const size = (oid: string) => h.blob(oid).length;
  const out: { path: string; source: 'git'; status: string; old: { size: number } | null; new: { size: number } | null }[] = [];
  for (const [p, oa] of fa) {
    const ob = fb.get(p);
    if (ob === undefined) out.push({ path: p, source: 'git', status: 'deleted', old: { size: size(oa) }, new: null });
    else if (ob !== oa) out.push({ path: p, source: 'git', status: 'modified', old: { size: size(oa) }, new: { size: size(ob) } });
  }
  for (const [p, ob] of fb) if (!fa.has(p)) out.push({ path: p, source: 'git', status: 'added', old: null, new: { size: size(ob) } });
  return out;
}

/** The pipeline of a revision: stages in run order with upstream edges and what each recorded. */
async function dag(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const { rev, commit } = revParam(ctx, q, 'rev', 'HEAD');
  return { rev, ...commitInfo(ctx, commit), ...(await pipelineAt(ctx, commit)) };
}

/** The metrics of the commits along a branch, oldest first, for a chart; commits without metrics left out. */
async function metrics(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const { rev, commit } = revParam(ctx, q, 'rev', 'HEAD');
  const limit = limitParam(q, 200);
  const h = ctx.source.history;
  const along: string[] = [];
  for (let oid: string | undefined = commit; oid !== undefined && along.length < limit; oid = h.parents(h.commit(oid))[0]) along.push(oid);
  const { metricsHistory } = await import('../../repo/metrics.js');
  const res = await metricsHistory(ctx.repo, { revs: along });
  const commits = res.commits
    .filter((c) => Object.keys(c.metrics).length > 0)
    .reverse()
    .map((c) => ({ ...commitInfo(ctx, c.commit), metrics: c.metrics }));
  return { rev, commit, commits, problems: res.problems };
}

/** How the params tdv.lock recorded differ between two revisions (unchanged ones too, marked). */
async function params(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const a = revParam(ctx, q, 'a');
  const b = revParam(ctx, q, 'b');
  const { paramsDiff } = await import('../../repo/metrics.js');
  const changes = await paramsDiff(ctx.repo, a.commit, b.commit, { all: true });
  return { a: { rev: a.rev, ...commitInfo(ctx, a.commit) }, b: { rev: b.rev, ...commitInfo(ctx, b.commit) }, changes };
}

/**
 * What produced an output at a revision (`tdv lineage --rev REV PATH --json`),
 * or with `reverse=1` what depends on a path; `depth` limits the stage levels.
 */
async function lineage(ctx: ServeContext, q: URLSearchParams): Promise<unknown> {
  const { rev, commit } = revParam(ctx, q, 'rev', 'HEAD');
  const p = (q.get('path') ?? '').replace(/^\/+|\/+$/g, '');
  if (p === '') throw new ApiProblem('BAD_REQUEST', 'parameter "path" (an output or data path) is required');
  if (relPathProblem(p) !== undefined) throw new ApiProblem('NOT_FOUND', `no path ${JSON.stringify(p)} at ${rev}`, 404);
  const d = q.get('depth');
  if (d !== null && !/^[1-9]\d{0,5}$/.test(d)) throw new ApiProblem('BAD_REQUEST', 'parameter "depth" must be a positive number');
  const { lineage: lineageOf } = await import('../../repo/lineage.js');
  const run = async () => {
    try {
      return await lineageOf(ctx.repo, { target: path.join(ctx.repo.root, ...p.split('/')), rev: commit, reverse: q.get('reverse') === '1', ...(d === null ? {} : { depth: Number(d) }) });
    } catch (err) {
      if (err instanceof TdvError && err.code === 'NOT_TRACKED') throw new ApiProblem('NOT_FOUND', err.message, 404);
      throw err;
    }
  };
  let res = await run();
  // A file inside a tracked or output directory is compared with the directory's manifest, "unknown"
  // when the cache lacks it: fetch those from the remote (verified and kept, as every read here), then look again.
  const unknown = new Set<string>();
  for (const st of res.stages) for (const x of st.deps) if (x.status === 'unknown' && x.kind !== 'untracked') unknown.add(x.path);
  for (const x of res.sources) if (x.kind === 'data' && x.sha256 === null) unknown.add(x.path);
  // A file inside an output directory whose manifest is not cached: whether the output holds it is unknown.
  if (res.direction === 'up' && res.status === 'unknown') unknown.add(res.target);
  if (unknown.size > 0) {
    const snap = await ctx.snapshot(commit);
    let found = false;
    for (const u of unknown) {
      try {
        if ((await snap.stat(u))?.oid) found = true;
      } catch (err) {
        if (!(err instanceof TdvError)) throw err; // no remote, or not there: it stays unknown
      }
    }
    if (found) res = await run();
  }
  return { ...res, rev, ...commitInfo(ctx, commit) };
}
