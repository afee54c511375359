import type { Logger } from 'pino';
import { Type } from '@sinclair/typebox';
import {
  HEX_ID_PATTERN,
  RelayedAnswerSchema,
  RelayedOfferSchema,
  binaryStringToHex,
  createCodec,
  parseJson,
  type RelayedAnswer,
  type RelayedOffer,
} from '../../protocol/index.ts';
import type { TrackerMetrics } from '../metrics.ts';
import type { LocalSwarms } from '../ws/swarm-socket.ts';
import type { Store } from '../store/store.ts';

/** What one tracker process publishes to another: a frame for one of its peers. */
const RelayEnvelopeSchema = Type.Object({
  to: Type.String({ pattern: HEX_ID_PATTERN }),
  frame: Type.Union([RelayedOfferSchema, RelayedAnswerSchema]),
});
const relayEnvelopeCodec = createCodec(RelayEnvelopeSchema);

export type SignalFrame = RelayedOffer | RelayedAnswer;

/**
 * How long a swarm's first announce waits for this process to listen on the swarm's channel.
 * A subscribe that never completes (seen with ioredis sharded subscribers on a loaded Redis
 * Cluster: bench/tracker/cluster.ts, one swarm of 50 per process never answered) must not hold
 * the swarm's announces for good: after this, they go on, and signals relayed to this process
 * before the subscription completes are lost (pub/sub is at most once; peers re-announce).
 */
export const RELAY_READY_WAIT_MS = 2000;

/** Subscribes tried for one swarm while none completes: at RELAY_READY_WAIT_MS, then doubling up to RELAY_RETRY_MAX_MS. */
export const RELAY_SUBSCRIBE_ATTEMPTS = 6;
const RELAY_RETRY_MAX_MS = 30_000;

type Unsubscribe = () => Promise<void>;

/** This process's subscription to one swarm's relay channel. */
interface SwarmSubscription {
  /** Settles once an attempt has subscribed (or once subscribing failed, with undefined). */
  readonly ready: Promise<Unsubscribe | undefined>;
  settled: boolean;
  /** An announce already waited RELAY_READY_WAIT_MS for it (said once). */
  isLate?: boolean;
  /** The latest attempt's unsubscribe: the store keeps the latest subscription of a channel. */
  latest: Promise<Unsubscribe | undefined>;
  isLatestDone: boolean;
  attempts: number;
  retryTimer?: ReturnType<typeof setTimeout>;
}

/**
 * Delivers offers and answers: straight to the socket when the peer is on this process,
 * through the store's pub/sub to its owner process otherwise. The channels are per swarm and
 * owner: this process subscribes to a swarm's channel when its first local peer of the swarm
 * joins, and unsubscribes (that channel, by name) when its last one leaves.
 */
export class Relay {
  private readonly subscriptions = new Map<string, SwarmSubscription>();
  private stopped = false;
  /** prom-client hashes a label object on every inc(); the local path keeps its children. */
  private readonly localCounters: Record<'offer' | 'answer', { inc(): void }>;

  constructor(
    private readonly trackerId: string,
    private readonly deps: { store: Store; local: LocalSwarms; metrics: TrackerMetrics; logger: Logger },
    private readonly readyWaitMs = RELAY_READY_WAIT_MS,
  ) {
    this.localCounters = { offer: deps.metrics.relayedSignals.labels('offer', 'local'), answer: deps.metrics.relayedSignals.labels('answer', 'local') };
    deps.local.watch({ swarmOpened: (infoHash) => this.open(infoHash), swarmClosed: (infoHash) => this.close(infoHash) });
  }

