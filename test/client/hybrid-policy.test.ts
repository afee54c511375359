import { describe, expect, it } from 'vitest';
import { HybridPolicy, NEVER_SLOWER_MARGIN } from '../../client/hybrid-policy.ts';
import { peerSource } from '../../client/scheduler.ts';

const MB = 1_000_000;
const MiB = 1024 * 1024;

/** A clock the test moves by hand. */
function fakeClock(startMs = 0) {
  const clock = { now: startMs, nowMs: () => clock.now, advance: (ms: number) => void (clock.now += ms) };
  return clock;
}

/** One HTTP lane busy for `ms`, delivering `bytesPerSecond` in 100 ms steps. */
function runHttpLane(policy: HybridPolicy, clock: ReturnType<typeof fakeClock>, bytesPerSecond: number, ms: number): void {
  policy.httpLaneBegin();
  for (let elapsed = 0; elapsed < ms; elapsed += 100) {
    clock.advance(100);
    policy.httpBytes(bytesPerSecond / 10);
  }
  policy.httpLaneEnd();
}

describe('HybridPolicy.httpShareOfServable', () => {
  it('gives HTTP nothing while no serving peer rate is known', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    runHttpLane(policy, clock, 25 * MB, 1000);
    expect(policy.httpShareOfServable({ servableFreeBytes: 160 * MiB, otherFreeBytes: 0, servingPeerBytesPerSecond: 0 })).toBe(0);
  });

  it('gives HTTP nothing while the peers are ahead', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    runHttpLane(policy, clock, 5 * MB, 1000);
    expect(policy.httpBytesPerSecond()).toBeCloseTo(5 * MB, -3);
    // Peers: 10 MiB at 50 MB/s (0.2 s); HTTP: 100 MiB of its own at 5 MB/s (21 s).
    expect(policy.httpShareOfServable({ servableFreeBytes: 10 * MiB, otherFreeBytes: 100 * MiB, servingPeerBytesPerSecond: 50 * MB })).toBe(0);
  });

  it('slow peers (L1-like): HTTP takes the share that makes both sides end together', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    // Over 16 MiB, so the busy rate's decay runs too: it must keep the rate.
    runHttpLane(policy, clock, 25 * MB, 2000);
    const httpRate = policy.httpBytesPerSecond();
    expect(httpRate).toBeCloseTo(25 * MB, -3);
    const S = 160 * MiB;
    const O = 0;
    const peerRate = 2 * MB;
    const share = policy.httpShareOfServable({ servableFreeBytes: S, otherFreeBytes: O, servingPeerBytesPerSecond: peerRate });
    const expected = (S * 25 * MB - O * peerRate) / (25 * MB + peerRate);
    expect(Math.abs(share - expected) / expected).toBeLessThan(0.01);
    // Both sides then end together: peers' rest at their rate, HTTP's part at its rate.
    expect((S - share) / peerRate).toBeCloseTo((O + share) / httpRate, 1);
  });

  it('the share accounts for HTTP work of its own (otherFreeBytes)', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    runHttpLane(policy, clock, 20 * MB, 1000);
    const work = { servableFreeBytes: 100 * MiB, otherFreeBytes: 20 * MiB, servingPeerBytesPerSecond: 5 * MB };
    const expected = (work.servableFreeBytes * 20 * MB - work.otherFreeBytes * 5 * MB) / (25 * MB);
    expect(Math.abs(policy.httpShareOfServable(work) - expected) / expected).toBeLessThan(0.01);
  });

  it('an origin-bound crowd (L3-like): HTTP slower than the peers takes none of their chunks, though balancing would', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    // One home's share of an origin 8 homes split: 3 Mbit; its peers give it 15 Mbit.
    runHttpLane(policy, clock, 375_000, 2000);
    const work = { servableFreeBytes: 40 * MiB, otherFreeBytes: 2 * MiB, servingPeerBytesPerSecond: 1_875_000 };
    const balance = (work.servableFreeBytes * 375_000 - work.otherFreeBytes * 1_875_000) / (375_000 + 1_875_000);
    expect(balance).toBeGreaterThan(MiB);
    expect(policy.httpShareOfServable(work)).toBe(0);
  });

  it('HTTP takes only what keeps the peers within the margin of HTTP alone, when that is less than the balance', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    runHttpLane(policy, clock, 10 * MB, 2000);
    const S = 100 * MiB;
    const peerRate = 5 * MB;
    const share = policy.httpShareOfServable({ servableFreeBytes: S, otherFreeBytes: 0, servingPeerBytesPerSecond: peerRate });
    const balance = (S * 10 * MB) / (15 * MB);
    expect(share).toBeLessThan(balance);
    // The peers' rest then ends exactly at the margin of HTTP alone's time.
    expect((S - share) / peerRate).toBeCloseTo((NEVER_SLOWER_MARGIN * S) / policy.httpBytesPerSecond(), 1);
  });

  it('HTTP with no estimate yet takes half the servable bytes only when it has nothing else to do', () => {
    const policy = new HybridPolicy({ nowMs: () => 0 });
    expect(policy.httpShareOfServable({ servableFreeBytes: 10 * MiB, otherFreeBytes: 0, servingPeerBytesPerSecond: MB })).toBe(5 * MiB);
    expect(policy.httpShareOfServable({ servableFreeBytes: 10 * MiB, otherFreeBytes: MiB, servingPeerBytesPerSecond: MB })).toBe(0);
  });

  it('with a speed floor the floor decides: the share is every servable byte', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: 8 * MB });
    expect(policy.hasFloor).toBe(true);
    expect(policy.httpShareOfServable({ servableFreeBytes: 160 * MiB, otherFreeBytes: 3 * MiB, servingPeerBytesPerSecond: 0 })).toBe(160 * MiB);
    runHttpLane(policy, clock, 5 * MB, 1000);
    expect(policy.httpShareOfServable({ servableFreeBytes: 10 * MiB, otherFreeBytes: 100 * MiB, servingPeerBytesPerSecond: 50 * MB })).toBe(10 * MiB);
  });
});

