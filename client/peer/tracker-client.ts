import type SimplePeer from 'simple-peer';
import {
  binaryStringToHex,
  bytesToHex,
  hexToBinaryString,
  parseJson,
  trackerResponseCodec,
  type AnnounceEvent,
  type ConnectionCounts,
  type ConnectionType,
  type AnnounceRequest,
  type Sdp,
} from '../../protocol/index.ts';
import { TypedEmitter } from '../events.ts';
import { readConnectionType } from './connection-type.ts';
import { backoffMs } from '../sleep.ts';

/** The subset of the WebSocket API we use: the browser's, or `ws` in Node 20. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
export type WebSocketFactory = (url: string) => WebSocketLike;

/** Progress that rides on every announce (our pf_* fields and the standard counters). */
export interface AnnounceStats {
  uploadedBytes: number;
  downloadedBytes: number;
  leftBytes: number;
  sessionId?: string;
  /** The session answers' announce_proof: without it the tracker ignores the pf_* fields. */
  sessionProof?: string;
  haveBase64Url?: string;
  bytesConfirmed?: number;
  bytesFromPeers?: number;
  bytesFromHttp?: number;
  /** Live connections this client initiated, by how they were made (each connection has one initiator). */
  connections?: ConnectionCounts;
}

export interface TrackerClientOptions {
  announceUrl: string;
  infoHashHex: string;
  peerIdHex: string;
  createWebSocket: WebSocketFactory;
  createPeer: (isInitiator: boolean) => SimplePeer.Instance;
  stats: () => AnnounceStats;
  /** How many more peers we would take now (offers per announce follow it). */
  wantedPeers: () => number;
  /** Whether to talk to this peer at all (not banned, not already connected). */
  acceptsPeer: (peerIdHex: string) => boolean;
  /** Default 5 (as WebTorrent). */
  maxOffersPerAnnounce?: number;
  /** Re-announce this often while we want peers, bounded below by the tracker's min interval. Default 10 s. */
  eagerAnnounceMs?: number;
  /** Forget an unanswered offer, or a connection that does not come up, after this long (and always within the tracker's interval). Default 20 s. */
  offerTimeoutMs?: number;
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
}

export interface TrackerClientEvents {
  /** A data channel is connected; the swarm takes it from here. */
  connection: { channel: SimplePeer.Instance; isInitiator: boolean; peerIdHex: string; connectionType: ConnectionType | undefined };
  update: { complete: number; incomplete: number; intervalMs: number };
  warning: { message: string };
}

interface PendingOffer {
  peer: SimplePeer.Instance;
  timer: ReturnType<typeof setTimeout>;
}

/**
 * The WebTorrent WebSocket tracker protocol: announce with offers created by
 * simple-peer, answer relayed offers, hand relayed answers to the initiating peer.
 * Reconnects with backoff; every announce carries our progress.
 */
export class TrackerClient extends TypedEmitter<TrackerClientEvents> {
  readonly #options: TrackerClientOptions;
  readonly #offers = new Map<string, PendingOffer>();
  #socket: WebSocketLike | undefined;
  #reconnectAttempt = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #announceTimer: ReturnType<typeof setTimeout> | undefined;
  #intervalMs = 120_000;
  #minIntervalMs = 0;
  #lastAnnounceAtMs = 0;
  #hasStarted = false;
  #isDestroyed = false;
  #event: AnnounceEvent | undefined;

  constructor(options: TrackerClientOptions) {
    super();
    this.#options = options;
  }

  start(): void {
    this.#connect();
  }

  /** Announce now (e.g. `completed`), with offers if we want peers. */
  announce(event?: AnnounceEvent): void {
    if (event) this.#event = event;
    void this.#announce();
  }

