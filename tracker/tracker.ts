import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { PfError, type FileDirectory, type UrlMinter } from '../protocol/index.ts';
import { AnnounceHandler } from './swarm/announce.ts';
import { clientAddressOf } from './client-address.ts';
import { resolveTrackerConfig, type TrackerConfig } from './config.ts';
import { createTrackerMetrics } from './metrics.ts';
import { PublishedHashes } from './swarm/published-hashes.ts';
import { Relay } from './swarm/relay.ts';
import { registerDownloadRoutes } from './sessions/routes-downloads.ts';
import { SessionService } from './sessions/sessions.ts';
import type { Store } from './store/store.ts';
import { LocalSwarms } from './ws/swarm-socket.ts';
import { TrackerWebSocketServer } from './ws/websocket-server.ts';

export interface TrackerDeps {
  directory: FileDirectory;
  minter: UrlMinter;
  store: Store;
  logger: Logger;
  /** Where metrics are registered; a private registry if omitted. */
  registry?: Registry;
  /** The clock of sessions and rate limits (ms); Date.now by default. */
  now?: () => number;
}

export interface Tracker {
  /** Fastify plugin: the /announce WebSocket upgrade, /downloads routes and GET /metrics. */
  plugin: FastifyPluginAsync;
  /** This process's id in the shared store (where relays for its peers are published). */
  readonly id: string;
  close(): Promise<void>;
}

/**
 * Who may read /metrics (per-file byte counts, swarm sizes): with PEERFILL_METRICS_TOKEN set,
 * a bearer of it (constant-time compare); without, only this machine's loopback clients.
 * `remoteAddress` is the client's (past trusted proxies): a proxy on this machine must not
 * make every client look like loopback.
 */
export function isMetricsReader(token: string | undefined, authorization: string | undefined, remoteAddress: string | undefined): boolean {
  if (token === undefined) return remoteAddress !== undefined && /^(127\.|::1$|::ffff:127\.)/.test(remoteAddress);
  const presented = createHash('sha256').update(/^Bearer (\S+)$/i.exec(authorization ?? '')?.[1] ?? '').digest();
  return timingSafeEqual(presented, createHash('sha256').update(token).digest());
}

/** Build the tracker: WebSocket swarm signalling, download sessions and metrics over one Store. */
export async function createTracker(input: TrackerConfig, deps: TrackerDeps): Promise<Tracker> {
  const config = resolveTrackerConfig(input);
  const id = randomBytes(8).toString('hex');
  const logger = deps.logger.child({ tracker: id });
  const registry = deps.registry ?? new Registry();
  const local = new LocalSwarms();
  const server: { current?: TrackerWebSocketServer } = {};
  const published = new PublishedHashes(deps.directory, config.open);
  const metrics = createTrackerMetrics(registry, {
    connectedSockets: () => server.current?.sockets.size ?? 0,
    localPeers: () => local.peerCount,
    localSwarms: () => local.swarms.size,
    sessionCount: () => deps.store.sessionCount(),
    storeAvailable: () => deps.store.isAvailable(),
    connectionsBySwarm: () => local.connectionsBySwarm(),
    fileIdOf: (infoHash) => published.fileIdOf(infoHash),
  });
  const now = deps.now ?? Date.now;
  const sessions = new SessionService(config, { store: deps.store, directory: deps.directory, minter: deps.minter, metrics, logger, now });
  const relay = new Relay(id, { store: deps.store, local, metrics, logger });
  const handler = new AnnounceHandler({
    config,
    trackerId: id,
    local,
    store: deps.store,
    relay,
    sessions,
    published,
    metrics,
    logger,
  });
  const swarmServer = new TrackerWebSocketServer(config, { local, handler, store: deps.store, metrics, logger });
  server.current = swarmServer;
  swarmServer.start();

  const attached = new Set<FastifyInstance['server']>();
  let closed = false;

  const plugin: FastifyPluginAsync = (app) => {
    registerDownloadRoutes(app, sessions, config.trustProxy);
    app.get('/metrics', async (request, reply) => {
      if (!isMetricsReader(config.metricsToken, request.headers.authorization, clientAddressOf(request.raw, config.trustProxy))) throw new PfError('PF_ERR_FORBIDDEN', 'metrics need the metrics token');
      return reply.type(registry.contentType).header('cache-control', 'no-store').send(await registry.metrics());
    });
    const httpServer = app.server;
    const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (swarmServer.handleUpgrade(request, socket, head)) return;
      // Another component may serve other upgrade paths; if nobody does, do not leave it hanging.
      if (httpServer.listenerCount('upgrade') === 1) socket.destroy();
    };
    httpServer.on('upgrade', onUpgrade);
    attached.add(httpServer);
    // Upgraded sockets keep the http server open; close them before it waits on them.
    app.addHook('preClose', async () => {
      httpServer.off('upgrade', onUpgrade);
      await swarmServer.close();
    });
    return Promise.resolve();
  };

  return {
    plugin,
    id,
    async close() {
      if (closed) return;
      closed = true;
      await swarmServer.close();
      await relay.stop();
      attached.clear();
      logger.info('tracker closed');
    },
  };
}
