import { PfError, chunkLength, chunkRange, isPfError, type Manifest } from '../protocol/index.ts';
import { formatSeconds, networkError } from './network-error.ts';
import { isConnectionLoss } from './outage.ts';
import { backoffMs, sleep } from './sleep.ts';

export interface HttpFillerOptions {
  manifest: Manifest;
  /** The current signed download URL. */
  getUrl: () => string;
  /** Get a fresh URL after a 403 (the engine PATCHes the session `resumed`). */
  refreshUrl: () => Promise<string>;
  fetch?: typeof fetch;
  /** How Range requests are made [fetchRangeGet(fetch)]; Node passes its HTTP/1.1 client (http1-range-get.ts). */
  rangeGet?: RangeGet;
  /** Attempts per run before giving up on a server that answers wrongly. Default 8. A lost connection is thrown at once: the caller rides out outages. */
  maxAttempts?: number;
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** Abort a response that delivers no bytes for this long. Default 15 s. */
  idleTimeoutMs?: number;
  /** Raw bytes received, verified or not (what the origin sent). */
  onBytes?: (bytes: number) => void;
  /**
   * A chunk from the origin failed SHA-256, or its Content-Range names another size: the file
   * may have been republished (the engine checks the manifest). Retried as before meanwhile.
   */
  onWrongBytes?: (error: PfError) => void;
}

/**
 * One delivered chunk; resolve false if it failed verification (the run is retried from
 * it), or 'stop' to end the run after this chunk (peers can take over the rest). `bytes`
 * is lent: it is reused for a later chunk once the returned promise settles, so the sink
 * must be done with it (stores copy or write it before their put() resolves).
 */
export type ChunkSink = (index: number, bytes: Uint8Array) => Promise<boolean | 'stop'>;

/** One Range GET as the filler needs it: the status, one header, and the body read into buffers. */
export interface RangeResponse {
  readonly status: number;
  header(name: 'content-range'): string | null;
  /**
   * Fill `target` with the body's next bytes; resolves with `target.length`, or with fewer
   * only where the body ends (0 once it has). The transport may write into `target` until
   * the promise settles. `onBytes` hears each arrival (progress, idle timeouts).
   */
  readInto(target: Uint8Array, onBytes?: (bytes: number) => void): Promise<number>;
  /** Give up the rest of the body; the connection is closed, not left unread. */
  cancel(): Promise<void>;
}

/** Start a GET of `url` with `range`; resolves at the response head. */
export type RangeGet = (url: string, range: string, signal: AbortSignal) => Promise<RangeResponse>;

/**
 * RangeGet over fetch (browsers). Cancelling the reader alone can leave undici's socket
 * open and unread, so the origin's response (and its graceful close) waits on it forever;
 * cancel() aborts the request too, which closes the connection.
 */
export function fetchRangeGet(fetchImpl: typeof fetch): RangeGet {
  return async (url, range, signal) => {
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    if (signal.aborted) controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await fetchImpl(url, { headers: { range }, signal: controller.signal });
      const reader = response.body?.getReader();
      // What the last read gave beyond the caller's buffer.
      let rest: Uint8Array = new Uint8Array(0);
      let isDone = reader === undefined;
      return {
        status: response.status,
        header: (name) => response.headers.get(name),
        readInto: async (target, onBytes) => {
          let filled = 0;
          while (filled < target.length) {
            if (rest.length === 0) {
              if (isDone) break;
              const { done, value } = await readOrAbort(reader!, controller.signal);
              if (done) {
                isDone = true;
                break;
              }
              rest = value;
            }
            const take = Math.min(rest.length, target.length - filled);
            target.set(rest.subarray(0, take), filled);
            rest = rest.subarray(take);
            filled += take;
            onBytes?.(take);
          }
          return filled;
        },
        cancel: async () => {
          controller.abort();
          signal.removeEventListener('abort', onAbort);
          await reader?.cancel().catch(() => undefined);
        },
      };
    } catch (error) {
      signal.removeEventListener('abort', onAbort);
      throw error;
    }
  };
}

/**
 * A body read that an abort ends at once. A read begun after the abort of an undici fetch
 * whose body had fully arrived never settled, so a paused download waited on it forever.
 */
