import type SimplePeer from 'simple-peer';
import { afterEach, describe, expect, it } from 'vitest';
import { Swarm } from '../../client/peer/swarm.ts';
import { PeerWire } from '../../client/peer/wire.ts';
import { Scheduler } from '../../client/scheduler.ts';
import { Bitfield, type Manifest } from '../../protocol/index.ts';
import { waitFor } from '../support/net.ts';
import { channelPair } from './fixtures/channel-pair.ts';

const CHUNK = 256 * 1024;
const CHUNKS = 8;
const manifest: Manifest = {
  v: 1,
  file_id: 'AAAAAAAAAAAAAAAAAAAAAA',
  name: 'f.bin',
  size: CHUNK * CHUNKS,
  content_type: 'application/octet-stream',
  chunk_size: CHUNK,
  chunks: Array.from({ length: CHUNKS }, () => '00'.repeat(32)),
  sha256: '00'.repeat(32),
  info_hash: 'ab'.repeat(20),
};

const swarms: Swarm[] = [];
afterEach(() => {
  for (const swarm of swarms.splice(0)) swarm.destroy();
});

function makeSwarm(): Swarm {
  const scheduler = new Scheduler({ chunkCount: CHUNKS, have: new Bitfield(CHUNKS), peerDeadlineMs: () => 60_000 });
  const swarm = new Swarm({
    manifest,
    peerIdHex: '11'.repeat(20),
    scheduler,
    acceptChunk: () => Promise.resolve(true),
    read: () => Promise.resolve(undefined),
    reserve: () => false,
    unreserve: () => undefined,
    maxPeers: 4,
    maxChunksPerPeer: 2,
    maxBlocksPerPeer: 64,
    uploadSlots: 2,
    chokeIntervalMs: 60_000,
    banAfterBadChunks: 2,
    warn: () => undefined,
  });
  swarms.push(swarm);
  return swarm;
}

describe('Swarm haves', () => {
  it('tells a peer of a new chunk only if the peer lacks it (have suppression)', async () => {
    const swarm = makeSwarm();
    const [ours, theirs] = channelPair();
    expect(swarm.addChannel(ours as unknown as SimplePeer.Instance, true)).toBe(true);
    const peer = new PeerWire(theirs);
    const haves: number[] = [];
    peer.on('have', (index) => haves.push(index));
    peer.handshake(manifest.info_hash, '22'.repeat(20));
    // The peer has chunks 0-3 of 8.
    peer.bitfield(Uint8Array.of(0b1111_0000));
    await waitFor(() => swarm.peerCount === 1, 'the handshake', 5000, 5);
    await new Promise((resolve) => setTimeout(resolve, 20));

    for (let index = 0; index < CHUNKS; index++) swarm.broadcastHave(index, true);
    await waitFor(() => haves.length >= 4, 'the haves', 5000, 5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(haves).toEqual([4, 5, 6, 7]);
    peer.close('test over');
  });
});
