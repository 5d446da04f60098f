import type { Oid } from '../formats/oid.js';

/** Reports transferred bytes as they move (for progress bars). */
export type OnBytes = (n: number) => void;

/**
 * An object's bytes, streamed. `size` is the length the remote states before
 * the first byte (a file's stat, a Content-Length), when it states one: a
 * reader refuses an object of the wrong size without reading it.
 */
export type ObjectBody = AsyncIterable<Uint8Array> & { readonly size?: number };

/**
 * A place objects are pushed to and pulled from. Every remote holds objects
 * exactly as the cache does, `files/sha256/ab/cdef...` under its root, so two
 * repositories pushing the same content store it once.
 *
 * Implementations move bytes and translate their failures into `RemoteError`s;
 * they do not decide what to transfer (remote/transfer.ts does) and they never
 * verify content: every download is hashed by the caller before it is admitted
 * into the cache. An implementation must never leave a partial object visible
 * under an oid: uploads go to a temporary name (or an atomic PUT) first.
 */
export interface Remote {
  readonly name: string;
  /** Where it is, for messages: a path or `s3://bucket/prefix`. */
  readonly url: string;
  /** Parallel transfers when neither `-j` nor the remote's `jobs` says otherwise. */
  readonly defaultJobs: number;
  /** Whether one object is present (one request). */
  has(oid: Oid): Promise<boolean>;
  /** The stored size of one object, or undefined when it is absent (one request). */
  stat(oid: Oid): Promise<{ size: number } | undefined>;
  /**
   * Every object under one two-hex-digit prefix (one listing, paged). With
   * `max`, may stop after `max` objects (one page): enough to estimate.
   */
  listPrefix(prefix: string, max?: number): Promise<Oid[]>;
  /** Uploads the cache file `from` (of `size` bytes) as `oid`. */
  put(oid: Oid, from: string, size: number, onBytes?: OnBytes): Promise<void>;
  /**
   * Optional fast path for many small objects (a local remote copies them on
   * two threads). Returns the failures by oid; throws only wide RemoteErrors.
   */
  putMany?(items: readonly { oid: Oid; from: string }[]): Promise<Map<Oid, Error>>;
  /**
   * The object's bytes, streamed, with the size the remote states for it.
   * Throws RemoteError code OBJECT_NOT_ON_REMOTE when absent. A reader that
   * stops early ends the iteration (`return()`), which releases the stream.
   */
  get(oid: Oid): Promise<ObjectBody>;
  /** Every object on the remote. */
  list(): AsyncIterable<Oid>;
  /**
   * Run-cache records (small JSON, named by the hash of a run's inputs) at
   * `runs/ab/cdef...` beside `files/`. Not content-addressed: the reader
   * validates what it gets.
   */
  putRun(key: string, data: Buffer): Promise<void>;
  /** A run record, or undefined when the remote has none under `key`. */
  getRun(key: string): Promise<Buffer | undefined>;
  /** Every run record key on the remote. */
  listRuns(): Promise<string[]>;
  /**
   * Ownership markers at `repos/<id>` beside `files/` and `runs/`: a small
   * object per repository that pushed here (`push` writes its own), so that
   * `gc --cloud` can tell a remote only this repository uses from a shared
   * one. Writes (or rewrites) one marker.
   */
  putRepoMarker(id: string, data: Buffer): Promise<void>;
  /** The ids of every marker on the remote. */
  listRepoMarkers(): Promise<string[]>;
  /** Deletes objects; returns those that could not be deleted. */
  remove(oids: readonly Oid[]): Promise<Oid[]>;
  /** Releases connections. */
  close(): void;
}
