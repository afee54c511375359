import { finished, type Readable } from 'node:stream';

/**
 * Where published bytes live: a local folder or an S3 bucket. Keys are storage-relative
 * (`a/b.iso` for a folder, the full object key for S3) and come from `list()` or from an
 * operator's `peerfill add`, never from a request URL.
 */
export interface StorageStat {
  sizeBytes: number;
  mtimeMs: number;
  /** A strong validator of the current content, quoted (`"..."`), as sent in `ETag`. */
  etag: string;
}

export interface StorageEntry extends StorageStat {
  key: string;
}

/** One open object: its stat at open time and ranged reads of exactly that content. */
export interface StorageHandle extends StorageStat {
  /** Bytes [start, endInclusive]. Destroying the stream (or aborting `signal`) releases it at once. */
  createReadStream(start: number, endInclusive: number, options?: ReadOptions): Promise<Readable>;
  /** Optional fast path (single ranges, manifest builds): bytes from `start` into `target`, as many as fit or the file has; 0 at its end. */
  readInto?(target: Uint8Array, start: number): Promise<number>;
  /**
   * Optional: whether the object's size or mtime is no longer what this handle was opened
   * with (a file rewritten in place). A response checks it after each read, so it never
   * sends bytes of two versions under one ETag. Backends whose objects cannot change under
   * an open handle (S3 reads pinned by ETag) leave it out.
   */
  hasChanged?(): Promise<boolean>;
  close(): Promise<void>;
}

export interface ReadOptions {
  signal?: AbortSignal;
  highWaterMarkBytes?: number;
}

export interface Storage {
  /** For logs: `folder:/srv/files` or `s3://bucket/prefix` (never credentials). */
  readonly description: string;
  /** A stable identity for file ids: `dir:` for the published folder, `s3:bucket/` for a bucket. */
  readonly sourcePrefix: string;
  /** Every publishable object (dot-files and keys that escape the root are left out). */
  list(): AsyncIterable<StorageEntry>;
  /** undefined when the key does not exist or is not publishable. */
  stat(key: string): Promise<StorageStat | undefined>;
  /**
   * Open for reading. `expected` lets a backend skip a round-trip (S3): reads then fail
   * with PF_ERR_UPSTREAM if the object no longer matches it. undefined when missing.
   */
  open(key: string, expected?: StorageStat): Promise<StorageHandle | undefined>;
  /** Optional (S3): a URL that GETs the object straight from the backend, valid for `expiresInSeconds`. */
  presignGet?(key: string, expiresInSeconds: number, contentDisposition?: string): Promise<string>;
  close(): Promise<void>;
}

/** Open, read [start, endInclusive], and close when the stream ends or is destroyed. */
export async function readRange(storage: Storage, key: string, start: number, endInclusive: number, options?: ReadOptions): Promise<Readable> {
  const handle = await storage.open(key);
  if (!handle) throw new Error(`no such object: ${key}`);
  try {
    const stream = await handle.createReadStream(start, endInclusive, options);
    finished(stream, () => void handle.close());
    return stream;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** The last path segment of a key: a published file's name. */
export function baseName(key: string): string {
  const slash = key.lastIndexOf('/');
  return slash < 0 ? key : key.slice(slash + 1);
}

/** Dot-files (and anything under a dot-directory) are never published. */
export function isHiddenKey(key: string): boolean {
  return key.split('/').some((segment) => segment.startsWith('.'));
}
