import { open, type FileHandle } from 'node:fs/promises';
import { Bitfield, PfError, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';
import { readAt } from './chunk-file-read.ts';

/** How often a seeded file's size and mtime are looked at, at most (on reads for uploads). */
const CHANGE_CHECK_MS = 1000;
/**
 * Verified chunks kept in memory for the next reads of the same uploads (a peer's requests for
 * a chunk are read in 128 KiB parts), at most this many bytes (and at least 8 chunks), each until
 * it is CACHE_IDLE_MS unused: once its uploads end, the next one reads and verifies it again.
 */
const CACHE_BYTES = 16 * 1024 * 1024;
const CACHE_CHUNKS = 8;
const CACHE_IDLE_MS = 1000;

/** The file changed on disk since it was checked: `lost` were served before and no longer verify; `found` verify now and did not before (put back, or written since). */
export interface SeedFileChange {
  reason: string;
  verifiedChunks: number;
  chunkCount: number;
  lost: number[];
  found: number[];
}

export interface SeedFileStoreOptions {
  /** The file changed on disk since it was checked: only the chunks that still verify are served. */
  onChanged?: (change: SeedFileChange) => void;
  /** A chunk read for an upload failed SHA-256 (once per chunk): it is no longer served, and the whole file is checked again. */
  onChunkFailed?: (index: number) => void;
  /**
   * A copy as long as the manifest's file (or longer) with chunks that fail is another file, not
   * a partial one: open() fails (PF_ERR_FILE_HASH_MISMATCH) instead of seeding the rest [false].
   */
  refuseDamaged?: boolean;
  /** The clock of the change checks and the cache [Date.now]. */
  now?: () => number;
}

/**
 * A local file offered to the swarm (`peerfill seed`). Every chunk is checked against the
 * manifest when opened, and only chunks that match are served: a truncated or partly
 * truncated copy seeds the chunks it has. Every chunk read for an upload is read whole and
 * checked again (kept in a small cache while its uploads go on), so a byte that changed on
 * disk is never sent; a chunk that fails is dropped, said (onChunkFailed), and the whole file
 * is checked again. A change of the file's size or mtime (looked at on reads for uploads,
 * and every 2 s) also checks every chunk again; the chunks lost are said (onChanged).
 * Uploads go on meanwhile, each chunk still checked as it is read. Read-only.
 */
export class SeedFileStore implements ChunkStore {
  readonly path: string;
  readonly #options: SeedFileStoreOptions;
  readonly #now: () => number;
  #handle: FileHandle | undefined;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);
  #verify: ((index: number, bytes: Uint8Array) => Promise<boolean>) | undefined;
  #seen: { size: number; mtimeMs: number } | undefined;
  #checkedAtMs = 0;
  #rechecking: Promise<void> | undefined;
  #isClosing = false;
  /** Whether another check must follow the running one (a chunk failed while it ran). */
  #isRecheckDue = false;
  /** Verified chunks by index, with when they were last used, least recently used first. */
  readonly #cache = new Map<number, { bytes: Uint8Array; usedAtMs: number }>();
  #cacheBytes = 0;
  /** Chunks being read and checked for an upload, so that parallel reads of one chunk share the work. */
  readonly #loading = new Map<number, Promise<Uint8Array | undefined>>();
  /** Looks for a change between uploads too, so that a seeder with no leecher says so. */
  #watch: ReturnType<typeof setInterval> | undefined;

  constructor(path: string, options: SeedFileStoreOptions = {}) {
    this.path = path;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    this.#manifest = manifest;
    this.#verify = verify;
    this.#isClosing = false;
    this.#forget();
    this.#handle = await open(this.path, 'r');
    this.#verified = await this.#check();
    if (this.#options.refuseDamaged && this.#seen!.size >= manifest.size && !this.#verified.isComplete()) {
      throw new PfError('PF_ERR_FILE_HASH_MISMATCH', `the local copy does not match the manifest (${this.#verified.count()} of ${this.#verified.length} chunks verify)`);
    }
    this.#watch = setInterval(() => void this.#noticeChange(), 2 * CHANGE_CHECK_MS);
    this.#watch.unref();
    return this.#verified.clone();
  }

  /** The chunks the file holds whole that verify against the manifest. */
  async #check(): Promise<Bitfield> {
    const handle = this.#handle!;
    const manifest = this.#manifest!;
    const { size, mtimeMs } = await handle.stat();
    this.#seen = { size, mtimeMs };
    const count = chunkCount(manifest.size, manifest.chunk_size);
    const verified = new Bitfield(count);
    for (let index = 0; index < count; index++) {
      const { start, end } = chunkRange(manifest, index);
      if (end > size) break;
      if (await this.#verify!(index, await readAt(handle, start, end - start))) verified.set(index);
    }
    return verified;
  }

  put(): Promise<void> {
    return Promise.reject(new PfError('PF_ERR_INTERNAL', 'a seed store is read-only'));
  }

  /** Bytes of a chunk that verified when it was read for this: undefined when it is not served or no longer verifies. */
  async read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    void this.#noticeChange();
    const manifest = this.#manifest;
    if (!manifest || !this.#verified.get(index)) return undefined;
    const { start, end } = chunkRange(manifest, index);
    if (offset < 0 || length < 0 || start + offset + length > end) return undefined;
    const chunk = await this.#verifiedChunk(index);
    return chunk?.subarray(offset, offset + length);
  }

  #verifiedChunk(index: number): Promise<Uint8Array | undefined> {
    const cached = this.#cache.get(index);
    if (cached) {
      this.#cache.delete(index);
      const now = this.#now();
      if (now - cached.usedAtMs < CACHE_IDLE_MS) {
        cached.usedAtMs = now;
        this.#cache.set(index, cached);
        return Promise.resolve(cached.bytes);
      }
      this.#cacheBytes -= cached.bytes.length;
    }
    let loading = this.#loading.get(index);
    if (!loading) {
      loading = this.#load(index).finally(() => this.#loading.delete(index));
      this.#loading.set(index, loading);
    }
    return loading;
  }

  /** Read chunk `index` whole and check it: a chunk that fails is dropped and said once, and the whole file is checked again. */
  async #load(index: number): Promise<Uint8Array | undefined> {
    const handle = this.#handle;
    const manifest = this.#manifest!;
    if (!handle) return undefined;
    const { start, end } = chunkRange(manifest, index);
    const bytes = await readAt(handle, start, end - start);
    if (await this.#verify!(index, bytes)) {
      if (this.#verified.get(index)) this.#remember(index, bytes);
      return bytes;
    }
    if (!this.#verified.get(index)) return undefined;
    this.#verified.set(index, false);
    this.#options.onChunkFailed?.(index);
    this.#recheck(`chunk ${index} failed SHA-256 when read for an upload`);
    return undefined;
  }

  #remember(index: number, bytes: Uint8Array): void {
    const previous = this.#cache.get(index);
    if (previous) {
      this.#cache.delete(index);
      this.#cacheBytes -= previous.bytes.length;
    }
    this.#cache.set(index, { bytes, usedAtMs: this.#now() });
    this.#cacheBytes += bytes.length;
    const budget = Math.max(CACHE_BYTES, CACHE_CHUNKS * this.#manifest!.chunk_size);
    for (const [oldest, kept] of this.#cache) {
      if (this.#cacheBytes <= budget || oldest === index) break;
      this.#cache.delete(oldest);
      this.#cacheBytes -= kept.bytes.length;
    }
  }

  /** Whether the file's size or mtime changed since it was checked (looked at once a second at most); a change checks every chunk again. */
  async #noticeChange(): Promise<boolean> {
    if (this.#rechecking) return true;
    if (!this.#handle || !this.#seen || this.#now() - this.#checkedAtMs < CHANGE_CHECK_MS) return false;
    this.#checkedAtMs = this.#now();
    const info = await this.#handle.stat().catch(() => undefined);
    if (!info || (info.size === this.#seen.size && info.mtimeMs === this.#seen.mtimeMs) || this.#rechecking) return false;
    this.#recheck(info.size === this.#seen.size ? 'its mtime changed' : `its size changed from ${this.#seen.size} to ${info.size} bytes`);
    return true;
  }

  /** Check every chunk again; serve only those that verify, and say which were lost. */
  #recheck(reason: string): void {
    if (this.#isClosing) return;
    if (this.#rechecking) {
      this.#isRecheckDue = true;
      return;
    }
    const count = this.#verified.length;
    this.#rechecking = this.#check()
      .then(
        (verified) => {
          const lost: number[] = [];
          const found: number[] = [];
          for (let index = 0; index < count; index++) {
            if (this.#verified.get(index) && !verified.get(index)) lost.push(index);
            if (!this.#verified.get(index) && verified.get(index)) found.push(index);
          }
          this.#verified = verified;
          this.#forget();
          this.#options.onChanged?.({ reason, verifiedChunks: verified.count(), chunkCount: count, lost, found });
        },
        () => {
          const lost: number[] = [];
          for (let index = 0; index < count; index++) if (this.#verified.get(index)) lost.push(index);
          this.#verified = new Bitfield(count);
          this.#forget();
          this.#options.onChanged?.({ reason: `${reason}, and it cannot be read`, verifiedChunks: 0, chunkCount: count, lost, found: [] });
        },
      )
      .finally(() => {
        this.#rechecking = undefined;
        if (this.#isRecheckDue && !this.#isClosing) {
          this.#isRecheckDue = false;
          this.#recheck('it changed again while it was checked');
        }
      });
  }

  #forget(): void {
    this.#cache.clear();
    this.#cacheBytes = 0;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  loadResumeData(): Promise<ResumeData | undefined> {
    return Promise.resolve(undefined);
  }

  saveResumeData(): Promise<void> {
    return Promise.resolve();
  }

  finalize(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    // No check starts once closing (a read that fails now is not reported as a change).
    this.#isClosing = true;
    clearInterval(this.#watch);
    this.#isRecheckDue = false;
    await Promise.allSettled(this.#loading.values());
    await this.#rechecking;
    await this.#handle?.close();
    this.#handle = undefined;
    this.#forget();
  }
}