function readOrAbort(reader: ReadableStreamDefaultReader<Uint8Array>, signal: AbortSignal): Promise<ReadableStreamReadResult<Uint8Array>> {
  if (signal.aborted) return Promise.reject(new PfError('PF_ERR_ABORTED'));
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(new PfError('PF_ERR_ABORTED'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([reader.read(), aborted]).finally(() => signal.removeEventListener('abort', onAbort!));
}

/** Spare chunk buffers kept: about one per concurrent request. */
const SPARE_BUFFERS = 8;

const CONTENT_RANGE = /^bytes (\d+)-(\d+)\/(\d+)$/;

/**
 * Fetches runs of adjacent chunks with one Range request each. A response counts only
 * if it is 206 with exactly the Content-Range asked for; bodies are streamed and cut
 * into chunks, so memory holds one chunk per request whatever the run length.
 */
export class HttpFiller {
  readonly #options: HttpFillerOptions;
  readonly #rangeGet: RangeGet;
  #refreshing: Promise<string> | undefined;
  /**
   * Chunk buffers of finished requests, reused: a fresh 1 MiB buffer per chunk costs the
   * kernel a page fault per 4 KiB when it is filled and an unmap when it is collected —
   * measured at 5.6 s of system time per 2 GiB written, against 0.6 s reusing one buffer.
   */
  readonly #spare: Uint8Array[] = [];

  constructor(options: HttpFillerOptions) {
    this.#options = options;
    this.#rangeGet = options.rangeGet ?? fetchRangeGet(options.fetch ?? ((input, init) => fetch(input, init)));
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
        if (isConnectionLoss(lastError) || isFileRemoved(lastError)) throw lastError;
        if (isPfError(lastError) && (lastError.code === 'PF_ERR_CHUNK_HASH_MISMATCH' || lastError.code === 'PF_ERR_HTTP_RANGE_MISMATCH')) this.#options.onWrongBytes?.(lastError);
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
    // Idle = no byte for idleTimeoutMs. Arrivals only stamp the time (one per read would
    // otherwise re-create a timer); the timer re-arms itself for what is left.
    const idleTimeoutMs = this.#options.idleTimeoutMs ?? 15_000;
    let lastByteAtMs = Date.now();
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    let isIdle = false;
    const checkIdle = () => {
      const quietMs = Date.now() - lastByteAtMs;
      if (quietMs >= idleTimeoutMs) {
        isIdle = true;
        controller.abort();
      } else idleTimer = setTimeout(checkIdle, idleTimeoutMs - quietMs);
    };
    const url = this.#options.getUrl();
    // What the network did to the request (refused, reset, silent) is a lost connection; what the server said is not.
    const lost = (error: unknown): unknown => {
      if (isIdle) return new PfError('PF_ERR_UPSTREAM', `${new URL(url).host} sent nothing for ${formatSeconds(idleTimeoutMs)} s`, { cause: error });
      if (error instanceof PfError || outer.aborted) return error;
      return networkError(error, url);
    };
    const onBytes = (bytes: number) => {
      lastByteAtMs = Date.now();
      this.#options.onBytes?.(bytes);
    };
    let next = first;
    let whole: Uint8Array | undefined;
    let response: RangeResponse | undefined;
    let isComplete = false;
    try {
      idleTimer = setTimeout(checkIdle, idleTimeoutMs);
      response = await this.#rangeGet(url, `bytes=${startByte}-${endByte - 1}`, controller.signal).catch((error: unknown) => {
        throw lost(error);
      });
      if (response.status === 403) throw new UrlExpired();
      // The signature held, so the file itself is gone: no retry brings it back.
      if (response.status === 404 || response.status === 410) throw fileRemoved(response.status);
      if (response.status >= 500 || response.status === 429) throw new PfError('PF_ERR_UPSTREAM', `the data plane answered HTTP ${response.status}`);
      const expected = `bytes ${startByte}-${endByte - 1}/${manifest.size}`;
      const contentRange = response.header('content-range');
      if (response.status !== 206 || !isExactRange(contentRange, startByte, endByte, manifest.size)) {
        throw new PfError(
          'PF_ERR_HTTP_RANGE_MISMATCH',
          response.status === 206 ? `asked for ${expected}, got ${contentRange ?? 'no Content-Range'}` : `HTTP ${response.status}`,
        );
      }
      whole ??= this.#spare.pop() ?? new Uint8Array(manifest.chunk_size);
      for (; next < end; next++) {
        const buffer = whole.subarray(0, chunkLength(manifest, next));
        lastByteAtMs = Date.now();
        const filled = await response.readInto(buffer, onBytes).catch((error: unknown) => {
          throw lost(error);
        });
        if (filled < buffer.length) throw new PfError('PF_ERR_UPSTREAM', 'response ended early');
        // The sink's time (verify, store) is not the server's silence.
        clearTimeout(idleTimer);
        const verdict = await sink(next, buffer);
        lastByteAtMs = Date.now();
        idleTimer = setTimeout(checkIdle, idleTimeoutMs);
        if (verdict === 'stop') return end;
        if (!verdict) throw new PfError('PF_ERR_CHUNK_HASH_MISMATCH', `chunk ${next} from HTTP failed SHA-256`);
        onChunkOk();
      }
      // Every chunk arrived: a body that goes on is not the range asked for.
      if ((await response.readInto(whole.subarray(0, 1))) > 0) throw new PfError('PF_ERR_HTTP_RANGE_MISMATCH', 'response longer than its Content-Range');
      isComplete = true;
      return next;
    } catch (error) {
      if (next > first) throw new Progress(next, error);
      throw error;
    } finally {
      clearTimeout(idleTimer);
      outer.removeEventListener('abort', onAbort);
      // Anything but a body read to its end: close the connection rather than leave it unread.
      if (response && !isComplete) await response.cancel().catch(() => undefined);
      if (whole && this.#spare.length < SPARE_BUFFERS) this.#spare.push(whole);
    }
  }
}

/** The data plane no longer has the file (404/410 on a URL it signed). */
function fileRemoved(status: number): PfError {
  return new PfError('PF_ERR_FILE_NOT_FOUND', `this file was removed from the server (the data plane answered HTTP ${status})`);
}

/** The file is gone from the server: the download ends at once, whatever peers still hold. */
export function isFileRemoved(error: unknown): boolean {
  return isPfError(error) && error.code === 'PF_ERR_FILE_NOT_FOUND';
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
