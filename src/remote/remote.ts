import type { Oid } from '../formats/oid.js';

/** Reports transferred bytes as they move (for progress bars). */
export type OnBytes = (n: number) => void;

/**
 * An object's bytes, streamed. `size` is the length the remote states before
 * the first byte (a file's stat, a Content-Length), when it states one: a
 * reader refuses an object of the wrong size without reading it.
 */
export type ObjectBody = AsyncIterable<Uint8Array> & { readonly size?: number };

/** Bytes `start` (inclusive) to `end` (exclusive) of a stored key. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A stored key and its size in bytes. */
export interface KeyInfo {
  key: string;
  size: number;
}

/**
 * What `putKey` uploads: a local file (read when sent, so a retry can send it
 * again) or bytes in memory. `move`: the file is tdv's own temp file, deleted
 * after the upload, so a directory remote on the same file system may take
 * it by a hard link instead of copying its bytes.
 */
export type KeySource = { file: string; move?: boolean } | { data: Buffer };

/**
 * A layout key: '/'-separated segments of letters, digits, `.`, `_` and `-`,
 * no segment `.` or `..`, at most 512 characters. Keys come from remote
 * listings and pack indexes (untrusted), so every raw-key operation checks
 * its key with this first.
 */
export const LAYOUT_KEY_RE = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
export function isLayoutKey(key: string): boolean {
  return key.length <= 512 && LAYOUT_KEY_RE.test(key);
}

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
  /**
   * Optional: which of `oids` the remote holds, when it can tell better than
   * remoteHas's requests per object or prefix (the packed layout asks its
   * indexes first).
   */
  hasMany?(oids: readonly Oid[], jobs: number): Promise<Set<Oid>>;
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
  /**
   * Raw keys under the remote's root, beside `files/`: the packed layout's
   * `tdv-remote.json`, `packs/...` and `index/...` (remote/transfer/layout.ts),
   * and resumed downloads of `files/sha256/...`. Every key is checked with
   * `isLayoutKey` (a RemoteError BAD_KEY otherwise).
   *
   * Writes the key atomically (a reader sees all of it or none; a killed
   * upload leaves nothing under the key) and replaces an existing one.
   */
  putKey(key: string, from: KeySource, onBytes?: OnBytes): Promise<void>;
  /**
   * The key's bytes, or `range` of them (a ranged GET), streamed; `size` is
   * the number of bytes the body will have. Throws RemoteError
   * OBJECT_NOT_ON_REMOTE when the key is absent; a range past its end is
   * cut at the end.
   */
  getKey(key: string, range?: ByteRange): Promise<ObjectBody>;
  /**
   * Every key below `dir/` (recursive), with sizes, sorted. With `max`, may
   * stop after `max` keys. Temp files of uploads in progress are not listed.
   */
  listKeys(dir: string, max?: number): Promise<KeyInfo[]>;
  /** Deletes keys; returns those that could not be deleted (absent keys count as deleted). */
  deleteKeys(keys: readonly string[]): Promise<string[]>;
  /** Releases connections. */
  close(): void;
}
