/** The window over which the time spent in synchronous writes is measured. */
const WINDOW_MS = 1000;
/**
 * How long writes stay off the thread once they went over their share. Then synchronous writes
 * are tried again: a burst of throttling (the kernel writing back dirty pages) does not send a
 * whole download through the pool, and if the disk is still the bottleneck the retry costs at
 * most one share of one window.
 */
export const SYNC_WRITE_RETRY_MS = 10_000;

/**
 * Whether a chunk write may block the thread (see FileChunkStore's #writeAt): yes while
 * synchronous writes take at most `share` of each window. A single slow write (25-35 ms happen
 * here without any throttling) does not decide it. A share of 0 never allows one.
 */
export class SyncWriteBudget {
  readonly #share: number;
  readonly #now: () => number;
  #windowStartMs = -Infinity;
  #spentMs = 0;
  #pausedUntilMs = -Infinity;

  constructor(share: number, now: () => number = () => performance.now()) {
    this.#share = share;
    this.#now = now;
  }

  get allowsSync(): boolean {
    return this.#share > 0 && this.#now() >= this.#pausedUntilMs;
  }

  /** Runs one synchronous write and counts its time. */
  time<T>(write: () => T): T {
    const startedMs = this.#now();
    const result = write();
    const endedMs = this.#now();
    if (endedMs - this.#windowStartMs > WINDOW_MS) {
      this.#windowStartMs = startedMs;
      this.#spentMs = 0;
    }
    this.#spentMs += endedMs - startedMs;
    if (this.#spentMs > this.#share * WINDOW_MS) {
      this.#pausedUntilMs = endedMs + SYNC_WRITE_RETRY_MS;
      this.#windowStartMs = -Infinity;
      this.#spentMs = 0;
    }
    return result;
  }
}
