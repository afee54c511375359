import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { FileEntrySchema, FileIdSchema, FileListSchema, ManifestSchema, PfError, type FileEntry } from '../protocol/index.ts';
import type { Catalog, CatalogEntry } from './catalog.ts';

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
  };
}

/** `GET /files`, `GET /files/:id`, `GET /files/:id/manifest`, schema'd from protocol/. */
export function registerFileRoutes(app: FastifyInstance, catalog: Catalog): void {
  const entryOr404 = (id: string): CatalogEntry => {
    const entry = catalog.get(id);
    if (!entry) throw new PfError('PF_ERR_FILE_NOT_FOUND');
    return entry;
  };

  app.get('/files', { schema: { response: { 200: FileListSchema } } }, async (_request, reply) => {
    void reply.header('cache-control', 'no-cache');
    return { files: catalog.list().map(fileEntryOf) };
  });

  app.get<IdRoute>('/files/:id', { schema: { params: IdParamsSchema, response: { 200: FileEntrySchema } } }, async (request, reply) => {
    const { id } = request.params;
    void reply.header('cache-control', 'no-cache');
    return fileEntryOf(entryOr404(id));
  });

  app.get<IdRoute>('/files/:id/manifest', { schema: { params: IdParamsSchema, response: { 200: ManifestSchema } } }, async (request, reply) => {
    const { id } = request.params;
    const { manifest } = entryOr404(id);
    // The info_hash names the content: a manifest is revalidated, never served stale.
    void reply.header('etag', `"${manifest.info_hash}"`).header('cache-control', 'no-cache');
    return manifest;
  });
}
