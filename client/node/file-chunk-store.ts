import { writeSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { Bitfield, PfError, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';
import { readAt, readVerifiedChunk } from './chunk-file-read.ts';
import { diskFullMessage, freeBytesAt, toStorageError } from './storage-error.ts';
import { currentBootId, readStateFile, removeStateFile, syncDirectory, writeStateFile, type StateBody } from './state-file.ts';
import { SyncWriteBudget } from './sync-write-budget.ts';

/**
 * Chunks are written in pieces of this size. The kernel caches a write in folios as large as
 * the write (ext4, Linux 6.16 on); on the bench VM, a large folio lands on memory the host has
 * taken back, and 1 MiB writes cost 2.5 ms of system time per MiB against 0.3 at 128 KiB.
 */
export const WRITE_BYTES = 128 * 1024;

export interface FileChunkStoreOptions {
  /** Least time between two state flushes. Default 200 ms. */
  flushIntervalMs?: number;
  /**
   * 'boot' (default where the kernel names its boot, i.e. Linux): no fsync; the state records
   * the boot id, and a state from another boot has its chunks re-verified. 'fsync': data
   * fsync before every state replace, and the finished file fsynced before it is published.
   */
  durability?: 'boot' | 'fsync';
  /** Share of the time that synchronous chunk writes may take before writes go to libuv's pool (see #writeAt) [0.3]. */
  syncWriteBudget?: number;
  /** A flush made `chunks` verified chunks durable. */
  onSaved?: (chunks: number) => void;
  /** Why the state file was not trusted; of the chunks it claimed, `keptChunks` verified again and were kept. */
  onStateRejected?: (reason: string, recheckedChunks: number, keptChunks: number) => void;
}

/**
 * Chunks written at their offsets into `OUT.part`, with `OUT.part.state` beside it. The
 * state is replaced only after the data it records is written, so it never claims a chunk
 * that is not in the file: with 'fsync', durably (each flush waits for the disk); with
 * 'boot' (the default on Linux), for as long as the machine stays up — a killed process
 * loses nothing, and a state written before a reboot (or a power cut) is not trusted: the
 * chunks it claims are re-verified, like those of a torn, stale or foreign state file.
 * Waiting for the disk cost 6 s per 2 GiB on the bench machine, twice what the download
 * does otherwise; curl and aria2c do not fsync either. finalize() renames to OUT.
 */
export class FileChunkStore implements ChunkStore {
  readonly outPath: string;
  readonly partPath: string;
  readonly statePath: string;
  readonly #options: FileChunkStoreOptions;
  #handle: FileHandle | undefined;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);
  #resume: ResumeData | undefined;
  #isDirty = false;
  #flushing: Promise<void> | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  #isFinalized = false;
  #finalizing: Promise<void> | undefined;
  /** Whether the next chunk write may be synchronous (see #writeAt). */
  readonly #syncWrites: SyncWriteBudget;
  /** The last pool write queued: each waits for the one before (see #writeAt). */
  #poolWriteTail: Promise<void> = Promise.resolve();
  /** Set by open() in 'boot' mode: flushes skip fsync and the state carries this id. */
  #bootId: string | undefined;
  /** The .part's identity (its inode), written into the state: a state beside another .part is not trusted. */
  #partId: string | undefined;
  /** The first storage error: every later put fails with it, so nothing more is fetched for a disk that cannot take it. */
  #failure: Error | undefined;

  constructor(outPath: string, options: FileChunkStoreOptions = {}) {
    this.outPath = outPath;
    this.partPath = `${outPath}.part`;
    this.statePath = `${outPath}.part.state`;
    this.#options = options;
    this.#syncWrites = new SyncWriteBudget(options.syncWriteBudget ?? 0.3);
  }

  async loadResumeData(): Promise<ResumeData | undefined> {
    if (this.#resume) return this.#resume;
    const state = await readStateFile(this.statePath);
    return state.kind === 'valid' ? state.body.resume : undefined;
  }

  async saveResumeData(data: ResumeData | undefined): Promise<void> {
    this.#resume = data;
    if (this.#handle && !this.#isFinalized) {
      this.#isDirty = true;
      await this.flush();
    }
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    try {
      return await this.#open(manifest, verify);
    } catch (error) {
      throw await toStorageError(error, this.partPath, manifest.size);
    }
  }

  async #open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    this.#manifest = manifest;
    this.#failure = undefined;
    this.#finalizing = undefined;
    const count = chunkCount(manifest.size, manifest.chunk_size);
    this.#verified = new Bitfield(count);
    const previousSize = await stat(this.partPath).then((s) => s.size, () => undefined);
    this.#bootId = this.#options.durability === 'fsync' ? undefined : await currentBootId();
    this.#handle = await open(this.partPath, previousSize === undefined ? 'w+' : 'r+');
    if (previousSize !== manifest.size) await this.#handle.truncate(manifest.size);
    const partStat = await this.#handle.stat({ bigint: true });
    this.#partId = partStat.ino.toString();

    const state = await readStateFile(this.statePath);
    let claimed: Bitfield | undefined;
    let rejection: string | undefined;
    if (state.kind === 'valid') {
      const body = state.body;
      const bits = body.have === undefined ? undefined : Bitfield.fromBase64Url(body.have, count);
      if (body.have === undefined) claimed = new Bitfield(count);
      else if (!bits) rejection = 'bitfield does not fit this manifest';
      else if (body.info_hash !== manifest.info_hash) rejection = this.#isSameFile(body) ? 'the file changed on the server since this state was written' : 'state is for another manifest (foreign)';
      else if (body.part_id !== this.#partId) rejection = 'state belongs to another .part file (foreign)';
      else if (body.size !== manifest.size || body.chunk_size !== manifest.chunk_size) rejection = 'state sizes differ from the manifest';
      else if (previousSize !== manifest.size) rejection = 'the .part file changed size since the state was written (stale)';
      else if (body.boot_id !== undefined && body.boot_id !== this.#bootId) rejection = 'written without fsync before the machine restarted: unflushed chunks may be lost';
      if (rejection === undefined) {
        this.#verified = bits ?? new Bitfield(count);
      } else {
        claimed = bits ?? Bitfield.full(count);
      }
    } else if (state.kind === 'corrupt') {
      rejection = state.reason;
      claimed = Bitfield.full(count);
    } else if (previousSize !== undefined) {
      rejection = 'a .part file without state';
      claimed = Bitfield.full(count);
    }
    if (rejection !== undefined && claimed) {
      // Never trusted: re-verify what it claims against the manifest's chunk hashes.
      this.#verified = new Bitfield(count);
      let rechecked = 0;
      let kept = 0;
      if (previousSize !== undefined) {
        for (let index = 0; index < count; index++) {
          if (!claimed.get(index)) continue;
          rechecked++;
          const { start, end } = chunkRange(manifest, index);
          if (end > previousSize) continue;
          const bytes = await readAt(this.#handle, start, end - start);
          if (await verify(index, bytes)) {
            this.#verified.set(index);
            kept++;
          }
        }
      }
      this.#options.onStateRejected?.(rejection, rechecked, kept);
    }
    // Sparse: the chunks still to come need their space. Said before a byte is fetched.
    const neededBytes = Math.max(0, manifest.size - Math.min(manifest.size, Number(partStat.blocks) * 512));
    const freeBytes = await freeBytesAt(this.partPath);
    if (freeBytes !== undefined && freeBytes < neededBytes) {
      if (previousSize === undefined) {
        // Nothing of ours was there: leave nothing behind.
        await this.#handle.close();
        this.#handle = undefined;
        await unlink(this.partPath).catch(() => undefined);
      }
      throw new PfError('PF_ERR_STORAGE_FAILED', diskFullMessage(this.partPath, freeBytes, neededBytes));
    }
    this.#isDirty = true;
    await this.flush();
    return this.#verified.clone();
  }

  async put(index: number, bytes: Uint8Array): Promise<void> {
    const manifest = this.#requireOpen();
    const { start, end } = chunkRange(manifest, index);
    if (bytes.length !== end - start) throw new RangeError(`chunk ${index} has the wrong length`);
    if (this.#failure !== undefined) throw this.#failure;
    try {
      await this.#writeAt(bytes, start);
    } catch (error) {
      throw this.#failed(await toStorageError(error, this.partPath, this.#missingBytes()));
    }
    this.#verified.set(index);
    this.#isDirty = true;
    this.#flushTimer ??= setTimeout(() => {
      this.#flushTimer = undefined;
      void this.flush().catch(() => undefined);
    }, this.#options.flushIntervalMs ?? 200);
  }

  /**
   * Synchronous writes, in WRITE_BYTES pieces, while they take less than a share of the time
   * (syncWriteBudget): into the page cache a write is a copy, cheaper than a job on libuv's
   * pool per piece, whose wake-ups took the CPU from this thread (bench/client: a 2 GiB get
   * 4.4 -> 3.6 s, CPU 5.6 -> 4.4 s). Over budget, the kernel is holding writers back (dirty
   * pages over its limit: the disk is the bottleneck), and for a while (SyncWriteBudget) writes
   * go through the pool so that the event loop keeps serving peers.
   */
  async #writeAt(bytes: Uint8Array, position: number): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      const length = Math.min(WRITE_BYTES, bytes.length - written);
      if (this.#syncWrites.allowsSync) {
        written += this.#syncWrites.time(() => writeSync(this.#handle!.fd, bytes, written, length, position + written));
      } else {
        // One pool write at a time: concurrent ones (a write per verified chunk) only took turns
        // on the file's inode lock, spinning for it on every core (bench/client profile).
        const previous = this.#poolWriteTail;
        let release!: () => void;
        this.#poolWriteTail = new Promise((resolve) => (release = resolve));
        await previous;
        try {
          written += (await this.#handle!.write(bytes, written, length, position + written)).bytesWritten;
        } finally {
          release();
        }
      }
    }
  }

  read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    return readVerifiedChunk(this.#handle, this.#manifest, this.#verified, index, offset, length);
  }

  async discard(indexes: readonly number[]): Promise<void> {
    for (const index of indexes) this.#verified.set(index, false);
    this.#isDirty = true;
    await this.flush();
  }

  /** The data (fsynced unless in 'boot' mode), then the state that records it: never the other way round. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => (this.#isDirty ? this.flush() : undefined));
    if (!this.#isDirty || !this.#handle || this.#isFinalized) return Promise.resolve();
    this.#flushing = (async () => {
      while (this.#isDirty && this.#handle) {
        this.#isDirty = false;
        const snapshot = this.#verified.clone();
        try {
          if (this.#isDurable) await this.#handle.datasync();
          await writeStateFile(this.statePath, this.#stateBody(snapshot), this.#isDurable);
        } catch (error) {
          // The old state stays (it never claims more than is on disk); nothing more is written.
          this.#isDirty = true;
          throw this.#failed(await toStorageError(error, this.statePath, this.#missingBytes()));
        }
        this.#options.onSaved?.(snapshot.count());
      }
    })().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  finalize(): Promise<void> {
    this.#requireOpen();
    this.#finalizing ??= this.#finalize().catch(async (error: unknown) => {
      throw this.#failed(await toStorageError(error, this.outPath, 0));
    });
    return this.#finalizing;
  }

  async #finalize(): Promise<void> {
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    await this.flush();
    if (this.#isDurable) await this.#handle!.sync();
    await this.#handle!.close();
    this.#handle = undefined;
    this.#isFinalized = true;
    await rename(this.partPath, this.outPath);
    await removeStateFile(this.statePath);
    if (this.#isDurable) await syncDirectory(this.outPath.replace(/[/\\][^/\\]*$/, '') || '.');
    // Keep serving peers from the published file.
    this.#handle = await open(this.outPath, 'r');
  }

  async close(): Promise<void> {
    // A close during finalize() waits for it: the rename happens, and the handle it opens is closed here.
    await this.#finalizing?.catch(() => undefined);
    clearTimeout(this.#flushTimer);
    this.#flushTimer = undefined;
    try {
      if (!this.#isFinalized) await this.flush();
    } finally {
      const handle = this.#handle;
      this.#handle = undefined;
      await handle?.close();
    }
  }

  /** 'fsync' durability, or 'boot' where the kernel names no boot: every write waits for the disk. */
  get #isDurable(): boolean {
    return this.#bootId === undefined;
  }

  #failed(error: Error): Error {
    this.#failure ??= error;
    return error;
  }

  /** Bytes of the chunks not stored yet: what a full disk would still have to take. */
  #missingBytes(): number {
    const manifest = this.#manifest;
    if (!manifest) return 0;
    let bytes = 0;
    for (let index = 0; index < this.#verified.length; index++) {
      if (!this.#verified.get(index)) {
        const { start, end } = chunkRange(manifest, index);
        bytes += end - start;
      }
    }
    return bytes;
  }

  /** A state of the same file on the same server (the new session's resume data was saved before open). */
  #isSameFile(body: StateBody): boolean {
    return body.resume !== undefined && this.#resume !== undefined && body.resume.file_id === this.#resume.file_id && body.resume.server_url === this.#resume.server_url;
  }

  #stateBody(verified: Bitfield): StateBody {
    const manifest = this.#manifest!;
    const body: StateBody = { v: 1, info_hash: manifest.info_hash, size: manifest.size, chunk_size: manifest.chunk_size, have: verified.toBase64Url(), part_id: this.#partId };
    if (this.#bootId !== undefined) body.boot_id = this.#bootId;
    if (this.#resume) body.resume = this.#resume;
    return body;
  }


  #requireOpen(): Manifest {
    if (!this.#manifest || !this.#handle) throw new Error('FileChunkStore is not open');
    return this.#manifest;
  }
}
