import type { Logger } from 'pino';
import { PfError, type Manifest } from '../../protocol/index.ts';
import { rememberAddedSource } from './added-sources.ts';
import { Catalog } from './catalog.ts';
import { checkOriginConfig, type OriginConfig } from '../config.ts';
import { ManifestBuilder } from './manifest-builder.ts';
import { ManifestCache } from './manifest-cache.ts';
import { SourceLocator } from '../storage/source-locator.ts';

/** Publish one more file into `catalog`, and remember it under dataDir unless the root scan finds it anyway. */
export async function publishAddedFile(pathOrS3Url: string, deps: { locator: SourceLocator; catalog: Catalog; dataDir: string; isPrivate: boolean }): Promise<Manifest> {
  const source = { ...(await SourceLocator.sourceOf(pathOrS3Url)), ...(deps.isPrivate ? { private: true } : {}) };
  const { candidate, isCoveredByRoot } = await deps.locator.locate(source);
  if (!candidate) throw new PfError('PF_ERR_FILE_NOT_FOUND', `cannot publish ${pathOrS3Url}`);
  const manifest = await deps.catalog.publish(candidate);
  // A covered file is found by the scan anyway; it is recorded only to carry its visibility.
  if (!isCoveredByRoot || deps.isPrivate) await rememberAddedSource(deps.dataDir, source);
  return manifest;
}

async function* nothing(): AsyncIterable<never> {}

/**
 * `peerfill add` without an origin: only what registering one file takes (its storage,
 * the manifest builder and cache, the added-files list). The folder is not scanned, no
 * signing key is loaded and no HTTP code is imported; a running origin publishes the
 * file on its next rescan, from the manifest cached here.
 */
export async function addFile(config: OriginConfig, pathOrS3Url: string, deps: { logger: Logger; isPrivate?: boolean }): Promise<Manifest> {
  checkOriginConfig(config);
  const locator = await SourceLocator.create(config);
  const builder = new ManifestBuilder({ hashWorkers: config.hashWorkers ?? 1, logger: deps.logger.child({ component: 'manifest-builder' }) });
  const catalog = new Catalog({ discover: nothing, builder, cache: new ManifestCache(config.dataDir, deps.logger), logger: deps.logger.child({ component: 'catalog' }) });
  try {
    return await publishAddedFile(pathOrS3Url, { locator, catalog, dataDir: config.dataDir, isPrivate: deps.isPrivate ?? false });
  } finally {
    await catalog.close();
    await builder.close();
    await locator.close();
  }
}
