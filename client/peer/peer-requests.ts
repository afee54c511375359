import { chunkLength, type Manifest } from '../../protocol/index.ts';
import type { Scheduler, SourceId } from '../scheduler.ts';
import { ChunkAssembly } from './chunk-assembly.ts';
import type { PeerWire } from './wire.ts';

/**
 * Requests are topped up once this many blocks (512 KiB) can be asked for: each top-up is a
 * data-channel message. At 16, requests were a fifth of a bench/swarm client's messages.
 */
const REQUEST_BATCH_BLOCKS = 32;

export interface PeerRequestsOptions {
  manifest: Manifest;
  scheduler: Scheduler;
  /** Reserve in-flight memory for one chunk; false when the download's window is full. */
  reserve: (bytes: number) => boolean;
  unreserve: (bytes: number) => void;
  maxChunksPerPeer: number;
  maxBlocksPerPeer: number;
}

/**
 * What we have asked one peer for: the chunks the scheduler gave it, each assembled from
 * 16 KiB blocks, and each holding its bytes in the download's in-flight window until it is
 * handed on, cancelled or dropped.
 */
export class PeerRequests {
  readonly #wire: PeerWire;
  readonly #options: PeerRequestsOptions;
  readonly #assemblies = new Map<number, ChunkAssembly>();
  /** Last block received, or when we started waiting on it (requests sent while none were outstanding). */
  lastBlockAtMs = Date.now();

  constructor(wire: PeerWire, options: PeerRequestsOptions) {
    this.#wire = wire;
    this.#options = options;
  }

  /** Blocks asked for and not received yet. */
  get outstandingBlocks(): number {
    let outstanding = 0;
    for (const assembly of this.#assemblies.values()) outstanding += assembly.outstanding;
    return outstanding;
  }

  /** Ask `source` (this peer, unchoking us) for more blocks, up to the per-peer caps. */
  fill(source: SourceId): void {
    const { scheduler, maxBlocksPerPeer, maxChunksPerPeer, manifest } = this.#options;
    const outstandingNow = this.outstandingBlocks;
    if (outstandingNow === 0) this.lastBlockAtMs = Date.now();
    // Top up in batches, not one request per block received: the requests then go out as one
    // data-channel message (each send is a blocking cross-thread call in @roamhq/wrtc) and
    // reach the peer as adjacent blocks that it reads and answers together.
    if (outstandingNow > maxBlocksPerPeer - Math.min(REQUEST_BATCH_BLOCKS, maxBlocksPerPeer)) return;
    for (;;) {
      const outstanding = this.outstandingBlocks;
      if (outstanding >= maxBlocksPerPeer) return;
      const open = [...this.#assemblies.values()].find((assembly) => assembly.hasUnaskedBlocks);
      if (open) {
        for (const block of open.takeBlocks(maxBlocksPerPeer - outstanding)) this.#wire.request(open.index, block.offset, block.length);
        continue;
      }
      if (this.#assemblies.size >= maxChunksPerPeer) return;
      const reserveBytes = manifest.chunk_size;
      if (!this.#options.reserve(reserveBytes)) return;
      const [index] = scheduler.nextForPeer(source, 1);
      if (index === undefined) {
        this.#options.unreserve(reserveBytes);
        return;
      }
      const assembly = new ChunkAssembly(index, chunkLength(manifest, index));
      // Reserve exactly what the assembly holds (the last chunk is shorter).
      this.#options.unreserve(reserveBytes - assembly.bytes.length);
      this.#assemblies.set(index, assembly);
    }
  }

  /**
   * A block arrived. Undefined when we did not ask for it (a block we cancelled may still
   * come); otherwise its chunk's assembly, which is ours no more once complete: the caller
   * hands it on and unreserves its bytes.
   */
  receive(index: number, offset: number, bytes: Uint8Array): ChunkAssembly | undefined {
    this.lastBlockAtMs = Date.now();
    const assembly = this.#assemblies.get(index);
    if (!assembly || !assembly.accept(offset, bytes)) return undefined;
    if (assembly.isComplete) this.#assemblies.delete(index);
    return assembly;
  }

  /** Cancel our request for chunk `index` (another source delivered it); false if we had none. */
  cancel(index: number): boolean {
    const assembly = this.#assemblies.get(index);
    if (!assembly) return false;
    for (const block of assembly.outstandingBlocks()) this.#wire.cancel(index, block.offset, block.length);
    this.#assemblies.delete(index);
    this.#options.unreserve(assembly.bytes.length);
    return true;
  }

  /**
   * Forget every request: back to the scheduler for `source` when given (a peer that closes
   * is removed from the scheduler whole instead), with cancels sent when `sendCancel`.
   */
  drop(source: SourceId | undefined, sendCancel: boolean): void {
    for (const assembly of this.#assemblies.values()) {
      if (sendCancel) for (const block of assembly.outstandingBlocks()) this.#wire.cancel(assembly.index, block.offset, block.length);
      if (source) this.#options.scheduler.release(assembly.index, source);
      this.#options.unreserve(assembly.bytes.length);
    }
    this.#assemblies.clear();
  }
}
