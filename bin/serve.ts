import { join } from 'node:path';
import { LogController, fastify, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createOrigin, type Origin } from '../origin/index.ts';
import { createStore, createTracker, type StoreConfig, type Tracker } from '../tracker/index.ts';
import { PfError, isPfError, type ErrorBody } from '../protocol/index.ts';
import { originConfigFrom, type ServerConfig } from './config.ts';
import { installCors } from './cors.ts';
import { pageOptionsFrom, pagePlugin } from './page.ts';

/** The composition root of `peerfill serve`: origin + tracker + web page in one fastify app. */
export interface Server {
  app: FastifyInstance;
  origin: Origin;
  tracker: Tracker;
  close(): Promise<void>;
}

export function storeConfigFrom(config: ServerConfig): StoreConfig {
  return config.redisUrl
    ? { kind: 'redis', url: config.redisUrl }
    : { kind: 'memory', snapshotPath: join(config.dataDir, 'tracker-snapshot.json'), snapshotIntervalMs: config.snapshotIntervalMs };
}

export function trackerUrlFor(serverUrl: string): string {
  return `${serverUrl.replace(/^http/, 'ws')}/announce`;
}

/** Errors leave as `{error:{code,message}}`; internals (stacks, S3 keys) never do. */
export function installErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((error: FastifyError, _request, reply) => {
    if (isPfError(error)) return reply.status(error.statusCode).send(error.toBody());
    if (error.validation) {
      const body: ErrorBody = { error: { code: 'PF_ERR_VALIDATION', message: error.message } };
      return reply.status(400).send(body);
    }
    if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      const body: ErrorBody = { error: { code: 'PF_ERR_BAD_REQUEST', message: error.message } };
      return reply.status(error.statusCode).send(body);
    }
    logger.error({ err: error }, 'unhandled request error');
    return reply.status(500).send(new PfError('PF_ERR_INTERNAL').toBody());
  });
  app.setNotFoundHandler((_request, reply) => reply.status(404).send(new PfError('PF_ERR_NOT_FOUND').toBody()));
}

export async function buildServer(config: ServerConfig, logger: Logger): Promise<Server> {
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
    },
    { directory: origin.directory, minter: origin.minter, store, logger: logger.child({ component: 'tracker' }), registry },
  );

  const httpLogger: FastifyBaseLogger = logger.child({ component: 'http' });
  const app = fastify({ loggerInstance: httpLogger, logController: new LogController({ disableRequestLogging: true }), bodyLimit: 1024 * 1024 });
  installErrorHandler(app, logger);
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
