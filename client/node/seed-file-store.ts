import { open, type FileHandle } from 'node:fs/promises';
import { Bitfield, PfError, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';
import { readAt, readVerifiedChunk } from './chunk-file-read.ts';

/**
 * A complete local file offered to the swarm (`peerfill seed`). Every chunk is checked
 * against the manifest when opened; only chunks that match are served. Read-only.
 */
export class SeedFileStore implements ChunkStore {
  readonly path: string;
  #handle: FileHandle | undefined;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);

  constructor(path: string) {
    this.path = path;
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    this.#manifest = manifest;
    this.#handle = await open(this.path, 'r');
    const { size } = await this.#handle.stat();
    const count = chunkCount(manifest.size, manifest.chunk_size);
    this.#verified = new Bitfield(count);
    if (size !== manifest.size) return this.#verified.clone();
    for (let index = 0; index < count; index++) {
      const { start, end } = chunkRange(manifest, index);
      const bytes = await readAt(this.#handle, start, end - start);
      if (await verify(index, bytes)) this.#verified.set(index);
    }
    return this.#verified.clone();
  }

  put(): Promise<void> {
    return Promise.reject(new PfError('PF_ERR_INTERNAL', 'a seed store is read-only'));
  }

  read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    return readVerifiedChunk(this.#handle, this.#manifest, this.#verified, index, offset, length);
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
    await this.#handle?.close();
    this.#handle = undefined;
  }

}
