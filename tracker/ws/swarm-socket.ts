import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ConnectionCounts } from '../../protocol/index.ts';
import type { TrackerLimits } from '../config.ts';
import type { HeldFrames, SendBatch } from './send-batch.ts';
import { TokenBucket } from './token-bucket.ts';
import { encodeTextFrames } from './ws-frames.ts';
import type { AddressGroup } from '../client-address.ts';

/** Frames queued on a socket beyond this are dropped: a reader this slow gets nothing more. */
const MAX_BUFFERED_BYTES = 1024 * 1024;

/**
 * One WebSocket connection: the peer_ids it owns, the swarms it is in, its message budget
 * (token bucket) and its last activity. Everything here is bounded by TrackerLimits.
 */
export class SwarmSocket implements HeldFrames {
  private static nextId = 1;
  readonly id = SwarmSocket.nextId++;
  readonly peerIds = new Set<string>();
  /** `${infoHash}${peerId}` (hex) of every membership. */
  readonly memberships = new Set<string>();
  lastMessageMs: number;
  /** Messages accepted but not yet handled (they are handled one at a time, in order). */
  pending = 0;
  queue: Promise<void> = Promise.resolve();
  closed = false;
  private readonly messages: TokenBucket;
  private rateLimitReportedAtMs = 0;
  droppedInARow = 0;
  /** Frames sent this event-loop turn, written together by `flush`. */
  private readonly outgoing: string[] = [];
  private outgoingChars = 0;

  constructor(
    readonly ws: WebSocket,
    /** The upgraded TCP socket under `ws`: frames are written to it directly, batched. */
    private readonly stream: Duplex,
    private readonly batch: SendBatch,
    limits: TrackerLimits,
    nowMs: number,
    /** The client's address group: per-address limits (connections, relayed offers) are kept by it. */
    readonly addressGroup: AddressGroup,
  ) {
    this.lastMessageMs = nowMs;
    this.messages = new TokenBucket(limits.maxMessagesPerSecond, limits.messageBurst, nowMs);
  }

  /** Spend one message from the budget; false when the socket is over its rate. */
  takeToken(nowMs: number): boolean {
    return this.messages.take(nowMs) === 1;
  }

  /** At most one rate-limit error frame per second, so limiting does not itself cost much. */
  shouldReportRateLimit(nowMs: number): boolean {
    if (nowMs - this.rateLimitReportedAtMs < 1000) return false;
    this.rateLimitReportedAtMs = nowMs;
    return true;
  }

  /** Queue one text frame; it goes out at the end of this event-loop turn. */
  send(text: string): boolean {
    // stream.writableLength is ws's bufferedAmount without compression, read directly.
    if (this.closed || this.ws.readyState !== this.ws.OPEN || this.stream.writableLength + this.outgoingChars > MAX_BUFFERED_BYTES) return false;
    if (this.outgoing.length === 0) this.batch.hold(this);
    this.outgoing.push(text);
    this.outgoingChars += text.length;
    return true;
  }

  /**
   * Write the frames queued this turn as one write. `ws` frames nothing of ours (no
   * compression, no fragments), so writing beside it keeps the stream valid; frames still
   * queued once the socket is closing are dropped, as `ws` drops sends after close.
   */
  flush(): void {
    const texts = this.outgoing;
    if (texts.length === 0) return;
    if (!this.closed && this.ws.readyState === this.ws.OPEN && this.stream.writable) this.stream.write(encodeTextFrames(texts));
    // Reused: one array per socket, not one per turn.
    texts.length = 0;
    this.outgoingChars = 0;
  }

  close(code: number, reason: string): void {
    // Whatever was sent before closing goes before the close frame.
    this.flush();
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }
}

export interface LocalPeer {
  socket: SwarmSocket;
  complete: boolean;
  lastSeenMs: number;
  /** The connections it last said it initiated, by type (`pf_connections`). */
  connections?: ConnectionCounts;
}

export interface SwarmWatcher {
  swarmOpened(infoHash: string): void;
  swarmClosed(infoHash: string): void;
}

/**
 * What this process knows without the store: which socket owns each peer_id and which
 * local peers are in each swarm. Signals to local peers never need the store, so they keep
 * flowing while Redis is away.
 */
export class LocalSwarms {
  readonly owners = new Map<string, SwarmSocket>();
  readonly swarms = new Map<string, Map<string, LocalPeer>>();
  peerCount = 0;
  private watcher: SwarmWatcher | undefined;

  /** Be told when a swarm gets its first local peer and when its last one leaves (the relay's channels). */
  watch(watcher: SwarmWatcher): void {
    this.watcher = watcher;
  }

  get(infoHash: string, peerId: string): LocalPeer | undefined {
    return this.swarms.get(infoHash)?.get(peerId);
  }

  add(infoHash: string, peerId: string, socket: SwarmSocket, complete: boolean, nowMs: number): LocalPeer {
    let swarm = this.swarms.get(infoHash);
    if (!swarm) {
      this.swarms.set(infoHash, (swarm = new Map<string, LocalPeer>()));
      this.watcher?.swarmOpened(infoHash);
    }
    let peer = swarm.get(peerId);
    if (peer) {
      peer.complete ||= complete;
      peer.lastSeenMs = nowMs;
      return peer;
    }
    peer = { socket, complete, lastSeenMs: nowMs };
    swarm.set(peerId, peer);
    socket.memberships.add(infoHash + peerId);
    this.peerCount++;
    return peer;
  }

  remove(infoHash: string, peerId: string): boolean {
    const swarm = this.swarms.get(infoHash);
    const peer = swarm?.get(peerId);
    if (!swarm || !peer) return false;
    swarm.delete(peerId);
    peer.socket.memberships.delete(infoHash + peerId);
    this.peerCount--;
    if (swarm.size === 0) {
      this.swarms.delete(infoHash);
      this.watcher?.swarmClosed(infoHash);
    }
    return true;
  }

  counts(infoHash: string): { complete: number; incomplete: number } {
    let complete = 0;
    let incomplete = 0;
    for (const peer of this.swarms.get(infoHash)?.values() ?? []) {
      if (peer.complete) complete++;
      else incomplete++;
    }
    return { complete, incomplete };
  }

  /** Every swarm's peer connections by type, summed over its local peers' last reports (each connection is reported by its initiator only). */
  connectionsBySwarm(): Map<string, ConnectionCounts> {
    const bySwarm = new Map<string, ConnectionCounts>();
    for (const [infoHash, swarm] of this.swarms) {
      let sum: ConnectionCounts | undefined;
      for (const { connections } of swarm.values()) {
        if (!connections) continue;
        sum ??= { host: 0, srflx: 0, relay: 0 };
        sum.host += connections.host;
        sum.srflx += connections.srflx;
        sum.relay += connections.relay;
      }
      if (sum) bySwarm.set(infoHash, sum);
    }
    return bySwarm;
  }

  /** Random local peers: the fallback when the store cannot answer. */
  random(infoHash: string, count: number, excludePeerId: string): string[] {
    const ids = [...(this.swarms.get(infoHash)?.keys() ?? [])].filter((id) => id !== excludePeerId);
    for (let i = ids.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    return ids.slice(0, count);
  }
}
