import { BLOCK_SIZE_BYTES } from '../../protocol/index.ts';

/**
 * One chunk being fetched from one peer, block by block. Only blocks we asked for,
 * with exactly the length we asked for, are accepted.
 */
export class ChunkAssembly {
  readonly index: number;
  readonly bytes: Uint8Array;
  readonly #blockCount: number;
  /** 0 = not asked, 1 = asked, 2 = received. */
  readonly #blockState: Uint8Array;
  #nextToAsk = 0;
  #received = 0;
  outstanding = 0;

  constructor(index: number, lengthBytes: number) {
    this.index = index;
    this.bytes = new Uint8Array(lengthBytes);
    this.#blockCount = Math.ceil(lengthBytes / BLOCK_SIZE_BYTES);
    this.#blockState = new Uint8Array(this.#blockCount);
  }

  get isComplete(): boolean {
    return this.#received === this.#blockCount;
  }

  get hasUnaskedBlocks(): boolean {
    return this.#nextToAsk < this.#blockCount;
  }

  /** The next blocks to request (at most `max`); they count as outstanding. */
  takeBlocks(max: number): Array<{ offset: number; length: number }> {
    const out: Array<{ offset: number; length: number }> = [];
    while (out.length < max && this.#nextToAsk < this.#blockCount) {
      const block = this.#nextToAsk++;
      this.#blockState[block] = 1;
      this.outstanding++;
      out.push(this.#blockBounds(block));
    }
    return out;
  }

  /** Blocks asked for and not yet received: what a cancel must name. */
  outstandingBlocks(): Array<{ offset: number; length: number }> {
    const out: Array<{ offset: number; length: number }> = [];
    for (let block = 0; block < this.#blockCount; block++) if (this.#blockState[block] === 1) out.push(this.#blockBounds(block));
    return out;
  }

  /** Store a block; false if we never asked for it (or already have it). */
  accept(offset: number, data: Uint8Array): boolean {
    if (offset % BLOCK_SIZE_BYTES !== 0) return false;
    const block = offset / BLOCK_SIZE_BYTES;
    if (block >= this.#blockCount || this.#blockState[block] !== 1) return false;
    const { length } = this.#blockBounds(block);
    if (data.length !== length) return false;
    this.bytes.set(data, offset);
    this.#blockState[block] = 2;
    this.#received++;
    this.outstanding--;
    return true;
  }

  #blockBounds(block: number): { offset: number; length: number } {
    const offset = block * BLOCK_SIZE_BYTES;
    return { offset, length: Math.min(BLOCK_SIZE_BYTES, this.bytes.length - offset) };
  }
}
