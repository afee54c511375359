import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { Cluster, Redis } from 'ioredis';
import { createStore, type Store, type StoreConfig } from '../../tracker/index.ts';
import type { SessionRecord } from '../../tracker/sessions/session-record.ts';
import { RedisServer } from './fixtures/redis-server.ts';
import { RedisCluster, clusterSkipReason } from './fixtures/redis-cluster.ts';
import { eventually } from './fixtures/ws-client.ts';

const logger = pino({ level: 'silent' });
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

function sessionRecord(overrides: Partial<SessionRecord> = {}): SessionRecord {
  const now = Date.now();
  return {
    session_id: randomBytes(16).toString('base64url'),
    token_sha256: hex(32),
    file_id: 'alpha',
    info_hash: hex(20),
    checksum: `sha256:${hex(32)}`,
    total_bytes: 1000,
    chunk_size: 262144,
    chunk_count: 1,
    status: 'active',
    have: 'AA',
    bytes_confirmed: 0,
    contiguous_bytes: 0,
    bytes_from_peers: 0,
    bytes_from_http: 0,
    transfer_rate_bps: 0,
    rate_sampled_at_ms: now,
    created_at_ms: now,
    updated_at_ms: now,
    expires_at_ms: now + 60_000,
    ...overrides,
  };
}

if (clusterSkipReason) console.log(`skipping the Redis Cluster store contract: ${clusterSkipReason}`);

let redis: RedisServer;
let cluster: RedisCluster | undefined;
beforeAll(async () => {
  [redis, cluster] = await Promise.all([RedisServer.start(), clusterSkipReason ? undefined : RedisCluster.start()]);
}, 120_000);
afterAll(async () => {
  await Promise.all([redis.stop(), cluster?.stop()]);
});

async function flushRedis(): Promise<void> {
  const client = new Redis(redis.url);
  await client.flushall();
  await client.quit();
}

/** FLUSHALL on every primary of the cluster (a Cluster client sends FLUSHALL to one node only). */
async function flushCluster(): Promise<void> {
  const client = new Cluster(cluster!.urls.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })));
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve);
      client.once('error', reject);
    });
    await Promise.all(client.nodes('master').map((node) => node.flushall()));
  } finally {
    await client.quit();
  }
}

