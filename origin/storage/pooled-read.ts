import { PfError } from '../../protocol/index.ts';

/** Reads at a position into the caller's buffer, so a build reuses a few buffers instead of allocating one per read. */
export interface PositionalReader {
  /** Bytes from `positionBytes` into `target`, as many as fit or the source still has (0 at its end). */
  readInto(target: Uint8Array, positionBytes: number): Promise<number>;
  close(): Promise<void>;
}

/** A source's bytes: pieces in order, or a positional reader (the cheaper one: nothing is allocated per read). */
export type SourceBytes = AsyncIterable<Uint8Array> | Iterable<Uint8Array> | PositionalReader;

export function isPositionalReader(bytes: SourceBytes): bytes is PositionalReader {
  return 'readInto' in bytes;
}

/**
 * A fixed set of equal buffers, lent out and given back: the whole read memory of a build.
 * Buffers are transferred to workers and come back as new views of the same memory, so
 * nothing is allocated per read and no garbage piles up between collections.
 */
export class BufferPool {
  private readonly free: Uint8Array<ArrayBuffer>[];
  private readonly waiters = new Set<() => void>();
  private failure: Error | undefined;

  constructor(
    readonly count: number,
    readonly bufferBytes: number,
  ) {
    this.free = Array.from({ length: count }, () => new Uint8Array(bufferBytes));
  }

  get isIdle(): boolean {
    return this.free.length === this.count;
  }

  async acquire(signal: AbortSignal): Promise<Uint8Array<ArrayBuffer>> {
    await this.until(() => this.free.length > 0, signal);
    const buffer = this.free.pop();
    if (!buffer) throw new Error('buffer pool is empty');
    return buffer;
  }

  /** Give back (a view of) a lent buffer; the pool keeps the whole of its memory. */
  release(view: Uint8Array): void {
    const memory = view.buffer;
    if (!(memory instanceof ArrayBuffer) || memory.byteLength !== this.bufferBytes || this.isIdle) {
      this.fail(new Error('a buffer that is not from this pool was given back'));
      return;
    }
    this.free.push(new Uint8Array(memory));
    this.wake();
  }

  /** Every wait, present and future, fails with `error` (a worker died or misbehaved). */
  fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  async until(done: () => boolean, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (this.failure) throw this.failure;
      signal.throwIfAborted();
      if (done()) return;
      let onAbort: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        this.waiters.add(resolve);
        onAbort = () => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
      });
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const resolve of waiters) resolve();
  }
}

/**
 * The source's `sizeBytes` bytes in buffers from `pool`, in order. Every buffer is full but
 * the last, so buffer k holds bytes [k * bufferBytes, ...): with a buffer size that divides
 * the chunk size, no buffer straddles two chunks. The consumer releases each buffer when it
 * is done with it. A positional reader reads one buffer ahead while the consumer works.
 */
export function readInBuffers(bytes: SourceBytes, sizeBytes: number, pool: BufferPool, signal: AbortSignal): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  return isPositionalReader(bytes) ? readAhead(bytes, sizeBytes, pool, signal) : copyPieces(bytes, sizeBytes, pool, signal);
}

const shrank = () => new PfError('PF_ERR_UPSTREAM', 'the file shrank while it was hashed');
const grew = () => new PfError('PF_ERR_UPSTREAM', 'the file grew while it was hashed');

async function* readAhead(reader: PositionalReader, sizeBytes: number, pool: BufferPool, signal: AbortSignal): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  const readAt = async (position: number): Promise<Uint8Array<ArrayBuffer>> => {
    const buffer = await pool.acquire(signal);
    const lengthBytes = Math.min(pool.bufferBytes, sizeBytes - position);
    try {
      let filled = 0;
      while (filled < lengthBytes) {
        const bytesRead = await reader.readInto(buffer.subarray(filled, lengthBytes), position + filled);
        if (bytesRead === 0) throw shrank();
        filled += bytesRead;
      }
    } catch (error) {
      pool.release(buffer);
      throw error;
    }
    return buffer.subarray(0, lengthBytes);
  };
  let position = 0;
  let next: Promise<Uint8Array<ArrayBuffer>> | undefined = sizeBytes > 0 ? readAt(0) : undefined;
  try {
    while (next) {
      const current = await next;
      position += current.byteLength;
      next = position < sizeBytes ? readAt(position) : undefined;
      // Handled here too: it may fail while the consumer is busy with `current`.
      next?.catch(() => undefined);
      yield current;
    }
  } finally {
    // Left early: the read ahead finishes before the reader can be closed under it.
    if (next) await next.then((buffer) => pool.release(buffer), () => undefined);
  }
}

async function* copyPieces(pieces: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, sizeBytes: number, pool: BufferPool, signal: AbortSignal): AsyncGenerator<Uint8Array<ArrayBuffer>> {
  let buffer: Uint8Array<ArrayBuffer> | undefined;
  let filled = 0;
  let total = 0;
  try {
    for await (const piece of pieces) {
      signal.throwIfAborted();
      if (total + piece.byteLength > sizeBytes) throw grew();
      total += piece.byteLength;
      let position = 0;
      while (position < piece.byteLength) {
        buffer ??= await pool.acquire(signal);
        const length = Math.min(piece.byteLength - position, buffer.byteLength - filled);
        buffer.set(piece.subarray(position, position + length), filled);
        filled += length;
        position += length;
        if (filled === buffer.byteLength) {
          const full = buffer;
          [buffer, filled] = [undefined, 0];
          yield full;
        }
      }
    }
    if (total !== sizeBytes) throw shrank();
    if (buffer) {
      const last = buffer.subarray(0, filled);
      [buffer, filled] = [undefined, 0];
      yield last;
    }
  } finally {
    if (buffer) pool.release(buffer);
  }
}
