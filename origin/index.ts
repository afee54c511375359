import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';
import { PfError, type FileDirectory, type Manifest, type SigningKey, type UrlMinter } from '../protocol/index.ts';
import { parseS3Url, readAddedSources, rememberAddedSource, type AddedSource } from './added-sources.ts';
import { Catalog, type CatalogCandidate } from './catalog.ts';
import { registerDataPlane } from './data-plane.ts';
import { EgressLimiter } from './egress-limiter.ts';
import { loadSigningKeys } from './keys.ts';
import { ManifestBuilder } from './manifest-builder.ts';
import { ManifestCache } from './manifest-cache.ts';
import { registerFileRoutes } from './routes-files.ts';
import { UrlSigner } from './signer.ts';
import type { Storage } from './storage.ts';
import { FolderStorage } from './storage-folder.ts';
import { S3Storage } from './storage-s3.ts';
import { OriginUrlMinter } from './url-minter.ts';

export { buildOriginApp } from './app.ts';

export interface OriginConfig {
  /** Folder mode (the default when no `s3`): every regular file under it, recursively. */
  filesDir?: string;
  s3?: { bucket: string; prefix: string; endpoint?: string; region: string; forcePathStyle: boolean; presign: boolean };
  /** Manifests cache, generated signing key, files added with `peerfill add`. */
  dataDir: string;
  /** Base URL minted URLs point at (a CDN edge, or this server). */
  publicUrl: string;
  /** From PEERFILL_SIGNING_KEYS; undefined: one key generated and kept under dataDir. */
  signingKeys?: SigningKey[];
  /** Lifetime of minted URLs. Default 3600. */
  urlTtlSeconds: number;
  /** Origin-wide cap on data-plane body bytes; undefined or 0: unlimited. */
  egressBytesPerSecond?: number;
  /** Threads hashing chunks while the main thread hashes the whole file. Default 1. */
  hashWorkers?: number;
}

export interface Origin {
  /** Registers `/files*` and `/d/*` (not `/healthz`, not `/`). */
  plugin: FastifyPluginAsync;
  directory: FileDirectory;
  minter: UrlMinter;
  /** `peerfill add PATH|s3://bucket/key`: publish one more file (remembered under dataDir). */
  addFile(pathOrS3Url: string): Promise<Manifest>;
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
  if (!config.s3 && !config.filesDir) throw new PfError('PF_ERR_CONFIG', 'either filesDir or s3 is required');
  if (!Number.isInteger(config.urlTtlSeconds) || config.urlTtlSeconds <= 0) throw new PfError('PF_ERR_CONFIG', 'urlTtlSeconds must be a positive integer');
  const s3Settings = config.s3;
  const root: Storage = s3Settings ? new S3Storage(s3Settings) : await FolderStorage.create(config.filesDir ?? '');
  const extraStorages = new Map<string, Storage>();
  const keys = await loadSigningKeys(config.dataDir, config.signingKeys, logger.child({ component: 'keys' }));
  const signer = new UrlSigner(keys);
  const builder = new ManifestBuilder({ hashWorkers: config.hashWorkers ?? 1, logger: logger.child({ component: 'manifest-builder' }) });

  const folderFor = async (dir: string): Promise<Storage> => {
    const existing = extraStorages.get(`dir:${dir}`);
    if (existing) return existing;
    const storage = await FolderStorage.create(dir);
    extraStorages.set(`dir:${dir}`, storage);
    return storage;
  };
  const bucketFor = (bucket: string): S3Storage => {
    const existing = extraStorages.get(`s3:${bucket}`);
    if (existing instanceof S3Storage) return existing;
    const storage = new S3Storage({
      bucket,
      prefix: '',
      endpoint: s3Settings?.endpoint,
      region: s3Settings?.region ?? process.env.AWS_REGION ?? 'us-east-1',
      forcePathStyle: s3Settings?.forcePathStyle ?? false,
    });
    extraStorages.set(`s3:${bucket}`, storage);
    return storage;
  };

