/**
 * What tdv last placed in (or took from) the workspace: each tracked output's
 * repo-relative path, the object it was, and the file that recorded it
 * (pointer or tdv.lock). A branch switch (`git checkout`) can take a pointer
 * away; its data stays in the workspace, git-ignored no more, and nothing else
 * remembers that tdv put it there. `tdv checkout` reads this record to remove
 * such data when it is still exactly what tdv placed (so it is in the cache),
 * as DVC does, and never data it cannot tell is tdv's.
 *
 * Kept in `.tdv/tmp/placed.json` (machine-local, like the stat cache): written
 * by add, checkout and pull, entries dropped by remove. A damaged or absent
 * file is an empty record: the cost is only that nothing is cleaned up.
 */
import type { Repo } from '../repo.js';

const FILE = 'tmp/placed.json';

export interface PlacedEntry {
  /** The object the data was when tdv placed or took it. */
  oid: string;
  /** Repo-relative file that recorded it: a pointer, or tdv.lock. */
  by: string;
}

export type Placed = Map<string, PlacedEntry>;

/** The record (empty when absent or unreadable). */
export function readPlaced(repo: Repo): Placed {
  const out: Placed = new Map();
  let text: string | undefined;
  try {
    text = repo.own.readControlFile(FILE);
  } catch {
    return out;
  }
  if (text === undefined) return out;
  try {
    const json = JSON.parse(text) as { v?: unknown; placed?: Record<string, unknown> };
    if (json.v !== 1 || typeof json.placed !== 'object' || json.placed === null) return out;
    for (const [rel, e] of Object.entries(json.placed)) {
      const { oid, by } = (e ?? {}) as { oid?: unknown; by?: unknown };
      if (typeof oid === 'string' && typeof by === 'string') out.set(rel, { oid, by });
    }
  } catch {
    // A damaged record is an empty one.
  }
  return out;
}

/** Writes the record. */
export function writePlaced(repo: Repo, placed: Placed): void {
  const obj: Record<string, PlacedEntry> = {};
  for (const rel of [...placed.keys()].sort()) obj[rel] = placed.get(rel)!;
  repo.own.writeControlFile(FILE, `${JSON.stringify({ v: 1, placed: obj })}\n`);
}

/** Adds (or replaces) entries, and drops `forget`; writes the file only when that changes it. */
export function updatePlaced(repo: Repo, entries: readonly ({ rel: string } & PlacedEntry)[], forget: readonly string[] = []): void {
  if (entries.length === 0 && forget.length === 0) return;
  const placed = readPlaced(repo);
  let changed = false;
  for (const rel of forget) changed = placed.delete(rel) || changed;
  for (const e of entries) {
    const was = placed.get(e.rel);
    if (was?.oid === e.oid && was.by === e.by) continue;
    placed.set(e.rel, { oid: e.oid, by: e.by });
    changed = true;
  }
  // Written only when it changed: a checkout with nothing to do leaves .tdv/ as it was.
  if (changed) writePlaced(repo, placed);
}
