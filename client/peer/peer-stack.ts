import type SimplePeer from 'simple-peer';
import type { Manifest } from '../../protocol/index.ts';
import type { ResolvedOptions } from '../options.ts';
import type { Scheduler } from '../scheduler.ts';
import { TrackerClient, type AnnounceStats } from '../tracker-client.ts';
import type { Swarm, SwarmOptions } from './swarm.ts';

/** What a download lends its swarm: the one door into its store, reads for uploads, and its memory window. */
export type SwarmHooks = Pick<SwarmOptions, 'acceptChunk' | 'read' | 'reserve' | 'unreserve' | 'warn'>;

export interface JoinOptions {
  manifest: Manifest;
  scheduler: Scheduler;
  /** The session's tracker URL (`ws:`/`wss:`). */
  trackerUrl: string;
  hooks: SwarmHooks;
  /** The counters each announce carries. */
  stats: () => AnnounceStats;
}

/**
 * WebRTC and the peer wire for one download. Loaded only by downloads that use peers, so an
 * HTTP-only `peerfill get` never loads simple-peer, the swarm or bittorrent-protocol.
 */
export class PeerStack {
  readonly #Swarm: typeof Swarm;
  readonly #SimplePeer: typeof SimplePeer;
  readonly #options: ResolvedOptions;

  private constructor(swarm: typeof Swarm, simplePeer: typeof SimplePeer, options: ResolvedOptions) {
    this.#Swarm = swarm;
    this.#SimplePeer = simplePeer;
    this.#options = options;
  }

  static async load(options: ResolvedOptions): Promise<PeerStack> {
    const [{ Swarm }, simplePeer] = await Promise.all([import('./swarm.ts'), import('simple-peer')]);
    return new PeerStack(Swarm, simplePeer.default, options);
  }

  /** A simple-peer with this client's WebRTC settings. */
  createPeer(isInitiator: boolean): SimplePeer.Instance {
    return new this.#SimplePeer({ initiator: isInitiator, trickle: false, wrtc: this.#options.wrtc, config: this.#options.rtcConfig });
  }

  /**
   * The swarm for `manifest`, and the tracker client that will bring it peers (none without a
   * WebSocket implementation). The caller wires the swarm's events, then starts the tracker client.
   */
  join({ manifest, scheduler, trackerUrl, hooks, stats }: JoinOptions): { swarm: Swarm; tracker: TrackerClient | undefined } {
    const options = this.#options;
    const swarm = new this.#Swarm({
      ...hooks,
      manifest,
      peerIdHex: options.peerIdHex,
      scheduler,
      maxPeers: options.maxPeers,
      maxChunksPerPeer: options.maxChunksPerPeer,
      maxBlocksPerPeer: options.maxBlocksPerPeer,
      uploadSlots: options.uploadSlots,
      chokeIntervalMs: options.chokeIntervalMs,
      banAfterBadChunks: options.banAfterBadChunks,
    });
    const createWebSocket = options.createWebSocket;
    if (!createWebSocket) {
      hooks.warn('no WebSocket implementation: peers disabled');
      return { swarm, tracker: undefined };
    }
    const tracker = new TrackerClient({
      announceUrl: trackerUrl,
      infoHashHex: manifest.info_hash,
      peerIdHex: options.peerIdHex,
      createWebSocket,
      createPeer: (isInitiator) => this.createPeer(isInitiator),
      stats,
      wantedPeers: () => (swarm.hasRoom() ? options.maxPeers - swarm.connectionCount : 0),
      acceptsPeer: (peerIdHex) => swarm.hasRoom() && !swarm.isBanned(peerIdHex) && !swarm.isConnectedTo(peerIdHex),
      eagerAnnounceMs: options.eagerAnnounceMs,
    });
    tracker.on('connection', ({ channel, isInitiator, peerIdHex }) => swarm.addChannel(channel, isInitiator, peerIdHex));
    tracker.on('warning', ({ message }) => hooks.warn(message));
    return { swarm, tracker };
  }
}
