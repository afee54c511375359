import { describe, expect, it } from 'vitest';
import type { ChunkAssembly } from '../../client/peer/chunk-assembly.ts';
import { InFlightWindow } from '../../client/in-flight-window.ts';
import { PeerRequests } from '../../client/peer/peer-requests.ts';
import { PeerWire } from '../../client/peer/wire.ts';
import { Scheduler, peerSource } from '../../client/scheduler.ts';
import { BLOCK_SIZE_BYTES, Bitfield, chunkLength } from '../../protocol/index.ts';
import { waitFor } from '../support/net.ts';
import { channelPair } from './fixtures/channel-pair.ts';
import { makeManifest, testBytes } from './fixtures/fake-server.ts';

const CHUNK = 4 * BLOCK_SIZE_BYTES;
const PEER = peerSource('22'.repeat(20));

/** Our wire and a peer's, the peer unchoking us and having every chunk; the peer's side records what we ask. */
async function setUp(options: { maxChunksPerPeer: number; maxBlocksPerPeer: number; windowBytes: number }) {
  const bytes = testBytes(3 * CHUNK + 1000);
  const manifest = await makeManifest(bytes, 'file1', CHUNK);
  const count = manifest.chunks.length;
  const scheduler = new Scheduler({ chunkCount: count, have: new Bitfield(count), peerDeadlineMs: () => 60_000, random: () => 0 });
  scheduler.addPeer(PEER, Bitfield.full(count));
  scheduler.peerUnchoking(PEER, true);
  const [left, right] = channelPair();
  const ours = new PeerWire(left);
  const theirs = new PeerWire(right);
  const asked: Array<{ index: number; offset: number; length: number }> = [];
  const cancelled: Array<{ index: number; offset: number; length: number }> = [];
  theirs.on('request', (block) => asked.push(block));
  theirs.on('cancel', (block) => cancelled.push(block));
  ours.handshake(manifest.info_hash, '11'.repeat(20));
  theirs.handshake(manifest.info_hash, '22'.repeat(20));
  const unchoked = new Promise<void>((resolve) => ours.once('unchoke', () => resolve()));
  theirs.unchoke();
  await unchoked;
  const window = new InFlightWindow(options.windowBytes, () => undefined);
  const requests = new PeerRequests(ours, {
    manifest,
    scheduler,
    reserve: (length) => window.reserve(length),
    unreserve: (length) => window.release(length),
    maxChunksPerPeer: options.maxChunksPerPeer,
    maxBlocksPerPeer: options.maxBlocksPerPeer,
  });
  const assigned = () => [...Array(count).keys()].filter((index) => scheduler.sourcesOf(index).includes(PEER));
  return { bytes, manifest, scheduler, requests, window, asked, cancelled, assigned, close: () => ours.close('test over') };
}