/** The store with its swarm calls answered through `store.sync`, so the contract covers those too. */
function viaSyncCalls(store: Store): Store {
  const sync = store.sync;
  if (!sync) throw new Error(`the ${store.kind} store has no synchronous swarm calls`);
  const call = <T>(operation: () => T): Promise<T> => {
    try {
      return Promise.resolve(operation());
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
  // Everything else (sessions, pub/sub, close) is the store's own, through the prototype.
  const wrapped = Object.create(store) as Store;
  return Object.assign(wrapped, {
    upsertPeer: (...args: Parameters<Store['upsertPeer']>) => call(() => sync.upsertPeer(...args)),
    removePeer: (...args: Parameters<Store['removePeer']>) => call(() => sync.removePeer(...args)),
    getPeer: (...args: Parameters<Store['getPeer']>) => call(() => sync.getPeer(...args)),
    randomPeers: (...args: Parameters<Store['randomPeers']>) => call(() => sync.randomPeers(...args)),
    counts: (...args: Parameters<Store['counts']>) => call(() => sync.counts(...args)),
  });
}

const kinds: { name: string; config: () => StoreConfig; reset: () => Promise<void>; wrap?: (store: Store) => Store }[] = [
  { name: 'memory', config: () => ({ kind: 'memory' }), reset: () => Promise.resolve() },
  { name: 'memory, synchronous swarm calls', config: () => ({ kind: 'memory' }), reset: () => Promise.resolve(), wrap: viaSyncCalls },
  { name: 'redis', config: () => ({ kind: 'redis', url: redis.url }), reset: flushRedis },
  ...(clusterSkipReason ? [] : [{ name: 'redis cluster (3 primaries, 3 replicas)', config: (): StoreConfig => ({ kind: 'redis', url: cluster!.url }), reset: flushCluster }]),
];

describe.each(kinds)('Store contract: $name', ({ config, reset, wrap }) => {
  let store: Store;
  let infoHash: string;
  beforeEach(async () => {
    await reset();
    store = await createStore(config(), { logger });
    if (wrap) store = wrap(store);
    infoHash = hex(20);
    return async () => {
      await store.close();
    };
  });

  it('adds, refreshes and removes peers with complete/incomplete counts', async () => {
    const a = hex(20);
    const b = hex(20);
    const first = await store.upsertPeer(infoHash, { peerId: a, owner: 'p1', complete: false }, 1000);
    expect(first).toEqual({ ok: true, isNew: true, counts: { complete: 0, incomplete: 1 } });
    const second = await store.upsertPeer(infoHash, { peerId: b, owner: 'p1', complete: true }, 1000);
    expect(second).toEqual({ ok: true, isNew: true, counts: { complete: 1, incomplete: 1 } });
    // a completes: counts move, not grow.
    expect(await store.upsertPeer(infoHash, { peerId: a, owner: 'p1', complete: true }, 2000)).toEqual({ ok: true, isNew: false, counts: { complete: 2, incomplete: 0 } });
    // Once complete, a later announce without left=0 keeps it complete.
    expect(await store.upsertPeer(infoHash, { peerId: a, owner: 'p1', complete: false }, 3000)).toEqual({ ok: true, isNew: false, counts: { complete: 2, incomplete: 0 } });
    expect(await store.getPeer(infoHash, a)).toMatchObject({ peerId: a, owner: 'p1', complete: true, lastSeenMs: 3000 });
    expect(await store.removePeer(infoHash, a, 'p1')).toEqual({ ok: true, counts: { complete: 1, incomplete: 0 } });
    expect(await store.removePeer(infoHash, a, 'p1')).toEqual({ ok: true, counts: { complete: 1, incomplete: 0 } });
    expect(await store.getPeer(infoHash, a)).toBeUndefined();
    expect(await store.counts(infoHash)).toEqual({ complete: 1, incomplete: 0 });
  });

  it('refuses a peer_id owned by another tracker process', async () => {
    const a = hex(20);
    await store.upsertPeer(infoHash, { peerId: a, owner: 'p1', complete: false }, 1000);
    expect(await store.upsertPeer(infoHash, { peerId: a, owner: 'p2', complete: false }, 1000)).toEqual({ ok: false, reason: 'owned_elsewhere', owner: 'p1' });
    expect(await store.removePeer(infoHash, a, 'p2')).toEqual({ ok: false, reason: 'owned_elsewhere', owner: 'p1' });
    expect(await store.getPeer(infoHash, a)).toMatchObject({ owner: 'p1' });
    expect(await store.counts(infoHash)).toEqual({ complete: 0, incomplete: 1 });
  });

  it('picks distinct random peers, never the asker', async () => {
    const ids = Array.from({ length: 30 }, () => hex(20));
    for (const id of ids) await store.upsertPeer(infoHash, { peerId: id, owner: 'p1', complete: false }, 1000);
    for (let round = 0; round < 20; round++) {
      const picked = await store.randomPeers(infoHash, 5, ids[0]!);
      expect(picked).toHaveLength(5);
      expect(new Set(picked.map((peer) => peer.peerId)).size).toBe(5);
      expect(picked.some((peer) => peer.peerId === ids[0])).toBe(false);
      for (const peer of picked) expect(ids).toContain(peer.peerId);
    }
    const all = await store.randomPeers(infoHash, 100, ids[0]!);
    expect(all).toHaveLength(29);
    expect(await store.randomPeers(hex(20), 5, ids[0]!)).toEqual([]);
  });

  it('prunes peers past the cutoff and drops empty swarms', async () => {
    const other = hex(20);
    const stale = hex(20);
    const fresh = hex(20);
    await store.upsertPeer(infoHash, { peerId: stale, owner: 'p1', complete: false }, 1000);
    await store.upsertPeer(infoHash, { peerId: fresh, owner: 'p1', complete: true }, 5000);
    await store.upsertPeer(other, { peerId: stale, owner: 'p1', complete: false }, 1000);
    const before = await store.swarmCount();
    expect(await store.prunePeers(2000)).toBeGreaterThanOrEqual(2);
    expect(await store.getPeer(infoHash, stale)).toBeUndefined();
    expect(await store.getPeer(infoHash, fresh)).toBeDefined();
    expect(await store.counts(infoHash)).toEqual({ complete: 1, incomplete: 0 });
    expect(await store.counts(other)).toEqual({ complete: 0, incomplete: 0 });
    expect(await store.swarmCount()).toBe(before - 1);
    await store.removePeer(infoHash, fresh, 'p1');
    expect(await store.swarmCount()).toBe(before - 2);
  });

  it('creates, reads, updates atomically and deletes sessions', async () => {
    const record = sessionRecord();
    await store.createSession(record, 60);
    expect(await store.getSession(record.session_id)).toEqual(record);
    expect(await store.getSession('nope-nope-nope-nope')).toBeUndefined();
    // Concurrent increments: none may be lost.
    await Promise.all(
      Array.from({ length: 20 }, () =>
        store.updateSession(record.session_id, (current) => ({ ...current, bytes_from_peers: current.bytes_from_peers + 1 }), 60),
      ),
    );
    expect((await store.getSession(record.session_id))?.bytes_from_peers).toBe(20);
    // An update that returns undefined leaves the record as it is.
    expect(await store.updateSession(record.session_id, () => undefined, 60)).toMatchObject({ bytes_from_peers: 20 });
    expect(await store.updateSession('missing-session-id', (current) => current, 60)).toBeUndefined();
    expect(await store.sessionCount()).toBeGreaterThanOrEqual(1);
    await store.deleteSession(record.session_id);
    expect(await store.getSession(record.session_id)).toBeUndefined();
  });

  it('holds at most maxSessions: expired sessions make room first, then creation is refused with 429 and Retry-After', async () => {
    const capped = await createStore({ ...config(), maxSessions: 3 }, { logger });
    try {
      const stale = sessionRecord({ expires_at_ms: Date.now() - 1000 });
      await capped.createSession(stale, 3600);
      await capped.createSession(sessionRecord(), 3600);
      await capped.createSession(sessionRecord(), 3600);
      // Full: the idle-expired session goes, the new one comes in.
      const fresh = sessionRecord();
      await capped.createSession(fresh, 3600);
      expect(await capped.getSession(stale.session_id)).toBeUndefined();
      expect(await capped.getSession(fresh.session_id)).toBeDefined();
      // Full of live sessions: refused, none of them is lost.
      const refused = await capped.createSession(sessionRecord(), 3600).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(refused).toMatchObject({ code: 'PF_ERR_RATE_LIMITED', statusCode: 429 });
      expect((refused as { retryAfterSeconds?: number }).retryAfterSeconds).toBeGreaterThan(0);
      expect(await capped.getSession(fresh.session_id)).toBeDefined();
    } finally {
      await capped.close();
    }
  });

  it('expires sessions after their TTL', async () => {
    const record = sessionRecord();
    await store.createSession(record, 1);
    expect(await store.getSession(record.session_id)).toBeDefined();
    await eventually(async () => (await store.getSession(record.session_id)) === undefined, 10_000, 'session expiry');
  });

  it('delivers published messages to the subscribed owner of that swarm only', async () => {
    const received: string[] = [];
    const otherOwner: string[] = [];
    const otherSwarm: string[] = [];
    const otherHash = hex(20);
    const unsubscribe = await store.subscribe(infoHash, 'owner-a', (message) => received.push(message));
    const unsubscribeOwner = await store.subscribe(infoHash, 'owner-b', (message) => otherOwner.push(message));
    const unsubscribeSwarm = await store.subscribe(otherHash, 'owner-a', (message) => otherSwarm.push(message));
    await store.publish(infoHash, 'owner-a', 'hello');
    await store.publish(infoHash, 'owner-a', 'world');
    await store.publish(otherHash, 'owner-a', 'elsewhere');
    await eventually(() => received.length === 2 && otherSwarm.length === 1, 5000, 'delivery');
    expect(received).toEqual(['hello', 'world']);
    expect(otherSwarm).toEqual(['elsewhere']);
    expect(otherOwner).toEqual([]);
    await unsubscribe();
    await unsubscribeOwner();
    await unsubscribeSwarm();
    await store.publish(infoHash, 'owner-a', 'after');
    await store.publish(otherHash, 'owner-a', 'after');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(received).toEqual(['hello', 'world']);
    expect(otherSwarm).toEqual(['elsewhere']);
  });

  it('lets a later subscription of the same channel replace one whose unsubscribe comes late', async () => {
    const first: string[] = [];
    const second: string[] = [];
    const unsubscribeFirst = await store.subscribe(infoHash, 'owner-a', (message) => first.push(message));
    const unsubscribeSecond = await store.subscribe(infoHash, 'owner-a', (message) => second.push(message));
    // The first subscription's unsubscribe, late: the second one keeps listening.
    await unsubscribeFirst();
    await store.publish(infoHash, 'owner-a', 'still here');
    await eventually(() => second.length === 1, 5000, 'delivery to the second subscription');
    expect(first).toEqual([]);
    await unsubscribeSecond();
    await store.publish(infoHash, 'owner-a', 'gone');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(second).toEqual(['still here']);
  });
});

describe('memory store, synchronous swarm calls', () => {
  it('throw PF_ERR_STORE_UNAVAILABLE once closed, where the async calls reject', async () => {
    const store = await createStore({ kind: 'memory' }, { logger });
    await store.close();
    let thrown: unknown;
    try {
      store.sync!.counts(hex(20));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'PF_ERR_STORE_UNAVAILABLE' });
    await expect(store.counts(hex(20))).rejects.toMatchObject({ code: 'PF_ERR_STORE_UNAVAILABLE' });
  });
});

describe.skipIf(clusterSkipReason !== undefined)('Redis store on a cluster', () => {
  it("keeps a swarm's keys in one slot on one primary, and spreads swarms over the primaries", async () => {
    await flushCluster();
    const store = await createStore({ kind: 'redis', url: cluster!.url }, { logger });
    const owners = new Set<number>();
    try {
      for (let i = 0; i < 12; i++) {
        const infoHash = hex(20);
        await store.upsertPeer(infoHash, { peerId: hex(20), owner: 'p1', complete: false }, Date.now());
        const port = await cluster!.primaryPortFor(`pf:{${infoHash}}:peers`);
        owners.add(port);
        // One multi-key command on that node: CROSSSLOT or MOVED if the keys were not all its own.
        const node = new Redis(port, '127.0.0.1');
        try {
          expect(await node.exists(`pf:{${infoHash}}:peers`, `pf:{${infoHash}}:seen`, `pf:{${infoHash}}:counts`)).toBe(3);
        } finally {
          await node.quit();
        }
      }
    } finally {
      await store.close();
    }
    expect(owners.size).toBeGreaterThan(1);
  });

  it("relays over sharded pub/sub on the swarm's own primary, and unsubscribes that channel by name", async () => {
    const store = await createStore({ kind: 'redis', url: cluster!.url }, { logger });
    const infoHash = hex(20);
    const channel = `pf:{${infoHash}}:relay:owner-a`;
    const port = await cluster!.primaryPortFor(channel);
    const node = new Redis(port, '127.0.0.1');
    const others = cluster!.urls.map((url) => Number(new URL(url).port)).filter((other) => other !== port);
    const counts = async (at: Redis) => ({ sharded: (await at.call('PUBSUB', 'SHARDNUMSUB', channel)) as unknown[], classic: (await at.call('PUBSUB', 'NUMSUB', channel)) as unknown[] });
    try {
      const received: string[] = [];
      const unsubscribe = await store.subscribe(infoHash, 'owner-a', (message) => received.push(message));
      expect(await counts(node)).toEqual({ sharded: [channel, 1], classic: [channel, 0] });
      // No other node holds it: a message goes to this shard only.
      for (const other of others) {
        const client = new Redis(other, '127.0.0.1');
        try {
          expect((await counts(client)).sharded).toEqual([channel, 0]);
        } finally {
          await client.quit();
        }
      }
      await store.publish(infoHash, 'owner-a', 'over the shard');
      await eventually(() => received.length === 1, 5000, 'sharded delivery');
      expect(received).toEqual(['over the shard']);
      await unsubscribe();
      await eventually(async () => ((await counts(node)).sharded[1] as number) === 0, 5000, 'sunsubscribe');
    } finally {
      await node.quit();
      await store.close();
    }
  });
});
