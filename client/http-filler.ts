import { PfError, chunkRange, type Manifest } from '../protocol/index.ts';
import { backoffMs, sleep } from './sleep.ts';

export interface HttpFillerOptions {
  manifest: Manifest;
  /** The current signed download URL. */
  getUrl: () => string;
  /** Get a fresh URL after a 403 (the engine PATCHes the session `resumed`). */
  refreshUrl: () => Promise<string>;
  fetch?: typeof fetch;
  /** Attempts per run before giving up. Default 8. */
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Abort a response that delivers no bytes for this long. Default 15 s. */
  idleTimeoutMs?: number;
  /** Raw bytes received, verified or not (what the origin sent). */
  onBytes?: (bytes: number) => void;
}

/**
 * One delivered chunk; resolve false if it failed verification (the run is retried from
 * it), or 'stop' to end the run after this chunk (peers can take over the rest).
 */
export type ChunkSink = (index: number, bytes: Uint8Array) => Promise<boolean | 'stop'>;

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+)$/;

/**
 * Fetches runs of adjacent chunks with one Range request each. A response counts only
 * if it is 206 with exactly the Content-Range asked for; bodies are streamed and cut
 * into chunks, so memory holds one chunk per request whatever the run length.
 */
export class HttpFiller {
  readonly #options: HttpFillerOptions;
  readonly #fetch: typeof fetch;
  #refreshing: Promise<string> | undefined;

  constructor(options: HttpFillerOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Fetch chunks [first, first+count) into `sink`, retrying from the first undelivered one. */
  async fetchRun(first: number, count: number, sink: ChunkSink, signal: AbortSignal): Promise<void> {
    const maxAttempts = this.#options.maxAttempts ?? 8;
    let next = first;
    const end = first + count;
    let failures = 0;
    let refreshes = 0;
    let lastError: unknown;
    while (next < end) {
      if (signal.aborted) throw new PfError('PF_ERR_ABORTED');
      try {
        next = await this.#attempt(next, end, sink, signal, () => {
          failures = 0;
        });
        continue;
      } catch (error) {
        if (signal.aborted) throw new PfError('PF_ERR_ABORTED', undefined, { cause: error });
        lastError = error;
        if (error instanceof UrlExpired && refreshes < 3) {
          refreshes++;
          await this.#refresh();
          continue;
        }
        if (error instanceof Progress) {
          next = error.next;
          lastError = error.cause;
        }
        failures++;
        if (failures >= maxAttempts) break;
        await sleep(backoffMs(failures - 1, this.#options.retryBaseMs ?? 250, this.#options.retryMaxMs ?? 8000), signal);
      }
    }
    if (next < end) {
      const cause = lastError instanceof Progress ? lastError.cause : lastError;
      throw cause instanceof PfError ? cause : new PfError('PF_ERR_UPSTREAM', `HTTP fill failed: ${String(cause)}`, { cause });
    }
  }

  /**
   * Give up the rest of a response. Cancelling the reader alone can leave undici's socket
   * open and unread, so the origin's response (and its graceful close) waits on it forever;
   * aborting the request closes the connection.
   */
  async #drop(reader: ReadableStreamDefaultReader<Uint8Array>, controller: AbortController): Promise<void> {
    controller.abort();
    await reader.cancel().catch(() => undefined);
  }

  #refresh(): Promise<string> {
    this.#refreshing ??= this.#options.refreshUrl().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  /** One request; returns the next chunk index. Throws Progress when it got partway. */
  async #attempt(first: number, end: number, sink: ChunkSink, outer: AbortSignal, onChunkOk: () => void): Promise<number> {
    const manifest = this.#options.manifest;
    const startByte = chunkRange(manifest, first).start;
    const endByte = chunkRange(manifest, end - 1).end;
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    outer.addEventListener('abort', onAbort, { once: true });
    const idleTimeoutMs = this.#options.idleTimeoutMs ?? 15_000;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdle = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => controller.abort(), idleTimeoutMs);
    };
    let next = first;
    try {
      armIdle();
      const response = await this.#fetch(this.#options.getUrl(), {
        headers: { range: `bytes=${startByte}-${endByte - 1}` },
        signal: controller.signal,
      });
      if (response.status === 403) {
        await response.body?.cancel();
        throw new UrlExpired();
      }
      const expected = `bytes ${startByte}-${endByte - 1}/${manifest.size}`;
      const contentRange = response.headers.get('content-range');
      if (response.status !== 206 || !isExactRange(contentRange, startByte, endByte, manifest.size)) {
        await response.body?.cancel();
        throw new PfError(
          'PF_ERR_HTTP_RANGE_MISMATCH',
          response.status === 206 ? `asked for ${expected}, got ${contentRange ?? 'no Content-Range'}` : `HTTP ${response.status}`,
        );
      }
      if (!response.body) throw new PfError('PF_ERR_UPSTREAM', 'response has no body');
      const reader = response.body.getReader();
      let { start: chunkStart, end: chunkEnd } = chunkRange(manifest, next);
      let buffer = new Uint8Array(chunkEnd - chunkStart);
      let filled = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        armIdle();
        this.#options.onBytes?.(value.length);
        let offset = 0;
        while (offset < value.length) {
          if (next >= end) {
            await reader.cancel();
            throw new PfError('PF_ERR_HTTP_RANGE_MISMATCH', 'response longer than its Content-Range');
          }
          const take = Math.min(buffer.length - filled, value.length - offset);
          buffer.set(value.subarray(offset, offset + take), filled);
          filled += take;
          offset += take;
          if (filled < buffer.length) continue;
          clearTimeout(idleTimer);
          const verdict = await sink(next, buffer);
          armIdle();
          if (verdict === 'stop') {
            await this.#drop(reader, controller);
            return end;
          }
          if (!verdict) {
            await this.#drop(reader, controller);
            throw new PfError('PF_ERR_CHUNK_HASH_MISMATCH', `chunk ${next} from HTTP failed SHA-256`);
          }
          onChunkOk();
          next++;
          if (next < end) {
            ({ start: chunkStart, end: chunkEnd } = chunkRange(manifest, next));
            buffer = new Uint8Array(chunkEnd - chunkStart);
            filled = 0;
          }
        }
      }
      if (next < end) throw new PfError('PF_ERR_UPSTREAM', 'response ended early');
      return next;
    } catch (error) {
      if (next > first) throw new Progress(next, error);
      throw error;
    } finally {
      clearTimeout(idleTimer);
      outer.removeEventListener('abort', onAbort);
    }
  }
}

function isExactRange(header: string | null, startByte: number, endByte: number, sizeBytes: number): boolean {
  const match = header === null ? null : CONTENT_RANGE.exec(header.trim());
  if (!match) return false;
  return Number(match[1]) === startByte && Number(match[2]) === endByte - 1 && Number(match[3]) === sizeBytes;
}

class UrlExpired extends Error {
  constructor() {
    super('download URL expired (403)');
  }
}

/** A failed attempt that still delivered chunks up to `next`. */
class Progress extends Error {
  readonly next: number;
  constructor(next: number, cause: unknown) {
    super('partial HTTP run', { cause });
    this.next = next;
  }
}
