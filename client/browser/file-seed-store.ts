import { Bitfield, chunkCount, chunkRange, type Manifest } from '../../protocol/index.ts';
import type { ChunkStore, ResumeData } from '../chunk-store.ts';

/**
 * Seed a copy of the file the user already has (an <input type=file> pick): read-only,
 * disk-backed through the File, and trusted only chunk by chunk after SHA-256 against the
 * manifest. Chunks that do not verify are simply not offered (and would be fetched).
 */
export class FileSeedStore implements ChunkStore {
  readonly #file: Blob;
  #manifest: Manifest | undefined;
  #verified = new Bitfield(0);
  #resume: ResumeData | undefined;
  #isComplete = false;

  constructor(file: Blob) {
    this.#file = file;
  }

  get isComplete(): boolean {
    return this.#isComplete;
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    this.#manifest = manifest;
    const count = chunkCount(manifest.size, manifest.chunk_size);
    this.#verified = new Bitfield(count);
    if (this.#file.size !== manifest.size) return this.#verified.clone();
    for (let index = 0; index < count; index++) {
      const { start, end } = chunkRange(manifest, index);
      const bytes = new Uint8Array(await this.#file.slice(start, end).arrayBuffer());
      if (await verify(index, bytes)) this.#verified.set(index);
    }
    return this.#verified.clone();
  }

  put(index: number): Promise<void> {
    // A partial local copy is not completed in place: the user's file is never written.
    return Promise.reject(new Error(`chunk ${index} is missing from the local copy; download the file instead`));
  }

  async read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const manifest = this.#manifest;
    if (!manifest || !this.#verified.get(index)) return undefined;
    const { start, end } = chunkRange(manifest, index);
    if (offset < 0 || length < 0 || start + offset + length > end) return undefined;
    return new Uint8Array(await this.#file.slice(start + offset, start + offset + length).arrayBuffer());
  }

  async flush(): Promise<void> {}

  async loadResumeData(): Promise<ResumeData | undefined> {
    return this.#resume;
  }

  async saveResumeData(data: ResumeData | undefined): Promise<void> {
    this.#resume = data;
  }

  async finalize(): Promise<void> {
    this.#isComplete = true;
  }

  async close(): Promise<void> {}
}