describe('PeerRequests', () => {
  it('asks for blocks up to the per-peer caps, holding exactly the chunks it took in the window', async () => {
    const t = await setUp({ maxChunksPerPeer: 2, maxBlocksPerPeer: 6, windowBytes: 64 * CHUNK });
    t.requests.fill(PEER);
    const chunks = t.assigned();
    expect(chunks).toHaveLength(2);
    const blocks = Math.min(6, chunks.reduce((sum, index) => sum + Math.ceil(chunkLength(t.manifest, index) / BLOCK_SIZE_BYTES), 0));
    await waitFor(() => t.asked.length === blocks, `${blocks} requests`, 5000, 5);
    expect(new Set(t.asked.map((block) => block.index))).toEqual(new Set(chunks));
    expect(t.requests.outstandingBlocks).toBe(blocks);
    expect(t.window.bytes).toBe(chunks.reduce((sum, index) => sum + chunkLength(t.manifest, index), 0));
    t.close();
  });

  it('a full window asks for nothing; a chunk comes back whole from its blocks, and unasked blocks are ignored', async () => {
    const t = await setUp({ maxChunksPerPeer: 4, maxBlocksPerPeer: 64, windowBytes: 1 });
    t.window.reserve(5); // someone else holds the window
    t.requests.fill(PEER);
    expect(t.assigned()).toEqual([]);
    t.window.release(5);

    // An empty window takes one chunk even when it is larger than the cap.
    t.requests.fill(PEER);
    const [index] = t.assigned();
    expect(t.assigned()).toHaveLength(1);
    const length = chunkLength(t.manifest, index!);
    const start = index! * CHUNK;
    expect(t.requests.receive(index! + 1, 0, t.bytes.subarray(0, BLOCK_SIZE_BYTES))).toBeUndefined();
    expect(t.requests.receive(index!, 1, t.bytes.subarray(start, start + BLOCK_SIZE_BYTES))).toBeUndefined();
    let last: ChunkAssembly | undefined;
    for (let offset = 0; offset < length; offset += BLOCK_SIZE_BYTES) {
      last = t.requests.receive(index!, offset, t.bytes.subarray(start + offset, start + Math.min(length, offset + BLOCK_SIZE_BYTES)));
      expect(last).toBeDefined();
    }
    if (!last) throw new Error('no block was taken');
    expect(last.isComplete).toBe(true);
    expect(Buffer.compare(last.bytes, t.bytes.subarray(start, start + length))).toBe(0);
    // Complete: no longer ours; a repeat of its last block is ignored.
    expect(t.requests.outstandingBlocks).toBe(0);
    expect(t.requests.receive(index!, 0, t.bytes.subarray(start, start + BLOCK_SIZE_BYTES))).toBeUndefined();
    t.close();
  });

  it('cancel() names the outstanding blocks and frees the window; drop() gives every chunk back to the scheduler', async () => {
    const t = await setUp({ maxChunksPerPeer: 3, maxBlocksPerPeer: 12, windowBytes: 64 * CHUNK });
    t.requests.fill(PEER);
    const assigned = t.assigned();
    expect(assigned).toHaveLength(3);
    // Three chunks of at most four blocks: every block is asked for at once.
    const blocks = assigned.reduce((sum, index) => sum + Math.ceil(chunkLength(t.manifest, index) / BLOCK_SIZE_BYTES), 0);
    await waitFor(() => t.asked.length === blocks, `${blocks} requests`, 5000, 5);
    const first = assigned.find((index) => chunkLength(t.manifest, index) === CHUNK);
    const firstStart = first! * CHUNK;
    t.requests.receive(first!, 0, t.bytes.subarray(firstStart, firstStart + BLOCK_SIZE_BYTES));
    const windowBefore = t.window.bytes;
    expect(t.requests.cancel(first!)).toBe(true);
    expect(t.requests.cancel(first!)).toBe(false);
    await waitFor(() => t.cancelled.length === 3, 'three cancels', 5000, 5);
    expect(t.cancelled.map((block) => [block.index, block.offset])).toEqual([1, 2, 3].map((block) => [first, block * BLOCK_SIZE_BYTES]));
    expect(t.window.bytes).toBe(windowBefore - chunkLength(t.manifest, first!));
    // cancel() leaves the scheduler to whoever delivered the chunk.
    expect(t.assigned()).toEqual(assigned);

    t.requests.drop(PEER, false);
    expect(t.assigned()).toEqual([first]);
    expect(t.window.bytes).toBe(0);
    expect(t.requests.outstandingBlocks).toBe(0);
    t.close();
  });
});

describe('InFlightWindow', () => {
  it('calls onRoom when a release frees a window that was nearly full, not otherwise', () => {
    let calls = 0;
    const window = new InFlightWindow(800, () => calls++);
    expect(window.reserve(500)).toBe(true);
    expect(window.reserve(400)).toBe(false);
    window.release(100);
    expect(calls).toBe(0);
    expect(window.reserve(400)).toBe(true);
    window.release(800);
    expect(calls).toBe(1);
    expect(window.bytes).toBe(0);
    window.release(10);
    expect(window.bytes).toBe(0);
  });
});
