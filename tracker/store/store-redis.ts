import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { Cluster, Redis } from 'ioredis';
import { PfError, parseJson } from '../../protocol/index.ts';
import { sessionRecordCodec, type SessionRecord } from '../sessions/session-record.ts';
import { CAS_SESSION, PRUNE_SWARM, REMOVE_PEER, UPSERT_PEER } from './redis-scripts.ts';
import type { PeerRecord, RemovePeerResult, SessionUpdate, Store, SwarmCounts, UpsertPeerResult } from './store.ts';
import type { RedisTarget } from './redis-url.ts';

export interface RedisStoreOptions {
  /** One server, or a Redis Cluster through its seed nodes (parseRedisUrl). */
  target: RedisTarget;
  /** Swarm keys nobody touched for this long expire by themselves; default 1 hour. */
  swarmKeyTtlMs?: number;
  /** A command that takes longer fails (and the caller falls back or answers 503); default 2 s. */
  commandTimeoutMs?: number;
  /** Live sessions held at most (approximate across processes); expired ones make room first. Default 10,000,000. */
  maxSessions?: number;
}

/** Expired sessions removed per creation at the cap: bounded work per request. */
const EVICT_BATCH = 200;

const SWARMS_KEY = 'pf:swarms';
const SESSIONS_KEY = 'pf:sessions';
const CAS_ATTEMPTS = 40;
/** Swarms whose last TTL refresh this process remembers; past it, the stalest is forgotten (and refreshed again). */
const MAX_REFRESH_ENTRIES = 100_000;

/** Keys of one swarm share the `{<info_hash>}` hash tag: one Cluster slot per swarm. */
function swarmKeys(infoHash: string): [string, string, string] {
  return [`pf:{${infoHash}}:peers`, `pf:{${infoHash}}:seen`, `pf:{${infoHash}}:counts`];
}
const sessionKey = (sessionId: string) => `pf:session:{${sessionId}}`;
/**
 * One relay channel per swarm and owner process, hash-tagged like the swarm's keys: on a
 * cluster, SPUBLISH sends it to the swarm's shard only, not to every node as PUBLISH would.
 */
const relayChannel = (infoHash: string, owner: string) => `pf:{${infoHash}}:relay:${owner}`;

function numbers(value: unknown, length: number): number[] | undefined {
  if (!Array.isArray(value) || value.length < length) return undefined;
  const out: number[] = [];
  for (const item of value.slice(0, length)) {
    if (typeof item !== 'number') return undefined;
    out.push(item);
  }
  return out;
}

function parsePeerValue(peerId: string, value: string, lastSeenMs: number): PeerRecord | undefined {
  const sep = value.lastIndexOf('|');
  if (sep <= 0) return undefined;
  return { peerId, owner: value.slice(0, sep), complete: value.slice(sep + 1) === '1', lastSeenMs };
}

/**
 * Redis store for many tracker processes: swarm membership with key TTLs, sessions with
 * compare-and-set updates, and a pub/sub channel per tracker process for signal relays.
 * Commands fail fast while Redis is away (no offline queue) so callers can degrade.
 */
export class RedisStore implements Store {
  readonly kind = 'redis';
  private readonly redis: Redis | Cluster;
  private subscriber: Redis | Cluster | undefined;
  /** One subscription per channel; the latest replaces the one before (Store.subscribe). */
  private readonly handlers = new Map<string, { onMessage: (message: string) => void }>();
  private readonly shas = new Map<string, string>();
  private readonly swarmKeyTtlMs: number;
  private readonly refreshedAtMs = new Map<string, number>();
  private closed = false;

  constructor(
    private readonly options: RedisStoreOptions,
    private readonly logger: Logger,
  ) {
    this.swarmKeyTtlMs = options.swarmKeyTtlMs ?? 3600_000;
    this.redis = this.connect('commands');
  }

