import { Bitfield, chunkCount, chunkRange, type Manifest } from '../protocol/index.ts';
import type { ChunkStore, ResumeData } from './chunk-store.ts';

/** Chunks in memory: for tests and small files. Everything it holds was put verified. */
export class MemoryChunkStore implements ChunkStore {
  readonly #chunks = new Map<number, Uint8Array>();
  #bitfield = new Bitfield(0);
  #resume: ResumeData | undefined;
  #initial: Uint8Array | undefined;
  isFinalized = false;

  /** `initial`: the whole file's bytes, claimed but unverified (a seeder's copy). */
  constructor(initial?: Uint8Array) {
    this.#initial = initial;
  }

  async open(manifest: Manifest, verify: (index: number, bytes: Uint8Array) => Promise<boolean>): Promise<Bitfield> {
    const count = chunkCount(manifest.size, manifest.chunk_size);
    if (this.#bitfield.length !== count) {
      this.#chunks.clear();
      this.#bitfield = new Bitfield(count);
    }
    const initial = this.#initial;
    this.#initial = undefined;
    if (initial) {
      // Claimed bytes are never trusted: only chunks that verify count as present.
      for (let index = 0; index < count; index++) {
        const { start, end } = chunkRange(manifest, index);
        const bytes = initial.subarray(start, end);
        if (await verify(index, bytes)) await this.put(index, bytes);
      }
    }
    return this.#bitfield.clone();
  }

  put(index: number, bytes: Uint8Array): Promise<void> {
    this.#chunks.set(index, bytes.slice());
    this.#bitfield.set(index);
    return Promise.resolve();
  }

  read(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const chunk = this.#chunks.get(index);
    if (!chunk || offset < 0 || offset + length > chunk.length) return Promise.resolve(undefined);
    return Promise.resolve(chunk.subarray(offset, offset + length));
  }

  discard(indexes: readonly number[]): Promise<void> {
    for (const index of indexes) {
      this.#chunks.delete(index);
      this.#bitfield.set(index, false);
    }
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  loadResumeData(): Promise<ResumeData | undefined> {
    return Promise.resolve(this.#resume);
  }

  saveResumeData(data: ResumeData | undefined): Promise<void> {
    this.#resume = data;
    return Promise.resolve();
  }

  finalize(): Promise<void> {
    this.isFinalized = true;
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The whole file, for tests. */
  assemble(): Uint8Array {
    const sizes = [...this.#chunks.entries()].sort(([a], [b]) => a - b);
    const total = sizes.reduce((sum, [, chunk]) => sum + chunk.length, 0);
    const out = new Uint8Array(total);
    let offset = 0;
    for (const [, chunk] of sizes) {
      out.set(chunk, offset);
      offset += chunk.length;
    }
    return out;
  }
}
