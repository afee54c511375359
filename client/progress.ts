import { isTurnUrl, type ConnectionCounts } from '../protocol/index.ts';
import type { PolicyInfo } from './hybrid-policy.ts';
import { RateMeter } from './rate-meter.ts';

/** What the `progress` event carries. */
export interface ProgressInfo {
  totalBytes: number;
  /** Bytes that passed SHA-256 and are stored. */
  verifiedBytes: number;
  /** Of those, bytes that came from peers / from HTTP (this run). */
  fromPeersBytes: number;
  fromHttpBytes: number;
  /** Bytes verified in a previous run (resume). */
  resumedBytes: number;
  /** Raw bytes the origin sent us this run (a failed or duplicate chunk counts too). */
  httpReceivedBytes: number;
  uploadedBytes: number;
  downloadBytesPerSecond: number;
  uploadBytesPerSecond: number;
  /** Undefined while the rate is zero. */
  etaMs: number | undefined;
  peerCount: number;
  /** Those peers by how each connection was made: directly (host), through a NAT's mapping (srflx), or through TURN (relay). */
  connections: ConnectionCounts;
  /** Why no TURN relay is available although the server configured one (undefined: none configured, or it works). */
  relayProblem?: string;
  /** The STUN/TURN URLs peer connections use (no credentials); undefined: the WebRTC stack's defaults. */
  iceUrls?: string[];
  chunksVerified: number;
  chunkCount: number;
  /** The hybrid policy in force: each source's rate and what it decided (once the download runs). */
  policy?: PolicyInfo;
}

/** Counters behind ProgressInfo. */
export class ProgressCounter {
  verifiedBytes = 0;
  fromPeersBytes = 0;
  fromHttpBytes = 0;
  resumedBytes = 0;
  httpReceivedBytes = 0;
  uploadedBytes = 0;
  readonly #downloadRate = new RateMeter(5000);
  readonly #uploadRate = new RateMeter(5000);

  addVerified(bytes: number, fromPeer: boolean): void {
    this.verifiedBytes += bytes;
    if (fromPeer) this.fromPeersBytes += bytes;
    else this.fromHttpBytes += bytes;
    this.#downloadRate.add(bytes);
  }

  addUploaded(bytes: number): void {
    this.uploadedBytes += bytes;
    this.#uploadRate.add(bytes);
  }

  snapshot(
    totalBytes: number,
    peers: { count: number; connections: ConnectionCounts; relayProblem: string | undefined; iceUrls: string[] | undefined },
    chunksVerified: number,
    chunkCount: number,
    policy?: PolicyInfo,
  ): ProgressInfo {
    const rate = this.#downloadRate.bytesPerSecond();
    const left = totalBytes - this.verifiedBytes;
    return {
      totalBytes,
      verifiedBytes: this.verifiedBytes,
      fromPeersBytes: this.fromPeersBytes,
      fromHttpBytes: this.fromHttpBytes,
      resumedBytes: this.resumedBytes,
      httpReceivedBytes: this.httpReceivedBytes,
      uploadedBytes: this.uploadedBytes,
      downloadBytesPerSecond: rate,
      uploadBytesPerSecond: this.#uploadRate.bytesPerSecond(),
      etaMs: left <= 0 ? 0 : rate > 0 ? Math.round((left / rate) * 1000) : undefined,
      peerCount: peers.count,
      connections: peers.connections,
      ...(peers.relayProblem === undefined ? {} : { relayProblem: peers.relayProblem }),
      ...(peers.iceUrls === undefined ? {} : { iceUrls: peers.iceUrls }),
      chunksVerified,
      chunkCount,
      ...(policy ? { policy } : {}),
    };
  }
}

/** The peers for people: "3 peers, 1 through relay, 1 through a NAT". */
export function describePeers(progress: Pick<ProgressInfo, 'peerCount' | 'connections'>): string {
  const { relay, srflx } = progress.connections;
  const ways = [relay > 0 ? `${relay} through relay` : '', srflx > 0 ? `${srflx} through a NAT` : ''].filter(Boolean);
  return [`${progress.peerCount} ${progress.peerCount === 1 ? 'peer' : 'peers'}`, ...ways].join(', ');
}

/** The ICE servers in use, for people: "STUN stun:a:3478 · TURN turn:a:3478", or the stack's defaults. */
export function describeIceServers(iceUrls: readonly string[] | undefined): string {
  if (iceUrls === undefined || iceUrls.length === 0) return "the browser's default STUN servers (no TURN)";
  const stun = iceUrls.filter((url) => /^stuns?:/i.test(url));
  const turn = iceUrls.filter(isTurnUrl);
  return [stun.length > 0 ? `STUN ${stun.join(', ')}` : '', turn.length > 0 ? `TURN ${turn.join(', ')}` : 'no TURN'].filter(Boolean).join(' · ');
}
