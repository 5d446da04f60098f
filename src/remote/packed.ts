import fs from 'node:fs';
import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { isDirOid, type Oid } from '../formats/oid.js';
import { readObjectFileSync, type ObjectStore, type TempObject } from '../cache/store.js';
import { RemoteError, TdvError } from '../errors.js';
import type { ByteRange, KeySource, ObjectBody, OnBytes, Remote } from './remote.js';
import { remoteHas } from './transfer/executor.js';
import {
  BadLayoutData,
  type BlobEntry,
  decodeIndex,
  decodeLayoutRecord,
  decodeRecipe,
  encodeIndex,
  encodeLayoutRecord,
  encodeRecipe,
  indexKey,
  indexNameOf,
  LAYOUT_KEY,
  LAYOUT_VERSION,
  MAX_BLOB,
  MAX_INDEX_BYTES,
  MAX_RECIPE_BYTES,
  PackBuilder,
  packKey,
  packNameOf,
  PACK_MAGIC,
  recordSize,
  type Recipe,
} from './transfer/pack.js';
import { CHUNK_THRESHOLD, chunkFile, DEFAULT_CHUNK_PARAMS } from './transfer/chunker.js';
import { type Compression, decode, encode, fileEncoder, loadCodec } from './transfer/codec.js';

/** How a remote is written (`remote.<name>.layout`, `chunking`, `compression`). */
export interface LayoutSettings {
  /** `packed`, `plain`, or undefined: packed for a new remote, plain for one that already holds plain objects. */
  layout: 'packed' | 'plain' | undefined;
  chunking: boolean;
  compression: Compression;
}

/**
 * A pack is sealed and uploaded once it reaches this size. With at most
 * PACK_UPLOADS in flight, an interrupted upload loses at most about
 * PACK_UPLOADS x PACK_TARGET bytes: 8 MiB, 16 s at 4 Mbit/s.
 */
export const PACK_TARGET = 4 << 20;
/** Packs uploading at once: two keep the link busy while the next pack is built (chunked, hashed, compressed). */
const PACK_UPLOADS = 2;
/**
 * After each pack, an index of everything uploaded so far replaces the
 * previous one (so an interrupted upload resumes from there) when it costs
 * at most this fraction of the bytes sent since the last, or CHECKPOINT_MS passed.
 */
const CHECKPOINT_COST = 0.05;
const CHECKPOINT_MS = 30_000;
/** ... but not more often than this: on a fast link little is lost, and rewriting a large index per pack is not free. */
const CHECKPOINT_MIN_MS = 2_000;
/** Bytes an index entry takes, gzipped, about. */
const INDEX_ENTRY_BYTES = 60;
/** Ranged reads of neighbouring blobs are merged while the gap is at most this (record headers lie between). */
const MAX_GAP = 64 << 10;
/** ... and the merged read at most this long. */
const MAX_RUN = 16 << 20;
/** Downloads of files at least this large keep their verified chunks until done, so a rerun resumes. */
const SPOOL_MIN = 16 << 20;
const DOWNLOAD_ATTEMPTS = 3;
/**
 * A pack no index names is deleted by a gc only once an earlier gc saw it
 * unnamed at least this long before: an upload in progress names its packs
 * in a checkpoint index, which a slow link (or --limit-rate) can delay for
 * long. A day of leftover bytes costs little; a deleted pack a push is about
 * to name loses data.
 */
export const UNNAMED_GRACE_MS = 24 * 60 * 60 * 1000;
/** The local record of unnamed packs and when a gc first saw them, beside the remote's cached indexes. */
const UNNAMED_FILE = 'unnamed-packs.json';

/** What `PackedRemote.collect` did. */
export interface CollectResult {
  /** Objects that could not be deleted (plain ones the remote refused; packed ones when an old index could not be deleted). */
  notDeleted: Oid[];
  /** Packed objects whose index entries were dropped. */
  objects: number;
  /** Packs deleted (no live blob), rewritten (live blobs copied into new packs, then deleted), kept, and the new ones. */
  packs: { deleted: number; rewritten: number; kept: number; created: number };
  /** Indexes replaced by the one written. */
  indexes: { replaced: number; written: number };
  /** Bytes of packs deleted minus those of packs written. */
  bytesReclaimed: number;
  /** Packs no index names: deleted (past the grace period) and waiting. */
  unnamed: { deleted: number; waiting: number };
  /** Packs not rewritten because a live blob in them is damaged: kept whole, with the reason. */
  damaged: { pack: string; message: string }[];
}

/** Listings of `index/` taken while indexes keep vanishing between the listing and their read. */
const LIST_ROUNDS = 3;

/**
 * A remote in the packed layout (README: "Remote layout"), or a plain one,
 * behind the one `Remote` interface, so every reader (pull, cat, serve, gc,
 * fsck, imports) reads both:
 *
 *   tdv-remote.json        the layout record: {"format":"tdv-remote","layout":2,"written_by":"tdv"}
 *   index/<sha>.json.gz    pack indexes: where each blob is (transfer/pack.ts)
 *   packs/<sha>.pack       blobs: small objects, chunks of large files, recipes
 *   files/sha256/ab/cd...  plain objects (layout 1, and `layout: plain`)
 *   runs/, repos/          run records and ownership markers, as before
 *
 * Large files are content-defined chunks (transfer/chunker.ts) plus a recipe
 * naming them, so a new version sends only the chunks the remote lacks, and
 * a download reuses chunks of versions already in the cache (their recipes,
 * kept in the cache, are the local chunk index). Blobs are zstd-compressed
 * when that pays (transfer/codec.ts).
 *
 * Writes are ordered so a reader never sees a blob before its bytes: packs
 * first, then an index naming them; an upload killed midway leaves packs no
 * index names (invisible; `gc --cloud` removes them) and the last checkpoint
 * index, from which the next push resumes. Everything read is checked: index
 * names are hashes of their bytes, every blob hashes to its id, every file to
 * its oid (by downloadVerified), and sizes are bounded before allocation.
 */
export class PackedRemote implements Remote {
  readonly packed = true;
  /** Bytes read from the remote by this command (packs, indexes, plain objects), for "received" in summaries. */
  received = 0;
  private catalogP: Promise<Map<string, BlobEntry>> | undefined;
  private indexNames = new Set<string>();
  private writeModeP: Promise<'packed' | 'plain'> | undefined;
  private localChunksMap: Map<string, { oid: Oid; offset: number; size: number }> | undefined;

  constructor(
    readonly raw: Remote,
    private readonly settings: LayoutSettings,
    private readonly store: ObjectStore,
    private readonly jobs: number,
  ) {}

  get name(): string {
    return this.raw.name;
  }
  get url(): string {
    return this.raw.url;
  }
  get defaultJobs(): number {
    return this.raw.defaultJobs;
  }

  /** The local cache of this remote's indexes: by the url's hash (index names are content hashes, so sharing is safe). */
  private get cacheId(): string {
    return createHash('sha256').update(this.raw.url).digest('hex');
  }

  // ---- the catalog: every blob of every index -----------------------------------------------

  /** Every blob the remote's indexes name, by id (loaded once per command; indexes already downloaded are read locally). */
  catalog(): Promise<Map<string, BlobEntry>> {
    const p = (this.catalogP ??= this.loadCatalog());
    p.catch(() => {
      if (this.catalogP === p) this.catalogP = undefined; // a failure is not remembered
    });
    return p;
  }