  /**
   * Undefined once this process listens on the swarm's channel, else a promise that settles
   * when it does: a peer's record should not reach the store before its owner listens.
   */
  ready(infoHash: string): Promise<void> | undefined {
    const subscription = this.subscriptions.get(infoHash);
    // Once one announce waited in vain, the others no longer wait.
    if (!subscription || subscription.settled || subscription.isLate) return undefined;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        if (!subscription.settled && !subscription.isLate) {
          subscription.isLate = true;
          this.deps.logger.warn({ infoHash, waitedMs: this.readyWaitMs }, 'relay subscribe not done: announces go on without it');
        }
        resolve();
      }, this.readyWaitMs);
      void subscription.ready.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private open(infoHash: string): void {
    if (this.stopped || this.subscriptions.has(infoHash)) return;
    let settle: (unsubscribe: Unsubscribe | undefined) => void = () => undefined;
    const subscription: SwarmSubscription = {
      ready: new Promise((resolve) => (settle = resolve)),
      settled: false,
      latest: Promise.resolve(undefined),
      isLatestDone: false,
      attempts: 0,
    };
    this.subscriptions.set(infoHash, subscription);
    const attempt = () => {
      subscription.attempts++;
      const latest = this.deps.store.subscribe(infoHash, this.trackerId, (message) => this.onRemote(message)).then(
        (unsubscribe) => unsubscribe,
        (error: unknown) => {
          this.deps.logger.warn({ err: (error as Error).message, infoHash }, 'relay subscribe failed');
          return undefined;
        },
      );
      subscription.latest = latest;
      subscription.isLatestDone = false;
      void latest.then(() => {
        if (subscription.latest === latest) subscription.isLatestDone = true;
      });
      void latest.then((unsubscribe) => {
        if (subscription.settled) return;
        subscription.settled = true;
        clearTimeout(subscription.retryTimer);
        // Whichever attempt answered first, the channel is subscribed; the store's handler is the latest attempt's.
        settle(unsubscribe);
      });
      // A subscribe that never completes (ioredis sharded subscribers on a loaded cluster) is
      // asked again while the swarm is open here: without it, no signal reaches this process's peers.
      if (subscription.attempts < RELAY_SUBSCRIBE_ATTEMPTS) {
        const delayMs = Math.min(RELAY_RETRY_MAX_MS, this.readyWaitMs * 2 ** (subscription.attempts - 1));
        subscription.retryTimer = setTimeout(() => {
          if (subscription.settled || this.subscriptions.get(infoHash) !== subscription || this.stopped) return;
          this.deps.logger.warn({ infoHash, attempt: subscription.attempts + 1, waitedMs: delayMs }, 'relay subscribe still not done: subscribing again');
          attempt();
        }, delayMs);
        subscription.retryTimer.unref?.();
      }
    };
    attempt();
  }

  private close(infoHash: string): void {
    const subscription = this.subscriptions.get(infoHash);
    if (!subscription) return;
    this.subscriptions.delete(infoHash);
    clearTimeout(subscription.retryTimer);
    // A later subscription of the swarm replaces this one in the store: this unsubscribe is then a no-op.
    void subscription.latest.then((unsubscribe) => unsubscribe?.());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const all = [...this.subscriptions.values()];
    this.subscriptions.clear();
    for (const subscription of all) clearTimeout(subscription.retryTimer);
    // A subscribe that never completed has nothing to undo (closing the store ends it).
    await Promise.all(
      all.map(async (subscription) => {
        const unsubscribed = subscription.latest.then((unsubscribe) => unsubscribe?.());
        unsubscribed.catch(() => undefined);
        if (subscription.isLatestDone) await unsubscribed;
      }),
    );
  }

  /** Send `frame` to peer `toPeerId` (hex) of `infoHash` (hex), owned by process `owner`. */
  deliver(infoHash: string, toPeerId: string, owner: string, frame: SignalFrame): void {
    const kind = 'offer' in frame ? 'offer' : 'answer';
    if (owner === this.trackerId) {
      const peer = this.deps.local.get(infoHash, toPeerId);
      if (peer?.socket.send(JSON.stringify(frame))) this.localCounters[kind].inc();
      return;
    }
    this.deps.store.publish(infoHash, owner, JSON.stringify({ to: toPeerId, frame })).then(
      () => this.deps.metrics.relayedSignals.inc({ kind, via: 'pubsub' }),
      (error: unknown) => this.deps.logger.debug({ err: (error as Error).message }, 'relay publish failed'),
    );
  }

  private onRemote(message: string): void {
    const parsed = parseJson(message);
    const decoded = parsed.ok ? relayEnvelopeCodec.decode(parsed.value) : parsed;
    if (!decoded.ok) {
      this.deps.logger.warn({ errors: decoded.errors }, 'invalid relay message ignored');
      return;
    }
    const { to, frame } = decoded.value;
    const peer = this.deps.local.get(binaryStringToHex(frame.info_hash), to);
    if (peer?.socket.send(JSON.stringify(frame))) this.deps.metrics.relayedSignals.inc({ kind: 'offer' in frame ? 'offer' : 'answer', via: 'delivered' });
  }
}