  /** Send a final `stopped`/`paused` announce and close. */
  stop(event: 'stopped' | 'paused' = 'stopped'): void {
    if (this.#isDestroyed) return;
    if (this.#socket?.readyState === 1) this.#send(this.#announceBody(event, []));
    this.destroy();
  }

  destroy(): void {
    this.#isDestroyed = true;
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#announceTimer);
    for (const { peer, timer } of this.#offers.values()) {
      clearTimeout(timer);
      peer.destroy();
    }
    this.#offers.clear();
    const socket = this.#socket;
    this.#socket = undefined;
    if (socket) {
      socket.onclose = null;
      socket.onmessage = null;
      socket.onerror = null;
      try {
        socket.close();
      } catch {
        // already closed
      }
    }
  }

  #connect(): void {
    if (this.#isDestroyed) return;
    let socket: WebSocketLike;
    try {
      socket = this.#options.createWebSocket(this.#options.announceUrl);
    } catch (error) {
      this.emit('warning', { message: `tracker connect failed: ${String(error)}` });
      return this.#scheduleReconnect();
    }
    this.#socket = socket;
    socket.onopen = () => {
      this.#reconnectAttempt = 0;
      void this.#announce();
    };
    socket.onmessage = (event) => {
      if (typeof event.data === 'string') this.#onMessage(event.data);
    };
    socket.onerror = () => undefined;
    socket.onclose = () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      clearTimeout(this.#announceTimer);
      this.#scheduleReconnect();
    };
  }

  #scheduleReconnect(): void {
    if (this.#isDestroyed) return;
    const delayMs = backoffMs(this.#reconnectAttempt++, this.#options.reconnectBaseMs ?? 1000, this.#options.reconnectMaxMs ?? 60_000);
    this.#reconnectTimer = setTimeout(() => this.#connect(), delayMs);
  }

  #scheduleAnnounce(): void {
    clearTimeout(this.#announceTimer);
    if (this.#isDestroyed) return;
    const eagerMs = Math.max(this.#options.eagerAnnounceMs ?? 10_000, this.#minIntervalMs);
    const delayMs = this.#options.wantedPeers() > 0 ? Math.min(eagerMs, this.#intervalMs) : this.#intervalMs;
    this.#announceTimer = setTimeout(() => void this.#announce(), delayMs);
  }

  async #announce(): Promise<void> {
    if (this.#isDestroyed || this.#socket?.readyState !== 1) return;
    const now = Date.now();
    if (this.#minIntervalMs > 0 && now - this.#lastAnnounceAtMs < this.#minIntervalMs && this.#event === undefined && this.#hasStarted) {
      return this.#scheduleAnnounce();
    }
    this.#lastAnnounceAtMs = now;
    const event: AnnounceEvent | undefined = this.#hasStarted ? this.#event : 'started';
    this.#event = undefined;
    this.#hasStarted = true;
    clearTimeout(this.#announceTimer);
    // Unanswered offers hold a peer connection each (file descriptors, ICE): keep at most
    // one announce's worth outstanding.
    const maxOffers = this.#options.maxOffersPerAnnounce ?? 5;
    const wanted = Math.max(0, Math.min(maxOffers - this.#offers.size, this.#options.wantedPeers() - this.#offers.size));
    const offers = await this.#createOffers(wanted);
    if (this.#isDestroyed || this.#socket?.readyState !== 1) return;
    this.#send(this.#announceBody(event, offers));
    this.#scheduleAnnounce();
  }

  #announceBody(event: AnnounceEvent | undefined, offers: Array<{ offer_id: string; offer: Sdp }>): AnnounceRequest {
    const stats = this.#options.stats();
    const body: AnnounceRequest = {
      action: 'announce',
      info_hash: hexToBinaryString(this.#options.infoHashHex),
      peer_id: hexToBinaryString(this.#options.peerIdHex),
      uploaded: stats.uploadedBytes,
      downloaded: stats.downloadedBytes,
      left: stats.leftBytes,
      numwant: offers.length,
      offers,
    };
    if (event) body.event = event;
    if (stats.sessionId !== undefined) body.pf_session = stats.sessionId;
    if (stats.sessionProof !== undefined) body.pf_proof = stats.sessionProof;
    if (stats.haveBase64Url !== undefined) body.pf_have = stats.haveBase64Url;
    if (stats.bytesConfirmed !== undefined) body.pf_bytes_confirmed = stats.bytesConfirmed;
    if (stats.bytesFromPeers !== undefined) body.pf_from_peers = stats.bytesFromPeers;
    if (stats.bytesFromHttp !== undefined) body.pf_from_http = stats.bytesFromHttp;
    if (stats.connections !== undefined) body.pf_connections = stats.connections;
    return body;
  }

  async #createOffers(count: number): Promise<Array<{ offer_id: string; offer: Sdp }>> {
    const made = await Promise.all(
      Array.from({ length: count }, () =>
        new Promise<{ offer_id: string; offer: Sdp } | undefined>((resolve) => {
          const peer = this.#options.createPeer(true);
          const offerId = bytesToHex(crypto.getRandomValues(new Uint8Array(16)));
          const giveUp = setTimeout(() => {
            peer.destroy();
            resolve(undefined);
          }, 10_000);
          giveUp.unref?.();
          peer.once('error', () => {
            clearTimeout(giveUp);
            resolve(undefined);
          });
          peer.once('signal', (data: unknown) => {
            clearTimeout(giveUp);
            const sdp = toSdp(data, 'offer');
            // Destroyed while this offer was being made: nothing would ever clear it.
            if (!sdp || this.#isDestroyed) {
              peer.destroy();
              return resolve(undefined);
            }
            const timer = setTimeout(() => {
              this.#offers.delete(offerId);
              peer.destroy();
            }, this.#offerTimeoutMs());
            this.#offers.set(offerId, { peer, timer });
            resolve({ offer_id: offerId, offer: sdp });
          });
        }),
      ),
    );
    return made.filter((offer) => offer !== undefined);
  }

  #onMessage(text: string): void {
    const parsed = parseJson(text);
    const decoded = parsed.ok ? trackerResponseCodec.decode(parsed.value) : parsed;
    if (!decoded.ok) return this.emit('warning', { message: `bad tracker frame: ${decoded.errors.join('; ')}` });
    const message = decoded.value;
    if ('failure reason' in message) return this.emit('warning', { message: `tracker: ${message['failure reason']}` });
    if (message.action !== 'announce') return;
    if (binaryStringToHex(message.info_hash) !== this.#options.infoHashHex) return;
    if ('offer' in message) return this.#onRelayedOffer(binaryStringToHex(message.peer_id), message.offer_id, message.offer);
    if ('answer' in message) return this.#onRelayedAnswer(binaryStringToHex(message.peer_id), message.offer_id, message.answer);
    if ('interval' in message) {
      this.#intervalMs = message.interval * 1000;
      this.#minIntervalMs = (message['min interval'] ?? 0) * 1000;
      this.emit('update', { complete: message.complete, incomplete: message.incomplete, intervalMs: this.#intervalMs });
      this.#scheduleAnnounce();
    }
  }

  #onRelayedOffer(peerIdHex: string, offerId: string, offer: Sdp): void {
    if (offer.type !== 'offer' || peerIdHex === this.#options.peerIdHex || !this.#options.acceptsPeer(peerIdHex)) return;
    const peer = this.#options.createPeer(false);
    const timer = setTimeout(() => {
      peer.destroy();
    }, this.#offerTimeoutMs());
    peer.once('error', () => clearTimeout(timer));
    peer.once('signal', (data: unknown) => {
      const answer = toSdp(data, 'answer');
      if (!answer || this.#socket?.readyState !== 1) {
        peer.destroy();
        return;
      }
      this.#send({
        action: 'announce',
        info_hash: hexToBinaryString(this.#options.infoHashHex),
        peer_id: hexToBinaryString(this.#options.peerIdHex),
        to_peer_id: hexToBinaryString(peerIdHex),
        answer,
        offer_id: offerId,
      });
    });
    peer.once('connect', () => {
      clearTimeout(timer);
      this.#connected(peer, false, peerIdHex);
    });
    peer.signal(offer);
  }

  #onRelayedAnswer(peerIdHex: string, offerId: string, answer: Sdp): void {
    const pending = this.#offers.get(offerId);
    if (!pending || answer.type !== 'answer') return;
    this.#offers.delete(offerId);
    clearTimeout(pending.timer);
    if (!this.#options.acceptsPeer(peerIdHex)) return void pending.peer.destroy();
    const timer = setTimeout(() => {
      pending.peer.destroy();
    }, this.#offerTimeoutMs());
    pending.peer.once('connect', () => {
      clearTimeout(timer);
      this.#connected(pending.peer, true, peerIdHex);
    });
    pending.peer.signal(answer);
  }

  /** Hand a connected channel on, with how it was made (its selected candidate pair). */
  #connected(peer: SimplePeer.Instance, isInitiator: boolean, peerIdHex: string): void {
    void readConnectionType(peer).then((connectionType) => {
      if (peer.destroyed || this.#isDestroyed) return void peer.destroy();
      this.emit('connection', { channel: peer, isInitiator, peerIdHex, connectionType });
    });
  }

  /**
   * An offer that gets no answer, or a connection that does not come up, is dropped within
   * the tracker's interval (the next announce brings new offers), but never before the far
   * side could have gathered and answered.
   */
  #offerTimeoutMs(): number {
    return Math.min(this.#options.offerTimeoutMs ?? 20_000, Math.max(10_000, this.#intervalMs));
  }

  #send(body: AnnounceRequest): void {
    try {
      this.#socket?.send(JSON.stringify(body));
    } catch (error) {
      this.emit('warning', { message: `tracker send failed: ${String(error)}` });
    }
  }
}

function toSdp(data: unknown, type: 'offer' | 'answer'): Sdp | undefined {
  if (typeof data !== 'object' || data === null || !('type' in data) || !('sdp' in data)) return undefined;
  return data.type === type && typeof data.sdp === 'string' ? { type, sdp: data.sdp } : undefined;
}
