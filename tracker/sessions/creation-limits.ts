import { PfError } from '../../protocol/index.ts';
import type { AddressGroup } from '../client-address.ts';
import type { TrackerLimits } from '../config.ts';
import type { TrackerMetrics } from '../metrics.ts';
import { KeyedBuckets } from '../ws/token-bucket.ts';

/** Session creation budgets: per client address, and per publisher key. Over budget: 429 with Retry-After. */
export class CreationLimits {
  private readonly byAddress: KeyedBuckets;
  private readonly byKey: KeyedBuckets;

  constructor(
    limits: TrackerLimits,
    private readonly metrics: TrackerMetrics,
    private readonly now: () => number,
  ) {
    this.byAddress = new KeyedBuckets(limits.sessionCreatesPerAddressPerSecond, limits.sessionCreateBurstPerAddress);
    this.byKey = new KeyedBuckets(limits.sessionCreatesPerKeyPerSecond, limits.sessionCreateBurstPerKey);
  }

  /** One client: an IPv4 address, or an IPv6 /64 (addressGroup). */
  takeForAddress(group: AddressGroup): void {
    this.take(this.byAddress, group, 'too many download sessions from this address');
  }

  takeForKey(kid: string): void {
    this.take(this.byKey, kid, 'too many download sessions for this publisher key');
  }

  private take(buckets: KeyedBuckets, key: string, message: string): void {
    const nowMs = this.now();
    if (buckets.take(key, nowMs) === 1) return;
    this.metrics.rejects.inc({ reason: 'session_rate_limited' });
    throw new PfError('PF_ERR_RATE_LIMITED', message, { retryAfterSeconds: buckets.msUntilToken(key, nowMs) / 1000 });
  }
}
