import { Transform, type TransformCallback } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** Pieces larger than this are paced in slices, so one big read cannot burst past the cap. */
const SLICE_BYTES = 64 * 1024;

/**
 * An origin-wide egress cap in bytes per second, shared by every data-plane body (a token
 * bucket in its GCRA form: one "theoretical arrival time" instead of a token count). Requests
 * are paced in arrival order; a burst of up to `burstBytes` goes out at once.
 */
export interface EgressClock {
  nowMs(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const realClock: EgressClock = {
  nowMs: () => performance.now(),
  sleep: (ms, signal) => sleep(ms, undefined, signal ? { signal } : undefined),
};

export class EgressLimiter {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  private readonly burstMs: number;
  private readonly clock: EgressClock;
  private theoreticalArrivalMs = 0;

  constructor(bytesPerSecond: number, burstBytes = Math.max(SLICE_BYTES, Math.floor(bytesPerSecond / 20)), clock: EgressClock = realClock) {
    if (!(bytesPerSecond > 0)) throw new RangeError('bytesPerSecond must be positive');
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
    this.burstMs = (burstBytes / bytesPerSecond) * 1000;
    this.clock = clock;
  }

  /** Resolves when `bytes` may be sent. */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    const nowMs = this.clock.nowMs();
    const startMs = Math.max(nowMs, this.theoreticalArrivalMs);
    this.theoreticalArrivalMs = startMs + (bytes / this.bytesPerSecond) * 1000;
    const waitMs = this.theoreticalArrivalMs - nowMs - this.burstMs;
    if (waitMs > 0) await this.clock.sleep(waitMs, signal);
  }

  /** A pass-through stream that paces what flows through it. */
  throttle(): Transform {
    const abort = new AbortController();
    const transform = new Transform({
      transform: (chunk: Buffer, _encoding, callback: TransformCallback) => {
        void this.pace(transform, chunk, abort.signal).then(
          () => callback(),
          (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
        );
      },
    });
    transform.once('close', () => abort.abort());
    return transform;
  }

  /**
   * Pace `bytes` in slices: each slice but the last goes to `send` once the cap allows it;
   * the last is returned, its share already taken, for the caller to send with its own
   * completion. A client that leaves mid-response has been sent little past the cap.
   */
  async paceSlices(bytes: Uint8Array, send: (slice: Uint8Array) => void, signal?: AbortSignal): Promise<Uint8Array> {
    let offset = 0;
    for (; bytes.length - offset > SLICE_BYTES; offset += SLICE_BYTES) {
      const slice = bytes.subarray(offset, offset + SLICE_BYTES);
      await this.take(slice.length, signal);
      send(slice);
    }
    const last = bytes.subarray(offset);
    await this.take(last.length, signal);
    return last;
  }

  private async pace(stream: Transform, chunk: Buffer, signal: AbortSignal): Promise<void> {
    stream.push(await this.paceSlices(chunk, (slice) => stream.push(slice), signal));
  }
}
