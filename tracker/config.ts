import { PfError, type SigningKey } from '../protocol/index.ts';
import { TRUST_NO_PROXY, type ProxyTrust } from './client-address.ts';
import { DEFAULT_TURN_TTL_SECONDS, iceSettingsErrors, type IceSettings } from './ice-servers.ts';

/** Abuse limits of the WebSocket tracker. Every one has a default in DEFAULT_TRACKER_LIMITS. */
export interface TrackerLimits {
  /** Largest WebSocket frame accepted; bigger frames close the socket (1009). */
  maxPayloadBytes: number;
  /** Per-socket token bucket: sustained messages per second... */
  maxMessagesPerSecond: number;
  /** ...and the burst allowed on top of it. */
  messageBurst: number;
  /** Offers relayed per announce; extra offers are ignored (bittorrent-tracker caps at 82). */
  maxOffersPerAnnounce: number;
  /** Peers one announce may reach. */
  maxNumwant: number;
  /** Swarms one socket may be in at once. */
  maxSwarmsPerSocket: number;
  /** peer_ids one socket may own (stock clients in one process share a socket). */
  maxPeerIdsPerSocket: number;
  /** A socket that sends nothing for this long is closed (at least two announce intervals). */
  idleTimeoutMs: number;
  /** Hashes per scrape. */
  maxScrapeHashes: number;
  /** Sockets this process accepts at once. */
  maxConnections: number;
  /** Sockets one client address may hold at once (a NAT may hide a few hundred users). */
  maxConnectionsPerAddress: number;
  /** Offers relayed for one client address, per second, over all its sockets... */
  maxRelayedOffersPerAddressPerSecond: number;
  /** ...and the burst on top; offers over the budget are dropped, not relayed. */
  relayedOfferBurstPerAddress: number;
  /** POST /downloads per client address per second (then 429 with Retry-After)... */
  sessionCreatesPerAddressPerSecond: number;
  /** ...and the burst on top. */
  sessionCreateBurstPerAddress: number;
  /** POST /downloads per publisher key (API key or grant) per second... */
  sessionCreatesPerKeyPerSecond: number;
  /** ...and the burst on top. */
  sessionCreateBurstPerKey: number;
}

export const DEFAULT_TRACKER_LIMITS: TrackerLimits = {
  maxPayloadBytes: 64 * 1024,
  maxMessagesPerSecond: 20,
  messageBurst: 60,
  maxOffersPerAnnounce: 10,
  maxNumwant: 50,
  maxSwarmsPerSocket: 32,
  maxPeerIdsPerSocket: 16,
  idleTimeoutMs: 5 * 60_000,
  maxScrapeHashes: 50,
  maxConnections: 200_000,
  maxConnectionsPerAddress: 256,
  maxRelayedOffersPerAddressPerSecond: 200,
  relayedOfferBurstPerAddress: 1000,
  sessionCreatesPerAddressPerSecond: 5,
  sessionCreateBurstPerAddress: 100,
  sessionCreatesPerKeyPerSecond: 200,
  sessionCreateBurstPerKey: 2000,
};

export interface TrackerConfig extends Partial<TrackerLimits> {
  /** The ws(s):// URL of /announce that clients are given, e.g. ws://127.0.0.1:8080/announce. */
  publicTrackerUrl: string;
  /** Base URL of the origin, for manifest_url. */
  originUrl: string;
  /** Accept announces for any info_hash, not only published files. */
  open: boolean;
  /** Announce interval sent to clients; default 120. */
  announceIntervalSeconds?: number;
  /** The publisher's speed floor, bits per second, handed out with every session; default none. */
  speedFloorBitsPerSecond?: number | undefined;
  /** A session not touched for this long expires; default 7 days. */
  sessionIdleTtlSeconds?: number;
  /** How long an expired session stays readable as `expired` before it is deleted; default 1 day. */
  sessionExpiredRetentionSeconds?: number;
  /** The publisher's STUN/TURN servers, handed out with every session; default none (clients keep their own). */
  ice?: Partial<IceSettings>;
  /** Publisher keys (PEERFILL_PUBLISHER_KEYS): API keys and grant keys for private files; none = private files cannot be sessioned. */
  publisherKeys?: SigningKey[];
  /** PEERFILL_METRICS_TOKEN: GET /metrics needs `Authorization: Bearer <token>`; unset = loopback clients only. */
  metricsToken?: string;
  /**
   * The proxies in front of the tracker (`--trust-proxy`, parsed by parseTrustProxy): with one,
   * per-address limits, per-address caps and the loopback check of /metrics take the client's
   * address from X-Forwarded-For; default TRUST_NO_PROXY (the header is ignored).
   */
  trustProxy?: ProxyTrust;
}

