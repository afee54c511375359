import { bytesToHex, sha256Hex } from '../protocol/index.ts';
import type { ChunkStore } from './chunk-store.ts';
import { Download, type DownloadTarget } from './download.ts';
import type { ClientOptions, ResolvedOptions } from './options.ts';
import { parseDownloadUrl } from './session-client.ts';
import { createPortableFileHasher } from './sha256-stream.ts';
import type { WebSocketLike } from './tracker-client.ts';

const MiB = 1024 * 1024;

/** A peerfill client: one peer id, shared settings, any number of downloads. */
export interface Client {
  readonly peerIdHex: string;
  /**
   * Download (or seed, when the store already holds the file) `url`: `<server>/<file_id>`
   * or `<server>/files/<file_id>`. Call `start()` on the result, or await `done`.
   */
  download(url: string | DownloadTarget, store: ChunkStore, overrides?: ClientOptions): Download;
}

export function createClient(options: ClientOptions = {}): Client {
  const resolved = resolveOptions(options);
  return {
    peerIdHex: resolved.peerIdHex,
    download(url, store, overrides = {}) {
      const target = typeof url === 'string' ? parseDownloadUrl(url) : url;
      return new Download(target, store, { ...resolved, ...stripUndefined(overrides) });
    },
  };
}

export function resolveOptions(options: ClientOptions): ResolvedOptions {
  const defined = stripUndefined(options);
  const globalWebSocket = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  return {
    peerIdHex: defined.peerIdHex ?? newPeerId(),
    usePeers: true,
    fetch: (input, init) => fetch(input, init),
    createFileHasher: createPortableFileHasher,
    hashChunk: sha256Hex,
    maxPeers: 20,
    httpConcurrency: 4,
    httpConcurrencyWithPeers: 2,
    httpMaxRunBytes: 16 * MiB,
    httpMaxRunBytesWithPeers: MiB,
    maxInFlightBytes: 64 * MiB,
    maxChunksPerPeer: 4,
    maxBlocksPerPeer: 64,
    uploadSlots: 4,
    chokeIntervalMs: 10_000,
    banAfterBadChunks: 2,
    peerDeadlineMinMs: 20_000,
    peerMinBytesPerSecond: 128 * 1024,
    httpMaxAttempts: 8,
    httpIdleTimeoutMs: 15_000,
    retryForMs: 10 * 60_000,
    progressIntervalMs: 500,
    sessionUpdateIntervalMs: 30_000,
    seedAfterDoneMs: 0,
    seedOnly: false,
    peerGraceMs: 3000,
    eagerAnnounceMs: 10_000,
    iceGatherTimeoutMs: 2000,
    onWarning: () => undefined,
    random: Math.random,
    createWebSocket: globalWebSocket ? (url) => new globalWebSocket(url) : undefined,
    ...defined,
  };
}

/** Azureus-style prefix "-PF0001-" and 12 random bytes, as 40 hex chars. */
function newPeerId(): string {
  const prefix = new TextEncoder().encode('-PF0001-');
  return bytesToHex(prefix) + bytesToHex(crypto.getRandomValues(new Uint8Array(12)));
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
