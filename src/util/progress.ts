/**
 * The one progress interface of long work (add, checkout, pull, push, fetch,
 * gc, fsck, repro). Plumbing and porcelain report to it; only the UI layer
 * (src/ui/progress.ts) draws it, and only when a person watches a terminal.
 * Every method is cheap and may be called from hot loops: a renderer
 * throttles drawing itself.
 *
 * Counts are "files" (files hashed or written, objects sent, stages run) and
 * "bytes"; planned amounts are added as work is discovered, so a command
 * that learns its work target by target calls `plan` once per target.
 */
export interface Progress {
  /** Adds planned work: `files` more files of `bytes` more bytes. */
  plan(files: number, bytes: number): void;
  /** `n` more bytes are done (read, hashed, copied, sent). */
  bytes(n: number): void;
  /** `n` (default 1) more files are done. */
  files(n?: number): void;
  /** A new phase begins (`checkout` after the transfer of `pull`): planned and done start again from zero. */
  phase(name: string): void;
}

/** A Progress that ignores everything: the default when nobody watches. */
export const NO_PROGRESS: Progress = { plan() {}, bytes() {}, files() {}, phase() {} };
