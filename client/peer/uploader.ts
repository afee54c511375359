import { BLOCK_SIZE_BYTES } from '../../protocol/index.ts';
import type { PeerWire } from './wire.ts';

export interface UploaderOptions {
  /** Whether we have (verified) chunk `index`. */
  has: (index: number) => boolean;
  chunkLength: (index: number) => number;
  read: (index: number, offset: number, length: number) => Promise<Uint8Array | undefined>;
  /** Stop answering while this many bytes wait for the data channel. Default 1 MiB. */
  highWaterBytes?: number;
  /** More queued requests than this is abuse. Default 512. */
  maxQueuedRequests?: number;
  onUpload?: (bytes: number) => void;
  /** The peer asked for something no honest peer asks for. */
  onViolation: (reason: string) => void;
}

/**
 * Serves one peer's block requests from verified chunks only, one at a time, and only
 * while the data channel drains (backpressure on its buffered amount).
 */
export class Uploader {
  readonly #wire: PeerWire;
  readonly #options: UploaderOptions;
  #queue: Array<{ index: number; offset: number; length: number }> = [];
  #isPumping = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(wire: PeerWire, options: UploaderOptions) {
    this.#wire = wire;
    this.#options = options;
    wire.on('request', (request) => this.#onRequest(request));
    wire.on('cancel', ({ index, offset, length }) => {
      this.#queue = this.#queue.filter((r) => !(r.index === index && r.offset === offset && r.length === length));
    });
    wire.on('close', () => this.stop());
  }

  /** Drop queued requests (we choked the peer). */
  clear(): void {
    this.#queue = [];
  }

  stop(): void {
    this.#queue = [];
    clearTimeout(this.#timer);
  }

  #onRequest(request: { index: number; offset: number; length: number }): void {
    const { index, offset, length } = request;
    if (this.#wire.amChoking) return; // a request racing our choke: not a violation
    if (!Number.isInteger(index) || !Number.isInteger(offset) || length <= 0 || length > BLOCK_SIZE_BYTES) {
      return this.#options.onViolation(`bad request ${index}/${offset}/${length}`);
    }
    if (!this.#options.has(index) || offset + length > this.#options.chunkLength(index)) {
      return this.#options.onViolation(`request for a chunk we do not have (${index})`);
    }
    if (this.#queue.length >= (this.#options.maxQueuedRequests ?? 512)) return this.#options.onViolation('too many queued requests');
    this.#queue.push(request);
    void this.#pump();
  }

  async #pump(): Promise<void> {
    if (this.#isPumping) return;
    this.#isPumping = true;
    try {
      while (this.#queue.length > 0 && !this.#wire.isClosed) {
        if (this.#wire.backlogBytes > (this.#options.highWaterBytes ?? 1024 * 1024)) {
          clearTimeout(this.#timer);
          this.#timer = setTimeout(() => void this.#pump(), 5);
          return;
        }
        const request = this.#queue.shift()!;
        // A failed local read (disk error, store closed at shutdown) skips the block: the
        // requester moves the chunk elsewhere. Never an unhandled rejection (it ends the process).
        const bytes = await this.#options.read(request.index, request.offset, request.length).catch(() => undefined);
        if (!bytes || this.#wire.isClosed || this.#wire.amChoking) continue;
        this.#wire.piece(request.index, request.offset, bytes);
        this.#options.onUpload?.(bytes.length);
      }
    } finally {
      this.#isPumping = false;
    }
  }
}