export const DEFAULT_ANNOUNCE_INTERVAL_SECONDS = 120;
export const DEFAULT_SESSION_IDLE_TTL_SECONDS = 7 * 24 * 3600;
export const DEFAULT_SESSION_EXPIRED_RETENTION_SECONDS = 24 * 3600;

export interface ResolvedTrackerConfig extends TrackerLimits {
  publicTrackerUrl: string;
  originUrl: string;
  open: boolean;
  announceIntervalSeconds: number;
  speedFloorBitsPerSecond: number | undefined;
  /** A peer that has not announced for this long leaves its swarm. */
  peerTtlMs: number;
  sessionIdleTtlSeconds: number;
  sessionExpiredRetentionSeconds: number;
  ice: IceSettings;
  publisherKeys: SigningKey[];
  metricsToken: string | undefined;
  trustProxy: ProxyTrust;
}

function positiveInteger(errors: string[], name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) errors.push(`${name} must be a positive integer (got ${value})`);
}

/** Fill defaults and check every field; throws PF_ERR_CONFIG listing every problem. */
export function resolveTrackerConfig(config: TrackerConfig): ResolvedTrackerConfig {
  const errors: string[] = [];
  const limits: TrackerLimits = { ...DEFAULT_TRACKER_LIMITS };
  for (const key of Object.keys(DEFAULT_TRACKER_LIMITS) as (keyof TrackerLimits)[]) {
    const value = config[key];
    if (value !== undefined) limits[key] = value;
    positiveInteger(errors, key, limits[key]);
  }
  const announceIntervalSeconds = config.announceIntervalSeconds ?? DEFAULT_ANNOUNCE_INTERVAL_SECONDS;
  const sessionIdleTtlSeconds = config.sessionIdleTtlSeconds ?? DEFAULT_SESSION_IDLE_TTL_SECONDS;
  const sessionExpiredRetentionSeconds = config.sessionExpiredRetentionSeconds ?? DEFAULT_SESSION_EXPIRED_RETENTION_SECONDS;
  positiveInteger(errors, 'announceIntervalSeconds', announceIntervalSeconds);
  positiveInteger(errors, 'sessionIdleTtlSeconds', sessionIdleTtlSeconds);
  positiveInteger(errors, 'sessionExpiredRetentionSeconds', sessionExpiredRetentionSeconds);
  const floor = config.speedFloorBitsPerSecond;
  if (floor !== undefined && (!Number.isInteger(floor) || floor < 1 || floor > 1e12)) errors.push(`speedFloorBitsPerSecond must be an integer from 1 to 1e12 (got ${floor})`);
  const ice = resolveIce(errors, config.ice ?? {});
  let trackerUrl: URL | undefined;
  try {
    trackerUrl = new URL(config.publicTrackerUrl);
  } catch {
    errors.push(`publicTrackerUrl must be a URL (got "${config.publicTrackerUrl}")`);
  }
  if (trackerUrl && trackerUrl.protocol !== 'ws:' && trackerUrl.protocol !== 'wss:') errors.push('publicTrackerUrl must be ws:// or wss://');
  try {
    new URL(config.originUrl);
  } catch {
    errors.push(`originUrl must be a URL (got "${config.originUrl}")`);
  }
  if (errors.length > 0) throw new PfError('PF_ERR_CONFIG', `invalid tracker configuration: ${errors.join('; ')}`);
  const intervalMs = announceIntervalSeconds * 1000;
  return {
    ...limits,
    // Stock clients re-announce every interval; two missed announces is a departure.
    idleTimeoutMs: Math.max(limits.idleTimeoutMs, 2 * intervalMs),
    publicTrackerUrl: config.publicTrackerUrl,
    originUrl: config.originUrl.replace(/\/+$/, ''),
    open: config.open,
    announceIntervalSeconds,
    speedFloorBitsPerSecond: floor,
    peerTtlMs: 2 * intervalMs + Math.min(intervalMs, 30_000),
    sessionIdleTtlSeconds,
    sessionExpiredRetentionSeconds,
    ice,
    publisherKeys: config.publisherKeys ?? [],
    metricsToken: config.metricsToken,
    trustProxy: config.trustProxy ?? TRUST_NO_PROXY,
  };
}

function resolveIce(errors: string[], ice: Partial<IceSettings>): IceSettings {
  const settings: IceSettings = {
    stunUrls: ice.stunUrls ?? [],
    turnUrls: ice.turnUrls ?? [],
    turnSecret: ice.turnSecret === '' ? undefined : ice.turnSecret,
    turnTtlSeconds: ice.turnTtlSeconds ?? DEFAULT_TURN_TTL_SECONDS,
  };
  errors.push(...iceSettingsErrors(settings));
  return settings;
}
