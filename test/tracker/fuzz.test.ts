import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import WebSocket from 'ws';
import { pino } from 'pino';
import { hexToBinaryString } from '../../protocol/index.ts';
import { createStore, type Store } from '../../tracker/index.ts';
import { fixtureFiles, startTracker, type Fixture, type RunningTracker } from './fixtures/harness.ts';
import { TestPeer, eventually, isAnnounceResponse, isAnswer, isOffer } from './fixtures/ws-client.ts';

// A gc() for this process, to compare heaps after collection rather than guess.
setFlagsFromString('--expose-gc');
const collectGarbage: unknown = runInNewContext('gc');
const isCallable = (value: unknown): value is () => void => typeof value === 'function';
function gc(): void {
  if (!isCallable(collectGarbage)) throw new Error('gc() is not available');
  collectGarbage();
}

const FRAMES = 12_000;
const HOSTILE_SOCKETS = 4;

let fixture: Fixture;
let store: Store;
let running: RunningTracker;

beforeAll(async () => {
  fixture = await fixtureFiles();
  store = await createStore({ kind: 'memory' }, { logger: pino({ level: 'silent' }) });
  // Limits high enough that hostile frames reach the parser instead of the rate limiter.
  running = await startTracker({
    store,
    directory: fixture.directory,
    config: { maxMessagesPerSecond: 1_000_000, messageBurst: 1_000_000, announceIntervalSeconds: 60 },
  });
});
afterAll(async () => {
  await running.close();
  await store.close();
});

function hostileFrames(count: number, victimId: string, infoHash: string): (string | Uint8Array)[] {
  const binary20 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((code) => String.fromCharCode(code)), minLength: 20, maxLength: 20 });
  const anyValue = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.anything(), { maxLength: 5 }), fc.object());
  const announceLike = fc.record(
    {
      action: fc.oneof(fc.constantFrom('announce', 'scrape', 'connect', 'ANNOUNCE', ''), anyValue),
      info_hash: fc.oneof(fc.constant(hexToBinaryString(infoHash)), binary20, anyValue, fc.array(binary20, { maxLength: 60 })),
      peer_id: fc.oneof(fc.constant(victimId), binary20, anyValue),
      event: fc.oneof(fc.constantFrom('started', 'stopped', 'completed', 'update', 'paused', 'exploded'), anyValue),
      numwant: fc.oneof(fc.integer({ min: -10, max: 1_000_000 }), anyValue),
      left: fc.oneof(fc.integer(), anyValue),
      offers: fc.oneof(
        fc.array(fc.record({ offer_id: fc.string({ maxLength: 80 }), offer: fc.record({ type: fc.constantFrom('offer', 'answer', 'pranswer'), sdp: fc.string() }) }), { maxLength: 60 }),
        anyValue,
      ),
      to_peer_id: fc.oneof(fc.constant(victimId), binary20, anyValue),
      answer: fc.oneof(fc.record({ type: fc.constant('answer'), sdp: fc.string() }), anyValue),
      offer_id: fc.oneof(fc.string({ maxLength: 80 }), anyValue),
      pf_session: fc.oneof(fc.string({ minLength: 16, maxLength: 64 }), anyValue),
      pf_have: fc.oneof(fc.base64String(), anyValue),
    },
    { requiredKeys: [] },
  );
  const frame = fc.oneof(
    { weight: 6, arbitrary: announceLike.map((value) => JSON.stringify(value)) },
    { weight: 2, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }) },
    // Spoofing: well-formed announces and answers under the victim's peer_id.
    {
      weight: 1,
      arbitrary: fc
        .record({ event: fc.constantFrom('started', 'stopped', 'completed', 'update', 'paused'), answer: fc.boolean() })
        .map(({ event, answer }) =>
          JSON.stringify(
            answer
              ? { action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: victimId, to_peer_id: victimId, offer_id: 'o', answer: { type: 'answer', sdp: 'x' } }
              : { action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: victimId, event },
          ),
        ),
    },
    // Huge arrays within the payload limit (rejected by schema: more than 50 offers).
    { weight: 1, arbitrary: fc.constant(JSON.stringify({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: victimId, offers: Array.from({ length: 500 }, () => ({ offer_id: 'x', offer: { type: 'offer', sdp: 'y' } })) })) },
  );
  return fc.sample(frame, { numRuns: count, seed: 4242 });
}

