import { PfError } from '../../protocol/index.ts';
import { BackendChunkStore, type BackendChunkStoreOptions } from './backend-chunk-store.ts';
import { IdbBackend } from './idb-chunk-store.ts';
import { OpfsAsyncBackend } from './opfs-async-backend.ts';
import { isDirName } from './opfs-messages.ts';
import { OpfsWorkerBackend, OpfsWorkerClient } from './opfs-worker-backend.ts';
import type { StorageBackend, StorageKind } from './storage-backend.ts';

export interface BrowserStoreOptions extends BackendChunkStoreOptions {
  /** Which storage to use ['auto': OPFS in a worker, else async OPFS, else IndexedDB]. */
  storage?: StorageKind;
  /** Where `opfs-worker.js` is served [next to this script]. */
  workerUrl?: string | URL;
}

/** The chunk store a browser download uses: OPFS (or IndexedDB) behind the engine's ChunkStore. */
export type BrowserChunkStore = BackendChunkStore;

let workerClient: Promise<OpfsWorkerClient | undefined> | undefined;

function defaultWorkerUrl(): URL {
  return new URL('./opfs-worker.js', import.meta.url);
}

/** The page's one OPFS worker, if this browser can run it with synchronous access handles. */
function opfsWorker(workerUrl: string | URL | undefined): Promise<OpfsWorkerClient | undefined> {
  workerClient ??= (async () => {
    if (typeof Worker === 'undefined' || typeof navigator.storage?.getDirectory !== 'function') return undefined;
    let client: OpfsWorkerClient;
    try {
      client = new OpfsWorkerClient(workerUrl ?? defaultWorkerUrl());
    } catch {
      return undefined; // e.g. a cross-origin script cannot start a worker from its own origin
    }
    if (await client.probe()) return client;
    client.terminate();
    return undefined;
  })();
  return workerClient;
}

/** A folder / record name for one download: stable for the same server and file. */
export function storeKey(serverUrl: string, fileId: string): string {
  const host = new URL(serverUrl).host.replace(/[^A-Za-z0-9]/g, '_');
  const key = `${host}-${fileId}`.slice(0, 128);
  if (!isDirName(key)) throw new PfError('PF_ERR_BAD_REQUEST', `cannot make a storage key from ${fileId}`);
  return key;
}

export async function createStorageBackend(key: string, options: BrowserStoreOptions = {}): Promise<StorageBackend> {
  const wanted = options.storage ?? 'auto';
  if (wanted === 'auto' || wanted === 'opfs-worker') {
    const client = await opfsWorker(options.workerUrl);
    if (client) return new OpfsWorkerBackend(client, key);
    if (wanted === 'opfs-worker') throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'OPFS synchronous access handles are not available in this browser');
  }
  if ((wanted === 'auto' || wanted === 'opfs-async') && OpfsAsyncBackend.isSupported()) return new OpfsAsyncBackend(key);
  if (wanted === 'opfs-async') throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'OPFS is not available in this browser');
  if (IdbBackend.isSupported()) return new IdbBackend(key);
  throw new PfError('PF_ERR_STORE_UNAVAILABLE', 'this browser has neither OPFS nor IndexedDB: nowhere to keep the file');
}

/** Open the chunk store of the download named `key` (see storeKey). */
export async function openBrowserChunkStore(key: string, options: BrowserStoreOptions = {}): Promise<BrowserChunkStore> {
  return new BackendChunkStore(await createStorageBackend(key, options), options);
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