  private async loadCatalog(): Promise<Map<string, BlobEntry>> {
    await this.checkRecord();
    let map = new Map<string, BlobEntry>();
    let names: string[] = [];
    // Each index is merged as it is read, so memory holds the catalog and the indexes being
    // decoded, not every index's entries at once (many indexes naming the same blobs cost
    // no more than one). The later index's copy of a blob wins (`push --repair` writes a
    // damaged blob again): `written` is kept beside each entry to decide.
    // An index listed but gone when read was replaced meanwhile (a push writes its next
    // checkpoint before deleting the last; a repack likewise): the listing is taken again.
    for (let round = 1; ; round++) {
      names = [];
      for (const k of await this.raw.listKeys('index')) {
        const name = indexNameOf(k.key);
        if (name !== undefined && k.size <= MAX_INDEX_BYTES) names.push(name);
      }
      map = new Map();
      const writtenOf = new Map<string, number>();
      let vanished: unknown;
      await pLimit(Math.max(2, this.jobs)).map(names, async (name) => {
        let index: { written: number; entries: BlobEntry[] };
        try {
          index = await this.readIndex(name);
        } catch (err) {
          if (round < LIST_ROUNDS && err instanceof RemoteError && err.code === 'OBJECT_NOT_ON_REMOTE') {
            vanished = err;
            return;
          }
          throw err;
        }
        for (const e of index.entries) add(map, e, index.written, writtenOf);
      });
      if (!vanished) break;
    }
    this.indexNames = new Set(names);
    // Indexes the remote no longer has (repacked) are dropped from the local copy.
    const keep = new Set(names.map((n) => `${this.cacheId}/${n}.json.gz`));
    this.store.removeSide(
      'remotes',
      this.store.listSide('remotes', this.cacheId).filter((n) => n.endsWith('.json.gz') && !keep.has(n)),
    );
    return map;
  }

  private async readIndex(name: string): Promise<{ written: number; entries: BlobEntry[] }> {
    const local = `${this.cacheId}/${name}.json.gz`;
    const cached = this.store.readSide('remotes', local);
    if (cached) {
      try {
        return decodeIndex(cached, name);
      } catch {
        /* damaged local copy: downloaded again */
      }
    }
    const bytes = await this.readKey(indexKey(name), MAX_INDEX_BYTES);
    let index: { written: number; entries: BlobEntry[] };
    try {
      index = decodeIndex(bytes, name);
    } catch (err) {
      // Every command (`push --repair` too) reads every index: deleting this one is the way out; then
      // --repair, as a plain push would trust a manifest of another index to mean its files are there.
      throw new RemoteError(
        'CORRUPT_ON_REMOTE',
        `remote "${this.name}" (${this.url}): ${indexKey(name)} is damaged: ${(err as Error).message}; nothing of it was used. Delete it on the remote, then run \`tdv push --repair -r ${this.name}\` in a clone that has the data, to store again what it named`,
        { data: { key: indexKey(name) } },
      );
    }
    this.store.writeSide('remotes', local, bytes);
    return index;
  }

  /** A layout record of a newer layout than this tdv reads is refused before anything is read or written. */
  private async checkRecord(): Promise<boolean> {
    let bytes: Buffer;
    try {
      bytes = await this.readKey(LAYOUT_KEY, 4096);
    } catch (err) {
      if (err instanceof RemoteError && err.code === 'OBJECT_NOT_ON_REMOTE') return false;
      if (err instanceof RemoteError && err.code === 'CORRUPT_ON_REMOTE') throw this.badRecord(`it is more than 4096 bytes`);
      throw err;
    }
    let version: number;
    try {
      version = decodeLayoutRecord(bytes);
    } catch (err) {
      throw this.badRecord((err as Error).message);
    }
    if (version > LAYOUT_VERSION) {
      throw new RemoteError('REMOTE_LAYOUT_UNSUPPORTED', `remote "${this.name}" (${this.url}) has layout ${version}, newer than this tdv reads (${LAYOUT_VERSION}); upgrade tdv`, { wide: true });
    }
    return true;
  }

  /**
   * How this push writes: packed or plain. `layout` decides when set; unset,
   * a remote with a layout record or no objects at all is packed (and gets
   * the record), and one that already holds plain objects stays plain, so
   * older tdv versions sharing it keep reading everything.
   */
  writeMode(): Promise<'packed' | 'plain'> {
    const p = (this.writeModeP ??= (async () => {
      if (this.settings.layout === 'plain') return 'plain' as const;
      const hasRecord = await this.checkRecord();
      if (hasRecord) return 'packed' as const;
      if (this.settings.layout === undefined && (await this.raw.listKeys('files', 1)).length > 0) return 'plain' as const;
      await this.raw.putKey(LAYOUT_KEY, { data: encodeLayoutRecord() });
      return 'packed' as const;
    })());
    p.catch(() => {
      if (this.writeModeP === p) this.writeModeP = undefined;
    });
    return p;
  }

  /**
   * How `push --repair` writes: packed whenever the remote has a layout
   * record, even with `layout: plain`, since readers take a packed copy
   * before a plain one: a plain copy would leave the damaged one in use.
   */
  async repairMode(): Promise<'packed' | 'plain'> {
    if (this.settings.layout === 'plain' && (await this.checkRecord())) return 'packed';
    return this.writeMode();
  }

  // ---- the Remote interface ------------------------------------------------------------------

  async has(oid: Oid): Promise<boolean> {
    if (whole(await this.catalog(), oid)) return true;
    return this.raw.has(oid);
  }

  /** Which of `oids` the remote holds: the indexes answer first, the plain layout for the rest. */
  async hasMany(oids: readonly Oid[], jobs: number): Promise<Set<Oid>> {
    const cat = await this.catalog();
    const found = new Set<Oid>();
    const rest: Oid[] = [];
    for (const o of oids) {
      if (whole(cat, o)) found.add(o);
      else rest.push(o);
    }
    if (rest.length > 0) for (const o of await remoteHas(this.raw, rest, jobs)) found.add(o);
    return found;
  }

  async stat(oid: Oid): Promise<{ size: number } | undefined> {
    const e = whole(await this.catalog(), oid);
    if (e) return { size: e.kind === 'recipe' ? e.fileSize! : e.raw };
    return this.raw.stat(oid);
  }

  async listPrefix(prefix: string, max?: number): Promise<Oid[]> {
    const out = new Set<Oid>();
    for (const [id, e] of await this.catalog()) if (e.kind !== 'chunk' && id.startsWith(prefix)) out.add(id);
    for (const o of await this.raw.listPrefix(prefix, max)) out.add(o);
    return [...out];
  }

  async *list(): AsyncIterable<Oid> {
    const seen = new Set<Oid>();
    for (const [id, e] of await this.catalog()) {
      if (e.kind === 'chunk') continue;
      seen.add(id);
      yield id;
    }
    for await (const o of this.raw.list()) if (!seen.has(o)) yield o;
  }

  async put(oid: Oid, from: string, size: number, onBytes?: OnBytes): Promise<void> {
    if ((await this.writeMode()) === 'plain') return this.raw.put(oid, from, size, onBytes);
    const failed = await this.putMany([{ oid, from }], { onBytes });
    const err = failed.get(oid);
    if (err) throw err;
  }

