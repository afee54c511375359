import type { Logger } from 'pino';
import { Type } from '@sinclair/typebox';
import {
  RelayedAnswerSchema,
  RelayedOfferSchema,
  binaryStringToHex,
  createCodec,
  parseJson,
  type RelayedAnswer,
  type RelayedOffer,
} from '../protocol/index.ts';
import type { TrackerMetrics } from './metrics.ts';
import type { LocalSwarms } from './swarm-socket.ts';
import type { Store } from './store.ts';

/** What one tracker process publishes to another: a frame for one of its peers. */
const RelayEnvelopeSchema = Type.Object({
  to: Type.String({ pattern: '^[0-9a-f]{40}$' }),
  frame: Type.Union([RelayedOfferSchema, RelayedAnswerSchema]),
});
const relayEnvelopeCodec = createCodec(RelayEnvelopeSchema);

export type SignalFrame = RelayedOffer | RelayedAnswer;

/**
 * Delivers offers and answers: straight to the socket when the peer is on this process,
 * through the store's pub/sub to its owner process otherwise.
 */
export class Relay {
  private unsubscribe: (() => Promise<void>) | undefined;
  /** prom-client hashes a label object on every inc(); the local path keeps its children. */
  private readonly localCounters: Record<'offer' | 'answer', { inc(): void }>;

  constructor(
    private readonly trackerId: string,
    private readonly deps: { store: Store; local: LocalSwarms; metrics: TrackerMetrics; logger: Logger },
  ) {
    this.localCounters = { offer: deps.metrics.relayedSignals.labels('offer', 'local'), answer: deps.metrics.relayedSignals.labels('answer', 'local') };
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.deps.store.subscribe(this.trackerId, (message) => this.onRemote(message));
  }

  async stop(): Promise<void> {
    await this.unsubscribe?.();
  }

  /** Send `frame` to peer `toPeerId` (hex) of `infoHash` (hex), owned by process `owner`. */
  deliver(infoHash: string, toPeerId: string, owner: string, frame: SignalFrame): void {
    const kind = 'offer' in frame ? 'offer' : 'answer';
    if (owner === this.trackerId) {
      const peer = this.deps.local.get(infoHash, toPeerId);
      if (peer?.socket.send(JSON.stringify(frame))) this.localCounters[kind].inc();
      return;
    }
    this.deps.store.publish(owner, JSON.stringify({ to: toPeerId, frame })).then(
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
