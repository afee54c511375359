import { PfError, fileEntryCodec, type FileEntry } from '../../protocol/index.ts';
import type { ChunkStore } from '../chunk-store.ts';
import type { Download } from '../download.ts';
import { createClient, type Client } from '../engine.ts';
import type { ClientOptions } from '../options.ts';
import type { ProgressInfo } from '../progress.ts';
import { networkError } from '../network-error.ts';
import { parseDownloadUrl } from '../session-client.ts';
import { BackendChunkStore } from './backend-chunk-store.ts';
import { FileSeedStore } from './file-seed-store.ts';
import { openBrowserChunkStore, storeKey, type BrowserChunkStore, type BrowserStoreOptions } from './opfs-chunk-store.ts';
import { ensureQuota, requestPersistence } from './storage-full.ts';
import { saveFile, type SaveOptions } from './save.ts';

/** Options of `download()`: the engine's ClientOptions, storage choice, and callbacks. */
export interface BrowserDownloadOptions extends ClientOptions, BrowserStoreOptions {
  /** Called with progress every `progressIntervalMs` [none]. */
  onProgress?: (progress: ProgressInfo) => void;
  /** Keep serving peers after the file is done, until `stop()` [false]. */
  keepSeeding?: boolean;
  /** Share one client (one peer id) between downloads [a new client per download]. */
  client?: Client;
  /** Use this store instead of OPFS / IndexedDB [openBrowserChunkStore(storeKey(...))]. */
  store?: ChunkStore;
}

/** A running browser download. */
export interface BrowserDownload {
  /** The engine's Download: events (`progress`, `peer`, `chunk`, `status`, `done`, `error`) and status. */
  readonly engine: Download;
  /** The catalog entry (name, size, sha256). */
  readonly file: FileEntry;
  readonly store: ChunkStore;
  /** The browser promised not to evict the stored chunks (`navigator.storage.persist()`); false: it may, when space runs low. */
  readonly isPersisted: boolean;
  /** Resolves when every chunk is verified and the whole-file SHA-256 matched; rejects on a fatal error. */
  readonly done: Promise<{ sha256: string }>;
  /** Whether it keeps seeding once done; setting false while seeding stops it. */
  keepSeeding: boolean;
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stop, keeping what is stored (a later `download()` of the same URL resumes). */
  stop(): Promise<void>;
  /** Stop and delete what is stored. */
  cancel(): Promise<void>;
  /** Save the finished file (call from a click). */
  save(options?: SaveOptions): Promise<'picker' | 'link'>;
}

/** The catalog entry of `<server>/<file_id>` (or `<server>/files/<file_id>`). */
export async function fetchFileEntry(url: string, fetchImpl: typeof fetch = (input, init) => fetch(input, init)): Promise<{ serverUrl: string; entry: FileEntry }> {
  const { serverUrl, fileId } = parseDownloadUrl(url);
  const entryUrl = `${serverUrl}/files/${encodeURIComponent(fileId)}`;
  // A server or network that is away is PF_ERR_UPSTREAM, worth waiting for (see isConnectionLoss).
  const response = await fetchImpl(entryUrl).catch((error: unknown) => {
    throw networkError(error, entryUrl);
  });
  if (response.status === 404) throw new PfError('PF_ERR_FILE_NOT_FOUND', `no file ${fileId} on ${serverUrl}`);
  if (!response.ok) throw new PfError('PF_ERR_UPSTREAM', `GET /files/${fileId}: HTTP ${response.status}`);
  return { serverUrl, entry: fileEntryCodec.parse(await response.json(), 'PF_ERR_UPSTREAM') };
}

/** The Web Lock a download holds while it runs, so that one tab of a profile runs it (OPFS access handles are exclusive). */
export function downloadLockName(serverUrl: string, fileId: string): string {
  return `peerfill:${storeKey(serverUrl, fileId)}`;
}

/**
 * Take `name` if no other tab holds it: resolves with its release (idempotent), or undefined
 * when it is held elsewhere. Without Web Locks there is nobody to agree with: a no-op release.
 */
export function tryHoldLock(name: string): Promise<(() => void) | undefined> {
  const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
  if (!locks) return Promise.resolve(() => undefined);
  return new Promise((resolve, reject) => {
    locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) return resolve(undefined);
        // Held until released: the callback's promise is the lock's lifetime.
        return new Promise<void>((release) => resolve(() => release()));
      })
      .catch(reject);
  });
}

/**
 * Wait until `name` is free (the tab holding it released it or closed), then let it go at
 * once: the caller starts again and takes it with tryHoldLock. Resolves false if aborted.
 */
export function waitForLock(name: string, signal: AbortSignal): Promise<boolean> {
  const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
  if (!locks) return Promise.resolve(true);
  return locks.request(name, { signal }, () => true).catch((error: unknown) => {
    if (signal.aborted) return false;
    throw error;
  });
}

function heldElsewhere(entry: FileEntry): PfError {
  return new PfError('PF_ERR_OUTPUT_LOCKED', `${entry.name} is being downloaded in another tab of this browser`);
}

