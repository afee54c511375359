import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import {
  MANIFEST_VERSION,
  PfError,
  Sha256HexSchema,
  chooseChunkSize,
  chunkCount,
  computeInfoHash,
  createCodec,
  type Manifest,
} from '../protocol/index.ts';

/** What the builder reads: the file's metadata and a stream of all its bytes, in order. */
export interface ManifestSource {
  fileId: string;
  name: string;
  contentType: string;
  sizeBytes: number;
  read(signal: AbortSignal): Promise<AsyncIterable<Uint8Array> | Iterable<Uint8Array>>;
}

export interface ManifestBuilderOptions {
  /** Worker threads hashing chunks while the main thread hashes the whole file. Default 1. */
  hashWorkers?: number;
  /** Files up to this size are hashed on the main thread alone (a worker would cost more). Default 8 MiB. */
  inlineMaxBytes?: number;
  logger: Logger;
}

/** Bytes handed to workers and not yet hashed: the memory bound of a build. */
const MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;
const DEFAULT_INLINE_MAX_BYTES = 8 * 1024 * 1024;

const WorkerReplyCodec = createCodec(
  Type.Object({
    build: Type.Integer(),
    id: Type.Integer({ minimum: 0 }),
    digests: Type.Array(Type.Object({ chunk: Type.Integer({ minimum: 0 }), sha256: Sha256HexSchema })),
  }),
);

interface Segment {
  chunk: number;
  offset: number;
  length: number;
  last: boolean;
}

interface BuildState {
  build: number;
  chunks: (string | undefined)[];
  inFlight: Map<number, number>;
  inFlightBytes: number;
  wake: (() => void) | undefined;
  failure: Error | undefined;
}

/** An ArrayBuffer that this view alone covers (transferable), copying only when it must. */
function ownedBuffer(view: Uint8Array): ArrayBuffer {
  if (view.buffer instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === view.buffer.byteLength) return view.buffer;
  const copy = new Uint8Array(view.byteLength);
  copy.set(view);
  return copy.buffer;
}

/**
 * Streaming manifest builder with bounded memory: the main thread reads and runs the
 * full-file SHA-256 while worker threads hash the chunks, so a build uses two cores and
 * holds at most MAX_IN_FLIGHT_BYTES plus one read buffer. Builds run one at a time.
 */
export class ManifestBuilder {
  private readonly workerCount: number;
  private readonly inlineMaxBytes: number;
  private readonly logger: Logger;
  private workers: Worker[] = [];
  private state: BuildState | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private buildSeq = 0;
  private messageSeq = 0;

  constructor(options: ManifestBuilderOptions) {
    this.workerCount = Math.max(1, Math.floor(options.hashWorkers ?? 1));
    this.inlineMaxBytes = options.inlineMaxBytes ?? DEFAULT_INLINE_MAX_BYTES;
    this.logger = options.logger;
  }

