/**
 * A token bucket: `ratePerSecond` sustained, `burst` at once. The clock is the caller's
 * (every call takes `nowMs`), so the logic is pure and tests need no sleeps.
 */
export class TokenBucket {
  private tokens: number;
  private refilledAtMs: number;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    this.tokens = burst;
    this.refilledAtMs = nowMs;
  }

  private refill(nowMs: number): void {
    const elapsedMs = nowMs - this.refilledAtMs;
    if (elapsedMs <= 0) return;
    this.tokens = Math.min(this.burst, this.tokens + (elapsedMs * this.ratePerSecond) / 1000);
    this.refilledAtMs = nowMs;
  }

  /** Take up to `count` whole tokens; returns how many were granted (0 when empty). */
  take(nowMs: number, count = 1): number {
    this.refill(nowMs);
    const granted = Math.min(count, Math.floor(this.tokens));
    this.tokens -= granted;
    return granted;
  }

  /** Milliseconds until one token is there (0 if one is now). */
  msUntilToken(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond);
  }

  /** Full again: the bucket remembers nothing a fresh one would not. */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.burst;
  }
}

/**
 * One bucket per key (a client address, a publisher key), at most `maxKeys` of them: when
 * full, buckets that refilled are dropped (they hold no state), then the oldest. Memory stays
 * bounded however many addresses an attacker has.
 */
export class KeyedBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  get size(): number {
    return this.buckets.size;
  }

  private bucket(key: string, nowMs: number): TokenBucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.evict(nowMs);
      bucket = new TokenBucket(this.ratePerSecond, this.burst, nowMs);
      this.buckets.set(key, bucket);
    }
    return bucket;
  }

  private evict(nowMs: number): void {
    for (const [key, bucket] of this.buckets) if (bucket.isFull(nowMs)) this.buckets.delete(key);
    const oldest = this.buckets.keys().next();
    if (this.buckets.size >= this.maxKeys && !oldest.done) this.buckets.delete(oldest.value);
  }

  take(key: string, nowMs: number, count = 1): number {
    return this.bucket(key, nowMs).take(nowMs, count);
  }

  msUntilToken(key: string, nowMs: number): number {
    return this.buckets.get(key)?.msUntilToken(nowMs) ?? 0;
  }
}
