import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { hexToBinaryString } from '../../protocol/index.ts';
import { createStore, type Store } from '../../tracker/index.ts';
import { fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { RedisServer } from './fixtures/redis-server.ts';
import { TestPeer, eventually, isAnnounceResponse, isAnswer, isOffer } from './fixtures/ws-client.ts';

let redis: RedisServer;
let fixture: Fixture;
let store: Store;
let running: RunningTracker;
const peers: TestPeer[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
  fixture = await fixtureFiles();
  store = await createStore({ kind: 'redis', url: redis.url }, { logger: pino({ level: 'silent' }) });
  running = await startTracker({ store, directory: fixture.directory, config: { announceIntervalSeconds: 30 } });
});
afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.close()));
  await running.close();
  await store.close();
  await redis.stop();
});

async function api(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${running.baseUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: response.status, body: await response.json() };
}

/** `from` offers to one random peer of the swarm (one of `candidates`), which answers. */
async function signal(from: TestPeer, candidates: TestPeer[], infoHash: string, offerId: string): Promise<void> {
  const marks = candidates.map((peer) => peer.mark());
  const fromMark = from.mark();
  from.announce(infoHash, { event: 'update', offers: [{ offer_id: offerId, offer: { type: 'offer', sdp: `v=0 ${offerId}` } }], numwant: 1 });
  await from.next(isAnnounceResponse, 10_000, fromMark);
  const { to, offer } = await Promise.any(
    candidates.map(async (peer, index) => ({ to: peer, offer: await peer.next((frame) => isOffer(frame) && frame.offer_id === offerId, 10_000, marks[index]) })),
  );
  to.send({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: to.peerId, to_peer_id: offer.peer_id, offer_id: offerId, answer: { type: 'answer', sdp: 'v=0 answer' } });
  await from.next((frame) => isAnswer(frame) && frame.offer_id === offerId, 10_000, fromMark);
}

describe('Redis outage', () => {
  it('keeps local signalling, answers 503 on REST, and recovers when Redis returns', async () => {
    const infoHash = fixture.files[0]!.info_hash;
    const a = await TestPeer.connect(running.wsUrl);
    const b = await TestPeer.connect(running.wsUrl);
    peers.push(a, b);
    a.announce(infoHash, { left: 0 });
    await a.next(isAnnounceResponse);
    b.announce(infoHash);
    await b.next(isAnnounceResponse);
    await signal(b, [a], infoHash, 'before-outage');
    expect((await api('POST', '/downloads', { file_id: 'alpha' })).status).toBe(201);

    await redis.down();
    // Peers on this process still reach each other, and a newcomer still gets introduced.
    await signal(b, [a], infoHash, 'during-outage');
    const c = await TestPeer.connect(running.wsUrl);
    peers.push(c);
    c.announce(infoHash);
    expect(await c.next(isAnnounceResponse)).toMatchObject({ complete: 1, incomplete: 2 });
    await signal(c, [a, b], infoHash, 'newcomer-during-outage');
    const down = await api('POST', '/downloads', { file_id: 'alpha' });
    expect(down).toMatchObject({ status: 503, body: { error: { code: 'PF_ERR_STORE_UNAVAILABLE' } } });
    expect((await api('GET', '/downloads/AAAAAAAAAAAAAAAAAAAAAA', undefined, 'x'.repeat(43))).status).toBe(503);
    const metrics = await (await fetch(`${running.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/peerfill_tracker_store_available 0/);

    await redis.up();
    await eventually(async () => (await api('POST', '/downloads', { file_id: 'alpha' })).status === 201, 20_000, 'REST recovery');
    // The restarted Redis is empty; the next announces repopulate the swarm.
    for (const peer of [a, b, c]) {
      const mark = peer.mark();
      peer.announce(infoHash, { event: 'update' });
      await peer.next(isAnnounceResponse, 10_000, mark);
    }
    expect(await store.counts(infoHash)).toEqual({ complete: 1, incomplete: 2 });
    await signal(b, [a, c], infoHash, 'after-outage');
  });
});