  /**
   * Uploads objects from the cache: in the packed layout, into packs (large
   * files as chunks the remote lacks), then one index; in the plain layout,
   * one by one. Returns the failures by object; a failure of the remote
   * itself is thrown. Done means readable: every pack and its index written.
   */
  async putMany(
    items: readonly { oid: Oid; from: string }[],
    opts: {
      /** Bytes sent (packs, indexes: compressed, only what the remote lacks). */
      onBytes?: OnBytes;
      /** Bytes of the objects dealt with so far (a large file's chunks as they are packed or found there), for progress. */
      onRaw?: (n: number) => void;
      /** One object done, or failed. */
      onItem?: (oid: Oid) => void;
      repair?: boolean;
    } = {},
  ): Promise<Map<Oid, Error>> {
    if (items.length === 0) return new Map();
    if ((await (opts.repair ? this.repairMode() : this.writeMode())) === 'plain') {
      if (this.raw.putMany) return this.raw.putMany(items);
      const failed = new Map<Oid, Error>();
      await pLimit(this.jobs).map(items, async (it) => {
        try {
          await this.raw.put(it.oid, it.from, fs.statSync(it.from).size, (n) => {
            opts.onBytes?.(n);
            opts.onRaw?.(n);
          });
        } catch (err) {
          if (err instanceof RemoteError && err.wide) throw err;
          failed.set(it.oid, err as Error);
        } finally {
          opts.onItem?.(it.oid);
        }
      });
      return failed;
    }
    const cat = await this.catalog();
    await loadCodec();
    const session = new UploadSession(this.raw, this.store, Math.min(PACK_UPLOADS, Math.max(1, this.jobs)), opts.onBytes);
    const failed = new Map<Oid, Error>();
    try {
      for (const it of items) {
        try {
          // Repairing: every blob is sent again, chunks too (a damaged chunk breaks every file using it).
          if ((opts.repair || !whole(cat, it.oid)) && !session.hasWhole(it.oid)) await this.packOne(it.oid, it.from, opts.repair ? new Map() : cat, session, opts.onRaw);
        } catch (err) {
          if ((err instanceof RemoteError && err.wide) || !(err instanceof TdvError)) throw err;
          failed.set(it.oid, err);
        } finally {
          opts.onItem?.(it.oid);
        }
      }
      await session.finish();
    } catch (err) {
      await session.abandon();
      throw err;
    }
    for (const e of session.uploaded) add(cat, e);
    for (const n of session.indexes) this.indexNames.add(n);
    return failed;
  }

  /** One cache object into the session's packs: chunked when large, else whole. */
  private async packOne(oid: Oid, from: string, cat: Map<string, BlobEntry>, session: UploadSession, onRaw?: (n: number) => void): Promise<void> {
    const st = fs.statSync(from, { throwIfNoEntry: false });
    if (!st) throw new TdvError('MISSING_OBJECT', `object ${oid} is not in the cache`);
    if (!st.isFile()) throw new TdvError('NOT_A_FILE', `cache object ${from} is not a regular file; \`tdv fsck\` moves it aside`);
    const c = this.settings.compression;
    if (this.settings.chunking && !isDirOid(oid) && st.size >= CHUNK_THRESHOLD) {
      // Not hashed whole again here (a 1 GiB file would cost a second pass): as in the plain
      // layout, an object linked into a workspace is checked before the push (executePush), and
      // every download is hashed whole before it enters a cache.
      const chunks: Recipe['chunks'] = [];
      // `auto`: the first chunk this file sends decides whether the rest are compressed.
      const encodeChunk = fileEncoder(c);
      for await (const ch of chunkFile(from)) {
        chunks.push([ch.sha256, ch.size]);
        if (!cat.has(ch.sha256) && !session.has(ch.sha256)) {
          const enc = encodeChunk(ch.data);
          // Waits while packs upload, so what is counted keeps pace with what is sent.
          await session.add(ch.sha256, 'chunk', enc.codec, ch.size, enc.bytes);
        }
        onRaw?.(ch.size);
      }
      const size = chunks.reduce((n, x) => n + x[1], 0);
      if (size !== st.size) throw new TdvError('CHANGED_WHILE_ADDING', `cache object ${from} changed size while it was pushed; run \`tdv fsck\``);
      const recipe = encodeRecipe({ size, chunks });
      this.store.writeSide('recipes', oid.slice(0, 64), recipe);
      if (recipe.length > MAX_BLOB) {
        // About 77 bytes a chunk: a file of some 200 GiB or more. No reader accepts a blob this
        // large (decodeIndex refuses the whole index naming it, and so every command would fail):
        // the file is stored as one plain object; the chunks sent are harmless.
        await this.raw.put(oid, from, st.size, session.onBytes);
        return;
      }
      const enc = encode(recipe, { mode: 'zstd', level: 3 });
      await session.add(oid, 'recipe', enc.codec, recipe.length, enc.bytes, size);
      return;
    }
    if (st.size > MAX_BLOB) {
      // Chunking is off: a large file stays one plain object.
      await this.raw.put(oid, from, st.size, (n) => {
        session.onBytes?.(n);
        onRaw?.(n);
      });
      return;
    }
    const data = readObjectFileSync(from);
    if (createHash('sha256').update(data).digest('hex') !== oid.slice(0, 64)) throw damaged(oid, from);
    const enc = encode(data, c);
    await session.add(oid, 'object', enc.codec, data.length, enc.bytes);
  }

  async get(oid: Oid): Promise<ObjectBody> {
    const e = whole(await this.catalog(), oid);
    if (!e) return this.counted(await this.raw.get(oid));
    await loadCodec();
    if (e.kind !== 'recipe') {
      const bytes = await this.readBlob(e);
      return Object.assign(one(bytes), { size: bytes.length });
    }
    const recipe = await this.readRecipe(e);
    return Object.assign(this.assemble(oid, recipe, e), { size: recipe.size });
  }

  /** A recipe from the remote, checked (the local copy is written when it is first read: the local chunk index). */
  private async readRecipe(e: BlobEntry): Promise<Recipe> {
    const bytes = await this.readBlob(e, MAX_RECIPE_BYTES);
    let r: Recipe;
    try {
      r = decodeRecipe(bytes, DEFAULT_CHUNK_PARAMS.max, e.fileSize);
    } catch (err) {
      throw this.corrupt(packKey(e.pack), `the recipe of ${e.id}: ${(err as Error).message}`);
    }
    this.store.writeSide('recipes', e.id.slice(0, 64), bytes);
    return r;
  }

