/** Bytes per second over a sliding window, cheap enough to keep one per peer. */
export class RateMeter {
  readonly #windowMs: number;
  readonly #now: () => number;
  #samples: Array<{ atMs: number; bytes: number }> = [];
  #total = 0;

  constructor(windowMs = 5000, now: () => number = () => Date.now()) {
    this.#windowMs = windowMs;
    this.#now = now;
  }

  add(bytes: number): void {
    const atMs = this.#now();
    const last = this.#samples[this.#samples.length - 1];
    if (last && atMs - last.atMs < 100) last.bytes += bytes;
    else this.#samples.push({ atMs, bytes });
    this.#total += bytes;
    this.#trim(atMs);
  }

  bytesPerSecond(): number {
    const now = this.#now();
    this.#trim(now);
    if (this.#samples.length === 0) return 0;
    const spanMs = Math.max(1000, now - this.#samples[0]!.atMs);
    return (this.#total * 1000) / spanMs;
  }

  #trim(now: number): void {
    while (this.#samples.length > 0 && now - this.#samples[0]!.atMs > this.#windowMs) this.#total -= this.#samples.shift()!.bytes;
  }
}
