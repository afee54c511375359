import { createHash } from 'node:crypto';
import { finished } from 'node:stream';
import type { Logger } from 'pino';
import { PfError, type FileDirectory, type Manifest, type PublishedFile } from '../../protocol/index.ts';
import { contentTypeFor } from '../http/content-type.ts';
import type { ManifestBuilder } from './manifest-builder.ts';
import { ManifestCache } from './manifest-cache.ts';
import type { SourceBytes } from '../storage/pooled-read.ts';
import { baseName, type Storage, type StorageStat } from '../storage/storage.ts';

/** A published file: where its bytes are, what they were when hashed, and its manifest. */
export interface CatalogEntry {
  fileId: string;
  /** What the id is derived from: `dir:<relative path>`, `s3:<bucket>/<key>` or `path:<absolute path>`. */
  sourceId: string;
  storage: Storage;
  key: string;
  stat: StorageStat;
  manifest: Manifest;
  /** Unlisted; manifest and sessions need the publisher's grant or key. */
  isPrivate: boolean;
}

/** A file that could be published: located, not yet hashed. */
export interface CatalogCandidate {
  sourceId: string;
  storage: Storage;
  key: string;
  stat: StorageStat;
  isPrivate: boolean;
}

/** File ids are derived from where a file lives, never from a counter: stable across restarts. */
export function fileIdFor(sourceId: string): string {
  return createHash('sha256').update(sourceId).digest('base64url').slice(0, 22);
}

/** Manifest names are 1..255 characters. */
export function publishedName(key: string): string {
  return baseName(key).slice(0, 255);
}

function sameContent(a: StorageStat, b: StorageStat): boolean {
  return a.sizeBytes === b.sizeBytes && a.mtimeMs === b.mtimeMs && a.etag === b.etag;
}

export interface CatalogOptions {
  /** Every file that should be published now (the folder/bucket scan plus added files). */
  discover: () => AsyncIterable<CatalogCandidate>;
  builder: ManifestBuilder;
  cache: ManifestCache;
  logger: Logger;
}

/**
 * The published files. `refresh()` rescans, reuses manifests whose content did not change,
 * takes others from the on-disk cache, and builds the rest (one at a time; each build
 * already uses both cores). Refreshes never overlap.
 */
