// The JSON API's answers (src/serve/web/api.ts), as the page reads them.

export interface CommitInfo {
  commit: string;
  subject: string;
  date: string;
  author: string;
}

export interface RefInfo extends CommitInfo {
  name: string;
}

export interface Refs {
  name: string;
  bucket: string;
  head: { branch: string | null; commit: string } | null;
  branches: RefInfo[];
  tags: RefInfo[];
}

export interface Version {
  hash: string;
  size: number;
  nfiles?: number;
}

export interface LogChange {
  path: string;
  pointer: string;
  change: 'added' | 'modified' | 'deleted';
  version: Version | null;
  previous: Version | null;
  files: { added: number; modified: number; deleted: number } | null;
}

export interface LogPage {
  rev: string;
  commit: string;
  shallow: boolean;
  commits: { commit: string; date: string; author: { name: string; email: string }; subject: string; changes: LogChange[] }[];
  next: string | null;
}

export interface FileEntry {
  name: string;
  path: string;
  kind: 'file' | 'dir';
  source: 'data' | 'git';
  size: number | null;
  oid: string | null;
}

export interface Listing extends CommitInfo {
  rev: string;
  path: string;
  entries: FileEntry[];
}

export interface DiffChange {
  path: string;
  source: 'data' | 'git';
  status: 'added' | 'modified' | 'deleted';
  old: { size: number; hash?: string } | null;
  new: { size: number; hash?: string } | null;
}

export interface Side extends CommitInfo {
  rev: string;
}

export interface Diff {
  a: Side;
  b: Side;
  changes: DiffChange[];
  summary: { added: number; modified: number; deleted: number };
}

export interface WebPath {
  path: string;
  sha256: string | null;
  size: number | null;
  nfiles?: number;
  kind: 'data' | 'git' | 'missing';
  producer?: string;
}

export interface Stage {
  name: string;
  cmd: string[];
  image: { ref: string | null; digest: string | null } | null;
  desc: string | null;
  locked: boolean;
  upstream: string[];
  depth: number;
  params: { file: string; key: string; value: unknown }[];
  deps: WebPath[];
  outs: WebPath[];
  metrics: (WebPath & { values: Record<string, unknown> | null })[];
}

export interface Pipeline extends CommitInfo {
  rev: string;
  stages: Stage[];
  edges: { from: string; to: string }[];
  problem: string | null;
}

export interface MetricsHistory {
  rev: string;
  commit: string;
  commits: (CommitInfo & { metrics: Record<string, Record<string, unknown>> })[];
  problems: { commit: string; label: string; message: string }[];
}

export interface ParamsDiff {
  a: Side;
  b: Side;
  changes: { file: string; key: string; old?: unknown; new?: unknown; change?: number; unchanged?: true }[];
}

export type Freshness = 'fresh' | 'stale' | 'unknown';

export interface LineageDep {
  path: string;
  sha256: string;
  size: number;
  nfiles?: number;
  kind: 'output' | 'data' | 'git' | 'untracked';
  producers?: string[];
  current: string | null;
  status: Freshness;
}

export interface LineageStage {
  name: string;
  level: number;
  cmd: string | string[];
  image: string | null;
  params: Record<string, Record<string, unknown>>;
  deps: LineageDep[];
  outs: { path: string; sha256: string; size: number; nfiles?: number }[];
  status: Freshness;
}

export interface LineageSource {
  path: string;
  kind: 'data' | 'git' | 'untracked';
  pointer?: string;
  sha256?: string | null;
  blob?: string;
  commit: { id: string; date: string; subject: string } | null;
}

/** `tdv lineage --json` at a revision, with the commit's subject and date. */
export interface Lineage extends CommitInfo {
  rev: string;
  target: string;
  direction: 'up' | 'down';
  kind: 'output' | 'data' | 'git' | 'untracked';
  producers: string[];
  stages: LineageStage[];
  sources: LineageSource[];
  truncated: boolean;
  status: Freshness;
}

/** An API error, with the server's code and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** GET `/-/api/<name>?<params>`: the JSON answer, or an ApiError. */
export async function get<T>(name: string, params: Record<string, string | undefined> = {}): Promise<T> {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  const res = await fetch(`/-/api/${name}?${q.toString()}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  const body = (await res.json().catch(() => undefined)) as { error?: { code: string; message: string } } | undefined;
  if (!res.ok || body === undefined) throw new ApiError(res.status, body?.error?.code ?? 'HTTP', body?.error?.message ?? `the server answered ${res.status}`);
  return body as T;
}
