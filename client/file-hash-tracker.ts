import { chunkLength, chunkRange, type Bitfield, type Manifest } from '../protocol/index.ts';
import type { FileHasher } from './verify.ts';

/**
 * Feeds the whole-file hasher in file order as the verified prefix grows, so that the
 * final check costs little more than the tail. A chunk verified while it is next in file
 * order is hashed from the bytes in hand (offer); others are read back from the store.
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

  /**
   * A chunk was just verified and stored: if it is the next one in file order and nothing
   * is being read back, hash it from `bytes` (no read back from the store). Either way,
   * catch up with the verified prefix. `consumed` settles once `bytes` may be reused;
   * `caughtUp` once the hash has reached the end of the verified prefix.
   */
  offer(index: number, bytes: Uint8Array): { consumed: Promise<void>; caughtUp: Promise<void> } {
    if (this.#running || index !== this.#next || !this.#have.get(index) || bytes.length !== chunkLength(this.#manifest, index)) {
      return { consumed: Promise.resolve(), caughtUp: this.advance() };
    }
    this.#next++;
    const consumed = Promise.resolve(this.#hasher.update(bytes));
    return { consumed, caughtUp: this.#start(consumed) };
  }

  /** Hash as far as the verified prefix allows; resolves when caught up. */
  advance(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    return this.#start(Promise.resolve());
  }

  /** Catch up after `before` (bytes in hand being hashed); one run at a time. */
  #start(before: Promise<void>): Promise<void> {
    this.#running = before.then(() => this.#run()).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Hash everything and compare with the manifest's sha256. */
  async check(): Promise<{ isMatch: boolean; sha256: string }> {
    await this.advance();
    await this.advance();
    if (this.#next < this.#have.length) throw new Error('file hash check before every chunk is verified');
    const sha256 = await this.#hasher.digestHex();
    return { isMatch: sha256 === this.#manifest.sha256, sha256 };
  }

  async #run(): Promise<void> {
    do {
      this.#again = false;
      const count = this.#have.length;
      while (this.#next < count && this.#have.get(this.#next)) {
        if (this.#hasher.updateFromStore) {
          // The whole verified run at once; the hasher reads it from the store itself.
          let end = this.#next;
          while (end < count && this.#have.get(end)) end++;
          await this.#hasher.updateFromStore(chunkRange(this.#manifest, this.#next).start, chunkRange(this.#manifest, end - 1).end);
          this.#next = end;
          continue;
        }
        const length = chunkLength(this.#manifest, this.#next);
        const bytes = await this.#read(this.#next, 0, length);
        if (!bytes || bytes.length !== length) throw new Error(`chunk ${this.#next} cannot be read back from the store`);
        await this.#hasher.update(bytes);
        this.#next++;
      }
    } while (this.#again);
  }
}
