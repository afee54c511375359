import type SimplePeer from 'simple-peer';
import type { IceServer, Manifest } from '../../protocol/index.ts';
import type { ResolvedOptions } from '../options.ts';
import type { Scheduler } from '../scheduler.ts';
import { TrackerClient, type AnnounceStats } from './tracker-client.ts';
import { relayProblem } from './ice-check.ts';
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
  readonly #iceServers: () => IceServer[] | undefined;
  #relayProblem: string | undefined;

  private constructor(swarm: typeof Swarm, simplePeer: typeof SimplePeer, options: ResolvedOptions, iceServers: () => IceServer[] | undefined) {
    this.#Swarm = swarm;
    this.#SimplePeer = simplePeer;
    this.#options = options;
    this.#iceServers = iceServers;
  }

  /** `iceServers`: the session's current STUN/TURN servers (the server renews TURN credentials with every answer). */
  static async load(options: ResolvedOptions, iceServers: () => IceServer[] | undefined = () => undefined): Promise<PeerStack> {
    const [{ Swarm }, simplePeer] = await Promise.all([import('./swarm.ts'), import('simple-peer')]);
    return new PeerStack(Swarm, simplePeer.default, options, iceServers);
  }

  /** Why the last gathered offer or answer had no relay although TURN is configured; undefined if it had one. */
  get relayProblem(): string | undefined {
    return this.#relayProblem;
  }

  /** The WebRTC configuration in force: an explicit `rtcConfig` wins over the server's ICE servers. */
  rtcConfig(): RTCConfiguration | undefined {
    if (this.#options.rtcConfig) return this.#options.rtcConfig;
    const iceServers = this.#iceServers();
    return iceServers ? { iceServers } : undefined;
  }

  /** The STUN/TURN URLs in force, without credentials (undefined: the WebRTC stack's defaults). */
  iceUrls(): string[] | undefined {
    const servers = this.rtcConfig()?.iceServers;
    return servers?.flatMap((server) => (typeof server.urls === 'string' ? [server.urls] : server.urls));
  }

  /** A simple-peer with this client's WebRTC settings. */
  createPeer(isInitiator: boolean): SimplePeer.Instance {
    const config = this.rtcConfig();
    const peer = new this.#SimplePeer({ initiator: isInitiator, trickle: false, wrtc: this.#options.wrtc, config, iceCompleteTimeout: this.#options.iceGatherTimeoutMs });
    peer.once('signal', (data: unknown) => {
      const sdp = typeof data === 'object' && data !== null && 'sdp' in data && typeof data.sdp === 'string' ? data.sdp : undefined;
      if (sdp === undefined) return;
      const problem = relayProblem(config?.iceServers, sdp, Date.now());
      if (problem !== undefined && problem !== this.#relayProblem) this.#options.onWarning(problem, { code: 'PF_WARN_NO_RELAY' });
      this.#relayProblem = problem;
    });
    return peer;
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
    tracker.on('connection', ({ channel, isInitiator, peerIdHex, connectionType }) => swarm.addChannel(channel, isInitiator, peerIdHex, connectionType));
    tracker.on('warning', ({ message }) => hooks.warn(message));
    return { swarm, tracker };
  }
}
