import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { createStore, type Store } from '../../tracker/index.ts';
import { fixtureFiles, startTracker, type RunningTracker } from './fixtures/harness.ts';
import { RedisServer } from './fixtures/redis-server.ts';
import { TestPeer, isAnnounceResponse } from './fixtures/ws-client.ts';

/**
 * Redis's own count of the commands it executed (INFO commandstats, which counts the
 * commands a script runs as well as the EVALSHA itself), per announce of a real tracker.
 */
type Stats = Map<string, number>;

async function commandStats(redis: Redis): Promise<Stats> {
  const stats: Stats = new Map();
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (match) stats.set(match[1]!, Number(match[2]));
  }
  return stats;
}

function executed(before: Stats, after: Stats): Stats {
  const out: Stats = new Map();
  for (const [name, calls] of after) {
    const diff = calls - (before.get(name) ?? 0);
    // The test's own INFO calls are not the tracker's.
    if (diff > 0 && name !== 'info') out.set(name, diff);
  }
  return out;
}

const sum = (stats: Stats) => [...stats.values()].reduce((a, b) => a + b, 0);

let redisServer: RedisServer;
let store: Store;
let tracker: RunningTracker;
let probe: Redis;
const peers: TestPeer[] = [];

beforeAll(async () => {
  redisServer = await RedisServer.start();
  store = await createStore({ kind: 'redis', url: redisServer.url }, { logger: pino({ level: 'silent' }) });
  const { directory } = await fixtureFiles();
  tracker = await startTracker({ store, directory, config: { announceIntervalSeconds: 120 } });
  probe = new Redis(redisServer.url);
});

afterAll(async () => {
  for (const peer of peers) await peer.close();
  await tracker?.close();
  await store?.close();
  probe?.disconnect();
  await redisServer?.stop();
});

describe('redis commands per announce', () => {
  it('an update announce of a known peer costs at most 4 commands, one of them sent by the tracker', async () => {
    const { files } = await fixtureFiles();
    const infoHash = files[0]!.info_hash;
    const PEERS = 10;
    const ROUNDS = 3;
    for (let i = 0; i < PEERS; i++) peers.push(await TestPeer.connect(tracker.wsUrl));

    let before = await commandStats(probe);
    for (const peer of peers) {
      const mark = peer.mark();
      peer.announce(infoHash, { event: 'started', numwant: 0 });
      await peer.next(isAnnounceResponse, 10_000, mark);
    }
    const started = executed(before, await commandStats(probe));

    before = await commandStats(probe);
    for (let round = 0; round < ROUNDS; round++) {
      for (const peer of peers) {
        const mark = peer.mark();
        peer.announce(infoHash, { event: 'update', numwant: 0, uploaded: round, downloaded: round });
        await peer.next(isAnnounceResponse, 10_000, mark);
      }
    }
    const updates = executed(before, await commandStats(probe));
    const perUpdate = sum(updates) / (PEERS * ROUNDS);
    const sentPerUpdate = ((updates.get('evalsha') ?? 0) + (updates.get('eval') ?? 0) + (updates.get('sadd') ?? 0)) / (PEERS * ROUNDS);
    const describeStats = (stats: Stats, per: number) => [...stats].map(([name, calls]) => `${name} ${(calls / per).toFixed(2)}`).join(', ');
    console.log(`redis commands per announce: started ${(sum(started) / PEERS).toFixed(2)} (${describeStats(started, PEERS)}); update ${perUpdate.toFixed(2)} (${describeStats(updates, PEERS * ROUNDS)})`);

    expect(perUpdate).toBeLessThanOrEqual(4);
    expect(sentPerUpdate).toBe(1);
    // Updates refresh no TTLs: the swarm's keys still carry the ones its creation set.
    expect(updates.has('pexpire')).toBe(false);
    for (const key of [`pf:{${infoHash}}:peers`, `pf:{${infoHash}}:seen`, `pf:{${infoHash}}:counts`]) {
      expect(await probe.pttl(key)).toBeGreaterThan(0);
    }
    expect(await probe.sismember('pf:swarms', infoHash)).toBe(1);
    expect(await store.counts(infoHash)).toEqual({ complete: 0, incomplete: PEERS });
  });
});
