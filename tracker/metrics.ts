import { Counter, Gauge, type Registry } from 'prom-client';
import { CONNECTION_TYPES, type ConnectionCounts } from '../protocol/index.ts';

export type RejectReason =
  | 'invalid_json'
  | 'invalid_message'
  | 'binary_frame'
  | 'unknown_info_hash'
  | 'spoofed_peer_id'
  | 'rate_limited'
  | 'too_many_swarms'
  | 'too_many_peer_ids'
  | 'unknown_to_peer'
  | 'store_unavailable'
  | 'too_many_connections'
  | 'too_many_connections_per_address'
  | 'offer_budget'
  | 'session_fields_ignored'
  | 'session_rate_limited'
  | 'private_swarm'
  | 'idle_timeout';

export interface TrackerMetrics {
  registry: Registry;
  announces: Counter<'event'>;
  scrapes: Counter;
  relayedSignals: Counter<'kind' | 'via'>;
  rejects: Counter<'reason'>;
  peersExpired: Counter;
  offloadBytes: Counter<'file_id' | 'source'>;
  sessionsCreated: Counter;
}

export interface MetricSources {
  connectedSockets(): number;
  localPeers(): number;
  localSwarms(): number;
  sessionCount(): Promise<number>;
  storeAvailable(): boolean;
  /** Peer connections by type per swarm (info_hash), as this process's peers reported them. */
  connectionsBySwarm(): Map<string, ConnectionCounts>;
  /** The file id of a published info_hash, when known. */
  fileIdOf(infoHash: string): string | undefined;
}

/**
 * Tracker metrics. Counters are totals: use rate() for announces and relays per second.
 * Gauges read live values at scrape time, so nothing is updated on the hot path twice.
 */
export function createTrackerMetrics(registry: Registry, sources: MetricSources): TrackerMetrics {
  const registers = [registry];
  new Gauge({ name: 'peerfill_tracker_connected_sockets', help: 'WebSocket connections open on this process', registers, collect() { this.set(sources.connectedSockets()); } });
  new Gauge({ name: 'peerfill_tracker_connected_peers', help: 'Peers (peer_id x swarm) held by this process', registers, collect() { this.set(sources.localPeers()); } });
  new Gauge({ name: 'peerfill_tracker_swarms', help: 'Swarms with at least one peer on this process', registers, collect() { this.set(sources.localSwarms()); } });
  new Gauge({ name: 'peerfill_tracker_store_available', help: '1 when the state store answers', registers, collect() { this.set(sources.storeAvailable() ? 1 : 0); } });
  new Gauge({
    name: 'peerfill_tracker_peer_connections',
    help: 'Live peer connections by how they were made (host, srflx: through a NAT, relay: through TURN), per file, as peers report them',
    labelNames: ['file_id', 'info_hash', 'type'],
    registers,
    collect() {
      this.reset();
      for (const [infoHash, counts] of sources.connectionsBySwarm()) {
        const fileId = sources.fileIdOf(infoHash) ?? '';
        for (const type of CONNECTION_TYPES) this.set({ file_id: fileId, info_hash: infoHash, type }, counts[type]);
      }
    },
  });
  new Gauge({
    name: 'peerfill_tracker_sessions',
    help: 'Download sessions in the store (active, paused, completed or recently expired)',
    registers,
    async collect() {
      try {
        this.set(await sources.sessionCount());
      } catch {
        // Store down: leave the last value; store_available says why.
      }
    },
  });
  return {
    registry,
    announces: new Counter({ name: 'peerfill_tracker_announces_total', help: 'Announces accepted, by event', labelNames: ['event'], registers }),
    scrapes: new Counter({ name: 'peerfill_tracker_scrapes_total', help: 'Scrapes answered', registers }),
    relayedSignals: new Counter({
      name: 'peerfill_tracker_relayed_signals_total',
      help: 'Offers and answers relayed, by kind and path (local socket or pub/sub)',
      labelNames: ['kind', 'via'],
      registers,
    }),
    rejects: new Counter({ name: 'peerfill_tracker_rejects_total', help: 'Frames or connections refused, by reason', labelNames: ['reason'], registers }),
    peersExpired: new Counter({ name: 'peerfill_tracker_peers_expired_total', help: 'Peers dropped for missing their announce interval', registers }),
    offloadBytes: new Counter({
      name: 'peerfill_tracker_reported_bytes_total',
      help: 'Bytes clients report per file, by source (peers vs http): the offload ratio',
      labelNames: ['file_id', 'source'],
      registers,
    }),
    sessionsCreated: new Counter({ name: 'peerfill_tracker_sessions_created_total', help: 'Download sessions created', registers }),
  };
}
