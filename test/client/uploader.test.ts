import { describe, expect, it } from 'vitest';
import { TypedEmitter } from '../../client/events.ts';
import { Uploader } from '../../client/peer/uploader.ts';
import type { WireEvents } from '../../client/peer/wire.ts';

const BLOCK = 16 * 1024;

/** A wire that records what the uploader sends, in the order of its synchronous turns. */
class RecordingWire extends TypedEmitter<WireEvents> {
  isClosed = false;
  amChoking = false;
  backlogBytes = 0;
  readonly turns: Array<Array<{ index: number; offset: number; bytes: Uint8Array }>> = [];
  #turn: Array<{ index: number; offset: number; bytes: Uint8Array }> | undefined;

  piece(index: number, offset: number, bytes: Uint8Array): void {
    if (!this.#turn) {
      const turn: Array<{ index: number; offset: number; bytes: Uint8Array }> = [];
      this.#turn = turn;
      this.turns.push(turn);
      queueMicrotask(() => (this.#turn = undefined));
    }
    this.#turn.push({ index, offset, bytes: bytes.slice() });
  }
}

const chunk = (index: number) => Uint8Array.from({ length: 4 * BLOCK * 4 }, (_, i) => (i + index * 13) % 251);

function setup() {
  const wire = new RecordingWire();
  const reads: Array<{ index: number; offset: number; length: number }> = [];
  let release: (() => void) | undefined;
  let isHeld = false;
  const uploader = new Uploader(wire, {
    has: () => true,
    chunkLength: () => 16 * BLOCK,
    read: async (index, offset, length) => {
      reads.push({ index, offset, length });
      if (isHeld) await new Promise<void>((resolve) => (release = resolve));
      return chunk(index).slice(offset, offset + length);
    },
    onViolation: (reason) => {
      throw new Error(reason);
    },
  });
  const request = (index: number, offset: number, length = BLOCK) => wire.emit('request', { index, offset, length });
  return { wire, reads, uploader, request, hold: () => (isHeld = true), release: () => release?.() };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 10));

describe('Uploader', () => {
  it('reads adjacent requests of one chunk at once and answers them in one turn (one data-channel message)', async () => {
    const { wire, reads, request, hold, release } = setup();
    hold();
    request(2, 0); // read alone: nothing else is queued yet
    for (let block = 1; block <= 10; block++) request(2, block * BLOCK);
    request(3, 0);
    for (let read = 0; read < 4; read++) {
      release();
      await settle();
    }
    expect(reads).toEqual([
      { index: 2, offset: 0, length: BLOCK },
      { index: 2, offset: BLOCK, length: 8 * BLOCK }, // 128 KiB at most
      { index: 2, offset: 9 * BLOCK, length: 2 * BLOCK },
      { index: 3, offset: 0, length: BLOCK },
    ]);
    expect(wire.turns.map((turn) => turn.length)).toEqual([1, 8, 2, 1]);
    for (const { index, offset, bytes } of wire.turns.flat()) expect(bytes).toEqual(chunk(index).slice(offset, offset + bytes.length));
  });

  it('does not send a block the peer cancelled while its read was under way', async () => {
    const { wire, request, hold, release } = setup();
    hold();
    request(1, 0);
    await settle();
    request(1, BLOCK);
    request(1, 2 * BLOCK);
    release(); // the first read ends; the next takes both queued blocks and waits
    await settle();
    wire.emit('cancel', { index: 1, offset: 2 * BLOCK, length: BLOCK });
    release();
    await settle();
    expect(wire.turns.flat().map((piece) => piece.offset)).toEqual([0, BLOCK]);
  });
});
