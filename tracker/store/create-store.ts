import type { Logger } from 'pino';
import { PfError } from '../../protocol/index.ts';
import { parseRedisUrl } from './redis-url.ts';
import { MemoryStore } from './store-memory.ts';
import type { Store } from './store.ts';

export type StoreConfig =
  | { kind: 'memory'; snapshotPath?: string; snapshotIntervalMs?: number; maxSessions?: number; now?: () => number }
  /** `url`: redis://host:port for one server, redis+cluster://host:port,host:port for a cluster (tracker/store/redis-url.ts). */
  | { kind: 'redis'; url: string; maxSessions?: number };

export async function createStore(config: StoreConfig, deps: { logger: Logger }): Promise<Store> {
  if (config.kind === 'redis') {
    const parsed = parseRedisUrl(config.url);
    if (!parsed.ok) throw new PfError('PF_ERR_CONFIG', `invalid Redis URL: ${parsed.error}`);
    // Loaded only here: ioredis costs start-up time and memory that the embedded default never uses.
    const { RedisStore } = await import('./store-redis.ts');
    const store = new RedisStore({ target: parsed.target, maxSessions: config.maxSessions }, deps.logger.child({ store: 'redis' }));
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