  private connect(role: string): Redis | Cluster {
    const { target } = this.options;
    const nodeOptions = {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.options.commandTimeoutMs ?? 2000,
      retryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
      lazyConnect: true,
    };
    const client =
      target.mode === 'single'
        ? new Redis(target.url, nodeOptions)
        : new Cluster(target.seeds, {
            enableOfflineQueue: false,
            lazyConnect: true,
            clusterRetryStrategy: (attempt: number) => Math.min(100 * attempt, 2000),
            // A failover moves slots: ask again soon, a few times, within the command timeout.
            retryDelayOnFailover: 100,
            retryDelayOnClusterDown: 100,
            // The subscriber holds one connection per primary whose slots have relay channels (SSUBSCRIBE).
            shardedSubscribers: role === 'subscriber',
            redisOptions: { ...nodeOptions, username: target.username, password: target.password, tls: target.tls ? {} : undefined },
          });
    let lastState = '';
    const report = (state: string, error?: Error) => {
      if (state === lastState) return;
      lastState = state;
      if (state === 'ready') this.logger.info({ role }, 'redis ready');
      else this.logger.warn({ role, err: error?.message }, `redis ${state}`);
    };
    client.on('ready', () => report('ready'));
    client.on('error', (error: Error) => report('error', error));
    client.on('end', () => report('end'));
    return client;
  }

  /** Connect; a Redis that is down at start is logged, and retried in the background. */
  async start(): Promise<void> {
    try {
      await this.redis.connect();
    } catch (error) {
      this.logger.error({ err: (error as Error).message }, 'redis unavailable at start; retrying in the background');
    }
  }

