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

  it('jumps into the middle half of a gap when its own frontier is taken, and continues its own run otherwise', () => {
    const taken = new Set([0, 1, 2, 3, 4, 12, 13]);
    // Gaps: 5..11 (7 chunks) and 14..19 (6 chunks); never a chunk at either end of one.
    const middles = new Set([6, 7, 8, 9, 10, 15, 16, 17, 18]);
    for (let seed = 1; seed <= 50; seed++) {
      const picker = new PiecePicker(20, lcg(seed));
      const run = picker.pickHttpRun({ isFree: (i) => !taken.has(i), cursor: 12, startOffset: 0, maxRunChunks: 2, avoidServable: true });
      expect(middles.has(run!.start)).toBe(true);
    }
    const picker = new PiecePicker(20);
    expect(picker.pickHttpRun({ isFree: (i) => !taken.has(i), cursor: 5, startOffset: 0, maxRunChunks: 3, avoidServable: true })).toEqual({ start: 5, count: 3 });
  });

  it('clients that know the same swarm jump to different chunks, not all to one', () => {
    // 8 clients, 256 chunks, peers have all but two large gaps: where does each jump?
    const have = bits(256, []);
    for (let i = 0; i < 256; i++) if (i < 40 || (i >= 120 && i < 150)) have.set(i);
    const starts = new Set<number>();
    for (let client = 1; client <= 8; client++) {
      const picker = new PiecePicker(256, lcg(client * 7919));
      picker.addBitfield(have, true);
      starts.add(picker.pickHttpRun({ isFree: () => true, cursor: 0, startOffset: 0, maxRunChunks: 1, avoidServable: true })!.start);
    }
    expect(starts.size).toBeGreaterThanOrEqual(6);
  });

  it('returns nothing when every chunk is taken', () => {
    const picker = new PiecePicker(4);
    expect(picker.pickHttpRun({ isFree: () => false, cursor: undefined, startOffset: 0, maxRunChunks: 4, avoidServable: false })).toBeUndefined();
  });
});

/** A small seeded generator, so each simulated client draws its own numbers. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => (state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32;
}
