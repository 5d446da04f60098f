/**
 * The porcelain layer's test helpers: open a `Repo` on a real temporary Git
 * repository, as the CLI does, and call `src/repo/` verbs on it directly, so a
 * test asserts on their typed results and on the codes of the errors they
 * throw, never on the wording the CLI renders from them.
 */
import path from 'node:path';
import { expect } from 'vitest';
import { type ErrorCode, TdvError } from '../../src/errors.js';
import { add } from '../../src/repo/add.js';
import { Repo } from '../../src/repo/repo.js';
import { type ReproEvent, type ReproOptions, type ReproResult, reproduce } from '../../src/repo/repro.js';
import { status } from '../../src/repo/status.js';

export interface OpenedRepo {
  repo: Repo;
  /** What the verbs reported through `reporter.warn`, in order. */
  warnings: string[];
}

/**
 * Opens the repository containing `dir` with a reporter that records warnings.
 * Open one per command, as the CLI does: a Repo reads Git's index and the
 * `.tdvignore` once, so a Repo opened before `git add` does not see it.
 */
export async function openRepo(dir: string): Promise<OpenedRepo> {
  const warnings: string[] = [];
  const repo = await Repo.open(dir, { warn: (m) => warnings.push(m) });
  return { repo, warnings };
}

/** Opens the repository at `dir` for one call, discarding warnings: `await withRepo(dir, (r) => status(r))`. */
export async function withRepo<T>(dir: string, fn: (repo: Repo) => Promise<T>): Promise<T> {
  return fn((await openRepo(dir)).repo);
}

/** Absolute paths of repo-relative ones, as the CLI resolves its arguments. */
export function abs(dir: string, ...rels: string[]): string[] {
  return rels.map((r) => path.join(dir, r));
}

/**
 * Awaits `p`, expects it to reject with a TdvError (or subclass) of `code`, and
 * returns the error for further checks of its `data`.
 */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode): Promise<TdvError> {
  let caught: unknown;
  try {
    await p;
  } catch (err) {
    caught = err;
  }
  expect(caught, `expected a TdvError ${code}`).toBeInstanceOf(TdvError);
  const err = caught as TdvError;
  expect({ code: err.code, message: err.message }).toEqual({ code, message: expect.any(String) });
  return err;
}

/** `add` of repo-relative paths, through the API. */
export async function track(dir: string, ...rels: string[]): Promise<void> {
  await withRepo(dir, (r) => add(r, { paths: abs(dir, ...rels) }));
}

/**
 * The workspace matches every pointer and the cache holds their data, and no
 * stage would run (status is clean, and lists no stage, not even a frozen one):
 * what `tdv status` words as "Data and pipelines are up to date.", without the words.
 */
export async function expectClean(dir: string): Promise<void> {
  const s = await withRepo(dir, (r) => status(r));
  expect({ clean: s.clean, data: s.data, stages: s.stages ?? [] }).toEqual({ clean: true, data: [], stages: [] });
}

/** `tdv repro` has nothing to do: a run skips every stage (runs, restores and fails none), as "Pipeline is up to date." says. */
export async function expectPipelineUpToDate(dir: string): Promise<void> {
  const res = await withRepo(dir, (r) => reproduce(r));
  expect({ ran: res.ran, restored: res.restored, failed: res.failed, blocked: res.blocked }).toEqual({ ran: [], restored: [], failed: [], blocked: [] });
}

/** A ReproResult with the events the run reported and the warnings, in order. */
export interface ReproRun extends ReproResult {
  events: ReproEvent[];
  warnings: string[];
}

/** `reproduce` on the repository at `dir`, collecting its events (what `tdv repro` prints its lines from). */
export async function repro(dir: string, opts: ReproOptions = {}): Promise<ReproRun> {
  const { repo, warnings } = await openRepo(dir);
  const events: ReproEvent[] = [];
  const res = await reproduce(repo, { ...opts, onEvent: (e) => events.push(e) });
  return { ...res, events, warnings };
}

/** Each stage the run started, with the reasons it ran for, in start order. */
export function started(run: { events: readonly ReproEvent[] }): [string, string[]][] {
  return run.events.flatMap((e) => (e.type === 'start' ? [[e.stage, e.reasons] as [string, string[]]] : []));
}
