import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { FastifyRequest } from 'fastify';
import {
  FileEntrySchema,
  FileIdSchema,
  FileListSchema,
  ManifestSchema,
  PfError,
  apiKeyId,
  checkPublisherAccess,
  publisherCredentialsOf,
  type FileEntry,
  type SigningKey,
} from '../../protocol/index.ts';
import type { Catalog, CatalogEntry } from '../publish/catalog.ts';
import type { UrlSigner } from '../signing/signer.ts';

const IdParamsSchema = Type.Object({ id: FileIdSchema });
/** Typed by the route generic; fastify checks params against the schema before the handler. */
type IdRoute = { Params: Static<typeof IdParamsSchema> };

export function fileEntryOf(entry: CatalogEntry): FileEntry {
  const { manifest } = entry;
  return {
    file_id: manifest.file_id,
    name: manifest.name,
    size: manifest.size,
    content_type: manifest.content_type,
    sha256: manifest.sha256,
    info_hash: manifest.info_hash,
    chunk_size: manifest.chunk_size,
    chunk_count: manifest.chunks.length,
    last_modified: new Date(entry.stat.mtimeMs).toISOString(),
    manifest_url: `/files/${manifest.file_id}/manifest`,
    visibility: entry.isPrivate ? 'private' : 'public',
  };
}

/**
 * `GET /files`, `GET /files/:id`, `GET /files/:id/manifest`, schema'd from protocol/. Private
 * files are listed only to a publisher key (a publisher's backend, a standalone tracker);
 * reading one needs a publisher key, a grant for it, or (for the manifest) the signed URL a
 * session answer carries. Every entry says its visibility.
 */
export function registerFileRoutes(app: FastifyInstance, catalog: Catalog, access: { signer: UrlSigner; publisherKeys: readonly SigningKey[] }): void {
  const nowSeconds = () => Math.floor(Date.now() / 1000);
  const readable = async (request: FastifyRequest, id: string): Promise<CatalogEntry> => {
    const entry = catalog.get(id);
    if (!entry) throw new PfError('PF_ERR_FILE_NOT_FOUND');
    if (!entry.isPrivate) return entry;
    const path = (request.raw.url ?? '').split('?', 1)[0]!;
    if (access.signer.verify('GET', path, request.query, nowSeconds()) === 'ok') return entry;
    const checked = await checkPublisherAccess(access.publisherKeys, publisherCredentialsOf(request.headers), entry.fileId, nowSeconds());
    if (!checked.ok) throw new PfError('PF_ERR_FORBIDDEN');
    return entry;
  };
  const privateNoStore = (entry: CatalogEntry) => (entry.isPrivate ? 'private, no-store' : 'no-cache');

  app.get('/files', { schema: { response: { 200: FileListSchema } } }, async (request, reply) => {
    // Only an API key lists private files (a grant names one file, it opens no listing).
    const { apiKey } = publisherCredentialsOf(request.headers);
    const withPrivate = apiKey !== undefined && (await apiKeyId(access.publisherKeys, apiKey)) !== undefined;
    void reply.header('cache-control', withPrivate ? 'private, no-store' : 'no-cache').header('vary', 'x-peerfill-key');
    return { files: catalog.list().filter((entry) => withPrivate || !entry.isPrivate).map(fileEntryOf) };
  });

  app.get<IdRoute>('/files/:id', { schema: { params: IdParamsSchema, response: { 200: FileEntrySchema } } }, async (request, reply) => {
    const entry = await readable(request, request.params.id);
    void reply.header('cache-control', privateNoStore(entry));
    return fileEntryOf(entry);
  });

  app.get<IdRoute>('/files/:id/manifest', { schema: { params: IdParamsSchema, response: { 200: ManifestSchema } } }, async (request, reply) => {
    const entry = await readable(request, request.params.id);
    const { manifest } = entry;
    // The info_hash names the content: a manifest is revalidated, never served stale.
    void reply.header('etag', `"${manifest.info_hash}"`).header('cache-control', privateNoStore(entry));
    return manifest;
  });
}
