import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { createOrigin } from '../origin/index.ts';
import { originConfigFrom, type ServerConfig } from './config.ts';
import { createHttpApp } from './http-app.ts';
import { httpLimitsFrom } from './serve.ts';
import type { TlsCredentials } from './tls.ts';

/**
 * `peerfill serve --workers N`: what runs where.
 * - The primary runs everything `serve` runs without workers (tracker WebSocket, sessions and
 *   their memory store and snapshot, the API, the page, and `/d/` too) on `--port`.
 * - N workers (node:cluster: the primary holds the one listening socket and hands each
 *   connection to a worker) run the signed data plane alone, `/d/` and `/healthz`, on
 *   `--data-port`, which minted URLs point at unless `--public-url` says otherwise.
 * Workers hold no state of their own: each loads the catalog from the manifests the primary
 * built, rescans when the primary has, and is restarted by the primary if it dies.
 * `--egress-limit` is split evenly over the workers. With `--tls-cert`, workers serve HTTPS too
 * (each reads the files the primary has already checked).
 */
const RESCAN_MESSAGE = 'peerfill:rescan';
/** A worker that keeps dying is restarted at most this often. */
const RESTART_DELAY_MS = 500;

export interface DataPlaneWorkers {
  /** After the primary's own rescan: every worker rescans (from the manifest cache). */
  rescan(): void;
  close(): Promise<void>;
}

export async function startDataPlaneWorkers(config: ServerConfig, logger: Logger): Promise<DataPlaneWorkers> {
  // The workers run this same command line; `cluster.isWorker` sends them to runDataPlaneWorker.
  cluster.setupPrimary({ exec: process.argv[1], args: process.argv.slice(2), silent: false });
  let isStopping = false;
  const workers = new Set<Worker>();
  const fork = (): Promise<void> => {
    const worker = cluster.fork();
    workers.add(worker);
    worker.once('exit', (code, signal) => {
      workers.delete(worker);
      if (isStopping) return;
      logger.warn({ pid: worker.process.pid, code, signal }, 'data-plane worker died; restarting it');
      setTimeout(() => void fork().catch((error: unknown) => logger.error({ err: error }, 'data-plane worker restart failed')), RESTART_DELAY_MS).unref();
    });
    return new Promise((resolve, reject) => {
      worker.once('listening', () => resolve());
      worker.once('exit', (code) => reject(new Error(`data-plane worker exited with ${code} before listening`)));
    });
  };
  await Promise.all(Array.from({ length: config.workers }, fork));
  logger.info({ workers: config.workers, port: config.dataPort }, 'data-plane workers listening');
  return {
    rescan() {
      for (const worker of workers) worker.send(RESCAN_MESSAGE);
    },
    async close() {
      isStopping = true;
      await Promise.all(
        [...workers].map((worker) => {
          const exited = new Promise((resolve) => worker.once('exit', resolve));
          worker.kill('SIGTERM');
          return exited;
        }),
      );
    },
  };
}

/** One data-plane worker: the origin's `/d/` routes on the shared data port, until SIGTERM or the primary goes. */
export async function runDataPlaneWorker(config: ServerConfig, logger: Logger, tls: TlsCredentials | undefined): Promise<number> {
  const egress = config.egressBytesPerSecond && Math.max(1, Math.floor(config.egressBytesPerSecond / config.workers));
  const origin = await createOrigin({ ...originConfigFrom(config), egressBytesPerSecond: egress }, { logger: logger.child({ component: 'origin', worker: cluster.worker?.id }) });
  const app = createHttpApp(logger, httpLimitsFrom(config), { trustProxy: config.trustProxy, tls });
  await app.register(origin.dataPlane);
  app.get('/healthz', async () => ({ status: 'ok' }));
  await app.listen({ port: config.dataPort ?? 0, host: config.host });
  process.on('message', (message) => {
    if (message === RESCAN_MESSAGE) origin.refresh().catch((error: unknown) => logger.warn({ err: error }, 'catalog rescan failed'));
  });
  const stop = () => {
    void app
      .close()
      .then(() => origin.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  // Ctrl-C and SIGHUP reach the whole process group: the primary decides (and forwards rescans).
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  cluster.worker?.on('disconnect', stop);
  return new Promise<number>(() => undefined);
}