export class Catalog implements FileDirectory {
  private entries = new Map<string, CatalogEntry>();
  private byInfoHash = new Map<string, CatalogEntry>();
  private refreshing: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();
  private changedTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CatalogOptions) {}

  get(fileId: string): CatalogEntry | undefined {
    return this.entries.get(fileId);
  }

  list(): CatalogEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.sourceId < b.sourceId ? -1 : a.sourceId > b.sourceId ? 1 : 0));
  }

  getByFileId(fileId: string): Promise<PublishedFile | undefined> {
    const entry = this.entries.get(fileId);
    return Promise.resolve(entry && { manifest: entry.manifest, isPrivate: entry.isPrivate });
  }

  getByInfoHash(infoHash: string): Promise<PublishedFile | undefined> {
    const entry = this.byInfoHash.get(infoHash.toLowerCase());
    return Promise.resolve(entry && { manifest: entry.manifest, isPrivate: entry.isPrivate });
  }

  refresh(): Promise<void> {
    const next = this.refreshing.then(() => this.rescan());
    this.refreshing = next.catch(() => undefined);
    return next;
  }

  /** Publish one candidate now (used by `add`); returns its manifest. */
  async publish(candidate: CatalogCandidate): Promise<Manifest> {
    const entry = await this.entryFor(candidate, this.entries.get(fileIdFor(candidate.sourceId)));
    this.put(entry);
    return entry.manifest;
  }

  /** The data plane saw different content than the catalog knows: rescan soon (debounced). */
  noteChanged(fileId: string): void {
    if (this.changedTimer || this.abort.signal.aborted) return;
    this.options.logger.info({ fileId }, 'file changed since it was published; rescanning');
    this.changedTimer = setTimeout(() => {
      this.changedTimer = undefined;
      this.refresh().catch((error: unknown) => this.options.logger.error({ err: error }, 'rescan failed'));
    }, 1000);
    this.changedTimer.unref();
  }

  async close(): Promise<void> {
    this.abort.abort();
    if (this.changedTimer) clearTimeout(this.changedTimer);
    await this.refreshing;
  }

  private put(entry: CatalogEntry): void {
    const previous = this.entries.get(entry.fileId);
    if (previous) this.byInfoHash.delete(previous.manifest.info_hash);
    this.entries.set(entry.fileId, entry);
    this.byInfoHash.set(entry.manifest.info_hash, entry);
  }

  private async rescan(): Promise<void> {
    const seen = new Set<string>();
    let failures = 0;
    for await (const candidate of this.options.discover()) {
      if (this.abort.signal.aborted) return;
      const fileId = fileIdFor(candidate.sourceId);
      if (seen.has(fileId)) continue;
      seen.add(fileId);
      const existing = this.entries.get(fileId);
      if (existing && sameContent(existing.stat, candidate.stat) && existing.isPrivate === candidate.isPrivate) continue;
      try {
        this.put(await this.entryFor(candidate, existing));
      } catch (error) {
        failures++;
        // A file that changed and cannot be rehashed is unpublished: its old manifest would lie.
        if (existing) this.remove(fileId);
        this.options.logger.warn({ err: error, fileId }, 'could not build a manifest; file not published');
      }
    }
    for (const fileId of [...this.entries.keys()]) if (!seen.has(fileId)) this.remove(fileId);
    this.options.logger.info({ files: this.entries.size, failures }, 'catalog refreshed');
  }

  private remove(fileId: string): void {
    const entry = this.entries.get(fileId);
    if (!entry) return;
    this.entries.delete(fileId);
    this.byInfoHash.delete(entry.manifest.info_hash);
  }

  private async entryFor(candidate: CatalogCandidate, existing: CatalogEntry | undefined): Promise<CatalogEntry> {
    const fileId = fileIdFor(candidate.sourceId);
    const name = publishedName(candidate.key);
    if (name === '') throw new PfError('PF_ERR_VALIDATION', 'a file needs a name');
    const contentType = contentTypeFor(name);
    if (existing && sameContent(existing.stat, candidate.stat)) return { ...existing, storage: candidate.storage, key: candidate.key, isPrivate: candidate.isPrivate };
    const cacheKey = ManifestCache.keyOf(candidate.sourceId, candidate.stat, name, contentType);
    let manifest = await this.options.cache.get(cacheKey, { fileId, sizeBytes: candidate.stat.sizeBytes });
    if (!manifest) {
      const { storage, key, stat } = candidate;
      manifest = await this.options.builder.build(
        {
          fileId,
          name,
          contentType,
          sizeBytes: stat.sizeBytes,
          read: async (signal): Promise<SourceBytes> => {
            const handle = await storage.open(key, stat);
            if (!handle) throw new PfError('PF_ERR_FILE_NOT_FOUND');
            if (handle.etag !== stat.etag) {
              await handle.close();
              throw new PfError('PF_ERR_UPSTREAM', 'the file changed while it was being published');
            }
            if (stat.sizeBytes === 0) {
              await handle.close();
              const nothing: Uint8Array[] = [];
              return nothing;
            }
            // Positional reads into the builder's own buffers allocate nothing per read.
            if (handle.readInto) return { readInto: handle.readInto.bind(handle), close: () => handle.close() };
            const stream = await handle.createReadStream(0, stat.sizeBytes - 1, { signal, highWaterMarkBytes: 1024 * 1024 });
            // Ended, failed or destroyed: the handle is released either way.
            finished(stream, () => void handle.close());
            return stream;
          },
        },
        this.abort.signal,
      );
      await this.options.cache.put(cacheKey, manifest);
      this.options.logger.info({ fileId, name, sizeBytes: manifest.size, infoHash: manifest.info_hash }, 'manifest built');
    }
    return { fileId, sourceId: candidate.sourceId, storage: candidate.storage, key: candidate.key, stat: candidate.stat, manifest, isPrivate: candidate.isPrivate };
  }
}