  /** Where an added source lives; the root storage when the root scan covers it (same file id). */
  const locate = async (source: AddedSource): Promise<{ candidate: CatalogCandidate | undefined; isCoveredByRoot: boolean }> => {
    let storage: Storage;
    let key: string;
    let sourceId: string;
    let isCoveredByRoot = false;
    if (source.kind === 'path') {
      const rootKey = root instanceof FolderStorage ? root.keyOf(source.path) : undefined;
      if (rootKey !== undefined) {
        [storage, key, sourceId, isCoveredByRoot] = [root, rootKey, `${root.sourcePrefix}${rootKey}`, true];
      } else {
        [storage, key, sourceId] = [await folderFor(dirname(source.path)), basename(source.path), `path:${source.path}`];
      }
    } else if (root instanceof S3Storage && root.bucket === source.bucket && root.isValidKey(source.key)) {
      [storage, key, sourceId, isCoveredByRoot] = [root, source.key, `${root.sourcePrefix}${source.key}`, true];
    } else {
      const bucket = bucketFor(source.bucket);
      [storage, key, sourceId] = [bucket, source.key, `${bucket.sourcePrefix}${source.key}`];
    }
    const found = await storage.stat(key);
    return { candidate: found && { sourceId, storage, key, stat: found }, isCoveredByRoot };
  };

  async function* discover(): AsyncIterable<CatalogCandidate> {
    for await (const entry of root.list()) {
      const { key, ...found } = entry;
      yield { sourceId: `${root.sourcePrefix}${key}`, storage: root, key, stat: found };
    }
    for (const source of await readAddedSources(config.dataDir)) {
      const { candidate } = await locate(source).catch(() => ({ candidate: undefined }));
      if (candidate) yield candidate;
    }
  }

  const catalog = new Catalog({ discover, builder, cache: new ManifestCache(config.dataDir, logger), logger: logger.child({ component: 'catalog' }) });
  await catalog.refresh();
  logger.info({ storage: root.description, kid: signer.signingKid }, 'origin ready');

  const minter = new OriginUrlMinter({ catalog, signer, publicUrl: config.publicUrl, urlTtlSeconds: config.urlTtlSeconds, presignS3: s3Settings?.presign ?? false });
  const limiter = config.egressBytesPerSecond ? new EgressLimiter(config.egressBytesPerSecond) : undefined;
  const dataPlaneLogger = logger.child({ component: 'data-plane' });

  const plugin: FastifyPluginAsync = (app) => {
    registerFileRoutes(app, catalog);
    registerDataPlane(app, { catalog, signer, limiter, logger: dataPlaneLogger });
    return Promise.resolve();
  };

  return {
    plugin,
    directory: catalog,
    minter,
    async addFile(pathOrS3Url) {
      const s3Url = parseS3Url(pathOrS3Url);
      let source: AddedSource;
      if (s3Url) {
        source = { kind: 's3', ...s3Url };
      } else {
        const path = await realpath(resolve(pathOrS3Url)).catch(() => undefined);
        if (!path || !(await stat(path)).isFile()) throw new PfError('PF_ERR_FILE_NOT_FOUND', `not a regular file: ${pathOrS3Url}`);
        source = { kind: 'path', path };
      }
      const { candidate, isCoveredByRoot } = await locate(source);
      if (!candidate) throw new PfError('PF_ERR_FILE_NOT_FOUND', `cannot publish ${pathOrS3Url}`);
      const manifest = await catalog.publish(candidate);
      if (!isCoveredByRoot) await rememberAddedSource(config.dataDir, source);
      return manifest;
    },
    refresh: () => catalog.refresh(),
    async close() {
      await catalog.close();
      await builder.close();
      await root.close();
      await Promise.all([...extraStorages.values()].map((storage) => storage.close()));
    },
  };
}
