import { randomBytes } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createStore, type Store } from '../../tracker/index.ts';
import { captureLogger, fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { TestPeer, isAnnounceResponse, isOffer } from './fixtures/ws-client.ts';

let fixture: Fixture;
let running: RunningTracker | undefined;
let store: Store | undefined;
const peers: TestPeer[] = [];

beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.close()));
  await running?.close();
  await store?.close();
  running = undefined;
  store = undefined;
});

async function start(config: Parameters<typeof startTracker>[0]['config'], logger = captureLogger().logger): Promise<RunningTracker> {
  store = await createStore({ kind: 'memory' }, { logger });
  running = await startTracker({ store, directory: fixture.directory, config, logger });
  return running;
}

async function peer(localAddress = '127.0.0.1'): Promise<TestPeer> {
  const connected = await TestPeer.connect(running!.wsUrl, undefined, { localAddress });
  peers.push(connected);
  return connected;
}

function upgradeStatus(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    ws.once('error', reject);
  });
}

const offers = (count: number) => Array.from({ length: count }, (_, i) => ({ offer_id: `o${i}-${randomBytes(4).toString('hex')}`, offer: { type: 'offer', sdp: `v=0 ${i}` } }));

describe('tracker limits per client address', () => {
  it('caps the sockets one address holds; other addresses and freed slots still get in', async () => {
    await start({ maxConnectionsPerAddress: 3 });
    const held = [await peer(), await peer(), await peer()];
    expect(await upgradeStatus(running!.wsUrl, '127.0.0.1')).toBe(429);
    expect(await upgradeStatus(running!.wsUrl, '127.0.0.2')).toBe(101);
    await held[0]!.close();
    peers.splice(peers.indexOf(held[0]!), 1);
    // The slot is freed once the server has seen the close.
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 101; attempt++) {
      status = await upgradeStatus(running!.wsUrl, '127.0.0.1');
      if (status !== 101) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(status).toBe(101);
  });

  it('relays at most the offer budget of one address, over all its sockets', async () => {
    // A rate of 1/s with a burst of 6: within this test, at most about 6 offers leave 127.0.0.1.
    await start({ maxRelayedOffersPerAddressPerSecond: 1, relayedOfferBurstPerAddress: 6, maxOffersPerAnnounce: 10, maxNumwant: 10 });
    const infoHash = fixture.files[0]!.info_hash;
    const targets: TestPeer[] = [];
    for (let index = 0; index < 10; index++) {
      const target = await peer('127.0.0.3');
      target.announce(infoHash, { numwant: 0 });
      await target.next(isAnnounceResponse);
      targets.push(target);
    }
    const senders = [await peer(), await peer(), await peer()];
    for (const sender of senders) {
      sender.announce(infoHash, { offers: offers(10), numwant: 10 });
      await sender.next(isAnnounceResponse);
    }
    // Another address has its own budget.
    const other = await peer('127.0.0.2');
    other.announce(infoHash, { offers: offers(5), numwant: 5 });
    await other.next(isAnnounceResponse);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fromLoopback = new Set(senders.map((sender) => sender.peerId));
    const relayed = peers.flatMap((member) => member.frames.filter(isOffer));
    const fromFirst = relayed.filter((frame) => fromLoopback.has(String(frame.peer_id))).length;
    const fromOther = relayed.filter((frame) => frame.peer_id === other.peerId).length;
    expect(fromFirst).toBeGreaterThanOrEqual(6);
    expect(fromFirst).toBeLessThanOrEqual(8);
    expect(fromOther).toBe(5);
  });

  it('logs refused frames sampled, while the metrics count every one', async () => {
    const capture = captureLogger();
    await start({ maxMessagesPerSecond: 10_000, messageBurst: 10_000 }, capture.logger);
    const noisy = await peer();
    for (let index = 0; index < 2000; index++) noisy.send('{not json');
    const last = noisy.mark();
    noisy.send('{still not json');
    await noisy.next((frame) => typeof frame['failure reason'] === 'string', 10_000, last);
    const refusedLines = capture.lines.filter((line) => String(line.msg).startsWith('tracker frame refused'));
    expect(refusedLines.length).toBe(1);
    expect(refusedLines[0]).toMatchObject({ reason: 'invalid_json', suppressed: 0 });
    const metrics = await (await fetch(`${running!.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/reason="invalid_json"\} 2001/);
  });
});
