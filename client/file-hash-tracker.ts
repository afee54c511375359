import type { Bitfield, Manifest } from '../protocol/index.ts';
import { chunkLength, type FileHasher } from './verify.ts';

/**
 * Feeds the whole-file hasher in file order as the verified prefix grows, reading
 * chunks back from the store, so that the final check costs little more than the tail.
 */
export class FileHashTracker {
  readonly #manifest: Manifest;
  readonly #have: Bitfield;
  readonly #hasher: FileHasher;
  readonly #read: (index: number, offset: number, length: number) => Promise<Uint8Array | undefined>;
  #next = 0;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(manifest: Manifest, have: Bitfield, hasher: FileHasher, read: (index: number, offset: number, length: number) => Promise<Uint8Array | undefined>) {
    this.#manifest = manifest;
    this.#have = have;
    this.#hasher = hasher;
    this.#read = read;
  }

  /** Hash as far as the verified prefix allows; resolves when caught up. */
  advance(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Hash everything and compare with the manifest's sha256. */
  async check(): Promise<{ isMatch: boolean; sha256: string }> {
    await this.advance();
    await this.advance();
    if (this.#next < this.#have.length) throw new Error('file hash check before every chunk is verified');
    const sha256 = this.#hasher.digestHex();
    return { isMatch: sha256 === this.#manifest.sha256, sha256 };
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      while (this.#next < this.#have.length && this.#have.get(this.#next)) {
        const length = chunkLength(this.#manifest, this.#next);
        const bytes = await this.#read(this.#next, 0, length);
        if (!bytes || bytes.length !== length) throw new Error(`chunk ${this.#next} cannot be read back from the store`);
        this.#hasher.update(bytes);
        this.#next++;
      }
    } while (this.#again);
  }
}
