import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EgressLimiter, type EgressClock } from '../../origin/http/egress-limiter.ts';

/** A simulated clock: sleeping advances time, so the cap is checked without wall time. */
function simulatedClock(): EgressClock & { elapsedMs: () => number } {
  let nowMs = 0;
  return {
    nowMs: () => nowMs,
    sleep: async (ms) => {
      nowMs += ms;
    },
    elapsedMs: () => nowMs,
  };
}

describe('EgressLimiter', () => {
  it('never lets more than rate x time + burst through, for any sequence of sends', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1024, max: 100 * 1024 * 1024 }),
        fc.array(fc.integer({ min: 1, max: 4 * 1024 * 1024 }), { minLength: 1, maxLength: 50 }),
        async (bytesPerSecond, sends) => {
          const clock = simulatedClock();
          const limiter = new EgressLimiter(bytesPerSecond, undefined, clock);
          let sentBytes = 0;
          for (const bytes of sends) {
            await limiter.take(bytes);
            sentBytes += bytes;
            // Everything granted so far fits in the bucket: burst + rate x elapsed (+ this send).
            expect(sentBytes).toBeLessThanOrEqual(limiter.burstBytes + (bytesPerSecond * clock.elapsedMs()) / 1000 + bytes + 1);
          }
          // And it does not throttle below the rate: total time is what the rate requires, no more.
          expect(clock.elapsedMs()).toBeLessThanOrEqual((sentBytes / bytesPerSecond) * 1000 + 1);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('passes every byte through unchanged, paced at the rate', async () => {
    const clock = simulatedClock();
    const limiter = new EgressLimiter(1024 * 1024, undefined, clock);
    const input = randomBytes(700_000);
    const out: Buffer[] = [];
    await pipeline(Readable.from([input.subarray(0, 300_000), input.subarray(300_000)]), limiter.throttle(), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) out.push(chunk);
    });
    expect(Buffer.concat(out).equals(input)).toBe(true);
    // 700,000 bytes at 1 MiB/s with a 64 KiB burst: about 0.6 s of simulated pacing.
    expect(clock.elapsedMs()).toBeGreaterThan(((700_000 - 64 * 1024) / (1024 * 1024)) * 1000 - 1);
  });

  it('paces a piece in slices: each is sent only once the cap allows it, the last handed back', async () => {
    const clock = simulatedClock();
    const limiter = new EgressLimiter(1024 * 1024, 64 * 1024, clock);
    const piece = randomBytes(1024 * 1024);
    const sent: Array<{ bytes: number; atMs: number }> = [];
    const last = await limiter.paceSlices(piece, (slice) => sent.push({ bytes: slice.length, atMs: clock.elapsedMs() }));
    expect(sent.length).toBe(15);
    expect(last.length).toBe(64 * 1024);
    expect(Buffer.concat([piece.subarray(0, 15 * 64 * 1024), last]).equals(piece)).toBe(true);
    // A client that leaves halfway was sent about half the piece, not all of it.
    const byHalfTime = sent.filter((entry) => entry.atMs <= 500).reduce((sum, entry) => sum + entry.bytes, 0);
    expect(byHalfTime).toBeLessThanOrEqual(512 * 1024 + 64 * 1024);
    expect(clock.elapsedMs()).toBeGreaterThanOrEqual(((1024 * 1024 - 64 * 1024) / (1024 * 1024)) * 1000 - 1);
  });

  it('rejects a non-positive rate', () => {
    expect(() => new EgressLimiter(0)).toThrow(RangeError);
  });
});
