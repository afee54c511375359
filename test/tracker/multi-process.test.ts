import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { hexToBinaryString } from '../../protocol/index.ts';
import { fixtureFiles, type Fixture } from './fixtures/harness.ts';
import { RedisServer, freePort } from './fixtures/redis-server.ts';
import { RedisCluster, clusterSkipReason } from './fixtures/redis-cluster.ts';
import { TestPeer, eventually, isAnnounceResponse, isAnswer, isFailure, isOffer } from './fixtures/ws-client.ts';

const entry = fileURLToPath(new URL('./fixtures/tracker-process.ts', import.meta.url));

interface TrackerProcess {
  child: ChildProcess;
  wsUrl: string;
  id: string;
}

async function spawnTracker(redisUrl: string): Promise<TrackerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', entry], { env: { ...process.env, REDIS_URL: redisUrl, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] });
  const id = await new Promise<string>((resolve, reject) => {
    let output = '';
    child.stdout.on('data', (data: Buffer) => {
      output += data.toString('utf8');
      const match = /READY (\w+)/.exec(output);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`tracker process exited with ${code}`)));
  });
  return { child, wsUrl: `ws://127.0.0.1:${port}/announce`, id };
}

if (clusterSkipReason) console.log(`skipping the two-process test on Redis Cluster: ${clusterSkipReason}`);

let fixture: Fixture;
const peers: TestPeer[] = [];

beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.close()));
});

function stopTracker({ child }: TrackerProcess): Promise<unknown> {
  if (child.exitCode !== null) return Promise.resolve();
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  return exited;
}

/** Two tracker processes on one backend, started before and stopped after the describe's tests. */
function twoTrackersOn(start: () => Promise<{ url: string; stop: () => Promise<void> }>): TrackerProcess[] {
  const processes: TrackerProcess[] = [];
  let backend: { url: string; stop: () => Promise<void> } | undefined;
  beforeAll(async () => {
    backend = await start();
    processes.push(...(await Promise.all([spawnTracker(backend.url), spawnTracker(backend.url)])));
  }, 120_000);
  afterAll(async () => {
    await Promise.all(processes.map(stopTracker));
    await backend?.stop();
  });
  return processes;
}

async function peer(url: string, peerIdHex?: string): Promise<TestPeer> {
  const connected = await TestPeer.connect(url, peerIdHex);
  peers.push(connected);
  return connected;
}

function relaysAcrossProcesses(processes: TrackerProcess[]): void {
  it('relays offers and answers between peers on different processes', async () => {
    const [one, two] = processes;
    expect(one!.id).not.toBe(two!.id);
    const infoHash = fixture.files[0]!.info_hash;
    const aIdHex = randomBytes(20).toString('hex');
    const a = await peer(one!.wsUrl, aIdHex);
    const b = await peer(two!.wsUrl);
    a.announce(infoHash, { left: 0 });
    expect(await a.next(isAnnounceResponse)).toMatchObject({ complete: 1, incomplete: 0 });

    const offer = { offer_id: 'cross-offer-1', offer: { type: 'offer', sdp: 'v=0 cross' } };
    b.announce(infoHash, { offers: [offer], numwant: 1 });
    // The swarm is one swarm: b's process counts a, which lives on the other process.
    expect(await b.next(isAnnounceResponse)).toMatchObject({ complete: 1, incomplete: 1 });
    const relayed = await a.next(isOffer);
    expect(relayed).toEqual({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: b.peerId, offer_id: 'cross-offer-1', offer: offer.offer });

    a.send({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, to_peer_id: b.peerId, offer_id: 'cross-offer-1', answer: { type: 'answer', sdp: 'v=0 back' } });
    expect(await b.next(isAnswer)).toEqual({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, offer_id: 'cross-offer-1', answer: { type: 'answer', sdp: 'v=0 back' } });

    // A peer_id held on one process cannot be announced on the other.
    const thief = await peer(two!.wsUrl, aIdHex);
    for (const extra of [{ event: 'stopped' }, { event: 'started' }, { to_peer_id: b.peerId, offer_id: 'x', answer: { type: 'answer', sdp: 'v=0 forged' } }]) {
      const mark = thief.mark();
      thief.announce(infoHash, extra);
      expect(await thief.next(isFailure, 10_000, mark)).toMatchObject({ pf_code: 'PF_ERR_UNAUTHORIZED' });
    }
    expect(b.frames.filter(isAnswer)).toHaveLength(1);
    // a is still in the swarm, as seen from the other process.
    const mark = b.mark();
    b.announce(infoHash, { event: 'update' });
    expect(await b.next(isAnnounceResponse, 10_000, mark)).toMatchObject({ complete: 1, incomplete: 1 });
  });
}

describe('two tracker processes sharing one Redis', () => {
  relaysAcrossProcesses(
    twoTrackersOn(async () => {
      const redis = await RedisServer.start();
      return { url: redis.url, stop: () => redis.stop() };
    }),
  );
});

describe.skipIf(clusterSkipReason !== undefined)('two tracker processes sharing one Redis Cluster (sharded pub/sub)', () => {
  let cluster: RedisCluster | undefined;
  const processes = twoTrackersOn(async () => {
    cluster = await RedisCluster.start();
    const started = cluster;
    return { url: started.url, stop: () => started.stop() };
  });
  relaysAcrossProcesses(processes);

  /** SSUBSCRIBE count of `channel` on the primary that owns its slot. */
  async function shardSubscribers(channel: string): Promise<number> {
    const node = new Redis(await cluster!.primaryPortFor(channel), '127.0.0.1');
    try {
      const reply = (await node.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number];
      return reply[1];
    } finally {
      await node.quit();
    }
  }

  it("listens on a swarm's relay channel, on the swarm's shard, only while it holds peers of the swarm", async () => {
    const [one, two] = processes;
    const swarms = [fixture.files[1]!.info_hash, fixture.files[2]!.info_hash];
    const channel = (infoHash: string) => `pf:{${infoHash}}:relay:${one!.id}`;
    for (const infoHash of swarms) expect(await shardSubscribers(channel(infoHash))).toBe(0);
    const held = await peer(one!.wsUrl);
    for (const infoHash of swarms) {
      const mark = held.mark();
      held.announce(infoHash, { left: 0 });
      await held.next(isAnnounceResponse, 10_000, mark);
      expect(await shardSubscribers(channel(infoHash))).toBe(1);
    }
    // An offer into each swarm from the other process arrives over that swarm's shard.
    const asker = await peer(two!.wsUrl);
    for (const [index, infoHash] of swarms.entries()) {
      const offer = { offer_id: `shard-offer-${index}`, offer: { type: 'offer', sdp: `v=0 shard ${index}` } };
      const mark = held.mark();
      asker.announce(infoHash, { offers: [offer], numwant: 1 });
      expect(await held.next(isOffer, 10_000, mark)).toMatchObject({ info_hash: hexToBinaryString(infoHash), peer_id: asker.peerId, offer_id: offer.offer_id });
    }
    // Its last peer of a swarm leaves: that channel, and only that one, is unsubscribed.
    const mark = held.mark();
    held.announce(swarms[0]!, { event: 'stopped' });
    await held.next(isAnnounceResponse, 10_000, mark);
    await eventually(async () => (await shardSubscribers(channel(swarms[0]!))) === 0, 10_000, 'unsubscribed from the left swarm');
    expect(await shardSubscribers(channel(swarms[1]!))).toBe(1);
  });
});
