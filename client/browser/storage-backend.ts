/**
 * Where one download's bytes and state record physically live in a browser: OPFS through
 * synchronous access handles in a worker, async OPFS, or IndexedDB. The chunk store on
 * top (`BackendChunkStore`) owns every decision about what is verified.
 */
export interface StorageBackend {
  readonly kind: 'opfs-worker' | 'opfs-async' | 'indexeddb';
  /**
   * Open (create) the data area for a file of `sizeBytes` in chunks of `chunkSizeBytes`.
   * `hadData`: data from an earlier run is there (it may still be torn or foreign).
   */
  open(sizeBytes: number, chunkSizeBytes: number): Promise<{ hadData: boolean }>;
  writeChunk(index: number, bytes: Uint8Array): Promise<void>;
  /** `length` bytes at `offset` inside chunk `index`; undefined when they are not there. */
  readChunk(index: number, offset: number, length: number): Promise<Uint8Array | undefined>;
  /** Make every write so far durable (before the state record that claims it). */
  flushData(): Promise<void>;
  readState(): Promise<string | undefined>;
  /** Replace the state record (as atomically as the medium allows). */
  writeState(text: string): Promise<void>;
  /** No more writes: the file is complete. Reads keep working. */
  seal(): Promise<void>;
  /** The whole file as a disk-backed Blob (never assembled in memory); only once complete. Works after close(). */
  file(sizeBytes: number, chunkSizeBytes: number): Promise<Blob>;
  close(): Promise<void>;
  /** Delete the data and the state record. */
  remove(): Promise<void>;
}

/** A backend kind, or 'auto' for the best one this browser has. */
export type StorageKind = StorageBackend['kind'] | 'auto';
