import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import Client from 'bittorrent-tracker';
import { pino } from 'pino';
import { createStore, type Store } from '../../tracker/index.ts';
import { fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';

// WebRTC for Node; no STUN servers, so only host candidates: traffic stays on this machine
// (npm test runs this inside a network namespace).
const wrtc: unknown = createRequire(import.meta.url)('@roamhq/wrtc');
const rtcConfig = { iceServers: [] };

let fixture: Fixture;
let running: RunningTracker | undefined;
let store: Store | undefined;
const clients: Client[] = [];

beforeAll(async () => {
  fixture = await fixtureFiles();
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => new Promise((resolve) => client.destroy(() => resolve(undefined)))));
  await running?.close();
  await store?.close();
});

interface WirePeer extends EventEmitter {
  connected: boolean;
  send(data: string): void;
  destroy(): void;
}

function isWirePeer(value: unknown): value is WirePeer {
  return value instanceof EventEmitter && typeof (value as Partial<WirePeer>).send === 'function';
}

/** Resolves with the first peer that the client reports and that actually connects. */
function connectedPeer(client: Client): Promise<WirePeer> {
  return new Promise((resolve) => {
    client.on('peer', (peer: unknown) => {
      if (!isWirePeer(peer)) return;
      if (peer.connected) resolve(peer);
      else peer.once('connect', () => resolve(peer));
      peer.on('error', () => undefined);
    });
  });
}

describe('stock bittorrent-tracker client', () => {
  it('two stock clients find each other through our tracker and open a data channel', async () => {
    store = await createStore({ kind: 'memory' }, { logger: pino({ level: 'silent' }) });
    running = await startTracker({ store, directory: fixture.directory, config: { announceIntervalSeconds: 2 } });
    const infoHash = fixture.files[0]!.info_hash;
    const updates: { complete: number; incomplete: number }[] = [];
    // Distinct URLs: the client pools sockets per announce URL, and we want two connections.
    const make = (tag: string) => {
      const client = new Client({ infoHash, peerId: randomBytes(20).toString('hex'), announce: [`${running!.wsUrl}?c=${tag}`], port: 6881, wrtc, rtcConfig });
      client.on('warning', () => undefined);
      client.on('error', () => undefined);
      client.on('update', (data: { complete: number; incomplete: number }) => updates.push({ complete: data.complete, incomplete: data.incomplete }));
      clients.push(client);
      return client;
    };
    const seeder = make('seeder');
    const seederPeer = connectedPeer(seeder);
    seeder.start({ left: 0 });
    await new Promise<void>((resolve) => seeder.once('update', () => resolve()));
    const leecher = make('leecher');
    const leecherPeer = connectedPeer(leecher);
    leecher.start();

    const [a, b] = await Promise.all([seederPeer, leecherPeer]);
    const received = new Promise<string>((resolve) => b.once('data', (data: Uint8Array) => resolve(Buffer.from(data).toString('utf8'))));
    a.send('hello over webrtc');
    expect(await received).toBe('hello over webrtc');
    expect(updates.some((update) => update.complete === 1 && update.incomplete === 1)).toBe(true);

    const scraped = new Promise<{ complete: number; incomplete: number }>((resolve) => leecher.once('scrape', resolve));
    leecher.scrape();
    expect(await scraped).toMatchObject({ complete: 1, incomplete: 1 });
    const text = await (await fetch(`${running.baseUrl}/metrics`)).text();
    expect(text).toMatch(/peerfill_tracker_relayed_signals_total\{kind="offer",via="local"\} [1-9]/);
    expect(text).toMatch(/peerfill_tracker_relayed_signals_total\{kind="answer",via="local"\} [1-9]/);
  });
});
