import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createRemoteDirectory, createSigningMinter, createStore, createTracker } from '../tracker/index.ts';
import { ConfigError, loadServerConfig } from './config.ts';
import { installCors } from './cors.ts';
import { createLogger } from './logger.ts';
import { createHttpApp } from './http-app.ts';
import { httpLimitsFrom, trackerUrlFor } from './serve.ts';
import { loadTlsCredentials } from './tls.ts';

/**
 * `peerfill tracker --origin URL`: the control plane alone, one of many processes sharing
 * Redis. Manifests come from the origin over HTTP; download URLs are signed with the keys
 * the origin (or edge) shares, so PEERFILL_SIGNING_KEYS is required here. With
 * PEERFILL_PUBLISHER_KEYS (the origin's), it serves private files too: it reads them from the
 * origin with the first key's secret as API key, checks grants, and admits to their swarms
 * only proven sessions.
 */
export async function runTracker(
  argv: string[],
  onShutdown: (close: () => Promise<void>, log: (message: string) => void) => void,
): Promise<number> {
  const originIndex = argv.indexOf('--origin');
  const originUrl = originIndex >= 0 ? argv[originIndex + 1] : process.env.PEERFILL_ORIGIN_URL;
  const rest = originIndex >= 0 ? argv.filter((_, index) => index !== originIndex && index !== originIndex + 1) : argv;
  parseArgs({ args: rest, options: { port: { type: 'string' }, host: { type: 'string' }, redis: { type: 'string' }, open: { type: 'boolean' }, 'public-url': { type: 'string' }, 'server-url': { type: 'string' }, 'announce-interval': { type: 'string' }, 'log-level': { type: 'string' }, 'url-ttl': { type: 'string' }, stun: { type: 'string', multiple: true }, turn: { type: 'string', multiple: true }, 'turn-ttl': { type: 'string' }, 'trust-proxy': { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' } }, strict: true });
  const config = loadServerConfig(rest, process.env, process.cwd());
  const errors: string[] = [];
  if (!originUrl) errors.push('--origin URL (or PEERFILL_ORIGIN_URL) is required: the origin whose files this tracker serves');
  if (!config.signingKeys) errors.push('PEERFILL_SIGNING_KEYS is required: a standalone tracker signs download URLs with the keys the origin verifies');
  if (errors.length > 0) throw new ConfigError(errors);
  const tls = config.tls && (await loadTlsCredentials(config.tls));

  const logger = createLogger(config.logLevel);
  // The first publisher key (the one grants are signed with) reads the origin's private files.
  const originApiKey = config.publisherKeys?.[0] && new TextDecoder().decode(config.publisherKeys[0].secret);
  if (!originApiKey) logger.warn('no PEERFILL_PUBLISHER_KEYS: this tracker serves public files only (private ones are not found here)');
  const directory = createRemoteDirectory({ originUrl: originUrl!, apiKey: originApiKey, logger: logger.child({ component: 'directory' }) });
  const minter = createSigningMinter({ publicUrl: config.publicUrl === config.serverUrl ? originUrl! : config.publicUrl, keys: config.signingKeys!, ttlSeconds: config.urlTtlSeconds, directory });
  // Alone on its memory store, it snapshots its sessions as serve does (a name of its own, so
  // that a serve and a tracker started in one folder do not load each other's sessions).
  if (!config.redisUrl) await mkdir(config.dataDir, { recursive: true });
  const store = await createStore(
    config.redisUrl
      ? { kind: 'redis', url: config.redisUrl, maxSessions: config.maxSessions }
      : { kind: 'memory', snapshotPath: join(config.dataDir, 'standalone-tracker-snapshot.json'), snapshotIntervalMs: config.snapshotIntervalMs, maxSessions: config.maxSessions },
    { logger: logger.child({ component: 'store' }) },
  );
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const tracker = await createTracker(
    { publicTrackerUrl: trackerUrlFor(config.serverUrl), originUrl: originUrl!, open: config.open, announceIntervalSeconds: config.announceIntervalSeconds, speedFloorBitsPerSecond: config.speedFloorBitsPerSecond, sessionCreatesPerAddressPerSecond: config.sessionCreatesPerSecond, sessionCreateBurstPerAddress: config.sessionCreateBurst, publisherKeys: config.publisherKeys, metricsToken: config.metricsToken, ice: config.ice, trustProxy: config.trustProxy },
    { directory, minter, store, logger: logger.child({ component: 'tracker' }), registry },
  );
  const app = createHttpApp(logger, httpLimitsFrom(config), { trustProxy: config.trustProxy, tls });
  installCors(app);
  await app.register(tracker.plugin);
  app.get('/healthz', async (_request, reply) =>
    store.isAvailable() ? { status: 'ok' } : reply.status(503).send({ status: 'degraded', store: store.kind }),
  );
  await app.listen({ port: config.port, host: config.host });
  process.stdout.write(`peerfill tracker ${tracker.id} on ${trackerUrlFor(config.serverUrl)} for origin ${originUrl}\n`);
  onShutdown(async () => {
    await app.close();
    await tracker.close();
    await store.close();
  }, (message) => logger.info(message));
  return new Promise<number>(() => undefined);
}
