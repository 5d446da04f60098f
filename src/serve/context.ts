import type { Repo } from '../repo/repo.js';
import type { Snapshot, SnapshotSource } from '../repo/lib/snapshot.js';

/** What every part of `tdv serve` (S3 API, HTTP files, web view) reads from. */
export interface ServeContext {
  readonly repo: Repo;
  readonly source: SnapshotSource;
  /** The bucket name the S3 API answers to. */
  readonly bucket: string;
  /** The snapshot of a revision (kept per commit: many readers share one). */
  snapshot(rev: string): Promise<Snapshot>;
}
