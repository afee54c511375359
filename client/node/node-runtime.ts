import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as WsModule from 'ws';
import { IceServersSchema, createCodec, parseJson } from '../../protocol/index.ts';
import type { ClientOptions } from '../options.ts';
import type { WebSocketLike } from '../peer/tracker-client.ts';
import { FileChunkStore } from './file-chunk-store.ts';
import { createThreadFileHasher } from './hash-thread.ts';
import { http1RangeGet } from './http1-range-get.ts';
import { createNodeApiRequest, nodeApiRequest } from './node-http.ts';
import { SeedFileStore } from './seed-file-store.ts';
import { loadNodeWrtc } from './wrtc.ts';

/** node:crypto's one-shot SHA-256: hashes the chunk in place on this thread; WebCrypto copies it and queues a job per chunk. */
export function nodeHashChunk(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * `ws` behind the WebSocket subset the tracker client uses (Node 20 has no global one).
 * Loaded on first use: an HTTP-only download never opens a tracker socket.
 */
export function createNodeWebSocket(url: string): WebSocketLike {
  const { WebSocket } = createRequire(import.meta.url)('ws') as typeof WsModule;
  const socket = new WebSocket(url, { perMessageDeflate: false });
  const adapter: WebSocketLike = {
    get readyState() {
      return socket.readyState;
    },
    send: (data) => socket.send(data),
    close: () => socket.close(),
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
  };
  socket.on('open', () => adapter.onopen?.(undefined));
  socket.on('message', (data, isBinary) => adapter.onmessage?.({ data: isBinary || !Buffer.isBuffer(data) ? data : data.toString('utf8') }));
  socket.on('close', () => adapter.onclose?.(undefined));
  socket.on('error', (error) => adapter.onerror?.(error));
  return adapter;
}

/**
 * What Node adds to the portable client: WebRTC, WebSocket, node:http for API requests, an
 * HTTP/1.1 client for Range requests, and SHA-256 on a worker thread. `timeoutMs` is the
 * connect and idle timeout of every API and Range request [15 s].
 */
export function nodeClientOptions(options: { usePeers?: boolean; timeoutMs?: number } = {}): ClientOptions {
  const usePeers = options.usePeers ?? true;
  const timeouts = options.timeoutMs === undefined ? {} : { httpIdleTimeoutMs: options.timeoutMs };
  return {
    ...timeouts,
    usePeers,
    wrtc: usePeers ? loadNodeWrtc() : undefined,
    createWebSocket: createNodeWebSocket,
    apiRequest: options.timeoutMs === undefined ? nodeApiRequest : createNodeApiRequest(options.timeoutMs),
    rangeGet: http1RangeGet,
    // The hash thread reads the file itself: a seeded file's whole-file check then skips the
    // seed store's per-chunk re-verification of reads (its chunks were just verified by open()).
    createFileHasher: (store) => createThreadFileHasher(store instanceof FileChunkStore ? store.partPath : store instanceof SeedFileStore ? store.path : undefined),
    hashChunk: nodeHashChunk,
  };
}

const iceServersCodec = createCodec(IceServersSchema);

/**
 * `--ice-servers JSON` (get, seed): an explicit list of RTCIceServers, e.g.
 * `[{"urls":["turn:turn.example:3478"],"username":"u","credential":"p"}]`, that wins over the
 * server's. Returns the client options it sets (none without the flag), or undefined after
 * writing to `stderr` what is wrong (a usage error).
 */
export function iceServersOption(text: string | undefined, command: string, stderr: { write(text: string): unknown }): Pick<ClientOptions, 'rtcConfig'> | undefined {
  if (text === undefined) return {};
  const parsed = parseJson(text);
  const decoded = parsed.ok ? iceServersCodec.decode(parsed.value) : parsed;
  if (decoded.ok) return { rtcConfig: { iceServers: decoded.value } };
  stderr.write(`peerfill ${command}: --ice-servers must be a JSON array of {urls:[stun:|turn:…], username?, credential?}: ${decoded.errors.join('; ')}\n`);
  return undefined;
}
