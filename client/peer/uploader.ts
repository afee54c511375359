import { BLOCK_SIZE_BYTES } from '../../protocol/index.ts';
import type { PeerWire } from './wire.ts';

/** What the uploader needs of a wire (a port, so the queueing can be tested without WebRTC). */
export type UploadWire = Pick<PeerWire, 'on' | 'isClosed' | 'amChoking' | 'backlogBytes' | 'piece'>;

/** Adjacent blocks read and sent together: with their headers, one data-channel message (see MAX_MESSAGE_BYTES). */
const READ_BYTES = 128 * 1024;

interface BlockRequest {
  index: number;
  offset: number;
  length: number;
}

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
 * Serves one peer's block requests from verified chunks only, a few adjacent blocks at a
 * time, and only while the data channel drains (backpressure on the wire's backlog).
 */
export class Uploader {
  readonly #wire: UploadWire;
  readonly #options: UploaderOptions;
  #queue: BlockRequest[] = [];
  /** Requests taken for a read in progress that the peer cancelled meanwhile. */
  readonly #cancelled = new Set<BlockRequest>();
  #reading: BlockRequest[] = [];
  #isPumping = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(wire: UploadWire, options: UploaderOptions) {
    this.#wire = wire;
    this.#options = options;
    wire.on('request', (request) => this.#onRequest(request));
    wire.on('cancel', ({ index, offset, length }) => {
      const matches = (r: BlockRequest) => r.index === index && r.offset === offset && r.length === length;
      this.#queue = this.#queue.filter((r) => !matches(r));
      for (const r of this.#reading) if (matches(r)) this.#cancelled.add(r);
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

  /** The first queued request and those right after it in the same chunk, up to READ_BYTES. */
  #takeAdjacent(): BlockRequest[] {
    const taken = [this.#queue.shift()!];
    let bytes = taken[0]!.length;
    for (;;) {
      const previous = taken[taken.length - 1]!;
      const next = this.#queue[0];
      if (!next || next.index !== previous.index || next.offset !== previous.offset + previous.length || bytes + next.length > READ_BYTES) break;
      taken.push(this.#queue.shift()!);
      bytes += next.length;
    }
    this.#reading = taken;
    this.#cancelled.clear();
    return taken;
  }

  #onRequest(request: BlockRequest): void {
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
        // Adjacent requests for one chunk are read at once and answered in one turn, so the
        // wire sends them as one data-channel message: each send is a blocking call across
        // threads in @roamhq/wrtc, and one per 16 KiB block dominated a swarm client's time.
        const requests = this.#takeAdjacent();
        const first = requests[0]!;
        const last = requests[requests.length - 1]!;
        // A failed local read (disk error, store closed at shutdown) skips the blocks: the
        // requester moves the chunk elsewhere. Never an unhandled rejection (it ends the process).
        const bytes = await this.#options.read(first.index, first.offset, last.offset + last.length - first.offset).catch(() => undefined);
        if (!bytes || this.#wire.isClosed || this.#wire.amChoking) continue;
        for (const request of requests) {
          // Cancelled while the read ran: not sent.
          if (!this.#cancelled.delete(request)) {
            const start = request.offset - first.offset;
            this.#wire.piece(request.index, request.offset, bytes.subarray(start, start + request.length));
            this.#options.onUpload?.(request.length);
          }
        }
      }
    } finally {
      this.#isPumping = false;
    }
  }
}
