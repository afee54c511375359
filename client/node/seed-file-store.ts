import { open, type FileHandle } from 'node:fs/promises';
import { Bitfield, PfError, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';
import { readAt, readVerifiedChunk } from './chunk-file-read.ts';

/** How often a seeded file's size and mtime are looked at, at most (on reads for uploads). */
const CHANGE_CHECK_MS = 1000;

export interface SeedFileStoreOptions {
  /** The file changed on disk since it was checked: only the chunks that still verify are served. */
  onChanged?: (reason: string, verifiedChunks: number, chunkCount: number) => void;
  /**
   * A copy as long as the manifest's file (or longer) with chunks that fail is another file, not
   * a partial one: open() fails (PF_ERR_FILE_HASH_MISMATCH) instead of seeding the rest [false].
   */
  refuseDamaged?: boolean;
}

/**
 * A local file offered to the swarm (`peerfill seed`). Every chunk is checked against the
 * manifest when opened, and only chunks that match are served: a truncated or partly
 * truncated copy seeds the chunks it has. A change of the file's size or mtime (looked at on
 * reads for uploads, and every 2 s) stops every chunk until it is checked again. Read-only.
 */
export class SeedFileStore implements ChunkStore {
  readonly path: string;
  readonly #options: SeedFileStoreOptions;
  #handle: FileHandle | undefined;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);
  #verify: ((index: number, bytes: Uint8Array) => Promise<boolean>) | undefined;
  #seen: { size: number; mtimeMs: number } | undefined;
  #checkedAtMs = 0;
  #rechecking: Promise<void> | undefined;
  /** Looks for a change between uploads too, so that a seeder with no leecher says so. */
  #watch: ReturnType<typeof setInterval> | undefined;

  constructor(path: string, options: SeedFileStoreOptions = {}) {
    this.path = path;
    this.#options = options;
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    this.#manifest = manifest;
    this.#verify = verify;
    this.#handle = await open(this.path, 'r');
    await this.#check();
    if (this.#options.refuseDamaged && this.#seen!.size >= manifest.size && !this.#verified.isComplete()) {
      throw new PfError('PF_ERR_FILE_HASH_MISMATCH', `the local copy does not match the manifest (${this.#verified.count()} of ${this.#verified.length} chunks verify)`);
    }
    this.#watch = setInterval(() => void this.#noticeChange(), 2 * CHANGE_CHECK_MS);
    this.#watch.unref();
    return this.#verified.clone();
  }

  /** Verify every chunk the file holds whole, against the manifest. */
  async #check(): Promise<void> {
    const handle = this.#handle!;
    const manifest = this.#manifest!;
    const { size, mtimeMs } = await handle.stat();
    this.#seen = { size, mtimeMs };
    const count = chunkCount(manifest.size, manifest.chunk_size);
    const verified = new Bitfield(count);
    this.#verified = new Bitfield(count);
    for (let index = 0; index < count; index++) {
      const { start, end } = chunkRange(manifest, index);
      if (end > size) break;
      if (await this.#verify!(index, await readAt(handle, start, end - start))) verified.set(index);
    }
    this.#verified = verified;
  }

  put(): Promise<void> {
    return Promise.reject(new PfError('PF_ERR_INTERNAL', 'a seed store is read-only'));
  }

  async read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    if (await this.#noticeChange()) return undefined;
    return readVerifiedChunk(this.#handle, this.#manifest, this.#verified, index, offset, length);
  }

  /** Whether the file changed since it was checked (looked at once a second at most); a change stops every chunk until checked again. */
  async #noticeChange(): Promise<boolean> {
    if (this.#rechecking) return true;
    if (!this.#handle || !this.#seen || Date.now() - this.#checkedAtMs < CHANGE_CHECK_MS) return false;
    this.#checkedAtMs = Date.now();
    const info = await this.#handle.stat().catch(() => undefined);
    if (!info || (info.size === this.#seen.size && info.mtimeMs === this.#seen.mtimeMs)) return false;
    const reason = info.size === this.#seen.size ? 'its mtime changed' : `its size changed from ${this.#seen.size} to ${info.size} bytes`;
    this.#verified = new Bitfield(this.#verified.length);
    this.#rechecking = this.#check()
      .then(() => this.#options.onChanged?.(reason, this.#verified.count(), this.#verified.length))
      .catch(() => this.#options.onChanged?.(`${reason}, and it cannot be read`, 0, this.#verified.length))
      .finally(() => (this.#rechecking = undefined));
    return true;
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
    clearInterval(this.#watch);
    await this.#rechecking;
    await this.#handle?.close();
    this.#handle = undefined;
  }
}