  private async run<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'store is closed');
    try {
      return await operation();
    } catch (error) {
      if (error instanceof PfError) throw error;
      throw new PfError('PF_ERR_STORE_UNAVAILABLE', undefined, { cause: error });
    }
  }

  private async script(lua: string, keys: string[], args: (string | number)[]): Promise<unknown> {
    let sha = this.shas.get(lua);
    if (!sha) this.shas.set(lua, (sha = createHash('sha1').update(lua).digest('hex')));
    try {
      return await this.redis.evalsha(sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return this.redis.eval(lua, keys.length, ...keys, ...args);
    }
  }

  /**
   * Whether this process should refresh the swarm's key TTLs and its pf:swarms entry on this
   * announce: once per quarter TTL per swarm, so that periodic updates stay at one script.
   */
  private isRefreshDue(infoHash: string, nowMs: number): boolean {
    const refreshedAtMs = this.refreshedAtMs.get(infoHash);
    return refreshedAtMs === undefined || nowMs - refreshedAtMs >= this.swarmKeyTtlMs / 4;
  }

  private markRefreshed(infoHash: string, nowMs: number): void {
    // Map order is refresh order: the first entry is the stalest, dropped first at the bound.
    this.refreshedAtMs.delete(infoHash);
    this.refreshedAtMs.set(infoHash, nowMs);
    if (this.refreshedAtMs.size > MAX_REFRESH_ENTRIES) {
      const stalest = this.refreshedAtMs.keys().next();
      if (!stalest.done) this.refreshedAtMs.delete(stalest.value);
    }
  }

  upsertPeer(infoHash: string, peer: { peerId: string; owner: string; complete: boolean }, nowMs: number): Promise<UpsertPeerResult> {
    return this.run(async () => {
      const refresh = this.isRefreshDue(infoHash, nowMs);
      const reply = await this.script(UPSERT_PEER, swarmKeys(infoHash), [peer.peerId, peer.owner, peer.complete ? '1' : '0', nowMs, this.swarmKeyTtlMs, refresh ? '1' : '0']);
      if (Array.isArray(reply) && reply[0] === -1 && typeof reply[1] === 'string') return { ok: false, reason: 'owned_elsewhere', owner: reply[1] };
      const values = numbers(reply, 4);
      if (!values) throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'unexpected reply from redis');
      // The swarm set entry goes in when the swarm is created, and again with each refresh,
      // which heals a prune that raced a creation (its SREM after our SADD).
      if (values[3] === 1 || refresh) await this.redis.sadd(SWARMS_KEY, infoHash);
      if (refresh) this.markRefreshed(infoHash, nowMs);
      return { ok: true, isNew: values[0] === 1, counts: { complete: values[1]!, incomplete: values[2]! } };
    });
  }

  removePeer(infoHash: string, peerId: string, owner: string): Promise<RemovePeerResult> {
    return this.run(async (): Promise<RemovePeerResult> => {
      const reply = await this.script(REMOVE_PEER, swarmKeys(infoHash), [peerId, owner]);
      if (Array.isArray(reply) && reply[0] === -1 && typeof reply[1] === 'string') return { ok: false, reason: 'owned_elsewhere', owner: reply[1] };
      const values = numbers(reply, 3);
      if (!values) throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'unexpected reply from redis');
      if (values[2] === 1) await this.redis.srem(SWARMS_KEY, infoHash);
      return { ok: true, counts: { complete: values[0]!, incomplete: values[1]! } };
    });
  }

  getPeer(infoHash: string, peerId: string): Promise<PeerRecord | undefined> {
    return this.run(async () => {
      const [peersKey, seenKey] = swarmKeys(infoHash);
      const [value, seen] = await Promise.all([this.redis.hget(peersKey, peerId), this.redis.zscore(seenKey, peerId)]);
      return value === null ? undefined : parsePeerValue(peerId, value, Number(seen ?? 0));
    });
  }

  randomPeers(infoHash: string, count: number, excludePeerId: string): Promise<PeerRecord[]> {
    return this.run(async () => {
      if (count <= 0) return [];
      const reply = await this.redis.hrandfield(swarmKeys(infoHash)[0], count + 1, 'WITHVALUES');
      const out: PeerRecord[] = [];
      if (!Array.isArray(reply)) return out;
      for (let i = 0; i + 1 < reply.length && out.length < count; i += 2) {
        const peerId: unknown = reply[i];
        const value: unknown = reply[i + 1];
        if (typeof peerId !== 'string' || typeof value !== 'string' || peerId === excludePeerId) continue;
        const record = parsePeerValue(peerId, value, 0);
        if (record) out.push(record);
      }
      return out;
    });
  }

  counts(infoHash: string): Promise<SwarmCounts> {
    return this.run(async () => {
      const [complete, incomplete] = await this.redis.hmget(swarmKeys(infoHash)[2], 'complete', 'incomplete');
      return { complete: Number(complete ?? 0), incomplete: Number(incomplete ?? 0) };
    });
  }

  prunePeers(cutoffMs: number): Promise<number> {
    return this.run(async () => {
      let dropped = 0;
      let cursor = '0';
      do {
        const [next, infoHashes] = await this.redis.sscan(SWARMS_KEY, cursor, 'COUNT', 500);
        cursor = next;
        for (const infoHash of infoHashes) {
          const values = numbers(await this.script(PRUNE_SWARM, swarmKeys(infoHash), [cutoffMs]), 2);
          if (!values) continue;
          dropped += values[0]!;
          if (values[1] === 1) await this.redis.srem(SWARMS_KEY, infoHash);
        }
      } while (cursor !== '0');
      return dropped;
    });
  }

  swarmCount(): Promise<number> {
    return this.run(() => this.redis.scard(SWARMS_KEY));
  }

  /**
   * pf:sessions scores each session by its idle expiry (the record's expires_at_ms): at the cap,
   * the expired ones are deleted first, a batch at a time; the count is of live sessions.
   */
  createSession(record: SessionRecord, ttlSeconds: number): Promise<void> {
    return this.run(async () => {
      const maxSessions = this.options.maxSessions ?? 10_000_000;
      if ((await this.redis.zcard(SESSIONS_KEY)) >= maxSessions) {
        const expired = await this.redis.zrangebyscore(SESSIONS_KEY, '-inf', Date.now(), 'LIMIT', 0, EVICT_BATCH);
        // One key per command: session keys live in different cluster slots.
        await Promise.all(expired.map((sessionId) => this.redis.del(sessionKey(sessionId))));
        if (expired.length > 0) await this.redis.zrem(SESSIONS_KEY, ...expired);
        if ((await this.redis.zcard(SESSIONS_KEY)) >= maxSessions) {
          throw new PfError('PF_ERR_RATE_LIMITED', 'the tracker holds as many download sessions as it may', { retryAfterSeconds: 60 });
        }
      }
      const ttlMs = ttlSeconds * 1000;
      const created = await this.redis.set(sessionKey(record.session_id), JSON.stringify(record), 'PX', ttlMs, 'NX');
      if (created !== 'OK') throw new PfError('PF_ERR_INTERNAL', 'session id collision');
      await this.redis.zadd(SESSIONS_KEY, record.expires_at_ms, record.session_id);
    });
  }

  private decodeSession(sessionId: string, text: string): SessionRecord | undefined {
    const parsed = parseJson(text);
    const decoded = parsed.ok ? sessionRecordCodec.decode(parsed.value) : parsed;
    if (!decoded.ok) {
      this.logger.warn({ sessionId, errors: decoded.errors }, 'invalid session record in redis; ignoring it');
      return undefined;
    }
    return decoded.value;
  }

  getSession(sessionId: string): Promise<SessionRecord | undefined> {
    return this.run(async () => {
      const text = await this.redis.get(sessionKey(sessionId));
      return text === null ? undefined : this.decodeSession(sessionId, text);
    });
  }

  updateSession(sessionId: string, update: SessionUpdate, ttlSeconds: number): Promise<SessionRecord | undefined> {
    return this.run(async () => {
      const key = sessionKey(sessionId);
      for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        const text = await this.redis.get(key);
        if (text === null) return undefined;
        const current = this.decodeSession(sessionId, text);
        if (!current) return undefined;
        const next = update(current);
        if (!next) return current;
        const ttlMs = ttlSeconds * 1000;
        if ((await this.script(CAS_SESSION, [key], [text, JSON.stringify(next), ttlMs])) === 1) {
          await this.redis.zadd(SESSIONS_KEY, next.expires_at_ms, sessionId);
          return next;
        }
        // Lost a race: back off a little, with jitter, and read again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(50, 2 * (attempt + 1))));
      }
      throw new PfError('PF_ERR_RATE_LIMITED', 'the session is being updated concurrently; retry');
    });
  }

  deleteSession(sessionId: string): Promise<void> {
    return this.run(async () => {
      await this.redis.del(sessionKey(sessionId));
      await this.redis.zrem(SESSIONS_KEY, sessionId);
    });
  }

  sessionCount(): Promise<number> {
    return this.run(async () => {
      await this.redis.zremrangebyscore(SESSIONS_KEY, '-inf', Date.now());
      return this.redis.zcard(SESSIONS_KEY);
    });
  }

  private get isCluster(): boolean {
    return this.options.target.mode === 'cluster';
  }

  /**
   * A cluster relays over sharded pub/sub (SPUBLISH, SSUBSCRIBE: Redis 7), one server over
   * classic PUBLISH and SUBSCRIBE, which any Redis has and which cost the same on one node.
   */
  publish(infoHash: string, owner: string, message: string): Promise<void> {
    return this.run(async () => {
      const channel = relayChannel(infoHash, owner);
      if (this.isCluster) await this.redis.spublish(channel, message);
      else await this.redis.publish(channel, message);
    });
  }

  private async subscriberClient(): Promise<Redis | Cluster> {
    if (this.subscriber) return this.subscriber;
    const subscriber = this.connect('subscriber');
    // Subscribing waits for Redis (ioredis resubscribes after reconnects and, on a cluster,
    // after a failover moves a channel's slot to another node).
    subscriber.options.enableOfflineQueue = true;
    const onMessage = (from: string, message: string) => this.handlers.get(from)?.onMessage(message);
    if (this.isCluster) subscriber.on('smessage', onMessage);
    else subscriber.on('message', onMessage);
    this.subscriber = subscriber;
    await subscriber.connect().catch((error: unknown) => {
      this.logger.error({ err: (error as Error).message }, 'redis subscriber unavailable; retrying in the background');
    });
    return subscriber;
  }

  async subscribe(infoHash: string, owner: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    if (this.closed) throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'store is closed');
    const channel = relayChannel(infoHash, owner);
    const subscriber = await this.subscriberClient();
    const subscription = { onMessage };
    this.handlers.set(channel, subscription);
    // Always with the channel named: a bare SUNSUBSCRIBE has no slot to route by (ioredis #2133).
    const command = () => (this.isCluster ? subscriber.ssubscribe(channel) : subscriber.subscribe(channel));
    // A subscribe that fails or times out still returns its unsubscribe: the command may yet
    // land, and ioredis subscribes the channels it tracks again after a reconnect.
    if (subscriber.status === 'ready') await command().catch((error: unknown) => this.logger.warn({ err: (error as Error).message, channel }, 'relay subscribe failed; ioredis retries it on reconnect'));
    else void command().catch(() => undefined);
    return async () => {
      if (this.handlers.get(channel) !== subscription) return;
      this.handlers.delete(channel);
      await (this.isCluster ? subscriber.sunsubscribe(channel) : subscriber.unsubscribe(channel)).catch(() => undefined);
    };
  }

  isAvailable(): boolean {
    return this.redis.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscriber?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
