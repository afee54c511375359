import type SimplePeer from 'simple-peer';
import { bytesToHex, sha256Hex } from '../protocol/index.ts';
import type { RangeGet } from './http-filler.ts';
import type { ApiRequest } from './session-client.ts';
import type { WebSocketFactory, WebSocketLike } from './peer/tracker-client.ts';
import { createPortableFileHasher } from './sha256-stream.ts';
import type { ChunkHasher, FileHasherFactory } from './verify.ts';

/** Options of `createClient`. Every field is optional; defaults in brackets. */
export interface ClientOptions {
  /** 40-hex peer id [random per client]. */
  peerIdHex?: string;
  /** Sent as `client_id` when a session is created [none]. */
  clientId?: string;
  /** Use peers at all; false = HTTP only [true]. */
  usePeers?: boolean;
  /** WebRTC implementation for simple-peer (`@roamhq/wrtc` in Node) [the browser's]. */
  wrtc?: SimplePeer.Options['wrtc'];
  /** RTCPeerConnection config (ICE servers) [simple-peer's default]. */
  rtcConfig?: RTCConfiguration;
  /** How to open the tracker WebSocket [globalThis.WebSocket]. */
  createWebSocket?: WebSocketFactory;
  /** fetch for the API, manifest and Range requests, unless apiRequest / rangeGet are given [globalThis.fetch]. */
  fetch?: typeof fetch;
  /** How the session API and manifest are requested [over `fetch`; Node passes node:http's]. */
  apiRequest?: ApiRequest;
  /** How the HTTP filler makes Range requests [over `fetch`; Node passes its HTTP/1.1 client, which reads into the chunk buffers]. */
  rangeGet?: RangeGet;
  /** Incremental whole-file SHA-256 [portable TypeScript implementation]. */
  createFileHasher?: FileHasherFactory;
  /** SHA-256 of one chunk, lower-case hex [WebCrypto; Node passes node:crypto, which hashes in place without a copy]. */
  hashChunk?: ChunkHasher;
  /** Connection budget, well under a browser's limit [20]. */
  maxPeers?: number;
  /** Parallel HTTP Range requests with no peer serving us [4]. */
  httpConcurrency?: number;
  /** Parallel HTTP Range requests while peers serve us [2]. */
  httpConcurrencyWithPeers?: number;
  /** Largest coalesced Range request with no peers [16 MiB]. */
  httpMaxRunBytes?: number;
  /**
   * Largest coalesced Range request while peers serve us [1 MiB: one chunk]. A longer run was
   * cut short once a peer got its next chunk, and what the origin had already sent into the
   * connection was lost: 35 of 321 MiB in a bench/swarm round at 2 MiB, 12 of 296 at 1 MiB.
   */
  httpMaxRunBytesWithPeers?: number;
  /** Chunk bytes held in memory in flight, all sources together [64 MiB]. */
  maxInFlightBytes?: number;
  /** Chunks requested from one peer at a time [4]. */
  maxChunksPerPeer?: number;
  /** 16 KiB blocks outstanding per peer [64]. */
  maxBlocksPerPeer?: number;
  /** Upload slots besides the optimistic one [4]. */
  uploadSlots?: number;
  /** How often unchoke slots are recomputed [10 s]. */
  chokeIntervalMs?: number;
  /** Bad chunks before a peer is banned [2]. */
  banAfterBadChunks?: number;
  /** Shortest deadline of a chunk requested from a peer [20 s]. */
  peerDeadlineMinMs?: number;
  /** A peer slower than this on a chunk misses its deadline [128 KiB/s]. */
  peerMinBytesPerSecond?: number;
  /** Attempts per HTTP run before it fails [8]. */
  httpMaxAttempts?: number;
  /** Abort an HTTP request that connects or answers no byte for this long [15 s]. */
  httpIdleTimeoutMs?: number;
  /**
   * Ride out a lost server or network this long (capped exponential backoff with jitter),
   * at start-up as mid-download; 0 = fail at the first loss [10 min: a mobile network's short outage].
   */
  retryForMs?: number;
  /** How often `progress` fires [500 ms]. */
  progressIntervalMs?: number;
  /** How often progress is PATCHed to the session (announces carry it too) [30 s]. */
  sessionUpdateIntervalMs?: number;
  /** Stay and seed this long after completion; Infinity until destroy() [0]. */
  seedAfterDoneMs?: number;
  /** After start, HTTP fills cautiously this long while peers connect [3 s]. */
  peerGraceMs?: number;
  /**
   * Speed floor in bits per second: take all that peers give and fill from HTTP only what
   * keeps the download at or above this rate; 0 = never slower than HTTP alone [the
   * publisher's floor from the session, else 0].
   */
  speedFloorBitsPerSecond?: number;
  /** Seed only: the store must already hold the whole file, else the download fails [false]. */
  seedOnly?: boolean;
  /** Re-announce while short of peers [10 s]. */
  eagerAnnounceMs?: number;
  /**
   * How long ICE may gather candidates before an offer or answer goes out without the rest
   * [2 s]. The tracker protocol sends whole offers (no trickle), so this is a peer's start-up
   * cost. STUN needs one round trip, TURN two, so 2 s is enough at mobile RTTs; simple-peer's
   * own 5 s was each connection's floor here, since libwebrtc in Node seldom reports completion.
   */
  iceGatherTimeoutMs?: number;
  /** Warnings (bad peers, retries): never thrown, only reported [ignored]. */
  onWarning?: (message: string, details?: Record<string, unknown>) => void;
  /** Randomness for offsets and tie-breaks [Math.random]. */
  random?: () => number;
}

type PassedAsGiven = 'wrtc' | 'rtcConfig' | 'createWebSocket' | 'clientId' | 'rangeGet' | 'apiRequest' | 'speedFloorBitsPerSecond';
export type ResolvedOptions = Required<Omit<ClientOptions, PassedAsGiven>> & Pick<ClientOptions, PassedAsGiven>;

const MiB = 1024 * 1024;

/** Every option with its default (the bracketed defaults above), the given ones winning. */
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

/** The fields that are set: an `undefined` option means "the default", not "none". */
export function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
