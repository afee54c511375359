import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createOrigin, type Origin } from '../origin/index.ts';
import { createStore, createTracker, type StoreConfig, type Tracker } from '../tracker/index.ts';
import { originConfigFrom, type ServerConfig } from './config.ts';
import { installCors } from './cors.ts';
import { createHttpApp, type HttpLimits } from './http-app.ts';
import { pageOptionsFrom, pagePlugin } from './page.ts';
import type { TlsCredentials } from './tls.ts';

/** The composition root of `peerfill serve`: origin + tracker + web page in one fastify app. */
export interface Server {
  app: FastifyInstance;
  origin: Origin;
  tracker: Tracker;
  close(): Promise<void>;
}

export function storeConfigFrom(config: ServerConfig): StoreConfig {
  return config.redisUrl
    ? { kind: 'redis', url: config.redisUrl, maxSessions: config.maxSessions }
    : { kind: 'memory', snapshotPath: join(config.dataDir, 'tracker-snapshot.json'), snapshotIntervalMs: config.snapshotIntervalMs, maxSessions: config.maxSessions };
}

export function httpLimitsFrom(config: ServerConfig): Partial<HttpLimits> {
  return { idleTimeoutMs: config.idleTimeoutMs, requestTimeoutMs: config.requestTimeoutMs, headersTimeoutMs: Math.min(10_000, config.requestTimeoutMs) };
}

export function trackerUrlFor(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, 'ws')}/announce`;
}

/** `tls`: the credentials `loadTlsCredentials` read for `config.tls` (HTTPS and wss); plain HTTP without. */
export async function buildServer(config: ServerConfig, logger: Logger, options: { tls?: TlsCredentials } = {}): Promise<Server> {
  const origin = await createOrigin(originConfigFrom(config), { logger: logger.child({ component: 'origin' }) });
  const store = await createStore(storeConfigFrom(config), { logger: logger.child({ component: 'store' }) });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const tracker = await createTracker(
    {
      publicTrackerUrl: trackerUrlFor(config.serverUrl),
      originUrl: config.serverUrl,
      open: config.open,
      announceIntervalSeconds: config.announceIntervalSeconds,
      speedFloorBitsPerSecond: config.speedFloorBitsPerSecond,
      ice: config.ice,
      sessionCreatesPerAddressPerSecond: config.sessionCreatesPerSecond,
      sessionCreateBurstPerAddress: config.sessionCreateBurst,
      publisherKeys: config.publisherKeys,
      metricsToken: config.metricsToken,
      trustProxy: config.trustProxy,
    },
    { directory: origin.directory, minter: origin.minter, store, logger: logger.child({ component: 'tracker' }), registry },
  );

  const app = createHttpApp(logger, httpLimitsFrom(config), { trustProxy: config.trustProxy, tls: options.tls });
  installCors(app);
  await app.register(origin.plugin);
  await app.register(tracker.plugin);
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.register(pagePlugin, pageOptionsFrom(config));

  let closed = false;
  return {
    app,
    origin,
    tracker,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await tracker.close();
      await store.close();
      await origin.close();
    },
  };
}
