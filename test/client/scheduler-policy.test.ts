import { describe, expect, it } from 'vitest';
import { Bitfield } from '../../protocol/index.ts';
import { HybridPolicy } from '../../client/hybrid-policy.ts';
import { Scheduler, httpSource, peerSource } from '../../client/scheduler.ts';

const MB = 1_000_000;
const CHUNK = 1 * MB;

const bits = (length: number, set: number[]) => {
  const bitfield = new Bitfield(length);
  for (const index of set) bitfield.set(index);
  return bitfield;
};

/**
 * A scheduler with a policy on one fake clock. HTTP has measured `httpBytesPerSecond` (all
 * lanes, one lane busy for 1 s), and each chunk is CHUNK bytes.
 */
function setup(chunkCount: number, options: { httpBytesPerSecond: number; httpEndgameMinAgeMs?: number; deadlineMs?: number }) {
  const clock = { now: 0 };
  const nowMs = () => clock.now;
  const policy = new HybridPolicy({ nowMs });
  policy.httpLaneBegin();
  clock.now += 1000;
  policy.httpBytes(options.httpBytesPerSecond);
  policy.httpLaneEnd();
  const scheduler = new Scheduler({
    chunkCount,
    have: new Bitfield(chunkCount),
    peerDeadlineMs: () => options.deadlineMs ?? 20_000,
    httpEndgameMinAgeMs: options.httpEndgameMinAgeMs,
    nowMs,
    random: () => 0,
    policy,
    chunkBytes: () => CHUNK,
  });
  return { clock, policy, scheduler };
}

/** A serving peer with all chunks whose measured rate is `bytesPerSecond` (one sample, read within 1 s). */
function servingPeer(scheduler: Scheduler, policy: HybridPolicy, name: string, chunkCount: number, bytesPerSecond: number) {
  const source = peerSource(name.repeat(40));
  scheduler.addPeer(source, Bitfield.full(chunkCount));
  scheduler.peerUnchoking(source, true);
  policy.peerBytes(source, bytesPerSecond);
  expect(policy.peerBytesPerSecond(source)).toBe(bytesPerSecond);
  return source;
}

const endgame = (laneCount: number) => ({ laneCount, maxRunChunks: 4, mayTakeServable: true });

