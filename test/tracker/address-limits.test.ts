import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createStore, parseTrustProxy, type ProxyTrust, type Store } from '../../tracker/index.ts';
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

function upgradeStatus(url: string, localAddress: string, forwardedFor?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { localAddress, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    ws.once('error', reject);
  });
}

/** An HTTP request from `localAddress`, with an X-Forwarded-For of the client's choosing; resolves to the status. */
function httpStatus(url: string, options: { method?: string; body?: unknown; localAddress: string; forwardedFor?: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    if (options.forwardedFor !== undefined) headers['x-forwarded-for'] = options.forwardedFor;
    const request = httpRequest(url, { method: options.method ?? 'GET', localAddress: options.localAddress, headers }, (response) => {
      response.resume();
      response.once('end', () => resolve(response.statusCode ?? 0));
    });
    request.once('error', reject);
    request.end(body);
  });
}

function trust(text: string): ProxyTrust {
  const parsed = parseTrustProxy(text);
  if (!parsed.ok) throw new Error(parsed.errors.join('; '));
  return parsed.trust;
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

describe('the client address behind a proxy', () => {
  const createSession = (localAddress: string, forwardedFor?: string) =>
    httpStatus(`${running!.baseUrl}/downloads`, { method: 'POST', body: { file_id: fixture.files[0]!.file_id }, localAddress, forwardedFor });

  it('without --trust-proxy, X-Forwarded-For is ignored: a client cannot spoof its way past the per-address caps', async () => {
    await start({ maxConnectionsPerAddress: 2, sessionCreatesPerAddressPerSecond: 1, sessionCreateBurstPerAddress: 3 });
    expect(await upgradeStatus(running!.wsUrl, '127.0.0.1', '198.51.100.1')).toBe(101);
    peers.push(await peer());
    peers.push(await peer());
    for (const forwardedFor of ['198.51.100.2', '198.51.100.3, 203.0.113.4', '::1']) {
      expect(await upgradeStatus(running!.wsUrl, '127.0.0.1', forwardedFor), forwardedFor).toBe(429);
    }
    const statuses = [];
    for (let index = 0; index < 5; index++) statuses.push(await createSession('127.0.0.1', `198.51.100.${10 + index}`));
    expect(statuses).toEqual([201, 201, 201, 429, 429]);
  });

  it('with it, the client is the first untrusted hop of X-Forwarded-For, for sockets, sessions and /metrics', async () => {
    await start({ maxConnectionsPerAddress: 2, sessionCreatesPerAddressPerSecond: 1, sessionCreateBurstPerAddress: 2, trustProxy: trust('127.0.0.1') });
    const sockets: WebSocket[] = [];
    const open = (localAddress: string, forwardedFor?: string) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(running!.wsUrl, { localAddress, headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor } });
        sockets.push(ws);
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
    try {
      // Two clients behind the trusted proxy at 127.0.0.1: each has its own cap.
      await open('127.0.0.1', '203.0.113.1');
      await open('127.0.0.1', '198.51.100.99, 203.0.113.1');
      expect(await upgradeStatus(running!.wsUrl, '127.0.0.1', '203.0.113.1')).toBe(429);
      expect(await upgradeStatus(running!.wsUrl, '127.0.0.1', '203.0.113.2')).toBe(101);
      // 127.0.0.2 is no trusted proxy: what it forwards is not believed.
      await open('127.0.0.2', '203.0.113.7');
      await open('127.0.0.2', '203.0.113.8');
      expect(await upgradeStatus(running!.wsUrl, '127.0.0.2', '203.0.113.9')).toBe(429);
    } finally {
      for (const ws of sockets) ws.close();
    }
    expect([await createSession('127.0.0.1', '203.0.113.1'), await createSession('127.0.0.1', '203.0.113.1'), await createSession('127.0.0.1', '203.0.113.1')]).toEqual([201, 201, 429]);
    expect(await createSession('127.0.0.1', '203.0.113.2')).toBe(201);
    // A proxy on this machine does not make its clients loopback readers of /metrics.
    expect(await httpStatus(`${running!.baseUrl}/metrics`, { localAddress: '127.0.0.1', forwardedFor: '203.0.113.1' })).toBe(403);
    expect(await httpStatus(`${running!.baseUrl}/metrics`, { localAddress: '127.0.0.1', forwardedFor: '127.0.0.1' })).toBe(200);
    expect(await httpStatus(`${running!.baseUrl}/metrics`, { localAddress: '127.0.0.1' })).toBe(200);
  });

  it('counts an IPv6 client by its /64 and an IPv4-mapped address as the IPv4 one, for sockets and sessions', async () => {
    await start({ maxConnectionsPerAddress: 2, sessionCreatesPerAddressPerSecond: 1, sessionCreateBurstPerAddress: 2, trustProxy: trust('127.0.0.1') });
    const sockets: WebSocket[] = [];
    const open = (forwardedFor: string) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(running!.wsUrl, { localAddress: '127.0.0.1', headers: { 'x-forwarded-for': forwardedFor } });
        sockets.push(ws);
        ws.once('open', () => resolve(101));
        ws.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
        ws.once('error', reject);
      });
    try {
      expect([await open('2001:db8:1:2::1'), await open('2001:db8:1:2:aaaa:bbbb:cccc:dddd'), await open('2001:db8:1:2::ffff')]).toEqual([101, 101, 429]);
      expect(await open('2001:db8:1:3::1')).toBe(101);
      expect([await open('203.0.113.5'), await open('::ffff:203.0.113.5'), await open('::ffff:cb00:7105')]).toEqual([101, 101, 429]);
    } finally {
      for (const ws of sockets) ws.terminate();
    }
    expect([await createSession('127.0.0.1', '2001:db8:9:9::1'), await createSession('127.0.0.1', '2001:db8:9:9::2'), await createSession('127.0.0.1', '2001:db8:9:9:1:2:3:4')]).toEqual([201, 201, 429]);
    expect(await createSession('127.0.0.1', '2001:db8:9:a::1')).toBe(201);
    expect([await createSession('127.0.0.1', '198.51.100.8'), await createSession('127.0.0.1', '::ffff:198.51.100.8'), await createSession('127.0.0.1', '0:0:0:0:0:ffff:c633:6408')]).toEqual([201, 201, 429]);
  });
});