describe('HybridPolicy HTTP busy rate', () => {
  it('ignores idle time: 1 s busy then 10 s idle still reads the busy rate', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    runHttpLane(policy, clock, 4 * MB, 1000);
    expect(policy.httpBytesPerSecond()).toBeCloseTo(4 * MB, -3);
    clock.advance(10_000);
    expect(policy.httpBytesPerSecond()).toBeCloseTo(4 * MB, -3);
    expect(policy.httpLaneBytesPerSecond(4)).toBeCloseTo(MB, -3);
    // Idle lanes report no live HTTP rate on the page.
    expect(policy.info().httpBytesPerSecond).toBe(0);
  });

  it('overlapping lanes count their busy time once', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    policy.httpLaneBegin();
    policy.httpLaneBegin();
    clock.advance(1000);
    policy.httpBytes(3 * MB);
    policy.httpBytes(3 * MB);
    policy.httpLaneEnd();
    policy.httpLaneEnd();
    clock.advance(5000);
    expect(policy.httpBytesPerSecond()).toBeCloseTo(6 * MB, -3);
  });

  it('under 200 ms of busy time gives no estimate (0)', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    policy.httpLaneBegin();
    clock.advance(150);
    policy.httpBytes(2 * MB);
    policy.httpLaneEnd();
    clock.advance(10_000);
    expect(policy.httpBytesPerSecond()).toBe(0);
    // The next busy stretch adds up with it: 150 + 100 ms is enough.
    policy.httpLaneBegin();
    clock.advance(100);
    policy.httpBytes(MB / 2);
    policy.httpLaneEnd();
    expect(policy.httpBytesPerSecond()).toBeCloseTo((2.5 * MB * 1000) / 250, -3);
  });
});