/** A hostile connection that can wait until the tracker has worked through what it sent. */
class HostileSocket {
  private scrapes = 0;
  private waiting: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('error', () => undefined);
    ws.on('message', (data: Buffer) => {
      if (!data.toString('utf8').startsWith('{"action":"scrape"')) return;
      this.scrapes++;
      this.waiting?.();
    });
  }

  static async open(url: string): Promise<HostileSocket> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new HostileSocket(ws);
  }

  /** Frames are handled in order per socket: a scrape answered means all before it were. */
  async drain(): Promise<void> {
    const target = this.scrapes + 1;
    const done = new Promise<void>((resolve) => {
      this.waiting = () => {
        if (this.scrapes >= target) resolve();
      };
    });
    this.ws.send(JSON.stringify({ action: 'scrape', info_hash: [] }));
    await done;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

async function oversized(url: string, infoHash: string): Promise<number> {
  const socket = await HostileSocket.open(url);
  const closed = new Promise<number>((resolve) => socket.ws.once('close', (code: number) => resolve(code)));
  socket.ws.send(JSON.stringify({ action: 'announce', info_hash: hexToBinaryString(infoHash), offers: Array.from({ length: 20_000 }, () => ({ offer_id: 'x' })) }));
  return closed;
}

describe('fuzz: hostile frames', () => {
  it(`survives ${FRAMES} malformed frames while valid peers keep signalling, and memory returns to baseline`, async () => {
    const infoHash = fixture.files[0]!.info_hash;
    const victimHex = randomBytes(20).toString('hex');
    const a = await TestPeer.connect(running.wsUrl, victimHex);
    const b = await TestPeer.connect(running.wsUrl);
    a.announce(infoHash, { left: 0 });
    await a.next(isAnnounceResponse);
    b.announce(infoHash);
    await b.next(isAnnounceResponse);

    const roundTrip = async (tag: string) => {
      const mark = a.mark();
      const bMark = b.mark();
      b.announce(infoHash, { event: 'update', offers: [{ offer_id: tag, offer: { type: 'offer', sdp: 'v=0' } }], numwant: 1 });
      const offer = await a.next((frame) => isOffer(frame) && frame.offer_id === tag, 10_000, mark);
      expect(offer.peer_id).toBe(b.peerId);
      a.send({ action: 'announce', info_hash: hexToBinaryString(infoHash), peer_id: a.peerId, to_peer_id: b.peerId, offer_id: tag, answer: { type: 'answer', sdp: 'v=0' } });
      const answer = await b.next((frame) => isAnswer(frame) && frame.offer_id === tag, 10_000, bMark);
      expect(answer.peer_id).toBe(a.peerId);
    };

    // Warm up code paths, then take the baseline.
    await roundTrip('warm-up');
    gc();
    const baseline = process.memoryUsage().heapUsed;

    let frames: (string | Uint8Array)[] | undefined = hostileFrames(FRAMES, a.peerId, infoHash);
    const sockets = await Promise.all(Array.from({ length: HOSTILE_SOCKETS }, () => HostileSocket.open(running.wsUrl)));
    for (let i = 0; i < frames.length; i++) {
      const frame = frames[i]!;
      sockets[i % HOSTILE_SOCKETS]!.ws.send(frame, { binary: typeof frame !== 'string' });
      if (i % 1000 === 999) {
        await Promise.all(sockets.map((socket) => socket.drain()));
        await roundTrip(`during-${i}`);
        // Frames past maxPayload close their socket (1009) instead.
        expect(await oversized(running.wsUrl, infoHash)).toBe(1009);
      }
    }
    await Promise.all(sockets.map((socket) => socket.drain()));
    frames = undefined;
    const metricsText = await (await fetch(`${running.baseUrl}/metrics`)).text();
    let refused = 0;
    for (const match of metricsText.matchAll(/peerfill_tracker_rejects_total\{reason="(\w+)"\} (\d+)/g)) refused += Number(match[2]);
    expect(refused).toBeGreaterThanOrEqual(10_000);
    await roundTrip('after');

    // The victim's identity and counts survived every spoofing attempt.
    const mark = a.mark();
    a.announce(infoHash, { event: 'update', left: 0 });
    expect(await a.next(isAnnounceResponse, 10_000, mark)).toMatchObject({ complete: 1, incomplete: 1 });
    const metrics = await (await fetch(`${running.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/peerfill_tracker_rejects_total\{reason="invalid_message"\} \d{3,}/);
    expect(metrics).toMatch(/peerfill_tracker_rejects_total\{reason="spoofed_peer_id"\} \d+/);

    await Promise.all(sockets.map((socket) => socket.close()));
    await eventually(async () => (await store.swarmCount()) === 1, 10_000, 'only the real swarm left');
    await a.close();
    await b.close();
    await eventually(async () => (await store.swarmCount()) === 0, 10_000, 'swarm pruned');
    // Memory: back within a few MB of the baseline once the hostile sockets are gone.
    let growth = Infinity;
    for (let attempt = 0; attempt < 10 && growth > 8 * 1024 * 1024; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      growth = process.memoryUsage().heapUsed - baseline;
    }
    expect(growth).toBeLessThan(8 * 1024 * 1024);
  });
});
