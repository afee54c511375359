import { Bitfield, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';
import { decodeStateRecord, encodeStateRecord, type StateBody } from './state-record.ts';
import type { StorageBackend } from './storage-backend.ts';
import { isQuotaError, storageFullError } from './storage-full.ts';

export interface BackendChunkStoreOptions {
  /** Least time between two state flushes (data flush + record write) [250 ms]. */
  flushIntervalMs?: number;
  /** Why the state record was not trusted, and how many claimed chunks were re-verified. */
  onStateRejected?: (reason: string, recheckedChunks: number) => void;
}

/**
 * A ChunkStore over a browser storage backend. The state record is written only after
 * the data it claims is flushed, so it never claims a chunk that is not stored; a torn
 * or foreign record is not trusted, and every chunk it could claim is re-verified
 * against the manifest before it counts.
 */
export class BackendChunkStore implements ChunkStore {
  readonly backend: StorageBackend;
  readonly #options: BackendChunkStoreOptions;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);
  #resume: ResumeData | undefined;
  #isComplete = false;
  #isOpen = false;
  #isDirty = false;
  #flushing: Promise<void> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(backend: StorageBackend, options: BackendChunkStoreOptions = {}) {
    this.backend = backend;
    this.#options = options;
  }

  /** Every chunk is stored and the whole file verified (finalize() ran, now or in an earlier run). */
  get isComplete(): boolean {
    return this.#isComplete;
  }

  get manifest(): Manifest | undefined {
    return this.#manifest;
  }

  /** What the record says without opening the data: for listing downloads after a reload. */
  async peek(): Promise<{ verifiedChunks: number; verifiedBytes: number; isComplete: boolean } | undefined> {
    const state = await decodeStateRecord(await this.backend.readState());
    if (state.kind !== 'valid') return undefined;
    const body = state.body;
    const count = body.size !== undefined && body.chunk_size !== undefined ? chunkCount(body.size, body.chunk_size) : 0;
    const bits = body.have === undefined ? undefined : Bitfield.fromBase64Url(body.have, count);
    const verifiedChunks = bits?.count() ?? 0;
    // Every chunk is chunk_size long but the last, which is what is left of the file.
    const lastShortBy = bits?.get(count - 1) && body.size !== undefined && body.chunk_size !== undefined ? count * body.chunk_size - body.size : 0;
    const verifiedBytes = verifiedChunks * (body.chunk_size ?? 0) - lastShortBy;
    return { verifiedChunks, verifiedBytes, isComplete: body.is_complete === true };
  }

  async loadResumeData(): Promise<ResumeData | undefined> {
    if (this.#resume) return this.#resume;
    const state = await decodeStateRecord(await this.backend.readState());
    return state.kind === 'valid' ? state.body.resume : undefined;
  }

  async saveResumeData(data: ResumeData | undefined): Promise<void> {
    this.#resume = data;
    if (this.#isOpen) {
      this.#isDirty = true;
      await this.flush();
    }
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    const count = chunkCount(manifest.size, manifest.chunk_size);
    this.#manifest = manifest;
    // OPFS makes room for the whole file here: a full quota is said before a byte is fetched.
    const { hadData } = await this.backend.open(manifest.size, manifest.chunk_size).catch((error: unknown) => this.#storageError(error, manifest.size));
    const state = await decodeStateRecord(await this.backend.readState());
    let rejection: string | undefined;
    let claimed: Bitfield | undefined;
    this.#verified = new Bitfield(count);
    if (state.kind === 'valid') {
      const body = state.body;
      const bits = body.have === undefined ? new Bitfield(count) : Bitfield.fromBase64Url(body.have, count);
      if (body.have !== undefined && !bits) rejection = 'bitfield does not fit this manifest';
      else if (body.have !== undefined && body.info_hash !== manifest.info_hash) rejection = 'record is for another manifest (foreign)';
      else if (body.have !== undefined && (body.size !== manifest.size || body.chunk_size !== manifest.chunk_size)) rejection = 'record sizes differ from the manifest';
      if (rejection === undefined && bits) {
        this.#verified = bits;
        this.#isComplete = body.is_complete === true && bits.isComplete();
      } else {
        claimed = bits ?? Bitfield.full(count);
      }
    } else if (state.kind === 'corrupt') {
      rejection = state.reason;
      claimed = Bitfield.full(count);
    } else if (hadData) {
      rejection = 'data without a state record';
      claimed = Bitfield.full(count);
    }
    if (rejection !== undefined && claimed) {
      // Never trusted: re-verify what it could claim against the manifest's chunk hashes.
      let rechecked = 0;
      if (hadData) {
        for (let index = 0; index < count; index++) {
          if (!claimed.get(index)) continue;
          rechecked++;
          const { start, end } = chunkRange(manifest, index);
          const bytes = await this.backend.readChunk(index, 0, end - start);
          if (bytes && (await verify(index, bytes))) this.#verified.set(index);
        }
      }
      this.#options.onStateRejected?.(rejection, rechecked);
    }
    this.#isOpen = true;
    this.#isDirty = true;
    await this.flush();
    return this.#verified.clone();
  }

  async put(index: number, bytes: Uint8Array): Promise<void> {
    const manifest = this.#requireOpen();
    const { start, end } = chunkRange(manifest, index);
    if (bytes.length !== end - start) throw new RangeError(`chunk ${index} has the wrong length`);
    if (this.#isComplete) return;
    await this.backend.writeChunk(index, bytes).catch((error: unknown) => this.#storageError(error, bytes.length));
    this.#verified.set(index);
    this.#isDirty = true;
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      void this.flush().catch(() => undefined);
    }, this.#options.flushIntervalMs ?? 250);
  }

  async read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const manifest = this.#manifest;
    if (!manifest || !this.#isOpen || !this.#verified.get(index)) return undefined;
    const { start, end } = chunkRange(manifest, index);
    if (offset < 0 || length < 0 || start + offset + length > end) return undefined;
    return this.backend.readChunk(index, offset, length);
  }

  /** Data first, then the record that claims it: never the other way round. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => (this.#isDirty ? this.flush() : undefined));
    if (!this.#isDirty || !this.#isOpen) return Promise.resolve();
    this.#flushing = (async () => {
      while (this.#isDirty && this.#isOpen) {
        this.#isDirty = false;
        const body = this.#body(this.#verified.clone());
        await this.backend.flushData().catch((error: unknown) => this.#storageError(error));
        await this.backend.writeState(await encodeStateRecord(body)).catch((error: unknown) => this.#storageError(error));
      }
    })().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async finalize(): Promise<void> {
    this.#requireOpen();
    if (!this.#verified.isComplete()) throw new Error('finalize() before every chunk is stored');
    this.#isComplete = true;
    this.#isDirty = true;
    await this.flush();
    await this.backend.seal();
  }

  async close(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    if (this.#isOpen) await this.flush();
    this.#isOpen = false;
    await this.backend.close();
  }

  /** The finished file as a disk-backed Blob, for saving (also from a closed store, by its record). */
  async file(): Promise<Blob> {
    const state = await decodeStateRecord(await this.backend.readState());
    const body = state.kind === 'valid' ? state.body : undefined;
    if (!body?.is_complete || body.size === undefined || body.chunk_size === undefined) throw new Error('the file is not complete yet');
    return this.backend.file(body.size, body.chunk_size);
  }

  /** Close and delete everything this download stored. */
  async remove(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    this.#isOpen = false;
    await this.backend.close().catch(() => undefined);
    await this.backend.remove();
  }

  #body(verified: Bitfield): StateBody {
    const manifest = this.#manifest!;
    const body: StateBody = { v: 1, info_hash: manifest.info_hash, size: manifest.size, chunk_size: manifest.chunk_size, have: verified.toBase64Url() };
    if (this.#isComplete) body.is_complete = true;
    if (this.#resume) body.resume = this.#resume;
    return body;
  }

  /** A refused write becomes "Browser storage is full: …"; what is verified stays verified. */
  async #storageError(error: unknown, refusedBytes = this.#manifest?.chunk_size): Promise<never> {
    if (!isQuotaError(error) || !this.#manifest) throw error;
    const { size, chunk_size: chunkSize } = this.#manifest;
    const storedBytes = Math.min(size, this.#verified.count() * chunkSize);
    throw await storageFullError(size - storedBytes, refusedBytes, error);
  }

  #requireOpen(): Manifest {
    if (!this.#manifest || !this.#isOpen) throw new Error('the chunk store is not open');
    return this.#manifest;
  }
}
