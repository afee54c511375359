import { connect as netConnect, isIP, type OnReadOpts, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { PfError } from '../../protocol/index.ts';
import type { RangeGet, RangeResponse } from '../http-filler.ts';
import { parseResponseHead, type ResponseHead } from './http1-head.ts';

const HEAD_LIMIT_BYTES = 16 * 1024;
/** Where a read lands when no caller buffer is waiting (the first read after a pause). */
const SCRATCH_BYTES = 16 * 1024;
const IDLE_SOCKET_MS = 4000;
const MAX_IDLE_PER_ORIGIN = 8;
const EMPTY = new Uint8Array(0);

export interface Http1RangeGetOptions {
  /** Extra CA certificates for https (tests); Node's own roots otherwise. */
  ca?: string | Buffer;
}

/** One request/response on a connection; ended once its body has been handed over. */
interface Exchange {
  isEnded: boolean;
  /** Body bytes the server framed with Content-Length; undefined when it did not. */
  bodyBytes: number | undefined;
}

/**
 * One keep-alive HTTP/1.1 connection (plain or TLS) whose reads land straight in the
 * caller's chunk buffer (net's `onread`): no Buffer per read, so no garbage for V8 to
 * collect and no copy. node:http allocated a 64 KiB Buffer per read, and its collection
 * cost more CPU than the SHA-256 of the same bytes in bench/client.
 */
class Connection {
  readonly key: string;
  readonly socket: Socket;
  isReused = false;
  /** Any byte arrived for the current request (a stale pooled connection has none). */
  hasReceived = false;
  onReusable: (() => void) | undefined;
  readonly #head = new Uint8Array(HEAD_LIMIT_BYTES);
  #headLength = 0;
  readonly #scratch = new Uint8Array(SCRATCH_BYTES);
  #spillCopy: Uint8Array | undefined;
  /** Body bytes received but not handed over yet. */
  #spill: Uint8Array = EMPTY;
  #phase: 'idle' | 'head' | 'body' = 'idle';
  /** Body bytes still to come from the socket. */
  #unread = 0;
  #isKeepAlive = false;
  #exchange: Exchange | undefined;
  #target: Uint8Array | undefined;
  #filled = 0;
  #onBytes: ((bytes: number) => void) | undefined;
  #bodyWaiter: { resolve: (filled: number) => void; reject: (error: Error) => void } | undefined;
  #headWaiter: { resolve: (answer: { head: ResponseHead; exchange: Exchange }) => void; reject: (error: Error) => void } | undefined;
  #error: Error | undefined;

  constructor(url: URL, key: string, options: Http1RangeGetOptions) {
    this.key = key;
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const onread: OnReadOpts = { buffer: () => this.#nextBuffer(), callback: (bytes, buffer) => this.#onRead(bytes, buffer) };
    const isHttps = url.protocol === 'https:';
    const port = Number(url.port || (isHttps ? 443 : 80));
    // tls.connect takes onread too (documented), though @types/node leaves it out.
    const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = { host, port, servername: isIP(host) ? undefined : host, ca: options.ca, ALPNProtocols: ['http/1.1'], onread };
    this.socket = isHttps ? tlsConnect(tlsOptions) : netConnect({ host, port, onread });
    this.socket.setNoDelay(true);
    this.socket.on('error', (error) => this.fail(error));
    this.socket.on('close', () => this.fail(new PfError('PF_ERR_UPSTREAM', `${url.host} closed the connection`)));
    this.socket.on('timeout', () => this.fail(new PfError('PF_ERR_UPSTREAM', 'idle connection timed out')));
  }

  get isAlive(): boolean {
    return this.#error === undefined && this.#phase === 'idle';
  }

  /** Send a GET and wait for the response head. */
  request(url: URL, range: string): Promise<{ head: ResponseHead; exchange: Exchange }> {
    if (this.#error) return Promise.reject(this.#error);
    this.#phase = 'head';
    this.#headLength = 0;
    this.hasReceived = false;
    this.socket.setTimeout(0);
    this.socket.ref();
    const text = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nRange: ${range}\r\nAccept-Encoding: identity\r\nUser-Agent: peerfill\r\n\r\n`;
    return new Promise((resolve, reject) => {
      this.#headWaiter = { resolve, reject };
      this.socket.write(text);
      this.socket.resume();
    });
  }

  /** Fill `target` from the body (fewer bytes only at its end); 0 once it has ended. */
  readInto(exchange: Exchange, target: Uint8Array, onBytes?: (bytes: number) => void): Promise<number> {
    if (exchange.isEnded) return Promise.resolve(0);
    if (this.#error) return Promise.reject(this.#error);
    if (exchange !== this.#exchange || this.#phase !== 'body') return Promise.reject(new PfError('PF_ERR_INTERNAL', 'read from a finished exchange'));
    if (exchange.bodyBytes === undefined) {
      return Promise.reject(new PfError('PF_ERR_UPSTREAM', 'a response without Content-Length (chunked or close-delimited) is not supported for Range requests'));
    }
    let filled = 0;
    if (this.#spill.length > 0) {
      filled = Math.min(this.#spill.length, target.length);
      target.set(this.#spill.subarray(0, filled));
      this.#spill = this.#spill.subarray(filled);
      onBytes?.(filled);
    }
    if (filled === target.length || this.#unread === 0) {
      this.#endIfDone();
      return Promise.resolve(filled);
    }
    this.#target = target;
    this.#filled = filled;
    this.#onBytes = onBytes;
    return new Promise((resolve, reject) => {
      this.#bodyWaiter = { resolve, reject };
      this.socket.resume();
    });
  }

  fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#phase = 'idle';
    const head = this.#headWaiter;
    const body = this.#bodyWaiter;
    this.#headWaiter = undefined;
    this.#bodyWaiter = undefined;
    this.#target = undefined;
    head?.reject(error);
    body?.reject(error);
    this.socket.destroy();
  }

  /** Where the next read lands: the rest of the head buffer, the caller's buffer, or scratch. */
  #nextBuffer(): Uint8Array {
    if (this.#phase === 'head' && this.#headLength < HEAD_LIMIT_BYTES) return this.#head.subarray(this.#headLength);
    const target = this.#target;
    if (this.#phase === 'body' && target && this.#filled < target.length && this.#unread > 0) {
      return target.subarray(this.#filled, this.#filled + Math.min(target.length - this.#filled, this.#unread));
    }
    return this.#phase === 'body' && this.#unread > 0 ? this.#scratch.subarray(0, Math.min(SCRATCH_BYTES, this.#unread)) : this.#scratch;
  }

  /**
   * One read of `bytes` into `buffer` (the last one #nextBuffer gave, so scratch when it was
   * given before the phase changed); false pauses the socket (nobody waits for more).
   */
  #onRead(bytes: number, buffer: Uint8Array): boolean {
    this.hasReceived = true;
    const isScratch = buffer.buffer === this.#scratch.buffer;
    if (this.#phase === 'head') {
      if (isScratch) {
        if (bytes > HEAD_LIMIT_BYTES - this.#headLength) {
          this.fail(new PfError('PF_ERR_UPSTREAM', `response head larger than ${HEAD_LIMIT_BYTES} bytes`));
          return false;
        }
        this.#head.set(buffer.subarray(0, bytes), this.#headLength);
      }
      return this.#onHeadBytes(bytes);
    }
    const target = this.#target;
    if (this.#phase !== 'body' || bytes > this.#unread || !target) {
      this.fail(new PfError('PF_ERR_UPSTREAM', 'the server sent bytes beyond the response'));
      return false;
    }
    this.#unread -= bytes;
    if (isScratch) {
      // The first read after a pause: copy into the caller's buffer, keep what does not fit.
      const take = Math.min(bytes, target.length - this.#filled);
      target.set(buffer.subarray(0, take), this.#filled);
      this.#filled += take;
      this.#onBytes?.(take);
      this.#spillCopy ??= new Uint8Array(SCRATCH_BYTES);
      this.#spillCopy.set(buffer.subarray(take, bytes));
      this.#spill = this.#spillCopy.subarray(0, bytes - take);
    } else {
      this.#filled += bytes;
      this.#onBytes?.(bytes);
    }
    if (this.#filled < target.length && this.#unread > 0) return true;
    const waiter = this.#bodyWaiter;
    const filled = this.#filled;
    this.#target = undefined;
    this.#bodyWaiter = undefined;
    this.#onBytes = undefined;
    this.#endIfDone();
    waiter?.resolve(filled);
    return false;
  }

  #onHeadBytes(bytes: number): boolean {
    this.#headLength += bytes;
    let head: ResponseHead | undefined;
    try {
      head = parseResponseHead(this.#head.subarray(0, this.#headLength));
      if (!head && this.#headLength >= HEAD_LIMIT_BYTES) throw new PfError('PF_ERR_UPSTREAM', `response head larger than ${HEAD_LIMIT_BYTES} bytes`);
      if (head && head.status < 200) throw new PfError('PF_ERR_UPSTREAM', `unexpected informational response ${head.status}`);
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)));
      return false;
    }
    if (!head) return true;
    const bodyBytes = head.headers.has('transfer-encoding') ? undefined : contentLength(head);
    const spill = this.#head.subarray(head.headBytes, this.#headLength);
    if (bodyBytes !== undefined && spill.length > bodyBytes) {
      this.fail(new PfError('PF_ERR_UPSTREAM', 'the server sent bytes beyond the response'));
      return false;
    }
    this.#phase = 'body';
    this.#spill = spill;
    this.#unread = bodyBytes === undefined ? 0 : bodyBytes - spill.length;
    this.#isKeepAlive = head.isKeepAlive && bodyBytes !== undefined;
    const exchange: Exchange = { isEnded: false, bodyBytes };
    this.#exchange = exchange;
    const waiter = this.#headWaiter;
    this.#headWaiter = undefined;
    waiter?.resolve({ head, exchange });
    // A body-less response ends here (its bytes, none, are handed over).
    if (bodyBytes === 0) this.#endIfDone();
    return false;
  }

  /** The whole body was handed over: the connection may serve the next request. */
  #endIfDone(): void {
    if (this.#phase !== 'body' || this.#unread > 0 || this.#spill.length > 0 || this.#exchange?.bodyBytes === undefined) return;
    this.#exchange.isEnded = true;
    this.#exchange = undefined;
    this.#phase = 'idle';
    if (this.#isKeepAlive) this.onReusable?.();
    else this.fail(new PfError('PF_ERR_UPSTREAM', 'connection not kept alive'));
  }
}

function contentLength(head: ResponseHead): number | undefined {
  const value = head.headers.get('content-length');
  return value !== undefined && /^\d{1,15}$/.test(value) ? Number(value) : undefined;
}

/**
 * Range GETs for the Node runtime over HTTP/1.1 keep-alive connections (http: and https:),
 * reading each body straight into the filler's chunk buffers. Redirects are not followed
 * (a signed URL is the final one). Idle connections are kept a few seconds, never keeping
 * the process alive.
 */
export function createHttp1RangeGet(options: Http1RangeGetOptions = {}): RangeGet {
  const idle = new Map<string, Connection[]>();

  const take = (url: URL): Connection => {
    const key = `${url.protocol}//${url.host}`;
    const list = idle.get(key) ?? [];
    for (let connection = list.pop(); connection; connection = list.pop()) {
      if (!connection.isAlive) continue;
      connection.isReused = true;
      return connection;
    }
    const connection = new Connection(url, key, options);
    connection.onReusable = () => {
      const pool = idle.get(connection.key) ?? [];
      if (pool.length >= MAX_IDLE_PER_ORIGIN) return connection.fail(new PfError('PF_ERR_UPSTREAM', 'pool full'));
      pool.push(connection);
      idle.set(connection.key, pool);
      connection.socket.unref();
      connection.socket.setTimeout(IDLE_SOCKET_MS);
    };
    return connection;
  };

  return async (url, range, signal) => {
    const target = new URL(url);
    if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new TypeError(`unsupported URL scheme ${target.protocol}`);
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw new PfError('PF_ERR_ABORTED');
      const connection = take(target);
      const onAbort = () => connection.fail(new PfError('PF_ERR_ABORTED'));
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const { head, exchange } = await connection.request(target, range);
        return response(connection, head, exchange, () => signal.removeEventListener('abort', onAbort));
      } catch (error) {
        signal.removeEventListener('abort', onAbort);
        // A pooled connection the server closed meanwhile: once more, on a new one.
        if (attempt === 0 && connection.isReused && !connection.hasReceived && !signal.aborted) continue;
        throw error;
      }
    }
  };
}

function response(connection: Connection, head: ResponseHead, exchange: Exchange, done: () => void): RangeResponse {
  return {
    status: head.status,
    header: (name) => head.headers.get(name) ?? null,
    readInto: async (target, onBytes) => {
      const filled = await connection.readInto(exchange, target, onBytes);
      if (exchange.isEnded) done();
      return filled;
    },
    cancel: () => {
      done();
      // Unread body left: the connection cannot carry another request.
      if (!exchange.isEnded) connection.fail(new PfError('PF_ERR_ABORTED', 'response cancelled'));
      return Promise.resolve();
    },
  };
}

/** The Node runtime's Range GETs (one pool per process). */
export const http1RangeGet: RangeGet = createHttp1RangeGet();
