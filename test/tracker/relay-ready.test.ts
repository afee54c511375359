import { Registry } from 'prom-client';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createTrackerMetrics } from '../../tracker/metrics.ts';
import { RELAY_SUBSCRIBE_ATTEMPTS, Relay } from '../../tracker/swarm/relay.ts';
import type { Store } from '../../tracker/store/store.ts';
import type { LocalSwarms } from '../../tracker/ws/swarm-socket.ts';

type Watcher = { swarmOpened(infoHash: string): void; swarmClosed(infoHash: string): void };

/** A Relay over a store whose subscribe answers when `settle` is called (or never). */
function relayWithStore(waitMs: number) {
  let watcher: Watcher | undefined;
  const local = { watch: (w: Watcher) => (watcher = w), get: () => undefined } as unknown as LocalSwarms;
  const pending: Array<(unsubscribe: () => Promise<void>) => void> = [];
  const store = { subscribe: () => new Promise((resolve) => pending.push(resolve)), publish: async () => undefined } as unknown as Store;
  const metrics = createTrackerMetrics(new Registry(), {
    connectedSockets: () => 0,
    localPeers: () => 0,
    localSwarms: () => 0,
    sessionCount: async () => 0,
    storeAvailable: () => true,
    connectionsBySwarm: () => new Map(),
    fileIdOf: () => undefined,
  });
  const warnings: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(String((JSON.parse(line) as { msg?: unknown }).msg)) });
  const relay = new Relay('t1', { store, local, metrics, logger }, waitMs);
  const unsubscribed: number[] = [];
  return {
    relay,
    open: (infoHash: string) => watcher!.swarmOpened(infoHash),
    close: (infoHash: string) => watcher!.swarmClosed(infoHash),
    settle: () => pending.shift()?.(async () => undefined),
    /** Settle the latest subscribe asked for; its unsubscribe is counted. */
    settleLatest: () => pending.pop()?.(async () => void unsubscribed.push(1)),
    subscribes: () => pending.length,
    unsubscribed,
    warnings,
  };
}

describe('Relay.ready: a swarm\'s first announce waits for the relay channel, but not for good', () => {
  it('settles when the subscription does', async () => {
    const { relay, open, settle } = relayWithStore(10_000);
    open('ab'.repeat(20));
    const ready = relay.ready('ab'.repeat(20));
    expect(ready).toBeInstanceOf(Promise);
    settle();
    await ready;
    expect(relay.ready('ab'.repeat(20))).toBeUndefined();
  });

  it('a subscribe that never completes holds the announce only up to the bound, says so once, and holds no later announce', async () => {
    const { relay, open, warnings } = relayWithStore(50);
    open('cd'.repeat(20));
    let isDone = false;
    const ready = relay.ready('cd'.repeat(20))!.then(() => (isDone = true));
    await new Promise((resolve) => setImmediate(resolve));
    // Still waiting on the subscription; then the bound lets it go.
    expect(isDone).toBe(false);
    await ready;
    expect(relay.ready('cd'.repeat(20))).toBeUndefined();
    expect(warnings.filter((message) => /relay subscribe not done/.test(message))).toHaveLength(1);
  });

  it('a subscribe that never completes is asked again, with backoff and a bounded count, until one completes', async () => {
    const { relay, open, settleLatest, subscribes, warnings } = relayWithStore(20);
    open('ef'.repeat(20));
    expect(subscribes()).toBe(1);
    // 20 ms, then 40: the third subscribe is asked after 60 ms.
    await sleep(75);
    expect(subscribes()).toBe(3);
    expect(warnings.filter((message) => /subscribing again/.test(message))).toHaveLength(2);
    settleLatest();
    await relay.ready('ef'.repeat(20));
    expect(relay.ready('ef'.repeat(20))).toBeUndefined();
    // Settled: no more attempts.
    await sleep(120);
    expect(subscribes()).toBe(2);
  });

  it('stops asking after RELAY_SUBSCRIBE_ATTEMPTS, and when the swarm closes here', async () => {
    const capped = relayWithStore(2);
    capped.open('0a'.repeat(20));
    // 2 + 4 + 8 + 16 + 32 ms: every attempt is asked by 62 ms.
    await sleep(250);
    expect(capped.subscribes()).toBe(RELAY_SUBSCRIBE_ATTEMPTS);
    const closed = relayWithStore(20);
    closed.open('0b'.repeat(20));
    closed.close('0b'.repeat(20));
    await sleep(60);
    expect(closed.subscribes()).toBe(1);
    // The latest subscribe lands after the close: it is undone at once.
    closed.settleLatest();
    await sleep(0);
    expect(closed.unsubscribed).toHaveLength(1);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