function requireSecureContext(): void {
  if (typeof isSecureContext !== 'undefined' && !isSecureContext) {
    throw new PfError('PF_ERR_CONFIG', 'peerfill needs a secure context (HTTPS, or http://localhost): this page cannot verify chunks or use browser storage over plain HTTP.');
  }
}

/**
 * Download `url` (`<server>/<file_id>`): checks the storage quota, opens (or resumes) the
 * stored chunks, joins the swarm and fills the rest over HTTP. Resolves once started.
 */
export async function download(url: string, options: BrowserDownloadOptions = {}): Promise<BrowserDownload> {
  requireSecureContext();
  const { serverUrl, entry } = await fetchFileEntry(url, options.fetch);
  let store = options.store;
  // A store of our own is OPFS / IndexedDB, shared by the profile's tabs: one of them runs it.
  const release = store ? () => undefined : await tryHoldLock(downloadLockName(serverUrl, entry.file_id));
  if (!release) throw heldElsewhere(entry);
  try {
    const isPersisted = await requestPersistence();
    if (!store) {
      const opened = await openBrowserChunkStore(storeKey(serverUrl, entry.file_id), options);
      const previous = await opened.peek().catch(() => undefined);
      if (!previous?.isComplete) await ensureQuota(entry.size, (previous?.verifiedChunks ?? 0) * entry.chunk_size);
      store = opened;
    }
    return start(serverUrl, entry, store, options, isPersisted, release);
  } catch (error) {
    release();
    throw error;
  }
}

/** Seed a copy the user already has (an `<input type=file>` pick); every chunk is verified first. */
export async function seedFile(url: string, file: Blob, options: BrowserDownloadOptions = {}): Promise<BrowserDownload> {
  requireSecureContext();
  const { serverUrl, entry } = await fetchFileEntry(url, options.fetch);
  if (file.size !== entry.size) throw new PfError('PF_ERR_BAD_REQUEST', `that file has ${file.size} bytes; ${entry.name} has ${entry.size}`);
  // The user's own file, read-only: nothing another tab could hold. Seed only: a copy that
  // does not match shares the chunks that do and fetches nothing (its store cannot take them).
  return start(serverUrl, entry, new FileSeedStore(file), { ...options, keepSeeding: true }, false, () => undefined, true);
}

function start(serverUrl: string, entry: FileEntry, store: ChunkStore, options: BrowserDownloadOptions, isPersisted: boolean, releaseLock: () => void, seedOnly = false): BrowserDownload {
  const { onProgress, client: givenClient, store: _store, storage: _storage, workerUrl: _workerUrl, keepSeeding: initialKeepSeeding, ...clientOptions } = options;
  const client = givenClient ?? createClient(clientOptions);
  // Seeding is decided at the end (keepSeeding may change meanwhile), so the engine always stays.
  const engine = client.download({ serverUrl, fileId: entry.file_id }, store, { ...(givenClient ? clientOptions : {}), seedAfterDoneMs: Number.POSITIVE_INFINITY, seedOnly });
  let keepSeeding = initialKeepSeeding ?? false;
  let isDone = false;
  let isCancelling = false;
  // The lock goes once the engine has closed the store (a cancel lets it go after removing it).
  // One stop, however many ask for it: a destroyed engine does not start again.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      try {
        await engine.destroy();
      } finally {
        if (!isCancelling) releaseLock();
      }
    })());
  // Deferred: the engine says 'stopped' and 'error' from inside its own destroy path.
  const stopSoon = () => void Promise.resolve().then(stop).catch(() => undefined);
  engine.on('status', ({ status }) => {
    if (status === 'stopped') stopSoon();
  });
  engine.on('error', stopSoon);
  if (onProgress) engine.on('progress', onProgress);
  const done = new Promise<{ sha256: string }>((resolve, reject) => {
    engine.once('done', ({ sha256 }) => {
      isDone = true;
      resolve({ sha256 });
      // After the engine has finished its own bookkeeping for 'done'.
      if (!keepSeeding) setTimeout(() => void stop(), 0);
    });
    // Said once the store is closed and the lock let go: a download() right after may take it.
    engine.once('error', (error) => void Promise.resolve().then(stop).finally(() => reject(error)).catch(() => undefined));
  });
  done.catch(() => undefined);
  void engine.start();
  const handle: BrowserDownload = {
    engine,
    file: entry,
    store,
    isPersisted,
    done,
    get keepSeeding() {
      return keepSeeding;
    },
    set keepSeeding(value: boolean) {
      keepSeeding = value;
      if (!value && isDone) void stop();
    },
    pause: () => engine.pause(),
    resume: () => engine.resume(),
    stop,
    async cancel() {
      isCancelling = true;
      try {
        await engine.destroy();
        if (isBrowserStore(store)) await store.remove();
      } finally {
        releaseLock();
      }
    },
    async save(saveOptions) {
      const manifest = engine.manifest;
      if (!isDone || !manifest || !isBrowserStore(store)) throw new PfError('PF_ERR_BAD_REQUEST', 'the file is not complete yet');
      return saveFile(store, manifest, saveOptions);
    },
  };
  return handle;
}

function isBrowserStore(store: ChunkStore): store is BrowserChunkStore {
  return store instanceof BackendChunkStore;
}
