import type { Logger } from 'pino';
import { MemoryStore } from './store-memory.ts';
import type { Store } from './store.ts';

export type StoreConfig =
  | { kind: 'memory'; snapshotPath?: string; snapshotIntervalMs?: number; maxSessions?: number; now?: () => number }
  | { kind: 'redis'; url: string; maxSessions?: number };

export async function createStore(config: StoreConfig, deps: { logger: Logger }): Promise<Store> {
  if (config.kind === 'redis') {
    // Loaded only here: ioredis costs start-up time and memory that the embedded default never uses.
    const { RedisStore } = await import('./store-redis.ts');
    const store = new RedisStore({ url: config.url, maxSessions: config.maxSessions }, deps.logger.child({ store: 'redis' }));
    await store.start();
    return store;
  }
  const store = new MemoryStore(
    { snapshotPath: config.snapshotPath, snapshotIntervalMs: config.snapshotIntervalMs, maxSessions: config.maxSessions, now: config.now },
    deps.logger.child({ store: 'memory' }),
  );
  await store.start();
  return store;
}
