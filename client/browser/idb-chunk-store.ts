import type { StorageBackend } from './storage-backend.ts';

const DB_NAME = 'peerfill';
const CHUNKS = 'chunks';
const STATES = 'states';

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB request failed'));
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error('IndexedDB transaction failed'));
    tx.onabort = () => reject(tx.error ?? new Error('IndexedDB transaction aborted'));
  });
}

let database: Promise<IDBDatabase> | undefined;

function openDatabase(): Promise<IDBDatabase> {
  database ??= new Promise<IDBDatabase>((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      req.result.createObjectStore(CHUNKS);
      req.result.createObjectStore(STATES);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB cannot be opened'));
  }).catch((error: unknown) => {
    database = undefined;
    throw error;
  });
  return database;
}

/**
 * The fallback where OPFS is missing: IndexedDB, one record per chunk holding a Blob
 * (browsers keep Blob values on disk, so reads and the saved file stay disk-backed), and
 * the state record in its own store. Each put is its own transaction, durable on commit.
 */
export class IdbBackend implements StorageBackend {
  readonly kind = 'indexeddb';
  readonly #key: string;

  constructor(key: string) {
    this.#key = key;
  }

  static isSupported(): boolean {
    return typeof indexedDB !== 'undefined';
  }

  async open(sizeBytes: number, chunkSizeBytes: number): Promise<{ hadData: boolean }> {
    const chunkCount = sizeBytes === 0 ? 1 : Math.ceil(sizeBytes / chunkSizeBytes);
    const db = await openDatabase();
    const tx = db.transaction(CHUNKS, 'readwrite');
    const chunks = tx.objectStore(CHUNKS);
    const count = await request(chunks.count(this.#range()));
    // Chunks past the end (a foreign layout) go; the rest are re-verified if doubted.
    chunks.delete(IDBKeyRange.bound([this.#key, chunkCount], [this.#key, Number.MAX_SAFE_INTEGER]));
    await done(tx);
    return { hadData: count > 0 };
  }

  async writeChunk(index: number, bytes: Uint8Array): Promise<void> {
    const db = await openDatabase();
    const tx = db.transaction(CHUNKS, 'readwrite', { durability: 'strict' });
    tx.objectStore(CHUNKS).put(new Blob([bytes.slice()]), [this.#key, index]);
    await done(tx);
  }

  async readChunk(index: number, offset: number, length: number): Promise<Uint8Array | undefined> {
    const blob = await this.#chunkBlob(index);
    if (!blob || offset + length > blob.size) return undefined;
    return new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
  }

  async flushData(): Promise<void> {
    // Every chunk's transaction already committed with strict durability.
  }

  async readState(): Promise<string | undefined> {
    const db = await openDatabase();
    const value: unknown = await request<unknown>(db.transaction(STATES, 'readonly').objectStore(STATES).get(this.#key));
    return typeof value === 'string' ? value : undefined;
  }

  async writeState(text: string): Promise<void> {
    const db = await openDatabase();
    const tx = db.transaction(STATES, 'readwrite', { durability: 'strict' });
    tx.objectStore(STATES).put(text, this.#key);
    await done(tx);
  }

  async seal(): Promise<void> {
    // Nothing to release: every chunk is its own record.
  }

  async file(sizeBytes: number, chunkSizeBytes: number): Promise<Blob> {
    const chunkCount = sizeBytes === 0 ? 1 : Math.ceil(sizeBytes / chunkSizeBytes);
    const parts: Blob[] = [];
    for (let index = 0; index < chunkCount; index++) {
      const blob = await this.#chunkBlob(index);
      if (!blob) throw new Error(`chunk ${index} is missing from IndexedDB`);
      parts.push(blob);
    }
    return new Blob(parts);
  }

  async close(): Promise<void> {
    // Transactions are per call: nothing held open.
  }

  async remove(): Promise<void> {
    const db = await openDatabase();
    const tx = db.transaction([CHUNKS, STATES], 'readwrite');
    tx.objectStore(CHUNKS).delete(this.#range());
    tx.objectStore(STATES).delete(this.#key);
    await done(tx);
  }

  async #chunkBlob(index: number): Promise<Blob | undefined> {
    const db = await openDatabase();
    const value: unknown = await request(db.transaction(CHUNKS, 'readonly').objectStore(CHUNKS).get([this.#key, index]));
    return value instanceof Blob ? value : undefined;
  }

  #range(): IDBKeyRange {
    return IDBKeyRange.bound([this.#key, 0], [this.#key, Number.MAX_SAFE_INTEGER]);
  }
}