  /**
   * A large object's bytes in order: each chunk from the cache when another
   * version there has it (read and hashed), else from the remote, runs of
   * neighbouring chunks in one ranged read. Large downloads keep each
   * verified chunk in the cache's tmp/chunks until the end, so an
   * interrupted pull resumes with what it already received.
   */
  private async *assemble(oid: Oid, recipe: Recipe, at: BlobEntry): AsyncGenerator<Uint8Array> {
    const cat = await this.catalog();
    const spool = recipe.size >= SPOOL_MIN;
    const spooled: string[] = [];
    const { chunks } = recipe;
    // Every chunk hashes to its id, yet a recipe can still name the wrong ones (damaged, forged):
    // the whole is checked here too, so that failure names the recipe and the fix that works
    // (the caller's own check would ask to delete a plain object the remote does not have).
    const fileHash = createHash('sha256');
    let i = 0;
    while (i < chunks.length) {
      const [sha, size] = chunks[i]!;
      let local = this.localChunk(sha, size);
      if (!local && spool) {
        local = this.spooled(sha, size);
        // Kept by an earlier, interrupted run: removed with this run's own once the file is whole.
        if (local) spooled.push(sha);
      }
      if (local) {
        fileHash.update(local);
        yield local;
        i++;
        continue;
      }
      const first = cat.get(sha);
      if (!first || first.kind === 'recipe') throw this.corrupt(packKey(at.pack), `the recipe of ${oid} names chunk ${sha}, which no index of the remote holds`);
      let j = i + 1;
      let end = first.offset + first.length;
      while (j < chunks.length && end - first.offset < MAX_RUN) {
        const n = cat.get(chunks[j]![0]);
        if (!n || n.kind === 'recipe' || n.pack !== first.pack || n.offset < end || n.offset - end > MAX_GAP || this.localChunks().has(chunks[j]![0])) break;
        end = n.offset + n.length;
        j++;
      }
      // The run streams: each chunk is verified, kept (spool) and handed on as soon as its bytes are
      // in, so a pull cut off midway keeps what arrived. A body cut short is asked again from there.
      let k = i;
      let attempt = 0;
      while (k < j) {
        try {
          for await (const payload of this.streamBlobs(
            first.pack,
            end,
            chunks.slice(k, j).map((c) => cat.get(c[0])!),
          )) {
            const [csha, csize] = chunks[k]!;
            const ce = cat.get(csha)!;
            const data = this.decodeBlob(ce, payload);
            if (data.length !== csize) throw this.corrupt(packKey(ce.pack), `chunk ${csha} is ${data.length} bytes where the recipe of ${oid} says ${csize}`);
            if (spool) {
              this.store.writeSide('spool', csha, data);
              spooled.push(csha);
            }
            k++;
            fileHash.update(data);
            yield data;
          }
        } catch (err) {
          if (err instanceof TdvError) throw err;
          if (++attempt >= DOWNLOAD_ATTEMPTS)
            throw new RemoteError('DOWNLOAD_FAILED', `could not read ${packKey(first.pack)} from remote "${this.name}" (${this.url}) after ${attempt} attempts: ${(err as Error).message}`, {
              cause: err,
            });
          await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
      i = j;
    }
    this.store.removeSide('spool', spooled);
    const got = fileHash.digest('hex');
    if (got !== oid.slice(0, 64)) throw this.corrupt(packKey(at.pack), `the recipe of ${oid} names chunks that make a file hashing to ${got}`);
  }

  /**
   * The payloads of `entries` (neighbours in one pack, in order), from one
   * ranged read ending at `end`, each yielded as soon as its bytes are in;
   * memory holds at most one payload and a read buffer.
   */
  private async *streamBlobs(pack: string, end: number, entries: readonly BlobEntry[]): AsyncGenerator<Buffer> {
    const start = entries[0]!.offset;
    let body: ObjectBody;
    try {
      body = this.counted(await this.raw.getKey(packKey(pack), { start, end }));
    } catch (err) {
      throw err instanceof TdvError ? this.packError(pack, err) : err;
    }
    if (body.size !== undefined && body.size < end - start) {
      // The remote states it: the pack is shorter than its index says (asking again would not help).
      await body[Symbol.asyncIterator]().return?.();
      throw this.corrupt(packKey(pack), `it ends before byte ${end} that its index names (${body.size} of ${end - start} bytes from ${start})`);
    }
    let buf: Buffer = Buffer.alloc(0);
    let base = start; // the pack offset of buf[0]
    let e = 0;
    const it = body[Symbol.asyncIterator]();
    try {
      while (e < entries.length) {
        const want = entries[e]!;
        if (base + buf.length >= want.offset + want.length) {
          const payload = Buffer.from(buf.subarray(want.offset - base, want.offset - base + want.length));
          buf = buf.subarray(want.offset + want.length - base);
          base = want.offset + want.length;
          e++;
          yield payload;
          continue;
        }
        const next = await it.next();
        if (next.done) throw new Error(`the body of ${packKey(pack)} ended after ${base + buf.length - start} of ${end - start} bytes`);
        if (base + buf.length + next.value.length > end) throw this.corrupt(packKey(pack), `more than the ${end - start} bytes asked for arrived`);
        buf = buf.length === 0 ? Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength) : Buffer.concat([buf, next.value]);
      }
    } finally {
      await it.return?.();
    }
  }

  /** Chunks of large objects already in the cache, from their recipes (built once, when first needed). */
  private localChunks(): Map<string, { oid: Oid; offset: number; size: number }> {
    if (this.localChunksMap) return this.localChunksMap;
    const map = new Map<string, { oid: Oid; offset: number; size: number }>();
    for (const oid of this.store.listSide('recipes')) {
      if (!this.store.has(oid)) continue;
      let r: Recipe;
      try {
        r = decodeRecipe(this.store.readSide('recipes', oid) ?? Buffer.alloc(0), DEFAULT_CHUNK_PARAMS.max);
      } catch {
        continue;
      }
      let offset = 0;
      for (const [sha, size] of r.chunks) {
        if (!map.has(sha)) map.set(sha, { oid, offset, size });
        offset += size;
      }
    }
    return (this.localChunksMap = map);
  }

  /** A chunk read from a cache object holding it, if its bytes still hash to it. */
  private localChunk(sha: string, size: number): Buffer | undefined {
    const at = this.localChunks().get(sha);
    if (!at || at.size !== size) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(this.store.pathOf(at.oid), fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
    } catch {
      return undefined;
    }
    try {
      if (!fs.fstatSync(fd).isFile()) return undefined;
      const buf = Buffer.allocUnsafe(size);
      if (fs.readSync(fd, buf, 0, size, at.offset) !== size) return undefined;
      return sha256(buf) === sha ? buf : undefined;
    } finally {
      fs.closeSync(fd);
    }
  }

  private spooled(sha: string, size: number): Buffer | undefined {
    const b = this.store.readSide('spool', sha);
    return b && b.length === size && sha256(b) === sha ? b : undefined;
  }

  /** One blob, decoded and checked against its id (a recipe's id is its file's, checked when the file is). */
  private async readBlob(e: BlobEntry, max = MAX_BLOB): Promise<Buffer> {
    if (e.raw > max) throw this.corrupt(packKey(e.pack), `blob ${e.id} claims ${e.raw} bytes, more than ${max}`);
    const bytes = await this.readRange(e.pack, { start: e.offset, end: e.offset + e.length });
    return this.decodeBlob(e, bytes);
  }

  private decodeBlob(e: BlobEntry, bytes: Buffer): Buffer {
    let data: Buffer;
    try {
      data = decode(e.codec, bytes, e.raw);
    } catch (err) {
      throw this.damagedBlob(e, `does not decompress (${(err as Error).message})`);
    }
    if (data.length !== e.raw) throw this.damagedBlob(e, `is ${data.length} bytes where its index says ${e.raw}`);
    if (e.kind !== 'recipe' && sha256(data) !== e.id.slice(0, 64)) throw this.damagedBlob(e, `hashes to ${sha256(data)}`);
    return data;
  }

  /** Exactly `range` of a pack, retried when the body is cut short. */
  private async readRange(pack: string, range: ByteRange): Promise<Buffer> {
    let last: unknown;
    // Lengths of short reads: the same every time means the pack itself is shorter than its index says.
    const short = new Set<number>();
    for (let attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; attempt++) {
      try {
        const got = await this.readKey(packKey(pack), range.end - range.start, range);
        if (got.length === range.end - range.start) return got;
        short.add(got.length);
        last = new Error(`got ${got.length} of ${range.end - range.start} bytes`);
      } catch (err) {
        if (err instanceof TdvError) throw this.packError(pack, err);
        short.add(-1);
        last = err;
      }
      if (attempt < DOWNLOAD_ATTEMPTS) await new Promise((r) => setTimeout(r, 100 * 2 ** (attempt - 1)));
    }
    if (short.size === 1 && !short.has(-1))
      throw this.corrupt(packKey(pack), `it ends before byte ${range.end} that its index names (${[...short][0]} of ${range.end - range.start} bytes from ${range.start})`);
    throw new RemoteError('DOWNLOAD_FAILED', `could not read ${packKey(pack)} from remote "${this.name}" (${this.url}): ${(last as Error)?.message ?? String(last)}`, { cause: last });
  }

  /** A key's bytes (or a range), at most `max` of them. */
  private async readKey(key: string, max: number, range?: ByteRange): Promise<Buffer> {
    const body = this.counted(await this.raw.getKey(key, range));
    if (body.size !== undefined && body.size > max) {
      await body[Symbol.asyncIterator]().return?.();
      throw this.corrupt(key, `it is ${body.size} bytes, more than the ${max} expected`);
    }
    const parts: Buffer[] = [];
    let n = 0;
    for await (const b of body) {
      n += b.length;
      if (n > max) throw this.corrupt(key, `it is more than the ${max} bytes expected`);
      parts.push(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    }
    return Buffer.concat(parts, n);
  }

  /** One blob's bytes are wrong: stored damaged, or altered on the way (the caller retries those). */
  private damagedBlob(e: BlobEntry, what: string): RemoteError {
    const name = e.kind === 'chunk' ? `chunk ${e.id}` : `object ${e.id}`;
    return new RemoteError(
      'CORRUPT_ON_REMOTE',
      `${name} on remote "${this.name}" (${this.url}) is corrupt: its copy in ${packKey(e.pack)} ${what}; the bad bytes were discarded. Run \`tdv push --repair -r ${this.name}\` in a clone that has the data, to store it again`,
      { data: { oid: e.id, key: packKey(e.pack) } },
    );
  }

  /**
   * A pack an index names cannot be read: gone, or not a file. Plain `tdv push`
   * would not send its objects again (the index still says the remote has
   * them), so the advice is `push --repair`.
   */
  private packError(pack: string, err: TdvError): TdvError {
    if (!(err instanceof RemoteError)) return err;
    if (err.code === 'OBJECT_NOT_ON_REMOTE')
      return new RemoteError(
        'CORRUPT_ON_REMOTE',
        `remote "${this.name}" (${this.url}): ${packKey(pack)} is missing, though an index names it; the objects in it cannot be read. Run \`tdv push --repair\` in a clone that has the data, to store them again`,
        { data: { key: packKey(pack) } },
      );
    if (err.code === 'NOT_A_FILE') return new RemoteError('NOT_A_FILE', err.message.replace('`tdv push`', '`tdv push --repair`'), { data: { key: packKey(pack) } });
    return err;
  }

  /** The layout record is not one: `push --repair` would refuse it too, so the fix is to delete it (nothing needs it to read the remote). */
  private badRecord(why: string): RemoteError {
    return new RemoteError(
      'CORRUPT_ON_REMOTE',
      `remote "${this.name}" (${this.url}): ${LAYOUT_KEY} is damaged: ${why}; nothing of it was used. Delete ${LAYOUT_KEY} on the remote (tdv reads the remote without it, and writes a new one when it packs objects there), then run the command again`,
      { data: { key: LAYOUT_KEY } },
    );
  }

  private corrupt(key: string, why: string): RemoteError {
    // push --repair reads the layout record and every index first, so it cannot mend those: each gets its own fix.
    const fix =
      key === LAYOUT_KEY
        ? `Delete ${LAYOUT_KEY} on the remote (tdv reads the remote without it, and writes a new one when it packs objects there), then run the command again`
        : key.startsWith('index/')
          ? // Plain `push` would trust the other indexes (a directory whose manifest is elsewhere counts as complete): --repair.
            `Delete it on the remote, then run \`tdv push --repair -r ${this.name}\` in a clone that has the data, to store again what it named`
          : `Run \`tdv push --repair -r ${this.name}\` in a clone that has the data, to store it again`;
    return new RemoteError('CORRUPT_ON_REMOTE', `remote "${this.name}" (${this.url}): ${key} is damaged: ${why}; nothing of it was used. ${fix}`, { data: { key } });
  }

  /**
   * Downloads many small packed objects into the cache, runs of neighbouring
   * blobs in one ranged read each (20,000 small files are a handful of
   * requests). Returns the jobs it did not handle (large or plain objects:
   * the caller downloads those one by one), what it stored, and what failed.
   */
  async fetchPacked<J extends { oid: Oid; size: number; path: string }>(
    jobs: readonly J[],
    opts: { jobs: number; onBytes?: OnBytes; onItem?: (job: J, ok: boolean) => void },
  ): Promise<{ rest: J[]; done: J[]; failed: { job: J; error: Error }[] }> {
    const cat = await this.catalog();
    const rest: J[] = [];
    const byPack = new Map<string, { job: J; e: BlobEntry }[]>();
    for (const job of jobs) {
      const e = whole(cat, job.oid);
      if (!e || e.kind === 'recipe') {
        rest.push(job);
        continue;
      }
      const l = byPack.get(e.pack);
      if (l) l.push({ job, e });
      else byPack.set(e.pack, [{ job, e }]);
    }
    if (byPack.size > 0) await loadCodec();
    const runs: { pack: string; items: { job: J; e: BlobEntry }[] }[] = [];
    for (const [pack, items] of byPack) {
      items.sort((a, b) => a.e.offset - b.e.offset);
      let run: { job: J; e: BlobEntry }[] = [];
      for (const it of items) {
        const head = run[0];
        const last = run[run.length - 1];
        if (head && last && (it.e.offset - (last.e.offset + last.e.length) > MAX_GAP || it.e.offset + it.e.length - head.e.offset > MAX_RUN || it.e.offset < last.e.offset + last.e.length)) {
          runs.push({ pack, items: run });
          run = [];
        }
        run.push(it);
      }
      if (run.length) runs.push({ pack, items: run });
    }
    const done: J[] = [];
    const failed: { job: J; error: Error }[] = [];
    await pLimit(opts.jobs).map(runs, async ({ pack, items }) => {
      const start = items[0]!.e.offset;
      // A loop, not Math.max(...): a forged index can put 100,000s of empty blobs in one run (the spread overflows the stack).
      let end = start;
      for (const x of items) end = Math.max(end, x.e.offset + x.e.length);
      let bytes: Buffer;
      try {
        bytes = await this.readRange(pack, { start, end });
      } catch (err) {
        if ((err instanceof RemoteError && err.wide) || !(err instanceof TdvError)) throw err;
        for (const { job } of items) {
          failed.push({ job, error: err });
          opts.onItem?.(job, false);
        }
        return;
      }
      opts.onBytes?.(bytes.length);
      for (const { job, e } of items) {
        let ok = false;
        try {
          if (this.store.has(job.oid)) {
            done.push(job);
            ok = true;
            continue;
          }
          const data = this.decodeBlob(e, bytes.subarray(e.offset - start, e.offset - start + e.length));
          if (isDirOid(job.oid)) job.size = data.length;
          else if (job.size !== data.length) throw this.corrupt(packKey(pack), `object ${job.oid} is ${data.length} bytes where ${job.size} are recorded for ${job.path}`);
          const tmp: TempObject = this.store.openTemp();
          try {
            tmp.write([data]);
            tmp.close();
            this.store.insertSync(tmp.path, job.oid, false);
          } catch (err) {
            this.store.discardTemp(tmp.path);
            throw err;
          }
          done.push(job);
          ok = true;
        } catch (err) {
          if (!(err instanceof TdvError)) throw err;
          failed.push({ job, error: err });
        } finally {
          opts.onItem?.(job, ok);
        }
      }
    });
    return { rest, done, failed };
  }

  // ---- everything else is the raw remote's ----------------------------------------------------

  putRun(key: string, data: Buffer): Promise<void> {
    return this.raw.putRun(key, data);
  }
  getRun(key: string): Promise<Buffer | undefined> {
    return this.raw.getRun(key);
  }
  listRuns(): Promise<string[]> {
    return this.raw.listRuns();
  }
  putRepoMarker(id: string, data: Buffer): Promise<void> {
    return this.raw.putRepoMarker(id, data);
  }
  listRepoMarkers(): Promise<string[]> {
    return this.raw.listRepoMarkers();
  }
  /** Deletes objects: plain ones directly, packed ones by dropping their index entries and repacking (see `collect`). */
  async remove(oids: readonly Oid[]): Promise<Oid[]> {
    return (await this.collect(oids)).notDeleted;
  }

  /**
   * Removes objects (`gc --cloud`): plain ones are deleted; packed ones lose
   * their index entries, and packs are repacked around them. The live set is
   * every whole object (object, recipe) the indexes name but `oids`, the
   * chunks their recipes name, and chunks whose id `referenced` holds (a
   * small file stored once as another file's chunk). Then per pack: no live
   * blob, deleted; live blobs less than half its bytes, they are copied (each
   * verified first) into new packs and it is deleted; else kept as it is.
   *
   * Order, so a reader never finds an index entry without its bytes: new
   * packs, then ONE index of every surviving entry of the indexes changed,
   * then those old indexes are deleted, then the dead and rewritten packs.
   * Indexes without a dead entry stay as they are. Packs no index names (an
   * upload killed, or one in progress) are deleted only once a gc has seen
   * them unnamed for UNNAMED_GRACE_MS (recorded in the local index cache).
   *
   * A pack holding a damaged live blob is neither copied nor deleted (its
   * entries stay, pointing at it); the rest is collected and the failure is
   * reported in `damaged`.
   */
  async collect(oids: readonly Oid[], referenced?: ReadonlySet<string>, opts: { dry?: boolean } = {}): Promise<CollectResult> {
    const { indexes, cat } = await this.loadIndexes();
    const removed = new Set(oids.filter((o) => whole(cat, o)));
    const plain = oids.filter((o) => !whole(cat, o));
    const res: CollectResult = {
      notDeleted: [],
      objects: removed.size,
      packs: { deleted: 0, rewritten: 0, kept: 0, created: 0 },
      indexes: { replaced: 0, written: 0 },
      bytesReclaimed: 0,
      unnamed: { deleted: 0, waiting: 0 },
      damaged: [],
    };
    const packSizes = new Map<string, number>();
    for (const k of await this.raw.listKeys('packs')) {
      const n = packNameOf(k.key);
      if (n) packSizes.set(n, k.size);
    }
    // The live entries: the catalog's copy of each live id (other copies, e.g. before a repair, are dead).
    await loadCodec();
    const liveChunks = new Set<string>();
    const liveRecipes = [...cat].filter(([id, e]) => e.kind === 'recipe' && !removed.has(id)).map(([, e]) => e);
    await pLimit(Math.max(2, this.jobs)).map(liveRecipes, async (e) => {
      for (const [sha] of (await this.recipeOf(e)).chunks) liveChunks.add(sha);
    });
    const live = new Set<BlobEntry>();
    for (const [id, e] of cat) {
      const chunkUse = e.kind !== 'recipe' && (liveChunks.has(id) || (referenced?.has(id) ?? false));
      if ((e.kind !== 'chunk' && !removed.has(id)) || chunkUse) live.add(e);
    }
    // Per pack: its live bytes, and what becomes of it.
    const livePer = new Map<string, BlobEntry[]>();
    const named = new Set<string>();
    for (const ix of indexes) for (const e of ix.entries) named.add(e.pack);
    for (const e of live) {
      const l = livePer.get(e.pack);
      if (l) l.push(e);
      else livePer.set(e.pack, [e]);
    }
    const fate = new Map<string, 'keep' | 'delete' | 'rewrite'>();
    const liveOf = new Map<string, number>();
    for (const pack of named) {
      const size = packSizes.get(pack);
      const entries = livePer.get(pack) ?? [];
      // Whole records (headers too), so a pack holding nothing dead weighs exactly its size and is never rewritten.
      const liveBytes = PACK_MAGIC.length + entries.reduce((n, e) => n + recordSize(e), 0);
      liveOf.set(pack, liveBytes);
      // A pack missing from the listing is left to fsck: its entries are kept as they are.
      if (size === undefined) fate.set(pack, 'keep');
      else if (entries.length === 0) fate.set(pack, 'delete');
      else if (liveBytes * 2 < size) fate.set(pack, 'rewrite');
      else fate.set(pack, 'keep');
    }
    if (opts.dry) {
      // The plan only: what would go, and about how many bytes (a rewritten pack keeps its live records).
      for (const [p, f] of fate) {
        if (f === 'keep') res.packs.kept++;
        else res.packs[f === 'delete' ? 'deleted' : 'rewritten']++;
        if (f !== 'keep') res.bytesReclaimed += (packSizes.get(p) ?? 0) - (f === 'rewrite' ? liveOf.get(p)! : 0);
      }
      const unnamed = [...packSizes.keys()].filter((p) => !named.has(p));
      const due = this.unnamedDue(unnamed, false);
      res.unnamed = { deleted: due.length, waiting: unnamed.length - due.length };
      for (const p of due) res.bytesReclaimed += packSizes.get(p) ?? 0;
      return res;
    }
    // Rewriting: live blobs copied as stored, each checked against its id first.
    const moved = new Map<BlobEntry, BlobEntry>();
    const session = new UploadSession(this.raw, this.store, Math.max(2, this.jobs), undefined, false);
    try {
      for (const [pack, f] of fate) {
        if (f !== 'rewrite') continue;
        let blobs: { e: BlobEntry; payload: Buffer }[];
        try {
          blobs = await this.verifiedPayloads(livePer.get(pack)!);
        } catch (err) {
          if (!(err instanceof RemoteError) || err.wide) throw err;
          fate.set(pack, 'keep');
          res.damaged.push({ pack, message: err.message });
          continue;
        }
        for (const { e, payload } of blobs) await session.add(e.id, e.kind, e.codec, e.raw, payload, e.fileSize);
      }
      await session.finish();
    } catch (err) {
      await session.abandon();
      throw err;
    }
    const byId = new Map(session.uploaded.map((e) => [e.id, e]));
    for (const e of live) if (fate.get(e.pack) === 'rewrite') moved.set(e, byId.get(e.id)!);
    res.packs.created = new Set(session.uploaded.map((e) => e.pack)).size;
    // The indexes changed: those holding a dead entry or one in a pack that goes.
    const affected = indexes.filter((ix) => ix.entries.some((e) => !live.has(e) || fate.get(e.pack) !== 'keep'));
    const surviving: BlobEntry[] = [];
    const kept = new Set<BlobEntry>();
    for (const ix of affected) {
      for (const e of ix.entries) {
        if (!live.has(e) || kept.has(e)) continue;
        kept.add(e);
        surviving.push(moved.get(e) ?? e);
      }
    }
    // A push that ran meanwhile may name chunks this drops (it found them on the remote): then nothing is changed.
    await this.checkNoNewUse(indexes, live, cat, session.uploaded);
    let written: string | undefined;
    if (surviving.length > 0 && affected.length > 0) {
      const { name, bytes } = encodeIndex(surviving);
      await this.raw.putKey(indexKey(name), { data: bytes });
      this.store.writeSide('remotes', `${this.cacheId}/${name}.json.gz`, bytes);
      res.indexes.written = 1;
      written = name;
    }
    const oldIndexes = affected.map((ix) => indexKey(ix.name));
    const failedIx = await this.raw.deleteKeys(oldIndexes);
    res.indexes.replaced = oldIndexes.length - failedIx.length;
    this.catalogP = undefined;
    if (failedIx.length > 0) {
      // An old index still names the packs: they stay (the next gc deletes them).
      res.notDeleted.push(...removed);
      if (plain.length) res.notDeleted.push(...(await this.raw.remove(plain)));
      return res;
    }
    let gone = [...fate].filter(([, f]) => f !== 'keep').map(([p]) => p);
    // Last look: a pack an index written meanwhile names (a concurrent gc's or push's) is not deleted.
    const mine = new Set([...indexes.filter((ix) => !affected.includes(ix)).map((ix) => ix.name), ...(written ? [written] : [])]);
    const stillUsed = new Set<string>();
    for (const k of await this.raw.listKeys('index')) {
      const n = indexNameOf(k.key);
      if (n === undefined || mine.has(n)) continue;
      for (const e of (await this.readIndex(n)).entries) stillUsed.add(e.pack);
    }
    for (const p of gone) if (stillUsed.has(p)) fate.set(p, 'keep');
    gone = gone.filter((p) => !stillUsed.has(p));
    const failedPacks = new Set(await this.raw.deleteKeys(gone.map(packKey)));
    for (const [p, f] of fate) {
      if (f === 'keep') res.packs.kept++;
      else if (failedPacks.has(packKey(p))) continue;
      else {
        res.packs[f === 'delete' ? 'deleted' : 'rewritten']++;
        res.bytesReclaimed += packSizes.get(p) ?? 0;
      }
    }
    res.bytesReclaimed -= session.uploadedBytes;
    // Packs no index names: an upload killed midway, or one running now (whose index is not written yet).
    const stillNamed = new Set([...named, ...stillUsed, ...session.uploaded.map((e) => e.pack)]);
    const unnamed = [...packSizes.keys()].filter((p) => !stillNamed.has(p));
    const due = this.unnamedDue(unnamed);
    const failedUnnamed = new Set(await this.raw.deleteKeys(due.map(packKey)));
    for (const p of due) {
      if (failedUnnamed.has(packKey(p))) continue;
      res.unnamed.deleted++;
      res.bytesReclaimed += packSizes.get(p) ?? 0;
    }
    res.unnamed.waiting = unnamed.length - due.length;
    res.bytesReclaimed = Math.max(0, res.bytesReclaimed);
    // Plain objects last: until here, a check that stops gc has deleted nothing.
    if (plain.length) res.notDeleted.push(...(await this.raw.remove(plain)));
    return res;
  }

  /** Every index with its entries (entries are the very objects the catalog holds, so identity tells the catalog's copy). */
  private async loadIndexes(): Promise<{ indexes: { name: string; written: number; entries: BlobEntry[] }[]; cat: Map<string, BlobEntry> }> {
    await this.checkRecord();
    const names: string[] = [];
    for (const k of await this.raw.listKeys('index')) {
      const name = indexNameOf(k.key);
      if (name !== undefined && k.size <= MAX_INDEX_BYTES) names.push(name);
    }
    const indexes = await pLimit(Math.max(2, this.jobs)).map(names, async (name) => ({ name, ...(await this.readIndex(name)) }));
    indexes.sort((a, b) => a.written - b.written);
    const cat = new Map<string, BlobEntry>();
    for (const { entries } of indexes) for (const e of entries) add(cat, e);
    return { indexes, cat };
  }

  /** A live recipe: the cache's copy when it is there and sound, else the remote's (checked). */
  private async recipeOf(e: BlobEntry): Promise<Recipe> {
    const local = this.store.readSide('recipes', e.id.slice(0, 64));
    if (local) {
      try {
        return decodeRecipe(local, DEFAULT_CHUNK_PARAMS.max, e.fileSize);
      } catch {
        /* damaged local copy: read from the remote */
      }
    }
    return this.readRecipe(e);
  }

  /** The stored payloads of one pack's live blobs, read in runs and each checked against its id; throws on the first damaged one. */
  private async verifiedPayloads(entries: BlobEntry[]): Promise<{ e: BlobEntry; payload: Buffer }[]> {
    const sorted = [...entries].sort((a, b) => a.offset - b.offset);
    const out: { e: BlobEntry; payload: Buffer }[] = [];
    let i = 0;
    while (i < sorted.length) {
      const first = sorted[i]!;
      let j = i + 1;
      let end = first.offset + first.length;
      while (j < sorted.length) {
        const n = sorted[j]!;
        if (n.offset < end || n.offset - end > MAX_GAP || n.offset + n.length - first.offset > MAX_RUN) break;
        end = n.offset + n.length;
        j++;
      }
      const bytes = await this.readRange(first.pack, { start: first.offset, end });
      for (let k = i; k < j; k++) {
        const e = sorted[k]!;
        const payload = bytes.subarray(e.offset - first.offset, e.offset - first.offset + e.length);
        const data = this.decodeBlob(e, payload);
        if (e.kind === 'recipe') {
          try {
            decodeRecipe(data, DEFAULT_CHUNK_PARAMS.max, e.fileSize);
          } catch (err) {
            throw this.damagedBlob(e, `is not a sound recipe (${(err as Error).message})`);
          }
        }
        out.push({ e, payload: Buffer.from(payload) });
      }
      i = j;
    }
    return out;
  }

  /**
   * Refuses to go on when indexes appeared since gc read them (a push ran
   * meanwhile) whose recipes name chunks gc drops: that push relied on them.
   * The new packs gc uploaded are deleted again; nothing else was changed.
   */
  private async checkNoNewUse(indexes: readonly { name: string }[], live: Set<BlobEntry>, cat: Map<string, BlobEntry>, uploaded: readonly BlobEntry[]): Promise<void> {
    const known = new Set(indexes.map((ix) => ix.name));
    const listed = (await this.raw.listKeys('index')).map((k) => indexNameOf(k.key)).filter((n): n is string => n !== undefined);
    const abort = async (who: string) => {
      await this.raw.deleteKeys([...new Set(uploaded.map((u) => packKey(u.pack)))]);
      throw new TdvError('GC_INCOMPLETE', `${who} ran on remote "${this.name}" (${this.url}) while gc collected it; nothing was deleted, run \`tdv gc --cloud\` again`);
    };
    // An index gc read is gone: another gc replaced it (or a push its own checkpoint); its packs may be going too.
    const now = new Set(listed);
    if ([...known].some((n) => !now.has(n))) await abort('another gc or a push');
    const fresh = listed.filter((n) => !known.has(n));
    for (const name of fresh) {
      const { entries } = await this.readIndex(name);
      for (const e of entries) {
        const dropped = (id: string) => {
          const c = cat.get(id);
          return c !== undefined && !live.has(c);
        };
        let uses = e.kind !== 'recipe' ? [] : (await this.recipeOf(e)).chunks.map(([sha]) => sha);
        if (e.kind !== 'chunk') uses = [...uses, e.id];
        if (uses.some(dropped)) await abort('a push using data gc was dropping');
      }
    }
  }

  /**
   * Which unnamed packs have been seen unnamed for UNNAMED_GRACE_MS (by an
   * earlier gc on this machine): those are deleted. The others are recorded
   * with when they were first seen (`remotes/<id>/unnamed-packs.json`).
   */
  private unnamedDue(unnamed: readonly string[], record = true): string[] {
    const file = `${this.cacheId}/${UNNAMED_FILE}`;
    let seen: Record<string, number> = {};
    try {
      const d = JSON.parse(this.store.readSide('remotes', file)?.toString('utf8') ?? '{}') as unknown;
      if (d && typeof d === 'object') seen = d as Record<string, number>;
    } catch {
      /* a damaged record starts again */
    }
    const now = Date.now();
    const due: string[] = [];
    const next: Record<string, number> = {};
    for (const p of unnamed) {
      const first = typeof seen[p] === 'number' ? seen[p] : now;
      if (now - first >= UNNAMED_GRACE_MS) due.push(p);
      else next[p] = first;
    }
    if (record && (Object.keys(next).length > 0 || Object.keys(seen).length > 0)) this.store.writeSide('remotes', file, Buffer.from(JSON.stringify(next)));
    return due;
  }
  putKey(key: string, from: KeySource, onBytes?: OnBytes): Promise<void> {
    return this.raw.putKey(key, from, onBytes);
  }
  async getKey(key: string, range?: ByteRange): Promise<ObjectBody> {
    return this.counted(await this.raw.getKey(key, range));
  }

  /** `body`, its bytes added to `received` as they are read; its size and return() kept. */
  private counted(body: ObjectBody): ObjectBody {
    const add = (n: number) => (this.received += n);
    return {
      size: body.size,
      [Symbol.asyncIterator]() {
        const it = body[Symbol.asyncIterator]();
        return {
          async next() {
            const r = await it.next();
            if (!r.done) add(r.value.length);
            return r;
          },
          async return(value?: unknown) {
            return it.return ? it.return(value) : { done: true as const, value: undefined };
          },
        };
      },
    };
  }
  listKeys(dir: string, max?: number) {
    return this.raw.listKeys(dir, max);
  }
  deleteKeys(keys: readonly string[]): Promise<string[]> {
    return this.raw.deleteKeys(keys);
  }
  close(): void {
    this.raw.close();
  }
}

/**
 * Packs being written by one upload: blobs go into a pack (a temp file in the
 * cache) until it is PACK_TARGET bytes, then it uploads while the next one
 * fills; at most `jobs` packs upload at once. After a pack, an index naming
 * every pack uploaded so far replaces the previous one when that is cheap
 * (CHECKPOINT_COST) or CHECKPOINT_MS passed, and one is written at the end,
 * so an interrupted upload resumes from its last index.
 */
class UploadSession {
  private builder = new PackBuilder();
  private tmp: TempObject | undefined;
  private readonly added = new Set<string>();
  /** The ids added as objects or recipes (not chunks): an object whose bytes are a chunk sent in this push is still stored as an object. */
  private readonly addedWhole = new Set<string>();
  readonly uploaded: BlobEntry[] = [];
  readonly indexes: string[] = [];
  private inflight = new Set<Promise<void>>();
  private failure: unknown;
  private lastIndex: string | undefined;
  private lastIndexAt = Date.now();
  /** Pack bytes uploaded since the last index. */
  private sinceIndex = 0;
  private indexChain: Promise<void> = Promise.resolve();
  private temps = new Set<string>();
  /** Packs sealed so far, and the entries of those uploaded out of order, by seal number. */
  private sealed = 0;
  private early = new Map<number, BlobEntry[]>();
  private nextDone = 0;

  constructor(
    private readonly raw: Remote,
    private readonly store: ObjectStore,
    private readonly jobs: number,
    readonly onBytes?: OnBytes,
    /** false: only packs are uploaded, the caller writes the index (gc's repack writes one for everything). */
    private readonly writesIndexes = true,
  ) {}

  /** Bytes of the packs uploaded. */
  uploadedBytes = 0;

  has(id: string): boolean {
    return this.added.has(id);
  }

  hasWhole(id: string): boolean {
    return this.addedWhole.has(id);
  }

  async add(id: string, kind: BlobEntry['kind'], codec: BlobEntry['codec'], raw: number, payload: Buffer, fileSize?: number): Promise<void> {
    if (this.failure) throw this.failure;
    this.builder.add(id, kind, codec, raw, payload, fileSize);
    this.added.add(id);
    if (kind !== 'chunk') this.addedWhole.add(id);
    if (!this.tmp) {
      this.tmp = this.store.openTemp();
      this.temps.add(this.tmp.path);
    }
    this.tmp.write(this.builder.take());
    if (this.builder.size >= PACK_TARGET) await this.seal();
  }

  /** Closes the pack being filled and starts its upload; waits while `jobs` uploads are running. */
  private async seal(): Promise<void> {
    if (this.builder.count === 0 || !this.tmp) return;
    const { name, entries } = this.builder.finish();
    const seq = this.sealed++;
    this.tmp.close();
    const file = this.tmp.path;
    this.builder = new PackBuilder();
    this.tmp = undefined;
    const p: Promise<void> = (async () => {
      let size = 0;
      try {
        size = fs.statSync(file).size;
        await this.raw.putKey(packKey(name), { file, move: true }, this.onBytes);
        this.uploadedBytes += size;
        // Entries become indexable in seal order only: a recipe follows its chunks, which may be
        // in an earlier pack still uploading (or failing); an index naming the recipe before them
        // would tell every reader, and the next push, that the remote has a file it cannot serve.
        this.early.set(seq, entries);
        for (let e; (e = this.early.get(this.nextDone)); this.nextDone++) {
          this.early.delete(this.nextDone);
          this.uploaded.push(...e);
        }
      } finally {
        this.store.discardTemp(file);
        this.temps.delete(file);
      }
      this.sinceIndex += size;
      if (!this.writesIndexes) return;
      const since = Date.now() - this.lastIndexAt;
      const cheap = this.uploaded.length * INDEX_ENTRY_BYTES <= this.sinceIndex * CHECKPOINT_COST;
      if ((cheap && since >= CHECKPOINT_MIN_MS) || since >= CHECKPOINT_MS) await this.writeIndex();
      // Due but too soon after the last (two packs uploading side by side end together):
      // written when CHECKPOINT_MIN_MS has passed, not only after the next pack, which
      // on a slow link is many seconds of data a kill would lose.
      else if (cheap) this.deferIndex(CHECKPOINT_MIN_MS - since);
    })();
    this.inflight.add(p);
    p.then(
      () => this.inflight.delete(p),
      (err: unknown) => {
        this.inflight.delete(p);
        this.failure ??= err;
      },
    );
    while (this.inflight.size >= this.jobs) await Promise.race(this.inflight).catch(() => undefined);
    if (this.failure) throw this.failure;
  }

  private deferred: NodeJS.Timeout | undefined;

  /** A checkpoint in `ms`, unless one is already due (a failure there fails the upload). */
  private deferIndex(ms: number): void {
    if (this.deferred) return;
    this.deferred = setTimeout(
      () => {
        this.deferred = undefined;
        if (!this.failure && !this.finished) this.writeIndex().catch((err: unknown) => (this.failure ??= err));
      },
      Math.max(0, ms),
    );
    this.deferred.unref();
  }

  private finished = false;

  /** An index of everything uploaded so far, replacing this upload's previous one (written one at a time). */
  private writeIndex(): Promise<void> {
    if (this.deferred) {
      clearTimeout(this.deferred);
      this.deferred = undefined;
    }
    const next = this.indexChain.then(async () => {
      if (this.uploaded.length === 0) return;
      this.lastIndexAt = Date.now();
      this.sinceIndex = 0;
      const { name, bytes } = encodeIndex(this.uploaded);
      if (name === this.lastIndex) return;
      await this.raw.putKey(indexKey(name), { data: bytes }, this.onBytes);
      this.indexes.push(name);
      const prev = this.lastIndex;
      this.lastIndex = name;
      if (prev) await this.raw.deleteKeys([indexKey(prev)]);
    });
    this.indexChain = next.catch(() => undefined);
    return next;
  }

  async finish(): Promise<void> {
    await this.seal();
    while (this.inflight.size > 0) await Promise.race(this.inflight).catch(() => undefined);
    this.finished = true;
    if (this.failure) throw this.failure;
    if (this.writesIndexes) await this.writeIndex();
  }

  /** After a failure: waits for uploads in flight (their packs stay unnamed until a later push), removes temp files. */
  async abandon(): Promise<void> {
    this.finished = true;
    if (this.deferred) clearTimeout(this.deferred);
    this.deferred = undefined;
    try {
      this.tmp?.close();
    } catch {
      /* already closed */
    }
    while (this.inflight.size > 0) await Promise.race(this.inflight).catch(() => undefined);
    for (const t of this.temps) this.store.discardTemp(t);
  }
}

/**
 * The entry of a whole object (a small object, or a large one's recipe), not
 * of a chunk: a small file equal to a chunk of a large one is stored again as
 * an object (one more small blob), so every object the remote holds has an
 * object or recipe entry that index readers and listings find.
 */
function whole(cat: Map<string, BlobEntry>, oid: Oid): BlobEntry | undefined {
  const e = cat.get(oid);
  return e && e.kind !== 'chunk' ? e : undefined;
}

/**
 * Which kind of blob a catalog keeps when several share an id: a whole object
 * (stored whole, or as a recipe) over a chunk. Between an object and a recipe
 * the later index wins, as between two of a kind: a file stored whole with
 * chunking off, then damaged, is repaired by a `push --repair` that chunks it.
 */
const RANK: Record<BlobEntry['kind'], number> = { chunk: 0, recipe: 1, object: 1 };

/**
 * Adds an entry, replacing one of the same id from an index written no later
 * (`written`, when indexes are merged in any order; without it, `e` is the
 * newest: a later index's copy is read, `push --repair`), except that a chunk
 * never hides an object or recipe (the same bytes, but whole() must find the object).
 */
function add(map: Map<string, BlobEntry>, e: BlobEntry, written = Infinity, writtenOf?: Map<string, number>): void {
  const old = map.get(e.id);
  if (old && (RANK[e.kind] < RANK[old.kind] || (RANK[e.kind] === RANK[old.kind] && written < (writtenOf?.get(e.id) ?? -Infinity)))) return;
  map.set(e.id, e);
  writtenOf?.set(e.id, written);
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

async function* one(b: Buffer): AsyncGenerator<Uint8Array> {
  yield b;
}

function damaged(oid: Oid, from: string): TdvError {
  return new TdvError('DAMAGED_OBJECT', `cache object ${from} no longer hashes to ${oid} (modified in place?); not pushed. \`tdv fsck\` moves it aside, then \`tdv add\` the data again`);
}
