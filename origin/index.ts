import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import type { FileDirectory, Manifest, UrlMinter } from '../protocol/index.ts';
import { publishAddedFile } from './publish/add-file.ts';
import { Catalog } from './publish/catalog.ts';
import { checkOriginConfig, type OriginConfig } from './config.ts';
import { registerDataPlane } from './http/data-plane.ts';
import { EgressLimiter } from './http/egress-limiter.ts';
import { loadSigningKeys } from './signing/keys.ts';
import { ManifestBuilder } from './publish/manifest-builder.ts';
import { ManifestCache } from './publish/manifest-cache.ts';
import { registerFileRoutes } from './http/routes-files.ts';
import { UrlSigner } from './signing/signer.ts';
import { SourceLocator } from './storage/source-locator.ts';
import { OriginUrlMinter } from './signing/url-minter.ts';

export { addFile } from './publish/add-file.ts';
export type { OriginConfig } from './config.ts';

export interface Origin {
  /** Registers `/files*` and `/d/*` (not `/healthz`, not `/`). */
  plugin: FastifyPluginAsync;
  /** Registers `/d/*` alone: what `serve --workers N` runs in each data-plane process. */
  dataPlane: FastifyPluginAsync;
  directory: FileDirectory;
  minter: UrlMinter;
  /** `peerfill add PATH|s3://bucket/key`: publish one more file (remembered under dataDir). */
  addFile(pathOrS3Url: string, options?: { isPrivate?: boolean }): Promise<Manifest>;
  /** Rescan the folder/bucket and added files: publish new ones, rehash changed ones. */
  refresh(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Build the origin: storage, signing keys, catalog (its first scan is awaited, so every
 * file is published, from the manifest cache where possible, when this resolves).
 */
export async function createOrigin(config: OriginConfig, deps: { logger: Logger }): Promise<Origin> {
  const logger = deps.logger;
  checkOriginConfig(config);
  // Reported once per file: a rescan every minute would repeat it forever.
  const reported = new Set<string>();
  const locator = await SourceLocator.create(config, {
    onUnpublishable(path, reason) {
      if (reported.has(path) || reported.size >= 10_000) return;
      reported.add(path);
      logger.warn({ path, reason }, 'file not published');
    },
  });
  const keys = await loadSigningKeys(config.dataDir, config.signingKeys, logger.child({ component: 'keys' }));
  const signer = new UrlSigner(keys);
  const builder = new ManifestBuilder({ hashWorkers: config.hashWorkers ?? 1, logger: logger.child({ component: 'manifest-builder' }) });
  const catalog = new Catalog({
    discover: () => locator.discover(config.dataDir, config.visibility),
    builder,
    cache: new ManifestCache(config.dataDir, logger),
    logger: logger.child({ component: 'catalog' }),
  });
  await catalog.refresh();
  logger.info({ storage: locator.root.description, kid: signer.signingKid }, 'origin ready');

  const minter = new OriginUrlMinter({ catalog, signer, publicUrl: config.publicUrl, urlTtlSeconds: config.urlTtlSeconds, presignS3: config.s3?.presign ?? false });
  const limiter = config.egressBytesPerSecond ? new EgressLimiter(config.egressBytesPerSecond) : undefined;
  const dataPlaneLogger = logger.child({ component: 'data-plane' });

  const plugin: FastifyPluginAsync = (app) => {
    registerFileRoutes(app, catalog, { signer, publisherKeys: config.publisherKeys ?? [] });
    registerDataPlane(app, { catalog, signer, limiter, logger: dataPlaneLogger });
    return Promise.resolve();
  };

  const dataPlane: FastifyPluginAsync = (app) => {
    registerDataPlane(app, { catalog, signer, limiter, logger: dataPlaneLogger });
    return Promise.resolve();
  };

  return {
    plugin,
    dataPlane,
    directory: catalog,
    minter,
    addFile: (pathOrS3Url, options) => publishAddedFile(pathOrS3Url, { locator, catalog, dataDir: config.dataDir, isPrivate: options?.isPrivate ?? false }),
    refresh: () => catalog.refresh(),
    async close() {
      await catalog.close();
      await builder.close();
      await locator.close();
    },
  };
}
