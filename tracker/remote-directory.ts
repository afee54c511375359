import type { Logger } from 'pino';
import { fileEntryCodec, fileListCodec, verifyManifest, type FileDirectory, type FileEntry, type PublishedFile } from '../protocol/index.ts';

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
  /**
   * A publisher API key (a secret of PEERFILL_PUBLISHER_KEYS), sent as `x-peerfill-key`: with
   * it the origin lists private files too and lets their entries and manifests be read. Without
   * it this directory knows only public files, and a private one is "not found" here.
   */
  apiKey?: string;
  logger: Logger;
  fetch?: typeof fetch;
}

interface Entry {
  file: PublishedFile | undefined;
  expiresAtMs: number;
}

/**
 * The FileDirectory of a standalone tracker: entries and manifests fetched from the origin
 * over HTTP, verified (an info_hash that does not match its manifest is refused), and cached.
 * A file's visibility comes from its entry (`visibility`), so that a private file's sessions
 * need a grant or key and its swarm admits only proven sessions, as in `peerfill serve`.
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

  const headers: Record<string, string> = { accept: 'application/json', ...(options.apiKey === undefined ? {} : { 'x-peerfill-key': options.apiKey }) };
  let warnedPrivate = false;

  async function getJson(path: string): Promise<unknown> {
    const response = await doFetch(`${base}${path}`, { signal: AbortSignal.timeout(options.timeoutMs ?? 5000), headers });
    if (response.status === 404) return undefined;
    if (response.status === 403) {
      // A private file, and no (or no valid) publisher key here: not one this tracker can serve.
      await response.arrayBuffer().catch(() => undefined);
      if (!warnedPrivate) {
        warnedPrivate = true;
        options.logger.warn({ path }, `origin refused a private file's entry: ${options.apiKey === undefined ? 'set PEERFILL_PUBLISHER_KEYS' : 'the origin does not know this tracker\'s first PEERFILL_PUBLISHER_KEYS secret'} to serve private files`);
      }
      return undefined;
    }
    if (!response.ok) throw new Error(`origin answered ${response.status} for ${path}`);
    return (await response.json()) as unknown;
  }

  /** A file from its entry (listed, or fetched here) and its verified manifest. */
  async function fetchFile(fileId: string, listed: FileEntry | undefined): Promise<PublishedFile | undefined> {
    let entry = listed;
    if (!entry) {
      const body = await getJson(`/files/${encodeURIComponent(fileId)}`);
      if (body === undefined) return undefined;
      const decoded = fileEntryCodec.decode(body);
      if (!decoded.ok || decoded.value.file_id !== fileId) {
        options.logger.warn({ fileId, errors: decoded.ok ? ['file_id mismatch'] : decoded.errors }, 'origin sent an invalid file entry');
        return undefined;
      }
      entry = decoded.value;
    }
    const body = await getJson(`/files/${encodeURIComponent(fileId)}/manifest`);
    if (body === undefined) return undefined;
    const checked = await verifyManifest(body);
    if (!checked.ok || checked.manifest.file_id !== fileId) {
      options.logger.warn({ fileId, errors: checked.ok ? ['file_id mismatch'] : checked.errors }, 'origin sent an invalid manifest');
      return undefined;
    }
    // Visibility belongs to the file id, not to one version of its content.
    return entry.visibility === 'private' ? { manifest: checked.manifest, isPrivate: true } : { manifest: checked.manifest };
  }

  async function getByFileId(fileId: string, listed?: FileEntry): Promise<PublishedFile | undefined> {
    const cached = byFileId.get(fileId);
    if (cached && cached.expiresAtMs > Date.now()) return cached.file;
    let pending = inflight.get(fileId);
    if (!pending) {
      pending = fetchFile(fileId, listed).finally(() => inflight.delete(fileId));
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
      await getByFileId(entry.file_id, entry);
    }
  }

  return {
    getByFileId: (fileId) => getByFileId(fileId),
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