describe('HybridPolicy.mayHttpStart (speed floor)', () => {
  // 8 Mbit/s = 1 MB/s; defaults: 3 s credit, 1 s lead.
  const floor = 8 * MB;

  it('lets HTTP start while the download is behind the floor', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: floor });
    policy.restart();
    expect(policy.mayHttpStart(0, true)).toBe(true);
    clock.advance(5000);
    policy.delivered(2 * MB);
    // Target 1 MB/s * (5 s + 1 s lead) = 6 MB; 2 MB delivered.
    expect(policy.mayHttpStart(0, true)).toBe(true);
    expect(policy.decisions.floorHeld).toBe(0);
  });

  it('holds HTTP (and counts it) when delivered + in flight is ahead of floor * (elapsed + lead)', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: floor });
    policy.restart();
    clock.advance(1000);
    // Target at 1 s: 1 MB/s * (1 s + 1 s) = 2 MB.
    policy.delivered(1 * MB);
    expect(policy.mayHttpStart(0, true)).toBe(true);
    expect(policy.mayHttpStart(1.5 * MB, true)).toBe(false);
    expect(policy.decisions.floorHeld).toBe(1);
    policy.delivered(1.5 * MB);
    expect(policy.mayHttpStart(0, true)).toBe(false);
    expect(policy.decisions.floorHeld).toBe(2);
    expect(policy.info().decisions.floorHeld).toBe(2);
  });

  it('cannot bank more than floorCreditMs: after a 50 MB burst, a stall of the credit and a bit lets HTTP in', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: floor });
    policy.restart();
    for (let step = 0; step < 10; step++) {
      clock.advance(100);
      policy.delivered(5 * MB);
      expect(policy.mayHttpStart(0, true)).toBe(false);
    }
    // 50 MB in 1 s, 48 MB ahead of the floor; the line now sits 3 s (3 MB) under it.
    const burstEndMs = clock.now;
    clock.now = burstEndMs + 2900;
    expect(policy.mayHttpStart(0, true)).toBe(false);
    clock.now = burstEndMs + 3100;
    expect(policy.mayHttpStart(0, true)).toBe(true);
    // Without the cap HTTP would wait about 48 s.
  });

  it('a shorter credit lets HTTP in sooner', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: floor, floorCreditMs: 500 });
    policy.restart();
    clock.advance(1000);
    policy.delivered(50 * MB);
    expect(policy.mayHttpStart(0, true)).toBe(false);
    clock.advance(400);
    expect(policy.mayHttpStart(0, true)).toBe(false);
    clock.advance(200);
    expect(policy.mayHttpStart(0, true)).toBe(true);
  });

  it('is always true without a floor, or when no peer could give us anything', () => {
    const clock = fakeClock();
    const noFloor = new HybridPolicy({ nowMs: clock.nowMs });
    noFloor.delivered(500 * MB);
    expect(noFloor.mayHttpStart(100 * MB, true)).toBe(true);
    expect(noFloor.mayHttpStart(0, false)).toBe(true);
    const withFloor = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: floor });
    withFloor.restart();
    withFloor.delivered(500 * MB);
    expect(withFloor.mayHttpStart(100 * MB, false)).toBe(true);
    expect(withFloor.decisions.floorHeld).toBe(0);
    expect(noFloor.decisions.floorHeld).toBe(0);
  });
});

describe('HybridPolicy peer rates', () => {
  it('sums the peers it knows and forgets one that leaves', () => {
    const clock = fakeClock(10_000);
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    const a = peerSource('a'.repeat(40));
    const b = peerSource('b'.repeat(40));
    policy.peerBytes(a, 2 * MB);
    policy.peerBytes(b, 3 * MB);
    expect(policy.peerBytesPerSecond(a)).toBe(2 * MB);
    expect(policy.totalPeerBytesPerSecond()).toBe(5 * MB);
    policy.peerGone(b);
    expect(policy.peerBytesPerSecond(b)).toBe(0);
    expect(policy.info()).toMatchObject({ mode: 'never-slower', speedFloorBitsPerSecond: 0, peerBytesPerSecond: 2 * MB });
  });
});

