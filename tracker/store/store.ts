import type { SessionRecord } from '../sessions/session-record.ts';
import type { Maybe } from './steps.ts';

/** One peer's membership of one swarm. peer_id and info_hash are lower-case hex. */
export interface PeerRecord {
  peerId: string;
  /** The tracker process whose socket owns this peer_id: where signals for it go. */
  owner: string;
  complete: boolean;
  lastSeenMs: number;
}

export interface SwarmCounts {
  complete: number;
  incomplete: number;
}

export type UpsertPeerResult = { ok: true; counts: SwarmCounts; isNew: boolean } | { ok: false; reason: 'owned_elsewhere'; owner: string };

export type RemovePeerResult = { ok: true; counts: SwarmCounts } | { ok: false; reason: 'owned_elsewhere'; owner: string };

export type SessionUpdate = (current: SessionRecord) => SessionRecord | undefined;

/** The swarm calls of a Store, with the same contracts, answered synchronously. */
export interface SyncSwarmOps {
  upsertPeer(infoHash: string, peer: { peerId: string; owner: string; complete: boolean }, nowMs: number): UpsertPeerResult;
  removePeer(infoHash: string, peerId: string, owner: string): RemovePeerResult;
  getPeer(infoHash: string, peerId: string): PeerRecord | undefined;
  randomPeers(infoHash: string, count: number, excludePeerId: string): PeerRecord[];
  counts(infoHash: string): SwarmCounts;
}

/** Swarm calls that answer now or later: a Store is one, and so are its SyncSwarmOps. */
export interface SwarmOps {
  upsertPeer(infoHash: string, peer: { peerId: string; owner: string; complete: boolean }, nowMs: number): Maybe<UpsertPeerResult>;
  removePeer(infoHash: string, peerId: string, owner: string): Maybe<RemovePeerResult>;
  getPeer(infoHash: string, peerId: string): Maybe<PeerRecord | undefined>;
  randomPeers(infoHash: string, count: number, excludePeerId: string): Maybe<PeerRecord[]>;
  counts(infoHash: string): Maybe<SwarmCounts>;
}

/**
 * All shared tracker state: swarm membership, download sessions and the relay bus
 * between tracker processes. Implementations throw PfError PF_ERR_STORE_UNAVAILABLE
 * when the backend cannot answer; callers turn that into a 503 or a local fallback.
 */
export interface Store {
  readonly kind: 'memory' | 'redis';
  /**
   * The swarm calls without promises, for a store in this process: the announce path uses
   * them when present, so an announce costs no promise or microtask. They throw where the
   * async calls would reject.
   */
  readonly sync?: SyncSwarmOps;

  /**
   * Add or refresh a peer. A peer_id that a live record gives to another owner (process)
   * is refused: no process can take over another's peer.
   */
  upsertPeer(infoHash: string, peer: { peerId: string; owner: string; complete: boolean }, nowMs: number): Promise<UpsertPeerResult>;
  /** Remove a peer, unless a live record gives it to another owner (no process can evict another's peer). */
  removePeer(infoHash: string, peerId: string, owner: string): Promise<RemovePeerResult>;
  getPeer(infoHash: string, peerId: string): Promise<PeerRecord | undefined>;
  /** Up to `count` distinct random peers of the swarm, never `excludePeerId`. */
  randomPeers(infoHash: string, count: number, excludePeerId: string): Promise<PeerRecord[]>;
  counts(infoHash: string): Promise<SwarmCounts>;
  /** Drop peers last seen before `cutoffMs` and swarms left empty; returns peers dropped. */
  prunePeers(cutoffMs: number): Promise<number>;
  swarmCount(): Promise<number>;

  createSession(record: SessionRecord, ttlSeconds: number): Promise<void>;
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /**
   * Atomic read-modify-write: `update` sees the current record and returns the new one
   * (or undefined to leave it). Returns the stored result, or undefined if there is no session.
   */
  updateSession(sessionId: string, update: SessionUpdate, ttlSeconds: number): Promise<SessionRecord | undefined>;
  deleteSession(sessionId: string): Promise<void>;
  sessionCount(): Promise<number>;

  /**
   * Deliver `message` to the tracker process `owner`, for one of its peers in swarm `infoHash`
   * (cross-process signal relay). At most once: nobody subscribed, nobody gets it.
   */
  publish(infoHash: string, owner: string, message: string): Promise<void>;
  /**
   * Receive what is published to `owner` in swarm `infoHash`: a process subscribes while it
   * holds peers of the swarm. Resolves once subscribed (or queued, while the backend is away).
   * The returned call ends this subscription only: after a later subscribe of the same swarm
   * and owner replaced it, it does nothing.
   */
  subscribe(infoHash: string, owner: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;

  /** True when the backend answered its last command (for health and metrics). */
  isAvailable(): boolean;
  close(): Promise<void>;
}
