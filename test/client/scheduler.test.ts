import { describe, expect, it } from 'vitest';
import { Bitfield } from '../../protocol/index.ts';
import { Scheduler, httpSource, peerSource } from '../../client/scheduler.ts';

const bits = (length: number, set: number[]) => {
  const bitfield = new Bitfield(length);
  for (const index of set) bitfield.set(index);
  return bitfield;
};

function makeScheduler(chunkCount: number, options: { nowMs?: () => number; random?: () => number; deadlineMs?: number } = {}) {
  return new Scheduler({ chunkCount, have: new Bitfield(chunkCount), peerDeadlineMs: () => options.deadlineMs ?? 1000, nowMs: options.nowMs, random: options.random ?? (() => 0) });
}

describe('Scheduler', () => {
  it('knows when a connected peer has chunks we need even while it chokes us', () => {
    const scheduler = makeScheduler(4);
    expect(scheduler.peersHaveWantedChunks()).toBe(false);
    const a = peerSource('a'.repeat(40));
    scheduler.addPeer(a, bits(4, [2]));
    expect(scheduler.hasServingPeers()).toBe(false);
    expect(scheduler.peersHaveWantedChunks()).toBe(true);
    scheduler.complete(2, httpSource(0));
    expect(scheduler.peersHaveWantedChunks()).toBe(false);
  });

  it('HTTP only (httpInFileOrder): every lane takes the next run from chunk 0 on, so chunks arrive about in file order', () => {
    const scheduler = new Scheduler({ chunkCount: 40, have: new Bitfield(40), peerDeadlineMs: () => 1000, random: () => 0.5, httpInFileOrder: true });
    const runs = [0, 1, 2, 3, 0, 1].map((lane) => scheduler.nextHttpRun(lane, { laneCount: 4, maxRunChunks: 4, mayTakeServable: true }));
    expect(runs).toEqual([0, 4, 8, 12, 16, 20].map((start) => ({ start, count: 4 })));
    // Without it, lanes spread over the file from a random offset (a swarm's clients spread out).
    const spread = new Scheduler({ chunkCount: 40, have: new Bitfield(40), peerDeadlineMs: () => 1000, random: () => 0.5 });
    expect([0, 1].map((lane) => spread.nextHttpRun(lane, { laneCount: 4, maxRunChunks: 4, mayTakeServable: true })?.start)).toEqual([20, 30]);
  });

  it('gives each chunk to one source at a time', () => {
    const scheduler = makeScheduler(8);
    const a = peerSource('a'.repeat(40));
    const b = peerSource('b'.repeat(40));
    scheduler.addPeer(a, Bitfield.full(8));
    scheduler.addPeer(b, Bitfield.full(8));
    scheduler.peerUnchoking(a, true);
    scheduler.peerUnchoking(b, true);
    const fromA = scheduler.nextForPeer(a, 4);
    const fromB = scheduler.nextForPeer(b, 4);
    const run = scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 8, mayTakeServable: true });
    expect(fromA).toHaveLength(4);
    expect(fromB).toHaveLength(4);
    expect(new Set([...fromA, ...fromB]).size).toBe(8);
    // Everything is assigned: HTTP gets only an endgame duplicate of one peer chunk.
    expect(run?.count).toBe(1);
    for (let index = 0; index < 8; index++) expect(scheduler.sourcesOf(index).length).toBeLessThanOrEqual(2);
  });

  it('asks peers for the rarest chunk first', () => {
    const scheduler = makeScheduler(4);
    const a = peerSource('a'.repeat(40));
    const b = peerSource('b'.repeat(40));
    scheduler.addPeer(a, Bitfield.full(4));
    scheduler.addPeer(b, bits(4, [0, 1, 2]));
    scheduler.peerUnchoking(a, true);
    expect(scheduler.nextForPeer(a, 1)).toEqual([3]);
  });

  it('with no peers, HTTP lanes spread over the file and coalesce runs', () => {
    const scheduler = makeScheduler(64, { random: () => 0 });
    const runs = [0, 1, 2, 3].map((lane) => scheduler.nextHttpRun(lane, { laneCount: 4, maxRunChunks: 8, mayTakeServable: true }));
    expect(runs.map((run) => run?.start)).toEqual([0, 16, 32, 48]);
    expect(runs.every((run) => run?.count === 8)).toBe(true);
  });

  it('different clients start their HTTP fill at different offsets', () => {
    const starts = new Set<number>();
    for (const r of [0.05, 0.3, 0.55, 0.8]) {
      const scheduler = makeScheduler(100, { random: () => r });
      starts.add(scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 1, mayTakeServable: true })!.start);
    }
    expect(starts.size).toBe(4);
  });

  it('HTTP prefers chunks no serving peer has, and leaves the rest to peers', () => {
    const scheduler = makeScheduler(8, { random: () => 0 });
    const a = peerSource('a'.repeat(40));
    scheduler.addPeer(a, bits(8, [0, 1, 2, 3]));
    scheduler.peerUnchoking(a, true);
    const run = scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 8, mayTakeServable: false });
    expect(run).toEqual({ start: 4, count: 4 });
    expect(scheduler.nextHttpRun(1, { laneCount: 2, maxRunChunks: 8, mayTakeServable: false })).toBeUndefined();
  });

  it('re-assigns a chunk whose peer missed the deadline (and not to that peer)', () => {
    let now = 0;
    const scheduler = makeScheduler(2, { nowMs: () => now, deadlineMs: 1000 });
    const slow = peerSource('a'.repeat(40));
    const fast = peerSource('b'.repeat(40));
    scheduler.addPeer(slow, bits(2, [0]));
    scheduler.peerUnchoking(slow, true);
    expect(scheduler.nextForPeer(slow, 1)).toEqual([0]);
    now = 999;
    expect(scheduler.expire()).toEqual([]);
    now = 1001;
    expect(scheduler.expire()).toEqual([{ index: 0, source: slow }]);
    expect(scheduler.sourcesOf(0)).toEqual([]);
    expect(scheduler.nextForPeer(slow, 1)).toEqual([]);
    // Only the slow peer has it, so HTTP may take it even though that peer is serving.
    expect(scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 1, mayTakeServable: false })).toEqual({ start: 0, count: 1 });
    scheduler.addPeer(fast, bits(2, [0, 1]));
    scheduler.peerUnchoking(fast, true);
    expect(scheduler.nextForPeer(fast, 2)).toEqual([1]);
    scheduler.complete(1, fast);
    // Endgame: nothing free, so the fast peer doubles the chunk HTTP holds.
    expect(scheduler.nextForPeer(fast, 1)).toEqual([0]);
    expect(scheduler.sourcesOf(0).sort()).toEqual([httpSource(0), fast].sort());
  });

  it('endgame duplicates a stalled chunk to a second source, and completion names the one to cancel', () => {
    const scheduler = makeScheduler(1);
    const a = peerSource('a'.repeat(40));
    const b = peerSource('b'.repeat(40));
    scheduler.addPeer(a, Bitfield.full(1));
    scheduler.addPeer(b, Bitfield.full(1));
    scheduler.peerUnchoking(a, true);
    scheduler.peerUnchoking(b, true);
    expect(scheduler.nextForPeer(a, 1)).toEqual([0]);
    expect(scheduler.nextForPeer(b, 1)).toEqual([0]);
    // A third source is not added beyond two per chunk.
    expect(scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 1, mayTakeServable: true })).toBeUndefined();
    expect(scheduler.complete(0, b)).toEqual([a]);
    expect(scheduler.isComplete()).toBe(true);
  });

  it('a peer that leaves frees its chunks', () => {
    const scheduler = makeScheduler(3);
    const a = peerSource('a'.repeat(40));
    scheduler.addPeer(a, Bitfield.full(3));
    scheduler.peerUnchoking(a, true);
    expect(scheduler.nextForPeer(a, 3)).toHaveLength(3);
    expect(scheduler.removePeer(a).sort()).toEqual([0, 1, 2]);
    expect(scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 3, mayTakeServable: false })).toEqual({ start: 0, count: 3 });
    expect(scheduler.sourcesOf(1)).toEqual([httpSource(0)]);
  });
});