describe('HybridPolicy.isWellAheadOfHttpAlone (the endgame)', () => {
  /** A run that delivered `deliveredBytes` over `elapsedMs`, HTTP at `httpRate`, one peer at `peerRate`. */
  function policyAfter(elapsedMs: number, deliveredBytes: number, httpRate: number, peerRate: number) {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    policy.restart();
    policy.delivered(deliveredBytes);
    clock.advance(elapsedMs - 3000);
    // The rates as measured just now (the peer's over its last seconds).
    runHttpLane(policy, clock, httpRate, 1000);
    for (let elapsed = 0; elapsed < 2000; elapsed += 100) {
      clock.advance(100);
      policy.peerBytes(peerSource('a'.repeat(40)), peerRate / 10);
    }
    return policy;
  }

  it('an origin-bound crowd client is far ahead of HTTP alone: its late peers keep their chunks', () => {
    // 60 MiB in 40 s; HTTP alone gets it 3 Mbit/s (180 s for the file); peers give 10 Mbit/s.
    expect(policyAfter(40_000, 60 * MiB, 375_000, 1_250_000).isWellAheadOfHttpAlone(4 * MiB)).toBe(true);
  });

  it('beside a fast CDN the download is not ahead of HTTP alone: HTTP still takes late chunks', () => {
    // 60 MiB in 10 s with HTTP at 25 MB/s (2.7 s for the run alone) and a 2 MB/s peer.
    expect(policyAfter(10_000, 60 * MiB, 25 * MB, 2 * MB).isWellAheadOfHttpAlone(4 * MiB)).toBe(false);
  });

  it('is never ahead without both estimates, nor with a speed floor', () => {
    const clock = fakeClock();
    const policy = new HybridPolicy({ nowMs: clock.nowMs });
    policy.restart();
    expect(policy.isWellAheadOfHttpAlone(MiB)).toBe(false);
    const floored = new HybridPolicy({ nowMs: clock.nowMs, speedFloorBitsPerSecond: 20e6 });
    floored.restart();
    expect(floored.isWellAheadOfHttpAlone(MiB)).toBe(false);
  });
});

describe('HybridPolicy: HTTP alone is judged over the whole run', () => {
  it('an origin a crowd shared, idle at the end: its fast rate now does not buy peers\' chunks from it', () => {
    const clock = fakeClock();
    const work = { servableFreeBytes: 8 * MiB, otherFreeBytes: 0, servingPeerBytesPerSecond: 1.5 * MB };
    const crowd = new HybridPolicy({ nowMs: clock.nowMs });
    crowd.restart();
    // 30 s of a shared origin at 375 kB/s (HTTP alone: 180 s for 64 MiB), peers gave the rest.
    runHttpLane(crowd, clock, 375_000, 30_000);
    crowd.delivered(56 * MiB);
    // Now the origin idles: one lane gets 3 MB/s, twice the peers' rate.
    runHttpLane(crowd, clock, 3 * MB, 4000);
    crowd.peerBytes(peerSource('a'.repeat(40)), 1.5 * MB);
    expect(crowd.httpShareOfServable(work)).toBe(0);
    // The same rates now, but a run that has only just begun: HTTP alone would be faster.
    const fresh = new HybridPolicy({ nowMs: clock.nowMs });
    fresh.restart();
    runHttpLane(fresh, clock, 3 * MB, 4000);
    fresh.peerBytes(peerSource('a'.repeat(40)), 1.5 * MB);
    expect(fresh.httpShareOfServable(work)).toBeGreaterThan(0);
  });
});