  build(source: ManifestSource, signal?: AbortSignal): Promise<Manifest> {
    const run = () => this.run(source, signal ?? new AbortController().signal);
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  async close(): Promise<void> {
    const workers = this.workers;
    this.workers = [];
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  private async run(source: ManifestSource, signal: AbortSignal): Promise<Manifest> {
    const startedMs = performance.now();
    const chunkSize = chooseChunkSize(source.sizeBytes);
    const count = chunkCount(source.sizeBytes, chunkSize);
    const stream = await source.read(signal);
    const { sha256, chunks } =
      source.sizeBytes <= this.inlineMaxBytes
        ? await this.hashInline(stream, source.sizeBytes, chunkSize, count, signal)
        : await this.hashWithWorkers(stream, source.sizeBytes, chunkSize, count, signal);
    const unsigned = {
      v: MANIFEST_VERSION,
      file_id: source.fileId,
      name: source.name,
      size: source.sizeBytes,
      content_type: source.contentType,
      chunk_size: chunkSize,
      chunks,
      sha256,
    } as const;
    const manifest: Manifest = { ...unsigned, info_hash: await computeInfoHash(unsigned) };
    this.logger.debug({ fileId: source.fileId, sizeBytes: source.sizeBytes, ms: Math.round(performance.now() - startedMs) }, 'manifest built');
    return manifest;
  }

  private async hashInline(stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, chunkSize: number, count: number, signal: AbortSignal) {
    const full = createHash('sha256');
    const chunks: string[] = [];
    let chunkHash: Hash = createHash('sha256');
    let offset = 0;
    for await (const piece of stream) {
      signal.throwIfAborted();
      if (offset + piece.byteLength > size) throw new PfError('PF_ERR_UPSTREAM', 'the file grew while it was hashed');
      full.update(piece);
      let position = 0;
      while (position < piece.byteLength) {
        const chunkEnd = Math.min((Math.floor((offset + position) / chunkSize) + 1) * chunkSize, size);
        const length = Math.min(piece.byteLength - position, chunkEnd - (offset + position));
        chunkHash.update(piece.subarray(position, position + length));
        position += length;
        if (offset + position === chunkEnd) {
          chunks.push(chunkHash.digest('hex'));
          chunkHash = createHash('sha256');
        }
      }
      offset += piece.byteLength;
    }
    if (offset !== size || chunks.length !== count) throw new PfError('PF_ERR_UPSTREAM', 'the file shrank while it was hashed');
    return { sha256: full.digest('hex'), chunks };
  }

  private ensureWorkers(): Worker[] {
    while (this.workers.length < this.workerCount) {
      const worker = new Worker(new URL('./hash-worker.mjs', import.meta.url));
      worker.unref();
      worker.on('message', (message: unknown) => this.onReply(message));
      worker.on('error', (error) => this.onWorkerFailure(worker, error));
      worker.on('exit', (code) => this.onWorkerFailure(worker, new Error(`hash worker exited with code ${code}`)));
      this.workers.push(worker);
    }
    return this.workers;
  }

  private onWorkerFailure(worker: Worker, error: Error): void {
    if (!this.workers.includes(worker)) return;
    this.workers = this.workers.filter((candidate) => candidate !== worker);
    this.logger.error({ err: error }, 'hash worker failed');
    if (this.state) {
      this.state.failure = error;
      this.state.wake?.();
    }
  }

  private onReply(message: unknown): void {
    const state = this.state;
    const decoded = WorkerReplyCodec.decode(message);
    if (!state || (decoded.ok && decoded.value.build !== state.build)) return;
    if (!decoded.ok) {
      state.failure = new Error(`bad hash worker reply: ${decoded.errors.join('; ')}`);
    } else {
      for (const { chunk, sha256 } of decoded.value.digests) state.chunks[chunk] = sha256;
      state.inFlightBytes -= state.inFlight.get(decoded.value.id) ?? 0;
      state.inFlight.delete(decoded.value.id);
    }
    state.wake?.();
  }

  private async waitUntil(state: BuildState, done: () => boolean, signal: AbortSignal): Promise<void> {
    while (!done()) {
      if (state.failure) throw state.failure;
      signal.throwIfAborted();
      let onAbort: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        state.wake = resolve;
        onAbort = () => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
      });
      if (onAbort) signal.removeEventListener('abort', onAbort);
      state.wake = undefined;
    }
    if (state.failure) throw state.failure;
  }

  private async hashWithWorkers(stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number, chunkSize: number, count: number, signal: AbortSignal) {
    const workers = this.ensureWorkers();
    const build = ++this.buildSeq;
    const state: BuildState = { build, chunks: new Array<string | undefined>(count), inFlight: new Map(), inFlightBytes: 0, wake: undefined, failure: undefined };
    this.state = state;
    const full = createHash('sha256');
    let offset = 0;
    try {
      for await (const piece of stream) {
        if (offset + piece.byteLength > size) throw new PfError('PF_ERR_UPSTREAM', 'the file grew while it was hashed');
        full.update(piece);
        // Split the piece at chunk boundaries; chunk i belongs to worker i % workers.length.
        const groups = new Map<number, Segment[]>();
        let position = 0;
        while (position < piece.byteLength) {
          const chunk = Math.floor((offset + position) / chunkSize);
          const chunkEnd = Math.min((chunk + 1) * chunkSize, size);
          const length = Math.min(piece.byteLength - position, chunkEnd - (offset + position));
          const workerIndex = chunk % workers.length;
          const group = groups.get(workerIndex) ?? [];
          group.push({ chunk, offset: position, length, last: offset + position + length === chunkEnd });
          groups.set(workerIndex, group);
          position += length;
        }
        offset += piece.byteLength;
        for (const [workerIndex, segments] of groups) {
          let buffer: ArrayBuffer;
          let rebased = segments;
          if (groups.size === 1) {
            buffer = ownedBuffer(piece);
          } else {
            const first = segments[0]!.offset;
            const last = segments[segments.length - 1]!;
            // A copy (Buffer#slice would share memory, and the transfer would detach it).
            buffer = new Uint8Array(piece.subarray(first, last.offset + last.length)).buffer;
            rebased = segments.map((segment) => ({ ...segment, offset: segment.offset - first }));
          }
          const id = ++this.messageSeq;
          state.inFlight.set(id, buffer.byteLength);
          state.inFlightBytes += buffer.byteLength;
          workers[workerIndex]!.postMessage({ build, id, buffer, segments: rebased }, [buffer]);
        }
        await this.waitUntil(state, () => state.inFlightBytes <= MAX_IN_FLIGHT_BYTES, signal);
      }
      if (offset !== size) throw new PfError('PF_ERR_UPSTREAM', 'the file shrank while it was hashed');
      await this.waitUntil(state, () => state.inFlight.size === 0, signal);
    } finally {
      this.state = undefined;
    }
    const chunks: string[] = [];
    for (const digest of state.chunks) {
      if (digest === undefined) throw new Error('a chunk digest is missing');
      chunks.push(digest);
    }
    return { sha256: full.digest('hex'), chunks };
  }
}
