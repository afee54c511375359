import type { Logger } from 'pino';
import { FileListSchema, createCodec, verifyManifest, type FileDirectory, type PublishedFile } from '../protocol/index.ts';

const fileListCodec = createCodec(FileListSchema);

export interface RemoteDirectoryOptions {
  /** Base URL of an origin (`peerfill serve`). */
  originUrl: string;
  /** How long a fetched manifest is trusted before it is fetched again; default 60 s. */
  cacheTtlMs?: number;
  /** A miss (unknown file or hash) is remembered this long; default 5 s. */
  negativeTtlMs?: number;
  /** Manifests cached at most; default 10,000. */
  maxEntries?: number;
  /** Per request; default 5 s. */
  timeoutMs?: number;
  logger: Logger;
  fetch?: typeof fetch;
}

interface Entry {
  file: PublishedFile | undefined;
  expiresAtMs: number;
}

/**
 * The FileDirectory of a standalone tracker: manifests fetched from the origin over HTTP,
 * verified (an info_hash that does not match its manifest is refused), and cached.
 */
export function createRemoteDirectory(options: RemoteDirectoryOptions): FileDirectory {
  const base = options.originUrl.replace(/\/+$/, '');
  const ttlMs = options.cacheTtlMs ?? 60_000;
  const negativeTtlMs = options.negativeTtlMs ?? 5_000;
  const maxEntries = options.maxEntries ?? 10_000;
  const doFetch = options.fetch ?? fetch;
  const byFileId = new Map<string, Entry>();
  const byInfoHash = new Map<string, Entry>();
  const inflight = new Map<string, Promise<PublishedFile | undefined>>();
  let listFetchedAtMs = 0;
  let listing: Promise<void> | undefined;

  function remember(map: Map<string, Entry>, key: string, file: PublishedFile | undefined): void {
    map.delete(key);
    if (map.size >= maxEntries) {
      const oldest = map.keys().next();
      if (!oldest.done) map.delete(oldest.value);
    }
    map.set(key, { file, expiresAtMs: Date.now() + (file ? ttlMs : negativeTtlMs) });
  }

  async function getJson(path: string): Promise<unknown> {
    const response = await doFetch(`${base}${path}`, { signal: AbortSignal.timeout(options.timeoutMs ?? 5000), headers: { accept: 'application/json' } });
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`origin answered ${response.status} for ${path}`);
    return (await response.json()) as unknown;
  }

  async function fetchManifest(fileId: string): Promise<PublishedFile | undefined> {
    const body = await getJson(`/files/${encodeURIComponent(fileId)}/manifest`);
    if (body === undefined) return undefined;
    const checked = await verifyManifest(body);
    if (!checked.ok || checked.manifest.file_id !== fileId) {
      options.logger.warn({ fileId, errors: checked.ok ? ['file_id mismatch'] : checked.errors }, 'origin sent an invalid manifest');
      return undefined;
    }
    return { manifest: checked.manifest };
  }

  async function getByFileId(fileId: string): Promise<PublishedFile | undefined> {
    const cached = byFileId.get(fileId);
    if (cached && cached.expiresAtMs > Date.now()) return cached.file;
    let pending = inflight.get(fileId);
    if (!pending) {
      pending = fetchManifest(fileId).finally(() => inflight.delete(fileId));
      inflight.set(fileId, pending);
    }
    const file = await pending;
    remember(byFileId, fileId, file);
    if (file) remember(byInfoHash, file.manifest.info_hash, file);
    return file;
  }

  async function refreshList(): Promise<void> {
    const body = await getJson('/files');
    const decoded = fileListCodec.decode(body);
    if (!decoded.ok) {
      options.logger.warn({ errors: decoded.errors }, 'origin sent an invalid file list');
      return;
    }
    for (const entry of decoded.value.files.slice(0, maxEntries)) {
      const known = byInfoHash.get(entry.info_hash);
      if (known?.file && known.expiresAtMs > Date.now()) continue;
      // The list only points at manifests; each is verified before it counts.
      await getByFileId(entry.file_id);
    }
  }

  return {
    getByFileId,
    async getByInfoHash(infoHash: string): Promise<PublishedFile | undefined> {
      const cached = byInfoHash.get(infoHash);
      if (cached && cached.expiresAtMs > Date.now()) return cached.file;
      // One listing at a time, at most once per negative TTL: random hashes cannot make us hammer the origin.
      if (!listing && Date.now() - listFetchedAtMs >= negativeTtlMs) {
        listFetchedAtMs = Date.now();
        listing = refreshList()
          .catch((error: unknown) => options.logger.warn({ err: (error as Error).message }, 'origin file list unavailable'))
          .finally(() => (listing = undefined));
      }
      if (listing) await listing;
      const found = byInfoHash.get(infoHash);
      if (found?.file) return found.file;
      remember(byInfoHash, infoHash, undefined);
      return undefined;
    },
  };
}
