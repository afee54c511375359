import { describe, expect, it } from 'vitest';
import { Bitfield } from '../../protocol/index.ts';
import { HttpShares } from '../../client/http-shares.ts';
import { LOADING_CLAIM_MS, Scheduler, httpSource, peerIdOf, peerSource } from '../../client/scheduler.ts';
import { MAX_LOADING_RUNS, PeerWire, decodeLoading, encodeLoading } from '../../client/peer/wire.ts';
import { waitFor } from '../support/net.ts';
import { channelPair } from './fixtures/channel-pair.ts';

const A = peerSource('a'.repeat(40));
const lane = { laneCount: 1, maxRunChunks: 4, mayTakeServable: false };

function makeScheduler(chunkCount: number, clock: { now: number }, onHttpLoadingChange?: () => void) {
  return new Scheduler({ chunkCount, have: new Bitfield(chunkCount), peerDeadlineMs: () => 1000, nowMs: () => clock.now, random: () => 0, ...(onHttpLoadingChange ? { onHttpLoadingChange } : {}) });
}

describe('pf_loading: the chunks a peer fetches from HTTP', () => {
  it('HTTP leaves chunks a peer is fetching from the origin to it, until the claim lapses or the peer has them', () => {
    const clock = { now: 0 };
    const scheduler = makeScheduler(8, clock);
    scheduler.addPeer(A, new Bitfield(8));
    scheduler.peerLoading(A, [0, 1, 2, 3]);
    expect(scheduler.nextHttpRun(0, lane)).toEqual({ start: 4, count: 4 });
    // Everything left is claimed: HTTP waits for the peer, as for chunks a peer has.
    expect(scheduler.nextHttpRun(1, { ...lane, laneCount: 2 })).toBeUndefined();
    // The peer got chunk 0 (its have clears the claim) and no longer says it fetches the rest.
    scheduler.peerHave(A, 0);
    expect(scheduler.isClaimedByPeer(0)).toBe(false);
    expect(scheduler.isClaimedByPeer(1)).toBe(true);
    clock.now += LOADING_CLAIM_MS + 1;
    expect(scheduler.nextHttpRun(1, { ...lane, laneCount: 2 })).toEqual({ start: 1, count: 3 });
  });

  it('a peer that leaves takes its claims with it; a new set replaces the last; a claim on a chunk it has is ignored', () => {
    const clock = { now: 0 };
    const scheduler = makeScheduler(8, clock);
    const bitfield = new Bitfield(8);
    bitfield.set(7);
    scheduler.addPeer(A, bitfield);
    scheduler.peerLoading(A, [0, 1, 7]);
    expect([0, 1, 7].map((index) => scheduler.isClaimedByPeer(index))).toEqual([true, true, false]);
    scheduler.peerLoading(A, [5]);
    expect([0, 1, 5].map((index) => scheduler.isClaimedByPeer(index))).toEqual([false, false, true]);
    scheduler.removePeer(A);
    expect(scheduler.isClaimedByPeer(5)).toBe(false);
  });

  it('a claim holds HTTP back only where HTTP avoids peers\' chunks: HTTP that must take them (never-slower) takes claimed ones too', () => {
    const scheduler = makeScheduler(4, { now: 0 });
    scheduler.addPeer(A, new Bitfield(4));
    scheduler.peerLoading(A, [0, 1, 2, 3]);
    expect(scheduler.nextHttpRun(0, { ...lane, mayTakeServable: true })).toEqual({ start: 0, count: 4 });
  });

  it('where our run and a peer\'s claim name the same chunk, the lower peer id keeps it (each side decides alike)', () => {
    const low = peerSource('1'.repeat(40));
    const high = peerSource('9'.repeat(40));
    const clock = { now: 0 };
    const scheduler = new Scheduler({ chunkCount: 8, have: new Bitfield(8), peerDeadlineMs: () => 1000, nowMs: () => clock.now, random: () => 0, selfPeerIdHex: '5'.repeat(40) });
    scheduler.addPeer(low, new Bitfield(8));
    scheduler.addPeer(high, new Bitfield(8));
    expect(scheduler.nextHttpRun(0, lane)).toEqual({ start: 0, count: 4 });
    // Both peers picked chunks of our run before they heard of it.
    scheduler.peerLoading(low, [2]);
    scheduler.peerLoading(high, [3]);
    expect(scheduler.yieldsToPeerClaim(2)).toBe(true);
    expect(scheduler.yieldsToPeerClaim(3)).toBe(false);
    expect(scheduler.yieldsToPeerClaim(1)).toBe(false);
    // A lapsed claim holds nothing back.
    clock.now += LOADING_CLAIM_MS + 1;
    expect(scheduler.yieldsToPeerClaim(2)).toBe(false);
    // Without our own id (a caller that never names it) no run yields.
    const anonymous = makeScheduler(8, { now: 0 });
    anonymous.addPeer(low, new Bitfield(8));
    anonymous.peerLoading(low, [2]);
    expect(anonymous.yieldsToPeerClaim(2)).toBe(false);
  });

  it('with peers in view, HTTP takes its own blocks first, and another\'s only while that owner\'s HTTP is idle', () => {
    const self = '5'.repeat(40);
    const other = peerSource('7'.repeat(40));
    const shares = new HttpShares(self);
    shares.setMembers([peerIdOf(other)], 4);
    const scheduler = new Scheduler({ chunkCount: 64, have: new Bitfield(64), peerDeadlineMs: () => 1000, nowMs: () => 0, random: () => 0.5, selfPeerIdHex: self });
    scheduler.addPeer(other, new Bitfield(64));
    const ours = Array.from({ length: 16 }, (_, block) => block).filter((block) => shares.owns(block * 4));
    expect(ours.length).toBeGreaterThan(0);
    expect(ours.length).toBeLessThan(16);
    // The owner of the rest is at work on one of its blocks.
    const theirs = Array.from({ length: 16 }, (_, block) => block).filter((block) => !shares.owns(block * 4));
    scheduler.peerLoading(other, [theirs[0]! * 4]);
    const taken = new Set<number>();
    for (let lane = 0; ; lane++) {
      const run = scheduler.nextHttpRun(lane, { laneCount: 64, maxRunChunks: 4, mayTakeServable: false });
      if (!run) break;
      for (let index = run.start; index < run.start + run.count; index++) taken.add(Math.floor(index / 4));
    }
    expect([...taken].sort((a, b) => a - b)).toEqual(ours);
    // Its HTTP idle (an empty pf_loading): its blocks are free to take.
    scheduler.peerLoading(other, []);
    const run = scheduler.nextHttpRun(99, { laneCount: 64, maxRunChunks: 4, mayTakeServable: false });
    expect(run && theirs.includes(Math.floor(run.start / 4))).toBe(true);
  });

  it('tells its own peers when its HTTP runs change: once per run taken and once per run let go', () => {
    let changes = 0;
    const scheduler = makeScheduler(16, { now: 0 }, () => changes++);
    const run = scheduler.nextHttpRun(0, lane)!;
    expect(changes).toBe(1);
    scheduler.nextHttpRun(1, { ...lane, laneCount: 2 });
    expect(changes).toBe(2);
    expect(scheduler.httpLoadingRuns()).toEqual([{ start: 0, count: 4 }, { start: 8, count: 4 }]);
    // A chunk that completes leaves the set with its have: no message of its own.
    scheduler.complete(run.start, httpSource(0));
    expect(changes).toBe(2);
    scheduler.releaseAll(httpSource(0));
    expect(changes).toBe(3);
    expect(scheduler.httpLoadingRuns()).toEqual([{ start: 8, count: 4 }]);
    scheduler.releaseAll(httpSource(0));
    expect(changes).toBe(3);
  });

  it('the codec accepts only whole runs inside the file, and at most MAX_LOADING_RUNS of them', () => {
    expect(decodeLoading(encodeLoading([{ start: 2, count: 3 }, { start: 9, count: 1 }]), 10)).toEqual([2, 3, 4, 9]);
    expect(decodeLoading(new Uint8Array(0), 10)).toEqual([]);
    expect(decodeLoading(new Uint8Array(7), 10)).toMatch(/multiple of 8/);
    expect(decodeLoading(encodeLoading([{ start: 8, count: 3 }]), 10)).toMatch(/outside 10 chunks/);
    expect(decodeLoading(encodeLoading([{ start: 0, count: 0 }]), 10)).toMatch(/outside/);
    expect(decodeLoading(encodeLoading([{ start: 0xffffffff, count: 2 }]), 10)).toMatch(/outside/);
    expect(decodeLoading(new Uint8Array(8 * (MAX_LOADING_RUNS + 1)), 10)).toMatch(/at most/);
  });

  it('travels as a BEP 10 extended message between two PeerWires', async () => {
    const [left, right] = channelPair(false);
    const a = new PeerWire(left);
    const b = new PeerWire(right);
    const got: Uint8Array[] = [];
    b.on('loading', (bytes) => got.push(bytes));
    // Before the extended handshake nothing goes (a peer without the extension never gets one).
    a.loading([{ start: 1, count: 2 }]);
    a.handshake('ab'.repeat(20), '11'.repeat(20));
    b.handshake('ab'.repeat(20), '22'.repeat(20));
    await waitFor(() => a.peerTakesLoading && b.peerTakesLoading, 'the extended handshakes', 5000, 5);
    a.loading([{ start: 1, count: 2 }]);
    await waitFor(() => got.length === 1, 'the pf_loading message', 5000, 5);
    expect(decodeLoading(got[0]!, 4)).toEqual([1, 2]);
    a.close('done');
    b.close('done');
  });
});
