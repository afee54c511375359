import { describe, expect, it } from 'vitest';
import { Bitfield } from '../../protocol/index.ts';
import { PiecePicker } from '../../client/piece-picker.ts';

const bits = (length: number, set: number[]) => {
  const bitfield = new Bitfield(length);
  for (const index of set) bitfield.set(index);
  return bitfield;
};

describe('PiecePicker', () => {
  it('picks the rarest chunks a peer has first', () => {
    const picker = new PiecePicker(6, () => 0.5);
    picker.addBitfield(bits(6, [0, 1, 2, 3]), true);
    picker.addBitfield(bits(6, [0, 1, 2]), true);
    picker.addBitfield(bits(6, [0, 1]), true);
    // availability: 0->3, 1->3, 2->2, 3->1
    const peer = bits(6, [0, 1, 2, 3]);
    expect(picker.pickRarest(peer, () => true, 2)).toEqual([3, 2]);
    expect(picker.pickRarest(peer, (index) => index !== 3, 1)).toEqual([2]);
  });

  it('breaks ties differently per client (random order)', () => {
    const seen = new Set<number>();
    for (let seed = 0; seed < 20; seed++) {
      let x = seed + 1;
      const random = () => ((x = (x * 16807) % 2147483647) / 2147483647);
      const picker = new PiecePicker(50, random);
      seen.add(picker.pickRarest(bits(50, Array.from({ length: 50 }, (_, i) => i)), () => true, 1)[0]!);
    }
    expect(seen.size).toBeGreaterThan(5);
  });

  it('builds an HTTP run from the lane start, coalescing adjacent chunks', () => {
    const picker = new PiecePicker(10);
    const run = picker.pickHttpRun({ isFree: () => true, cursor: undefined, startOffset: 3, maxRunChunks: 4, avoidServable: true });
    expect(run).toEqual({ start: 3, count: 4 });
  });

  it('stops a run at a chunk a peer can serve, and skips servable chunks', () => {
    const picker = new PiecePicker(10);
    picker.addBitfield(bits(10, [5, 0]), true);
    expect(picker.pickHttpRun({ isFree: () => true, cursor: undefined, startOffset: 3, maxRunChunks: 8, avoidServable: true })).toEqual({ start: 3, count: 2 });
    expect(picker.pickHttpRun({ isFree: () => true, cursor: undefined, startOffset: 5, maxRunChunks: 2, avoidServable: true })).toEqual({ start: 6, count: 2 });
    // Peers that choke us do not count as able to serve.
    picker.setServable(bits(10, [5, 0]), false);
    expect(picker.pickHttpRun({ isFree: () => true, cursor: undefined, startOffset: 5, maxRunChunks: 1, avoidServable: true })).toEqual({ start: 5, count: 1 });
  });

  it('jumps to the middle of the largest gap when its own frontier is taken', () => {
    const picker = new PiecePicker(20);
    const taken = new Set([0, 1, 2, 3, 4, 12, 13]);
    // Gaps: 5..11 (7 chunks) and 14..19 (6 chunks): middle of the first is 8.
    const run = picker.pickHttpRun({ isFree: (i) => !taken.has(i), cursor: 12, startOffset: 0, maxRunChunks: 2, avoidServable: true });
    expect(run).toEqual({ start: 8, count: 2 });
    // It continues its own frontier when that chunk is still free.
    expect(picker.pickHttpRun({ isFree: (i) => !taken.has(i), cursor: 5, startOffset: 0, maxRunChunks: 3, avoidServable: true })).toEqual({ start: 5, count: 3 });
  });

  it('returns nothing when every chunk is taken', () => {
    const picker = new PiecePicker(4);
    expect(picker.pickHttpRun({ isFree: () => false, cursor: undefined, startOffset: 0, maxRunChunks: 4, avoidServable: false })).toBeUndefined();
  });
});
