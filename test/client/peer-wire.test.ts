import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, PeerWire } from '../../client/peer/wire.ts';
import { waitFor } from '../support/net.ts';
import { channelPair } from './fixtures/channel-pair.ts';

const INFO_HASH = 'ab'.repeat(20);

/** Two PeerWires over an in-memory channel, handshakes sent; `sent` is every message either wrote. */
function wirePair(holdWrites = false): { a: PeerWire; b: PeerWire; sent: Uint8Array[] } {
  const [left, right, sent] = channelPair(holdWrites);
  const a = new PeerWire(left);
  const b = new PeerWire(right);
  a.handshake(INFO_HASH, '11'.repeat(20));
  b.handshake(INFO_HASH, '22'.repeat(20));
  return { a, b, sent };
}

describe('PeerWire', () => {
  it('sends a have with the next bytes to that peer, or on its own within 300 ms, as bittorrent-protocol reads it', async () => {
    const { a, b, sent } = wirePair();
    const haves: number[] = [];
    const requests: number[] = [];
    b.on('have', (index) => haves.push(index));
    b.on('request', ({ index }) => requests.push(index));
    await new Promise((resolve) => setTimeout(resolve, 20));
    a.unchoke();
    b.unchoke();
    await new Promise((resolve) => setTimeout(resolve, 20));

    // Alone, a have waits (up to 300 ms) and goes with the next message: one send for both.
    const sendsBefore = sent.length;
    a.have(7);
    a.have(70_000);
    a.request(3, 0, 16_384);
    await waitFor(() => requests.length === 1, 'the request', 5000, 5);
    expect(haves).toEqual([7, 70_000]);
    expect(requests).toEqual([3]);
    expect(sent.length - sendsBefore).toBe(1);

    // With nothing else to send, it goes on its own.
    a.have(9);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(haves).toEqual([7, 70_000]);
    await waitFor(() => haves.length === 3, 'the have sent on its own', 5000, 10);
    expect(haves).toEqual([7, 70_000, 9]);

    // An urgent one (a chunk from HTTP, which others might fetch from the origin) goes at once.
    a.have(11);
    a.have(12, true);
    await waitFor(() => haves.length === 5, 'the urgent have', 5000, 5);
    expect(haves).toEqual([7, 70_000, 9, 11, 12]);
    a.close('test over');
    b.close('test over');
  });

  it('never sends a message over MAX_MESSAGE_BYTES, and a bitfield larger than one arrives whole', async () => {
    const { a, b, sent } = wirePair();
    const bitfields: Uint8Array[] = [];
    b.on('bitfield', (bytes) => bitfields.push(bytes));
    // 2.5 messages of bitfield (a 50 GiB file of 64 KiB chunks would be ~100 KiB).
    const bitfield = Uint8Array.from({ length: Math.floor(MAX_MESSAGE_BYTES * 2.5) }, (_, i) => i % 251);
    a.bitfield(bitfield);
    await waitFor(() => bitfields.length === 1, 'the bitfield', 5000, 5);
    expect(bitfields[0]).toEqual(bitfield);
    expect(Math.max(...sent.map((message) => message.length))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    a.close('test over');
    b.close('test over');
  });

  it("sends the uploader's answer of 8 blocks (128 KiB and their headers) as one message", async () => {
    const { a, b, sent } = wirePair();
    const pieces: number[] = [];
    b.on('piece', ({ offset }) => pieces.push(offset));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const sendsBefore = sent.length;
    a.have(3);
    for (let block = 0; block < 8; block++) a.piece(5, block * 16_384, new Uint8Array(16_384));
    await waitFor(() => pieces.length === 8, 'the 8 blocks', 5000, 5);
    expect(sent.length - sendsBefore).toBe(1);
    a.close('test over');
    b.close('test over');
  });

  for (const holdWrites of [false, true]) {
    it(`joins each message in a reused buffer only once the channel has taken the last one (${holdWrites ? 'channel holds its writes' : 'channel copies at once'})`, async () => {
      const { a, b, sent } = wirePair(holdWrites);
      const pieces: Array<{ index: number; offset: number; bytes: Uint8Array }> = [];
      b.on('piece', (piece) => pieces.push({ ...piece, bytes: Uint8Array.from(piece.bytes) }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      const block = (index: number, offset: number) => new Uint8Array(16_384).fill((index * 31 + offset / 16_384) % 251);
      const sendsBefore = sent.length;
      // 4 chunks of 16 blocks, a chunk per turn: 2-3 messages each turn.
      for (let index = 0; index < 4; index++) {
        for (let offset = 0; offset < 16 * 16_384; offset += 16_384) a.piece(index, offset, block(index, offset));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await waitFor(() => pieces.length === 64, 'all 64 blocks', 5000, 5);
      for (const piece of pieces) expect(Buffer.from(piece.bytes).equals(block(piece.index, piece.offset)), `block ${piece.index}/${piece.offset}`).toBe(true);
      const joined = sent.slice(sendsBefore).filter((message) => message.byteLength > 16_384);
      expect(joined.length).toBeGreaterThan(4);
      const buffers = new Set(joined.map((message) => message.buffer)).size;
      // Copying channel: one buffer serves every message. Holding channel: a new one each time.
      expect(buffers).toBe(holdWrites ? joined.length : 1);
      a.close('test over');
      b.close('test over');
    });
  }
});
