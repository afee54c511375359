import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { hexToBinaryString, trackerResponseCodec } from '../../protocol/index.ts';
import { createStore, type Store } from '../../tracker/index.ts';
import { captureLogger, fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { TestPeer, eventually, isAnnounceResponse, isAnswer, isFailure, isOffer } from './fixtures/ws-client.ts';

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

async function start(config: Parameters<typeof startTracker>[0]['config'] = {}, logger = pino({ level: 'silent' })): Promise<RunningTracker> {
  store = await createStore({ kind: 'memory' }, { logger });
  running = await startTracker({ store, directory: fixture.directory, config, logger });
  return running;
}

async function peer(peerIdHex?: string): Promise<TestPeer> {
  const connected = await TestPeer.connect(running!.wsUrl, peerIdHex);
  peers.push(connected);
  return connected;
}

const sdp = (type: 'offer' | 'answer', text = 'v=0') => ({ type, sdp: text });
const offers = (count: number) => Array.from({ length: count }, (_, i) => ({ offer_id: `offer-${i}-${randomBytes(4).toString('hex')}`, offer: sdp('offer', `v=0 ${i}`) }));

describe('WebSocket tracker', () => {
  it('answers announces with interval and counts, relays offers and answers', async () => {
    await start();
    const infoHash = fixture.files[0]!.info_hash;
    const a = await peer();
    const b = await peer();
    a.announce(infoHash, { left: 0 });
    const first = await a.next(isAnnounceResponse);
    expect(trackerResponseCodec.is(first)).toBe(true);
    expect(first).toMatchObject({ action: 'announce', info_hash: hexToBinaryString(infoHash), interval: 2, 'min interval': 1, complete: 1, incomplete: 0 });

    const bOffers = offers(3);
    b.announce(infoHash, { offers: bOffers, numwant: 3 });
    expect(await b.next(isAnnounceResponse)).toMatchObject({ complete: 1, incomplete: 1 });
    // Only one other peer: exactly one offer goes out, to a, from b.
    const offer = await a.next(isOffer);
    expect(offer).toEqual({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: b.peerId, offer_id: bOffers[0]!.offer_id, offer: bOffers[0]!.offer });

    const mark = a.mark();
    a.send({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, to_peer_id: b.peerId, offer_id: offer.offer_id, answer: sdp('answer') });
    const answer = await b.next(isAnswer);
    expect(answer).toEqual({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, offer_id: offer.offer_id, answer: sdp('answer') });
    // An answer gets no announce response of its own (as bittorrent-tracker).
    a.send({ action: 'scrape', info_hash: hexToBinaryString(infoHash) });
    const scrape = await a.next((frame) => frame.action === 'scrape', 5000, mark);
    expect(a.frames.slice(mark).filter(isAnnounceResponse)).toHaveLength(0);
    expect(scrape).toEqual({ action: 'scrape', files: { [hexToBinaryString(infoHash)]: { complete: 1, incomplete: 1, downloaded: 1 } }, flags: { min_request_interval: 2 } });
  });

  it('counts completed and stopped, and prunes the emptied swarm', async () => {
    await start();
    const infoHash = fixture.files[0]!.info_hash;
    const a = await peer();
    a.announce(infoHash);
    expect(await a.next(isAnnounceResponse)).toMatchObject({ complete: 0, incomplete: 1 });
    let mark = a.mark();
    a.announce(infoHash, { event: 'completed', left: 0 });
    expect(await a.next(isAnnounceResponse, 5000, mark)).toMatchObject({ complete: 1, incomplete: 0 });
    mark = a.mark();
    a.announce(infoHash, { event: 'stopped' });
    expect(await a.next(isAnnounceResponse, 5000, mark)).toMatchObject({ complete: 0, incomplete: 0 });
    expect(await store!.swarmCount()).toBe(0);
  });

  it('accepts only published info_hashes unless open', async () => {
    await start();
    const a = await peer();
    const unknown = randomBytes(20).toString('hex');
    a.announce(unknown);
    const failure = await a.next(isFailure);
    expect(failure).toMatchObject({ pf_code: 'PF_ERR_FILE_NOT_FOUND', action: 'announce', info_hash: hexToBinaryString(unknown) });
    expect(await store!.swarmCount()).toBe(0);
    await running!.close();
    await store!.close();

    await start({ open: true });
    const b = await peer();
    b.announce(unknown);
    expect(await b.next(isAnnounceResponse)).toMatchObject({ incomplete: 1 });
  });

  it('binds a peer_id to the socket that first announced it', async () => {
    const { logger, lines } = captureLogger();
    await start({}, logger);
    const infoHash = fixture.files[0]!.info_hash;
    const victimId = randomBytes(20).toString('hex');
    const victim = await peer(victimId);
    const other = await peer();
    victim.announce(infoHash);
    await victim.next(isAnnounceResponse);
    other.announce(infoHash);
    await other.next(isAnnounceResponse);

    const attacker = await peer(victimId);
    for (const event of ['update', 'stopped', 'completed']) {
      const mark = attacker.mark();
      attacker.announce(infoHash, { event });
      expect(await attacker.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_UNAUTHORIZED' });
    }
    // Nor can it answer as the victim.
    let mark = attacker.mark();
    attacker.send({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: attacker.peerId, to_peer_id: other.peerId, offer_id: 'x', answer: sdp('answer') });
    expect(await attacker.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_UNAUTHORIZED' });
    expect(other.frames.filter(isAnswer)).toHaveLength(0);
    // The victim is still in the swarm, with its counts untouched.
    mark = victim.mark();
    victim.announce(infoHash, { event: 'update' });
    expect(await victim.next(isAnnounceResponse, 5000, mark)).toMatchObject({ complete: 0, incomplete: 2 });
    expect(lines.some((line) => line.level === 40 && line.reason === 'spoofed_peer_id')).toBe(true);

    // Once the owner's socket closes, the peer_id is free again.
    await victim.close();
    mark = attacker.mark();
    await eventually(async () => (await store!.counts(infoHash)).incomplete === 1);
    attacker.announce(infoHash);
    expect(await attacker.next(isAnnounceResponse, 5000, mark)).toMatchObject({ incomplete: 2 });
  });

  it('answers bad frames with a failure frame and keeps the socket', async () => {
    await start();
    const a = await peer();
    const infoHash = fixture.files[0]!.info_hash;
    const bad: unknown[] = [
      'not json',
      '[]',
      'null',
      { action: 'connect' },
      { action: 'announce', info_hash: 'short', peer_id: a.peerId },
      { action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, event: 'exploded' },
      { action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, offers: 'many' },
      { action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, numwant: -1 },
      { action: 'scrape', info_hash: [1, 2, 3] },
    ];
    for (const frame of bad) {
      const mark = a.mark();
      a.send(frame);
      expect(await a.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_TRACKER_MESSAGE_INVALID' });
    }
    const mark = a.mark();
    a.ws.send(Buffer.from([0, 1, 2, 3]), { binary: true });
    expect(await a.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_TRACKER_MESSAGE_INVALID' });
    a.announce(infoHash);
    expect(await a.next(isAnnounceResponse)).toMatchObject({ incomplete: 1 });
  });

  it('caps offers per announce and numwant', async () => {
    await start({ maxOffersPerAnnounce: 3, maxNumwant: 2 });
    const infoHash = fixture.files[0]!.info_hash;
    const others = await Promise.all(Array.from({ length: 6 }, () => peer()));
    for (const other of others) {
      other.announce(infoHash);
      await other.next(isAnnounceResponse);
    }
    const a = await peer();
    a.announce(infoHash, { offers: offers(10), numwant: 10 });
    await a.next(isAnnounceResponse);
    // Let every relay land, then count: 2 = maxNumwant.
    const probe = await peer();
    probe.send({ action: 'scrape', info_hash: hexToBinaryString(infoHash) });
    await probe.next((frame) => frame.action === 'scrape');
    await eventually(() => others.reduce((sum, other) => sum + other.frames.filter(isOffer).length, 0) >= 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(others.reduce((sum, other) => sum + other.frames.filter(isOffer).length, 0)).toBe(2);
    // numwant asked by the client lowers it further.
    a.announce(infoHash, { event: 'update', offers: offers(5), numwant: 1 });
    await eventually(() => others.reduce((sum, other) => sum + other.frames.filter(isOffer).length, 0) >= 3);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(others.reduce((sum, other) => sum + other.frames.filter(isOffer).length, 0)).toBe(3);
  });

  it('limits swarms and peer_ids per socket', async () => {
    await start({ maxSwarmsPerSocket: 2, maxPeerIdsPerSocket: 2, open: true });
    const a = await peer();
    for (let i = 0; i < 2; i++) {
      const mark = a.mark();
      a.announce(randomBytes(20).toString('hex'));
      await a.next(isAnnounceResponse, 5000, mark);
    }
    let mark = a.mark();
    a.announce(randomBytes(20).toString('hex'));
    expect(await a.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_RATE_LIMITED' });
    // A second and third peer_id on the same socket.
    const hash = randomBytes(20).toString('hex');
    mark = a.mark();
    a.send({ action: 'announce', info_hash: hexToBinaryString(hash), peer_id: hexToBinaryString(randomBytes(20).toString('hex')), event: 'stopped' });
    await a.next(isAnnounceResponse, 5000, mark);
    mark = a.mark();
    a.send({ action: 'announce', info_hash: hexToBinaryString(hash), peer_id: hexToBinaryString(randomBytes(20).toString('hex')), event: 'stopped' });
    expect(await a.next(isFailure, 5000, mark)).toMatchObject({ pf_code: 'PF_ERR_RATE_LIMITED' });
  });

  it('refuses frames over the rate limit, then closes a socket that keeps flooding', async () => {
    await start({ maxMessagesPerSecond: 5, messageBurst: 5 });
    const a = await peer();
    const infoHash = fixture.files[0]!.info_hash;
    for (let i = 0; i < 20; i++) a.send({ action: 'scrape', info_hash: hexToBinaryString(infoHash) });
    const failure = await a.next(isFailure);
    expect(failure).toMatchObject({ pf_code: 'PF_ERR_RATE_LIMITED' });
    await eventually(() => a.frames.filter((frame) => frame.action === 'scrape').length >= 5);
    expect(a.frames.filter((frame) => frame.action === 'scrape').length).toBeLessThan(20);
    for (let i = 0; i < 400 && a.ws.readyState === a.ws.OPEN; i++) a.send('x');
    expect(await a.closed()).toBe(1008);
  });

  it('closes sockets whose frames exceed maxPayload', async () => {
    await start({ maxPayloadBytes: 4096 });
    const a = await peer();
    a.send({ action: 'scrape', pad: 'x'.repeat(8192) });
    expect(await a.closed()).toBe(1009);
  });

  it('expires peers that miss their announces and closes idle sockets', async () => {
    await start({ announceIntervalSeconds: 1, idleTimeoutMs: 1 });
    const infoHash = fixture.files[0]!.info_hash;
    const quiet = await peer();
    const chatty = await peer();
    quiet.announce(infoHash);
    chatty.announce(infoHash);
    await quiet.next(isAnnounceResponse);
    await chatty.next(isAnnounceResponse);
    expect(await store!.counts(infoHash)).toEqual({ complete: 0, incomplete: 2 });
    // chatty keeps announcing; quiet stays silent and is dropped from the swarm, then closed.
    const keepAlive = setInterval(() => chatty.announce(infoHash, { event: 'update' }), 300);
    try {
      await eventually(async () => (await store!.counts(infoHash)).incomplete === 1, 20_000, 'quiet peer expiry');
      expect(await quiet.closed()).toBe(1000);
      expect(chatty.ws.readyState).toBe(chatty.ws.OPEN);
    } finally {
      clearInterval(keepAlive);
    }
    await chatty.close();
    await eventually(async () => (await store!.swarmCount()) === 0, 10_000, 'swarm pruned');
  });

  it('serves /metrics', async () => {
    await start();
    const a = await peer();
    a.announce(fixture.files[0]!.info_hash);
    await a.next(isAnnounceResponse);
    a.send('junk');
    await a.next(isFailure);
    const text = await (await fetch(`${running!.baseUrl}/metrics`)).text();
    expect(text).toMatch(/peerfill_tracker_connected_peers 1/);
    expect(text).toMatch(/peerfill_tracker_swarms 1/);
    expect(text).toMatch(/peerfill_tracker_announces_total\{event="started"\} 1/);
    expect(text).toMatch(/peerfill_tracker_rejects_total\{reason="invalid_json"\} 1/);
  });
});