describe('Scheduler with a HybridPolicy: HTTP endgame beside a late peer', () => {
  // HTTP 20 MB/s over 2 lanes is 10 MB/s a lane: 100 ms for a 1 MB chunk. A peer keeps its
  // chunk unless it would need more than 1.5 x 100 = 150 ms.

  it('duplicates a slow peer’s chunk over HTTP, and counts it as lateToHttp', () => {
    const { policy, scheduler } = setup(1, { httpBytesPerSecond: 20 * MB });
    const peer = servingPeer(scheduler, policy, 'a', 1, 6 * MB); // 1 MB at 6 MB/s: 167 ms > 150 ms
    expect(scheduler.nextForPeer(peer, 1)).toEqual([0]);
    expect(scheduler.nextHttpRun(0, endgame(2))).toEqual({ start: 0, count: 1 });
    expect(scheduler.sourcesOf(0).sort()).toEqual([httpSource(0), peer].sort());
    expect(policy.decisions.lateToHttp).toBe(1);
    // Whichever lands first names the other to cancel.
    expect(scheduler.complete(0, httpSource(0))).toEqual([peer]);
  });

  it('leaves a fast peer’s chunk alone', () => {
    const { policy, scheduler } = setup(1, { httpBytesPerSecond: 20 * MB });
    const peer = servingPeer(scheduler, policy, 'a', 1, 7 * MB); // 143 ms < 150 ms
    expect(scheduler.nextForPeer(peer, 1)).toEqual([0]);
    expect(scheduler.nextHttpRun(0, endgame(2))).toBeUndefined();
    expect(scheduler.sourcesOf(0)).toEqual([peer]);
    expect(policy.decisions.lateToHttp).toBe(0);
  });

  it('a very fast peer keeps its chunk against a slow origin', () => {
    const { policy, scheduler } = setup(1, { httpBytesPerSecond: 5 * MB });
    const peer = servingPeer(scheduler, policy, 'a', 1, 50 * MB);
    expect(scheduler.nextForPeer(peer, 1)).toEqual([0]);
    expect(scheduler.nextHttpRun(0, endgame(1))).toBeUndefined();
    expect(policy.decisions.lateToHttp).toBe(0);
  });

  it('one HTTP lane’s time is the whole HTTP rate split over the lanes', () => {
    // Peer: 167 ms. With 1 lane HTTP needs 50 ms (75 ms with the margin): late. With 4 lanes,
    // 200 ms (300 ms): not late.
    const four = setup(1, { httpBytesPerSecond: 20 * MB });
    const peerOfFour = servingPeer(four.scheduler, four.policy, 'a', 1, 6 * MB);
    four.scheduler.nextForPeer(peerOfFour, 1);
    expect(four.scheduler.nextHttpRun(0, endgame(4))).toBeUndefined();
    const one = setup(1, { httpBytesPerSecond: 20 * MB });
    const peerOfOne = servingPeer(one.scheduler, one.policy, 'a', 1, 6 * MB);
    one.scheduler.nextForPeer(peerOfOne, 1);
    expect(one.scheduler.nextHttpRun(0, endgame(1))).toEqual({ start: 0, count: 1 });
  });

  it('the peer’s queue ahead of a chunk counts: its second chunk is late, its first is not', () => {
    const { policy, scheduler } = setup(2, { httpBytesPerSecond: 20 * MB });
    const peer = servingPeer(scheduler, policy, 'a', 2, 10 * MB); // first 100 ms, second 200 ms
    const picked = scheduler.nextForPeer(peer, 2);
    expect(picked).toHaveLength(2);
    expect(scheduler.nextHttpRun(0, endgame(2))).toEqual({ start: picked[1], count: 1 });
    expect(policy.decisions.lateToHttp).toBe(1);
    // The first stays the peer's alone.
    expect(scheduler.nextHttpRun(1, endgame(2))).toBeUndefined();
    expect(scheduler.sourcesOf(picked[0]!)).toEqual([peer]);
  });

  it('HTTP endgame waits while a free chunk is left for HTTP', () => {
    const { policy, scheduler } = setup(2, { httpBytesPerSecond: 20 * MB });
    const peer = servingPeer(scheduler, policy, 'a', 2, 2 * MB); // 500 ms a chunk: late
    const [first] = scheduler.nextForPeer(peer, 1);
    expect(first).toBeDefined();
    // The other chunk is free but the serving peer has it: HTTP may not take it, and no
    // endgame either, since a free chunk is left.
    expect(scheduler.nextHttpRun(0, { laneCount: 2, maxRunChunks: 4, mayTakeServable: false })).toBeUndefined();
    expect(policy.decisions.lateToHttp).toBe(0);
    expect(scheduler.sourcesOf(first!)).toEqual([peer]);
    // Once the peer holds both, HTTP duplicates the one it has had longest.
    expect(scheduler.nextForPeer(peer, 1)).toEqual([1 - first!]);
    expect(scheduler.nextHttpRun(0, { laneCount: 2, maxRunChunks: 4, mayTakeServable: false })).toEqual({ start: first, count: 1 });
    expect(policy.decisions.lateToHttp).toBe(1);
  });

  it('freeWork reports the serving peers’ measured rate', () => {
    const { policy, scheduler } = setup(4, { httpBytesPerSecond: 20 * MB });
    servingPeer(scheduler, policy, 'a', 4, 2 * MB);
    const choking = peerSource('b'.repeat(40));
    scheduler.addPeer(choking, bits(4, [0]));
    policy.peerBytes(choking, 9 * MB);
    scheduler.nextHttpRun(0, { laneCount: 1, maxRunChunks: 1, mayTakeServable: true });
    expect(scheduler.freeWork()).toEqual({ servableFreeBytes: 3 * CHUNK, otherFreeBytes: 0, servingPeerBytesPerSecond: 2 * MB });
  });

  it('without a policy, the fixed rule duplicates a peer chunk once it is httpEndgameMinAgeMs old', () => {
    let now = 0;
    const scheduler = new Scheduler({ chunkCount: 1, have: new Bitfield(1), peerDeadlineMs: () => 20_000, httpEndgameMinAgeMs: 3000, nowMs: () => now, random: () => 0, chunkBytes: () => CHUNK });
    const peer = peerSource('a'.repeat(40));
    scheduler.addPeer(peer, Bitfield.full(1));
    scheduler.peerUnchoking(peer, true);
    expect(scheduler.nextForPeer(peer, 1)).toEqual([0]);
    now = 2999;
    expect(scheduler.nextHttpRun(0, endgame(2))).toBeUndefined();
    now = 5000;
    expect(scheduler.nextHttpRun(0, endgame(2))).toEqual({ start: 0, count: 1 });
  });

  // Fails today: see the report. The peer's expected finish is fixed when the chunk is
  // assigned; once that moment has passed, `expected - now` is negative, so #isLateForHttp
  // calls the peer "about to finish" forever and HTTP never duplicates the chunk (until the
  // 20 s peer deadline), although the fixed rule without a policy would after 3 s.
  it('a fast peer that stalls past its expected finish is duplicated by HTTP', () => {
    const { clock, policy, scheduler } = setup(1, { httpBytesPerSecond: 20 * MB, httpEndgameMinAgeMs: 3000 });
    const peer = servingPeer(scheduler, policy, 'a', 1, 50 * MB); // expected in 20 ms
    expect(scheduler.nextForPeer(peer, 1)).toEqual([0]);
    expect(scheduler.nextHttpRun(0, endgame(2))).toBeUndefined();
    // 5 s later nothing has come from the peer (its rate meter has aged out too).
    clock.now += 5000;
    expect(scheduler.expire()).toEqual([]);
    expect(scheduler.nextHttpRun(0, endgame(2))).toEqual({ start: 0, count: 1 });
    expect(policy.decisions.lateToHttp).toBe(1);
  });
});
