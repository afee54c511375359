/**
 * The bytes of chunks being fetched, from peers and over HTTP together, capped so that a
 * download's memory stays bounded whatever its size.
 */
export class InFlightWindow {
  readonly #maxBytes: number;
  readonly #onRoom: () => void;
  #bytes = 0;

  /** `onRoom` is called when a release frees the last eighth of a window that was that full. */
  constructor(maxBytes: number, onRoom: () => void) {
    this.#maxBytes = maxBytes;
    this.#onRoom = onRoom;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Reserve room for one chunk; false when it does not fit. An empty window takes any chunk, so a chunk larger than the cap still moves. */
  reserve(bytes: number): boolean {
    if (this.#bytes > 0 && this.#bytes + bytes > this.#maxBytes) return false;
    this.#bytes += bytes;
    return true;
  }

  release(bytes: number): void {
    const wasFull = this.#bytes + this.#maxBytes / 8 > this.#maxBytes;
    this.#bytes = Math.max(0, this.#bytes - bytes);
    if (wasFull) this.#onRoom();
  }
}
