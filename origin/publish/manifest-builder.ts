import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import {
  MANIFEST_VERSION,
  Sha256HexSchema,
  chooseChunkSize,
  chunkCount,
  computeInfoHash,
  createCodec,
  type Manifest,
} from '../../protocol/index.ts';
import { BufferPool, isPositionalReader, readInBuffers, type SourceBytes } from '../storage/pooled-read.ts';

/** What the builder reads: the file's metadata and all its bytes, in order. */
export interface ManifestSource {
  fileId: string;
  name: string;
  contentType: string;
  sizeBytes: number;
  /** A positional reader is closed by the builder when the build ends. */
  read(signal: AbortSignal): Promise<SourceBytes>;
}

export interface ManifestBuilderOptions {
  /** Worker threads hashing chunks while the main thread hashes the whole file. Default 1. */
  hashWorkers?: number;
  /** Files up to this size are hashed on the main thread alone (a worker would cost more). Default 8 MiB. */
  inlineMaxBytes?: number;
  logger: Logger;
}

/** Read buffers of a build (reused, never reallocated): the memory bound of a build. */
const POOL_BUFFERS = 4;
const INLINE_POOL_BUFFERS = 2;
/** At most one chunk, so that a buffer never straddles two chunks (chunk sizes are powers of two). */
const READ_BUFFER_BYTES = 1024 * 1024;
const DEFAULT_INLINE_MAX_BYTES = 8 * 1024 * 1024;

const WorkerReplyCodec = createCodec(
  Type.Object({
    build: Type.Integer(),
    chunk: Type.Integer({ minimum: 0 }),
    /** Present when the buffer held the chunk's last bytes. */
    sha256: Type.Optional(Sha256HexSchema),
    /** The buffer, handed back. */
    bytes: Type.Uint8Array(),
  }),
);

interface BuildState {
  build: number;
  chunks: (string | undefined)[];
  pool: BufferPool;
}

/**
 * Streaming manifest builder with bounded memory: the main thread reads and runs the
 * full-file SHA-256 while worker threads hash the chunks, so a build uses two cores. The
 * bytes go through POOL_BUFFERS buffers of READ_BUFFER_BYTES, transferred to a worker and
 * back, so a build holds a few MiB whatever the file size. Builds run one at a time.
 */
export class ManifestBuilder {
  private readonly workerCount: number;
  private readonly inlineMaxBytes: number;
  private readonly logger: Logger;
  private workers: Worker[] = [];
  private state: BuildState | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private buildSeq = 0;

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
    const bytes = await source.read(signal);
    let hashed: { sha256: string; chunks: string[] };
    try {
      hashed =
        source.sizeBytes <= this.inlineMaxBytes
          ? await this.hashInline(bytes, source.sizeBytes, chunkSize, signal)
          : await this.hashWithWorkers(bytes, source.sizeBytes, chunkSize, count, signal);
    } finally {
      if (isPositionalReader(bytes)) await bytes.close();
    }
    if (hashed.chunks.length !== count) throw new Error('a chunk digest is missing');
    const unsigned = {
      v: MANIFEST_VERSION,
      file_id: source.fileId,
      name: source.name,
      size: source.sizeBytes,
      content_type: source.contentType,
      chunk_size: chunkSize,
      chunks: hashed.chunks,
      sha256: hashed.sha256,
    } as const;
    const manifest: Manifest = { ...unsigned, info_hash: await computeInfoHash(unsigned) };
    this.logger.debug({ fileId: source.fileId, sizeBytes: source.sizeBytes, ms: Math.round(performance.now() - startedMs) }, 'manifest built');
    return manifest;
  }

  private async hashInline(bytes: SourceBytes, size: number, chunkSize: number, signal: AbortSignal) {
    const pool = new BufferPool(INLINE_POOL_BUFFERS, Math.min(READ_BUFFER_BYTES, chunkSize));
    const full = createHash('sha256');
    const chunks: string[] = [];
    let chunkHash: Hash = createHash('sha256');
    let offset = 0;
    for await (const buffer of readInBuffers(bytes, size, pool, signal)) {
      full.update(buffer);
      chunkHash.update(buffer);
      offset += buffer.byteLength;
      pool.release(buffer);
      if (offset % chunkSize === 0 || offset === size) {
        chunks.push(chunkHash.digest('hex'));
        chunkHash = createHash('sha256');
      }
    }
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
    this.state?.pool.fail(error);
  }

  private onReply(message: unknown): void {
    const state = this.state;
    const decoded = WorkerReplyCodec.decode(message);
    if (!state || (decoded.ok && decoded.value.build !== state.build)) return;
    if (!decoded.ok) {
      state.pool.fail(new Error(`bad hash worker reply: ${decoded.errors.join('; ')}`));
      return;
    }
    const { chunk, sha256, bytes } = decoded.value;
    if (sha256 !== undefined) state.chunks[chunk] = sha256;
    state.pool.release(bytes);
  }

  private async hashWithWorkers(bytes: SourceBytes, size: number, chunkSize: number, count: number, signal: AbortSignal) {
    const workers = this.ensureWorkers();
    const build = ++this.buildSeq;
    const pool = new BufferPool(POOL_BUFFERS, Math.min(READ_BUFFER_BYTES, chunkSize));
    const state: BuildState = { build, chunks: new Array<string | undefined>(count), pool };
    this.state = state;
    const full = createHash('sha256');
    let offset = 0;
    try {
      for await (const buffer of readInBuffers(bytes, size, pool, signal)) {
        full.update(buffer);
        // A buffer never straddles chunks; chunk i belongs to worker i % workers.length.
        const chunk = Math.floor(offset / chunkSize);
        offset += buffer.byteLength;
        const isLast = offset === Math.min((chunk + 1) * chunkSize, size);
        workers[chunk % workers.length]!.postMessage({ build, chunk, bytes: buffer, isLast }, [buffer.buffer]);
      }
      await pool.until(() => pool.isIdle, signal);
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
