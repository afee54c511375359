import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { hexToBinaryString } from '../../protocol/index.ts';
import { fixtureFiles, type Fixture } from './fixtures/harness.ts';
import { RedisServer, freePort } from './fixtures/redis-server.ts';
import { TestPeer, isAnnounceResponse, isAnswer, isFailure, isOffer } from './fixtures/ws-client.ts';

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

let redis: RedisServer;
let fixture: Fixture;
const processes: TrackerProcess[] = [];
const peers: TestPeer[] = [];

beforeAll(async () => {
  redis = await RedisServer.start();
  fixture = await fixtureFiles();
  processes.push(await spawnTracker(redis.url), await spawnTracker(redis.url));
});
afterAll(async () => {
  await Promise.all(peers.map((peer) => peer.close()));
  await Promise.all(
    processes.map(({ child }) => {
      if (child.exitCode !== null) return Promise.resolve();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return exited;
    }),
  );
  await redis.stop();
});

async function peer(url: string, peerIdHex?: string): Promise<TestPeer> {
  const connected = await TestPeer.connect(url, peerIdHex);
  peers.push(connected);
  return connected;
}

describe('two tracker processes sharing one Redis', () => {
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
});
