import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, PeerWire } from '../../client/peer/wire.ts';
import { waitFor } from '../support/net.ts';

/** Two in-memory channel ends: what one writes, the other emits as data (like a data channel). */
function channelPair(): [Duplex, Duplex, Uint8Array[]] {
  const sent: Uint8Array[] = [];
  const make = (): Duplex => new Duplex({ read() {}, write(chunk: Buffer, _encoding, callback) {
    sent.push(chunk);
    (this === a ? b : a).push(chunk);
    callback();
  } });
  const a = make();
  const b = make();
  return [a, b, sent];
}

const INFO_HASH = 'ab'.repeat(20);

describe('PeerWire', () => {
  it('sends a have with the next bytes to that peer, or on its own within 300 ms, as bittorrent-protocol reads it', async () => {
    const [left, right, sent] = channelPair();
    const a = new PeerWire(left);
    const b = new PeerWire(right);
    const haves: number[] = [];
    const requests: number[] = [];
    b.on('have', (index) => haves.push(index));
    b.on('request', ({ index }) => requests.push(index));
    a.handshake(INFO_HASH, '11'.repeat(20));
    b.handshake(INFO_HASH, '22'.repeat(20));
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
    const [left, right, sent] = channelPair();
    const a = new PeerWire(left);
    const b = new PeerWire(right);
    const bitfields: Uint8Array[] = [];
    b.on('bitfield', (bytes) => bitfields.push(bytes));
    a.handshake(INFO_HASH, '11'.repeat(20));
    b.handshake(INFO_HASH, '22'.repeat(20));
    // 2.5 messages of bitfield (a 50 GiB file of 64 KiB chunks would be ~100 KiB).
    const bitfield = Uint8Array.from({ length: Math.floor(MAX_MESSAGE_BYTES * 2.5) }, (_, i) => i % 251);
    a.bitfield(bitfield);
    await waitFor(() => bitfields.length === 1, 'the bitfield', 5000, 5);
    expect(bitfields[0]).toEqual(bitfield);
    expect(Math.max(...sent.map((message) => message.length))).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    a.close('test over');
    b.close('test over');
  });
});
